"""Command line: run | serve | worker | migrate | prune | mock-ai | simulate | cluster (each
also as `python -m callscope …`)."""

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from callscope import tracing
from callscope.ai.factory import MOCK_FAILURE_RATE, describe_provider
from callscope.app import create_app
from callscope.auth.bootstrap import ensure_local_tokens, read_local_tokens
from callscope.db.embedded import start_embedded_database
from callscope.db.engine import create_engine
from callscope.db.migrate import upgrade_to_head
from callscope.logging import configure_logging
from callscope.process import Process, open_process
from callscope.retention import PruneReport, RetentionPolicy, describe, preview, prune
from callscope.server import (
    cleaned_up_even_at_a_forced_exit,
    exit_at_the_latest,
    exit_on_signals,
    once,
    serve,
)
from callscope.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callscope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="everything in one process: database (embedded if no URL), migrations, API"
    )
    serve = commands.add_parser("serve", help="the HTTP API against CALLSCOPE_DATABASE_URL")
    run.add_argument(
        "--demo",
        action="store_true",
        help="inject the brief's 25 %% provider failures around the real engines too, to watch "
        "retries (CALLSCOPE_AI_FAILURE_RATE, when set, wins)",
    )
    for command in (run, serve):
        command.add_argument("--host", help="address to bind (default: CALLSCOPE_HOST)")
        command.add_argument("--port", type=int, help="port to bind (default: CALLSCOPE_PORT)")
    commands.add_parser("migrate", help="apply database migrations to CALLSCOPE_DATABASE_URL")
    commands.add_parser("worker", help="process AI jobs from CALLSCOPE_DATABASE_URL's queue")
    prune = commands.add_parser(
        "prune",
        help="once, drop the audio, events and queue log past CALLSCOPE_RETAIN_AUDIO_DAYS and "
        "CALLSCOPE_RETAIN_EVENTS_DAYS (workers do it every CALLSCOPE_PRUNE_INTERVAL)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="only count what would go; change nothing"
    )
    commands.add_parser(
        "cluster",
        help="nginx in front of API replicas and workers on one database (`callscope cluster "
        "--help`; make cluster)",
        add_help=False,
    )
    mock_ai = commands.add_parser("mock-ai", help="the flaky mock AI provider as an HTTP API")
    mock_ai.add_argument("--port", type=int, help="port (default: CALLSCOPE_MOCK_AI_PORT)")
    _add_simulate(commands)
    return parser


def _add_simulate(commands: Any) -> None:
    simulate = commands.add_parser(
        "simulate", help="a fake PBX: stream calls (loss, duplicates, reordering) at a service"
    )
    simulate.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    simulate.add_argument(
        "--token",
        help="ingest token (default: CALLSCOPE_INGEST_TOKENS' first, else the one `callscope "
        "run` keeps in the data folder)",
    )
    simulate.add_argument("--calls", type=int, default=10, help="calls to stream")
    simulate.add_argument("--concurrency", type=int, default=10, help="calls at the same time")
    simulate.add_argument("--seconds", type=float, default=5.0, help="length of a tone call")
    simulate.add_argument("--speech", action="store_true", help="stream the recordings")
    simulate.add_argument(
        "--transport",
        choices=("http", "twilio", "stream"),
        default="http",
        help="HTTP POST per packet, Twilio Media Streams, or callscope's own acked stream",
    )
    simulate.add_argument(
        "--agent",
        action="store_true",
        help="an agent track too, the next recording (with --transport twilio or stream)",
    )
    simulate.add_argument(
        "--supervisor-token",
        help="to read the counts back (default: CALLSCOPE_SUPERVISOR_TOKENS' first, else "
        "the data folder's)",
    )
    for name in ("loss", "duplicates", "reorder"):
        simulate.add_argument(
            f"--{name}", type=float, default=0.0, help=f"share of packets: {name}"
        )
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="1: real time, 4: 4x faster, 0: no waiting"
    )
    simulate.add_argument("--seed", type=int, help="make loss, duplicates and reordering repeat")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cluster"]:  # its own options: callscope cluster --help
        from callscope.cluster import main as cluster_main  # noqa: PLC0415 - only when asked

        return cluster_main(argv[1:])
    args = _parser().parse_args(argv)
    exit_on_signals()
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
    if args.command in ("run", "serve", "worker"):
        tracing.configure_from_environment(f"callscope-{args.command}")
    try:
        return _server_command(settings, args)
    finally:
        tracing.shutdown()


