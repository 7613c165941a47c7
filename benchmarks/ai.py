"""AI orchestration benchmark: 200 calls through one worker process against the brief's
provider (1-3 s per call, 25 % failures).

Steady: at the default concurrency and at 256, the time until every call is settled, the time
from each call's COMPLETED to its ARCHIVED, and the worker's peak database connections (read
from pg_stat_activity). Outage: the provider (`callscope mock-ai` over HTTP) fails every call
for 20 s in the middle of the run, under the adaptive policy (circuit breaker) and under the
backoff policy (the one before it): the provider calls made during the outage, and how long
after the provider is back every call is settled.

    .venv/bin/python -m benchmarks.ai [--calls 200] [--outage 20] [--only steady|outage]
"""

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from tests.e2e.processes import clean_env, free_port
from tests.factories import make_settings, running_app
from tests.integration.ai_helpers import make_completed_calls

from benchmarks.harness import bench_database
from callscope.logging import configure_logging
from callscope.settings import Settings, asyncpg_dsn

LOGS = Path(tempfile.gettempdir())
WORKER_CONNECTIONS = (
    "datname = current_database() AND application_name LIKE 'callscope-worker%' "
    "AND backend_type = 'client backend'"
)
SETTLED = "state IN ('ARCHIVED', 'FAILED')"


