"""`python -m callscope.cluster` (`make cluster`): the scale-out topology on one machine without
containers. nginx (Debian's package, unprivileged, generated config) balances K `callscope
serve` replicas; M `callscope worker`s take the AI jobs; all share one database
(CALLSCOPE_DATABASE_URL, else the embedded one `callscope run` uses), migrated once here.
Ctrl-C or SIGTERM stops every process it started."""

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

import asyncpg

from callscope import answering
from callscope.auth.bootstrap import ensure_local_tokens
from callscope.cluster_nginx import nginx_config
from callscope.db.embedded import start_embedded_database
from callscope.db.migrate import upgrade_to_head
from callscope.process import connections_at_most
from callscope.settings import Settings, asyncpg_dsn

# Read here, not in Settings: they size this launcher, not any callscope process.
REPLICAS_VARIABLE: Final = "CALLSCOPE_API_REPLICAS"
WORKERS_VARIABLE: Final = "CALLSCOPE_WORKERS"
STOP_TIMEOUT: Final = 40.0  # seconds a member may take to stop before it is killed


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    """What to start: `env` is every callscope process's environment (database and tokens
    in it), `logs` the folder of every member's log."""

    api_replicas: int
    workers: int
    env: dict[str, str]
    logs: Path
    host: str = "127.0.0.1"
    port: int = 8000
    nginx: str = field(default_factory=lambda: shutil.which("nginx") or "/usr/sbin/nginx")


@dataclass(slots=True)
class Member:
    """One process of the cluster; `port` is where a replica (or nginx) listens."""

    name: str
    process: "subprocess.Popen[bytes]"
    log: Path
    port: int | None = None


@dataclass(slots=True)
class Cluster:
    url: str  # the load balancer's
    replicas: list[Member]
    workers: list[Member]
    nginx: Member

    @property
    def members(self) -> list[Member]:
        return [self.nginx, *self.replicas, *self.workers]


def free_port() -> int:
    """A port the OS has just handed out (and freed) on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(name: str, command: list[str], env: dict[str, str], logs: Path) -> Member:
    """Start a member in its own process group: Ctrl-C reaches only the launcher, which
    stops the members in order."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI and nginx, fixed arguments
            command, env=env, stdout=out, stderr=subprocess.STDOUT, process_group=0
        )
    return Member(name=name, process=process, log=log)


def stop_members(members: Sequence[Member], signum: signal.Signals) -> None:
    """Signal every member still running, then wait for each; kill one that takes longer
    than STOP_TIMEOUT."""
    for member in members:
        if member.process.poll() is None:
            member.process.send_signal(signum)
    deadline = time.monotonic() + STOP_TIMEOUT
    for member in members:
        try:
            member.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            member.process.kill()
            member.process.wait()


def wait_answering(url: str, member: Member, timeout: float) -> None:
    """Until GET `url` answers 200; raises when `member` exits first or time runs out."""
    answering.wait_answering(url, member.process, name=member.name, log=member.log, timeout=timeout)


@contextmanager
def running_cluster(plan: ClusterPlan, *, ready_timeout: float = 90) -> Iterator[Cluster]:
    """Start the replicas, the workers and nginx; yield once the load balancer answers
    ready. On exit every callscope process stops as on Ctrl-C (requests in flight finish,
    sockets close with 1001) and is waited for, then nginx."""
    callscope = [sys.executable, "-m", "callscope"]
    replicas: list[Member] = []
    workers: list[Member] = []
    with ExitStack() as stack:
        stack.callback(lambda: stop_members([*replicas, *workers], signal.SIGINT))
        for n in range(plan.api_replicas):
            port = free_port()
            args = [*callscope, "serve", "--host", "127.0.0.1", "--port", str(port)]
            replicas.append(_start(f"api-{n + 1}", args, plan.env, plan.logs))
            replicas[-1].port = port
        for n in range(plan.workers):
            workers.append(_start(f"worker-{n + 1}", [*callscope, "worker"], plan.env, plan.logs))
        for replica in replicas:
            wait_answering(f"http://127.0.0.1:{replica.port}/readyz", replica, ready_timeout)
        prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callscope-nginx-")))
        nginx = _start_nginx(plan, prefix, [r.port for r in replicas if r.port is not None])
        stack.callback(stop_members, [nginx], signal.SIGQUIT)  # after the replicas closed
        url = f"http://{plan.host}:{plan.port}"
        wait_answering(f"{url}/readyz", nginx, timeout=10)
        yield Cluster(url=url, replicas=replicas, workers=workers, nginx=nginx)