def _server_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(_with_demo(settings) if args.demo else settings)
    if settings.database_url is None:
        print("callscope: set CALLSCOPE_DATABASE_URL (or use `callscope run`)", file=sys.stderr)
        return 2
    commands: dict[str, Callable[[Settings], None]] = {
        "migrate": _migrate,
        "worker": _work,
        "serve": _serve,
        "prune": lambda settings: _prune(settings, dry_run=args.dry_run),
    }
    commands[args.command](settings)
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from callscope.simulate.pbx import (  # noqa: PLC0415 - the client side, not for servers
        SimulationOptions,
        simulate,
    )

    local = read_local_tokens(settings.data_dir)
    token = args.token or next((t.get_secret_value() for t in settings.ingest_tokens), None)
    if token is None and local is not None:
        token = local.ingest
    supervisor = args.supervisor_token or next(
        (t.get_secret_value() for t in settings.supervisor_tokens), None
    )
    if supervisor is None and local is not None:
        supervisor = local.supervisor
    if token is None:
        print(
            "callscope: give --token, set CALLSCOPE_INGEST_TOKENS, or run this where "
            f"`callscope run` keeps its tokens ({settings.data_dir})",
            file=sys.stderr,
        )
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
        transport=args.transport,
        agent=args.agent,
        supervisor_token=supervisor,
    )
    if options.agent and options.transport == "http":
        print("callscope: --agent needs --transport twilio or stream", file=sys.stderr)
        return 2
    report = asyncio.run(simulate(options))
    checked = report.calls - report.unchecked
    print(
        f"callscope: simulated {report.calls} calls over {options.transport}, "
        f"{report.packets_sent} packets sent, answers {dict(sorted(report.statuses.items()))}; "
        f"the service's missing counts matched the packets lost on {report.missing_as_planned} "
        f"of {checked} calls checked"
    )
    return 0 if report.missing_as_planned == checked else 1


def _migrate(settings: Settings) -> None:
    upgrade_to_head(settings.require_database_url())
    print("callscope: database schema is at head")


def _prune(settings: Settings, *, dry_run: bool) -> None:
    """One pruning run (or its count), in small transactions like a worker's."""
    policy = RetentionPolicy.from_settings(settings)

    async def once() -> PruneReport:
        engine = create_engine(settings.require_database_url(), pool_size=1)
        try:
            return await (preview(engine, policy) if dry_run else prune(engine, policy))
        finally:
            await engine.dispose()

    for line in describe(asyncio.run(once()), policy, dry_run=dry_run):
        print(line)


def _mock_ai(settings: Settings, port: int) -> None:
    from callscope.ai.mock_service import (  # noqa: PLC0415 - its own small server only
        create_mock_ai_app,
    )

    serve(
        create_mock_ai_app(settings),
        host=settings.host,
        port=port,
        log_level=settings.log_level,
        access_log=settings.access_log,
    )


def _run(settings: Settings) -> int:
    if settings.database_url is not None:
        return _run_on(settings)
    database, url = start_embedded_database(settings.data_dir)
    print(f"callscope: embedded PostgreSQL in {settings.data_dir / 'postgres'}")
    stop_database = once(database.cleanup)  # unless another `callscope run` still uses it
    try:
        with cleaned_up_even_at_a_forced_exit(stop_database):
            return _run_on(settings.model_copy(update={"database_url": url}))
    finally:
        stop_database()
        print("callscope: embedded PostgreSQL stopped", flush=True)


def _run_on(settings: Settings) -> int:
    upgrade_to_head(settings.require_database_url())
    if not settings.auth_disabled and not (settings.ingest_tokens and settings.supervisor_tokens):
        settings = _with_local_tokens(settings)
    if "ai_provider" not in settings.model_fields_set:  # the real engines, installed with us
        settings = settings.model_copy(update={"ai_provider": "local"})
    print(f"callscope: {describe_provider(settings)}")
    base = f"http://{settings.host}:{settings.port}"
    print(f"callscope: API {base}/v1  docs {base}/docs  health {base}/readyz", flush=True)
    print(f"callscope: dashboard {base}/dashboard (sign in with the supervisor token)", flush=True)
    _serve(settings, with_worker=True)
    return 0


def _with_demo(settings: Settings) -> Settings:
    """`run --demo`: failures injected around the real engines as the brief's API has them."""
    if settings.ai_failure_rate is not None:
        return settings
    return settings.model_copy(update={"ai_failure_rate": MOCK_FAILURE_RATE})


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
    app = create_app(settings, worker=with_worker)

    async def drain() -> None:
        process: Process = app.state.process
        await process.drain()

    serve(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        drain=drain,
        grace=settings.shutdown_grace,
        drain_seconds=settings.drain_seconds,
    )


def _work(settings: Settings) -> None:
    """Run the worker until SIGINT/SIGTERM, then drain: in-flight jobs finish (those still
    running when the grace period ends are picked again by another worker)."""

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_process(settings, api=False, worker=True):
            await stop.wait()
            exit_at_the_latest(settings.shutdown_grace)

    asyncio.run(work())