@dataclass(frozen=True, slots=True)
class Run:
    settled_s: float  # from the first call completed to the last one settled
    to_archive: list[float]  # each archived call: COMPLETED → ARCHIVED, seconds
    peak_connections: int
    states: dict[str, int]


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log_name: str) -> Iterator[None]:
    with (LOGS / log_name).open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "callscope", *args], env=env, stdout=out, stderr=out
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until(db: asyncpg.Connection, query: str, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while not await db.fetchval(query):
        if time.monotonic() > deadline:
            raise TimeoutError(query)
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _peak_sampler(db_url: str) -> AsyncIterator[list[int]]:
    peaks = [0]
    watcher = await asyncpg.connect(asyncpg_dsn(db_url))

    async def sample() -> None:
        while True:
            count = f"SELECT count(*) FROM pg_stat_activity WHERE {WORKER_CONNECTIONS}"
            peaks.append(await watcher.fetchval(count))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(sample())
    try:
        yield peaks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await watcher.close()


async def _run(
    calls: int, worker_env: dict[str, str], label: str, *, during: "Outage | None" = None
) -> Run:
    """A worker is started on a fresh database, then `calls` calls are streamed and completed;
    `during` changes the provider while they are processed."""
    async with AsyncExitStack() as stack:
        url = await bench_database(stack, "ai")
        db = await asyncpg.connect(asyncpg_dsn(url))
        stack.push_async_callback(db.close)
        env = clean_env(CALLSCOPE_DATABASE_URL=url, CALLSCOPE_LOG_LEVEL="WARNING", **worker_env)
        stack.enter_context(_process(["worker"], env, f"callscope-bench-ai-{label}.log"))
        await _until(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'callscope-worker'",
            within=60,
        )
        peaks = await stack.enter_async_context(_peak_sampler(url))
        app_settings = make_settings(url)
        client = await stack.enter_async_context(running_app(app_settings))
        outage = None if during is None else asyncio.create_task(during.run(url))
        await make_completed_calls(client, [f"bench-{n:04d}" for n in range(calls)])
        await _until(db, f"SELECT count(*) = {calls} FROM calls WHERE {SETTLED}")
        if outage is not None:
            await outage
        return Run(
            settled_s=await db.fetchval(
                "SELECT extract(epoch FROM max(updated_at) - min(completed_at)) FROM calls"
            ),
            to_archive=[
                row["s"]
                for row in await db.fetch(
                    "SELECT extract(epoch FROM e.created_at - c.completed_at)::float8 AS s "
                    "FROM calls c JOIN call_events e USING (call_id) "
                    "WHERE e.type = 'call.state_changed' AND e.to_state = 'ARCHIVED'"
                )
            ],
            peak_connections=max(peaks),
            states={
                r["state"]: r["n"]
                for r in await db.fetch("SELECT state, count(*) AS n FROM calls GROUP BY state")
            },
        )


class Outage:
    """`callscope mock-ai` at 25 % failures, down (100 %) from `start_s` after the first call
    completes for `length_s`, then back; counts the provider calls made while down."""

    def __init__(self, *, port: int, start_s: float, length_s: float) -> None:
        self.port = port
        self.start_s = start_s
        self.length_s = length_s
        self.calls_while_down = 0
        self.recovered_s = 0.0  # from the provider's return to every call settled
        self._mock: contextlib.ExitStack = contextlib.ExitStack()

    def serve(self, failure_rate: float) -> None:
        self._mock.close()
        self._mock = contextlib.ExitStack()
        env = clean_env(CALLSCOPE_AI_FAILURE_RATE=str(failure_rate), CALLSCOPE_LOG_LEVEL="WARNING")
        self._mock.enter_context(
            _process(["mock-ai", "--port", str(self.port)], env, "callscope-bench-mock-ai.log")
        )
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            time.sleep(0.05)
        raise RuntimeError("mock-ai did not start")

    async def run(self, db_url: str) -> None:
        db = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            await self._run(db)
        finally:
            await db.close()

    async def _run(self, db: asyncpg.Connection) -> None:
        await _until(db, "SELECT count(*) > 0 FROM calls WHERE completed_at IS NOT NULL")
        await asyncio.sleep(self.start_s)
        down_at = await db.fetchval("SELECT now()")
        await asyncio.to_thread(self.serve, 1.0)
        await asyncio.sleep(self.length_s)
        up_at = await db.fetchval("SELECT now()")
        await asyncio.to_thread(self.serve, 0.25)
        back = time.monotonic()
        self.calls_while_down = await db.fetchval(
            "SELECT count(*) FROM ai_attempts WHERE started_at BETWEEN $1 AND $2", down_at, up_at
        )
        await _until(db, f"SELECT count(*) = 0 FROM calls WHERE NOT {SETTLED}")
        self.recovered_s = time.monotonic() - back

    def close(self) -> None:
        self._mock.close()


def _print_run(title: str, run: Run, settings: Settings) -> None:
    archive = sorted(run.to_archive)
    p95 = statistics.quantiles(archive, n=20)[-1] if len(archive) > 1 else archive[0]
    print(f"\n{title}")
    print(f"  settled: {run.states}")
    print(f"  time until all settled: {run.settled_s:.1f} s")
    print(
        f"  completed→archived p50 {statistics.median(archive):.1f} s, p95 {p95:.1f} s, "
        f"max {archive[-1]:.1f} s"
    )
    budget = settings.worker_db_pool_size + 2
    print(f"  peak database connections: {run.peak_connections} (budget {budget})")


async def _steady(calls: int) -> None:
    defaults = Settings(_env_file=None)
    for concurrency in (defaults.worker_concurrency, 256):
        run = await _run(
            calls,
            {"CALLSCOPE_WORKER_CONCURRENCY": str(concurrency), "CALLSCOPE_AI_FAILURE_RATE": "0.25"},
            f"steady-{concurrency}",
        )
        _print_run(f"steady, concurrency {concurrency}:", run, defaults)


async def _outages(calls: int, length_s: float) -> None:
    defaults = Settings(_env_file=None)
    made: dict[str, int] = {}
    for policy in ("adaptive", "backoff"):
        outage = Outage(port=free_port(), start_s=3.0, length_s=length_s)
        outage.serve(0.25)
        try:
            env = {
                "CALLSCOPE_AI_PROVIDER": "http",
                "CALLSCOPE_AI_HTTP_URL": f"http://127.0.0.1:{outage.port}",
                "CALLSCOPE_AI_RETRY_POLICY": policy,
            }
            run = await _run(calls, env, f"outage-{policy}", during=outage)
        finally:
            outage.close()
        made[policy] = outage.calls_while_down
        _print_run(f"outage of {length_s:.0f} s, {policy} policy:", run, defaults)
        print(f"  provider calls during the outage: {outage.calls_while_down}")
        print(f"  all settled {outage.recovered_s:.1f} s after the provider was back")
    ratio = made["backoff"] / max(made["adaptive"], 1)
    print(
        f"\noutage: {made['adaptive']} provider calls with the breaker against "
        f"{made['backoff']} under the backoff policy ({ratio:.1f}x fewer; target >= 5x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the provider is down")
    parser.add_argument("--only", choices=["steady", "outage"])
    args = parser.parse_args()
    configure_logging(level="WARNING", json_lines=False)  # the in-process API that takes calls
    print(f"{args.calls} calls, one worker, provider 1-3 s per call with 25 % failures")
    if args.only != "outage":
        asyncio.run(_steady(args.calls))
    if args.only != "steady":
        asyncio.run(_outages(args.calls, args.outage))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