def _start_nginx(plan: ClusterPlan, prefix: Path, upstreams: list[int]) -> Member:
    # Started as root, nginx's workers run as `nobody` and must reach their temp paths.
    prefix.chmod(0o711)
    config = prefix / "nginx.conf"
    error_log = plan.logs / "nginx-error.log"
    config.write_text(
        nginx_config(
            host=plan.host, port=plan.port, upstreams=upstreams, folder=prefix, error_log=error_log
        )
    )
    command = [plan.nginx, "-p", str(prefix), "-c", str(config), "-e", str(error_log)]
    member = _start("nginx", command, plan.env, plan.logs)
    member.port = plan.port
    return member


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m callscope.cluster", description=__doc__)
    parser.add_argument(
        "--api-replicas",
        type=int,
        default=int(os.environ.get(REPLICAS_VARIABLE, "2")),
        help=f"`callscope serve` processes behind nginx (default: {REPLICAS_VARIABLE}, else 2)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get(WORKERS_VARIABLE, "1")),
        help=f"`callscope worker` processes (default: {WORKERS_VARIABLE}, else 1)",
    )
    parser.add_argument("--port", type=int, help="nginx's port (default: CALLSCOPE_PORT)")
    parser.add_argument(
        "--logs", type=Path, help="folder for every process's log (default: DATA_DIR/cluster)"
    )
    return parser


def _child_env(settings: Settings, database_url: str) -> tuple[dict[str, str], list[str]]:
    """Every member's environment, and what to tell the user about the tokens."""
    inherited = {
        k: v for k, v in os.environ.items() if k not in (REPLICAS_VARIABLE, WORKERS_VARIABLE)
    }
    env = {**inherited, "CALLSCOPE_DATABASE_URL": database_url}
    lines: list[str] = []
    if "ai_provider" not in settings.model_fields_set:  # as `callscope run`: the real engines
        env["CALLSCOPE_AI_PROVIDER"] = "local"
    if settings.auth_disabled:
        return env, ["  authentication is off (CALLSCOPE_AUTH_DISABLED)"]
    local = ensure_local_tokens(settings.data_dir)
    for kind, configured, generated in (
        ("ingest", settings.ingest_tokens, local.ingest),
        ("supervisor", settings.supervisor_tokens, local.supervisor),
    ):
        variable = f"CALLSCOPE_{kind.upper()}_TOKENS"
        if configured:
            lines.append(f"  {kind} token: from {variable}")
        else:
            env[variable] = generated
            lines.append(f"  {kind} token: {generated}  (kept in {local.path})")
    return env, lines


def _say(*lines: str, stream: TextIO = sys.stdout) -> None:
    """Tell the operator (the cluster's own output, not a log)."""
    stream.write("".join(f"{line}\n" for line in lines))
    stream.flush()


_stopping: list[int] = []


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    """The first SIGINT/SIGTERM unwinds (stopping every member); later ones are ignored so
    that the unwinding finishes."""
    if not _stopping:
        _stopping.append(signum)
        raise SystemExit(128 + signum)


def _watch(cluster: Cluster) -> int:
    """Until a signal; a member that exits on its own ends the cluster (exit status 1)."""
    while True:
        for member in cluster.members:
            if member.process.poll() is not None:
                _say(
                    f"callscope cluster: {member.name} exited ({member.process.returncode}); "
                    f"see {member.log}; stopping",
                    stream=sys.stderr,
                )
                return 1
        time.sleep(0.5)


