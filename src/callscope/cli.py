"""Command line: run | serve | worker | migrate | mock-ai | simulate (each also as
`python -m callscope …`)."""

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from callscope.ai.mock_service import create_mock_ai_app
from callscope.app import create_app
from callscope.auth.bootstrap import ensure_local_tokens
from callscope.db.embedded import start_embedded_database
from callscope.db.migrate import upgrade_to_head
from callscope.jobs.worker import run_worker
from callscope.logging import configure_logging
from callscope.server import serve
from callscope.settings import Settings
from callscope.simulate.pbx import SimulationOptions, simulate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callscope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="everything in one process: database (embedded if no URL), migrations, API"
    )
    serve = commands.add_parser("serve", help="the HTTP API against CALLSCOPE_DATABASE_URL")
    for command in (run, serve):
        command.add_argument("--host", help="address to bind (default: CALLSCOPE_HOST)")
        command.add_argument("--port", type=int, help="port to bind (default: CALLSCOPE_PORT)")
    commands.add_parser("migrate", help="apply database migrations to CALLSCOPE_DATABASE_URL")
    commands.add_parser("worker", help="process AI jobs from CALLSCOPE_DATABASE_URL's queue")
    mock_ai = commands.add_parser("mock-ai", help="the flaky mock AI provider as an HTTP API")
    mock_ai.add_argument("--port", type=int, help="port (default: CALLSCOPE_MOCK_AI_PORT)")
    _add_simulate(commands)
    return parser


def _add_simulate(commands: Any) -> None:
    simulate = commands.add_parser(
        "simulate", help="a fake PBX: stream calls (loss, duplicates, reordering) at a service"
    )
    simulate.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    simulate.add_argument("--token", help="ingest token (default: CALLSCOPE_INGEST_TOKENS' first)")
    simulate.add_argument("--calls", type=int, default=10, help="calls to stream")
    simulate.add_argument("--concurrency", type=int, default=10, help="calls at the same time")
    simulate.add_argument("--seconds", type=float, default=5.0, help="length of a tone call")
    simulate.add_argument("--speech", action="store_true", help="stream the recordings")
    for name in ("loss", "duplicates", "reorder"):
        simulate.add_argument(
            f"--{name}", type=float, default=0.0, help=f"share of packets: {name}"
        )
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="1: real time, 4: 4x faster, 0: no waiting"
    )
    simulate.add_argument("--seed", type=int, help="make loss, duplicates and reordering repeat")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"callscope: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    if args.command == "mock-ai":
        _mock_ai(settings, args.port or settings.mock_ai_port)
        return 0
    if args.command == "simulate":
        return _simulate(settings, args)
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    settings = settings.model_copy(update=overrides)
    if args.command == "run":
        return _run(settings)
    if settings.database_url is None:
        print("callscope: set CALLSCOPE_DATABASE_URL (or use `callscope run`)", file=sys.stderr)
        return 2
    {"migrate": _migrate, "worker": _work, "serve": _serve}[args.command](settings)
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or next((t.get_secret_value() for t in settings.ingest_tokens), None)
    if token is None:
        print("callscope: give --token or set CALLSCOPE_INGEST_TOKENS", file=sys.stderr)
        return 2
    options = SimulationOptions(
        url=args.url,
        token=token,
        calls=args.calls,
        concurrency=args.concurrency,
        seconds=args.seconds,
        loss=args.loss,
        duplicates=args.duplicates,
        reorder=args.reorder,
        speed=args.speed,
        speech=args.speech,
        seed=args.seed,
    )
    report = asyncio.run(simulate(options))
    print(
        f"callscope: simulated {report.calls} calls, {report.packets_sent} packets sent, "
        f"answers {dict(sorted(report.statuses.items()))}; the service's missing count matched "
        f"the packets lost on {report.missing_as_planned} of {report.calls} calls"
    )
    return 0 if report.missing_as_planned == report.calls else 1


def _migrate(settings: Settings) -> None:
    upgrade_to_head(settings.require_database_url())
    print("callscope: database schema is at head")


def _mock_ai(settings: Settings, port: int) -> None:
    serve(
        create_mock_ai_app(settings),
        host=settings.host,
        port=port,
        log_level=settings.log_level,
        access_log=settings.access_log,
    )


def _run(settings: Settings) -> int:
    server: Any = None
    if settings.database_url is None:
        server, url = start_embedded_database(settings.data_dir)
        settings = settings.model_copy(update={"database_url": url})
        print(f"callscope: embedded PostgreSQL in {settings.data_dir / 'postgres'}")
    assert settings.database_url is not None  # noqa: S101 - set just above
    upgrade_to_head(settings.database_url)
    if not settings.auth_disabled and not (settings.ingest_tokens and settings.supervisor_tokens):
        settings = _with_local_tokens(settings)
    if "ai_provider" not in settings.model_fields_set:  # the real engines, installed with us
        settings = settings.model_copy(update={"ai_provider": "local"})
    print(f"callscope: AI provider {settings.ai_provider}, failure rate {settings.ai_failure_rate}")
    base = f"http://{settings.host}:{settings.port}"
    print(f"callscope: API {base}/v1  docs {base}/docs  health {base}/readyz", flush=True)
    print(f"callscope: dashboard {base}/dashboard (sign in with the supervisor token)", flush=True)
    _serve(settings, with_worker=True)
    del server  # keeps the embedded server referenced until the API has stopped
    return 0


def _with_local_tokens(settings: Settings) -> Settings:
    """Fill each kind of token that is not configured from the data folder (created once)."""
    tokens = ensure_local_tokens(settings.data_dir)
    print(f"callscope: tokens (kept in {tokens.path}):")
    updates: dict[str, list[SecretStr]] = {}
    if not settings.ingest_tokens:
        updates["ingest_tokens"] = [SecretStr(tokens.ingest)]
        print(f"  ingest token:     {tokens.ingest}")
    if not settings.supervisor_tokens:
        updates["supervisor_tokens"] = [SecretStr(tokens.supervisor)]
        print(f"  supervisor token: {tokens.supervisor}")
    return settings.model_copy(update=updates)


def _serve(settings: Settings, *, with_worker: bool = False) -> None:
    serve(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        worker=settings if with_worker else None,
    )


def _work(settings: Settings) -> None:
    """Run the worker until SIGINT/SIGTERM, then drain: in-flight jobs finish."""

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop)

    asyncio.run(work())