def connection_shortfall(
    settings: Settings, database_url: str, *, api_replicas: int, workers: int
) -> str | None:
    """Why the cluster's processes could open more connections than the server takes now, or
    None when they fit (with CONNECTIONS_SPARE left for migrations, `prune` and operators)."""
    per_api = connections_at_most(settings, api=True, worker=False)
    per_worker = connections_at_most(settings, api=False, worker=True)
    needed = api_replicas * per_api + workers * per_worker
    free = asyncio.run(connections_free(database_url))
    if needed + CONNECTIONS_SPARE <= free:
        return None
    return (
        f"{_count(api_replicas, 'API replica')} x {per_api} + {_count(workers, 'worker')} x "
        f"{per_worker} may open {needed} database connections (and {CONNECTIONS_SPARE} are "
        f"kept spare), but the server takes {free} more: start fewer, lower "
        "CALLSCOPE_DB_POOL_SIZE or CALLSCOPE_WORKER_DB_POOL_SIZE, raise max_connections, or "
        "put PgBouncer in front (docs/scaling.md)"
    )


async def connections_free(database_url: str) -> int:
    """Connections the server would still accept from an ordinary role: `max_connections`
    less the reserved slots and the client connections open now (this one excepted)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        free: int = await connection.fetchval(_CONNECTIONS_FREE)
    finally:
        await connection.close()
    return free


_CONNECTIONS_FREE: Final = """
SELECT current_setting('max_connections')::int
     - current_setting('superuser_reserved_connections')::int
     - coalesce(current_setting('reserved_connections', true)::int, 0)
     - (SELECT count(*) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int
"""
CONNECTIONS_SPARE: Final = 3


def _run(settings: Settings, args: argparse.Namespace, database_url: str) -> int:
    upgrade_to_head(database_url)
    _say("callscope cluster: database schema is at head")
    shortfall = connection_shortfall(
        settings, database_url, api_replicas=args.api_replicas, workers=args.workers
    )
    if shortfall is not None:
        _say(f"callscope cluster: {shortfall}", stream=sys.stderr)
        return 2
    env, token_lines = _child_env(settings, database_url)
    logs: Path = args.logs or settings.data_dir / "cluster"
    logs.mkdir(parents=True, exist_ok=True)
    plan = ClusterPlan(
        api_replicas=args.api_replicas,
        workers=args.workers,
        env=env,
        logs=logs,
        host=settings.host,
        port=args.port or settings.port,
    )
    with running_cluster(plan) as cluster:
        ports = ", ".join(f"{r.name} on :{r.port}" for r in cluster.replicas)
        _say(
            f"callscope cluster: {_count(len(cluster.replicas), 'API replica')} ({ports}), "
            f"{_count(len(cluster.workers), 'worker')}; logs in {logs}",
            f"callscope cluster: load balancer {cluster.url}  docs {cluster.url}/docs  "
            f"dashboard {cluster.url}/dashboard",
            *token_lines,
            "callscope cluster: Ctrl-C stops everything",
        )
        return _watch(cluster)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.api_replicas < 1 or args.workers < 0:
        _say("callscope cluster: at least 1 API replica and 0 or more workers", stream=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_on_signal)
    settings = Settings()
    database: Any = None
    url = settings.database_url
    try:
        if url is None:
            database, url = start_embedded_database(settings.data_dir)
            _say(f"callscope cluster: embedded PostgreSQL in {settings.data_dir / 'postgres'}")
        return _run(settings, args, url)
    except SystemExit as stopped:  # a signal: every member has been stopped on the way here
        _say("callscope cluster: stopped")
        return 0 if stopped.code in (128 + signal.SIGINT, 128 + signal.SIGTERM) else 1
    finally:
        if database is not None:
            database.cleanup()  # stops the server unless a `callscope run` still uses it


if __name__ == "__main__":
    raise SystemExit(main())
