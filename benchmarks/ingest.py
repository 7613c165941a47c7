"""Ingest benchmark: callscope (group commit on PostgreSQL) against a bare FastAPI endpoint.

Both run as one uvicorn process through the same `callscope.server.serve` (same server and
process settings, log level WARNING, no access log); wrk drives both with the same
load (many calls streaming 160-byte frames) at each connection count, in the same run, and the
script prints req/s and p50/p95/p99 for each and their ratio. Afterwards it checks that every
packet callscope acknowledged is in the database.

    .venv/bin/python -m benchmarks.ingest            # or: make bench
    .venv/bin/python -m benchmarks.ingest --duration 20 --connections 64 256

Needs `wrk` (Debian: apt-get install wrk). Uses CALLSCOPE_DATABASE_URL's server if set, else
127.0.0.1:5432, else an embedded PostgreSQL; it creates and drops its own database.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from tests.database import admin_url, database_url
from tests.e2e.processes import clean_env, free_port

from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import upgrade_to_head
from callscope.settings import asyncpg_dsn

HERE = Path(__file__).parent
TOKEN = "bench-ingest-token"


@dataclass(frozen=True)
class Result:
    target: str
    connections: int
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@contextmanager
def _process(args: list[str], env: dict[str, str], name: str) -> Iterator[None]:
    log = Path(tempfile.gettempdir()) / f"callscope-bench-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_answering(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.2)
        else:
            return
    raise TimeoutError(url)


def _wrk(base: str, *, connections: int, seconds: int, prefix: str, calls: int) -> dict[str, int]:
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_PREFIX": prefix, "BENCH_CALLS": str(calls)}
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(HERE / "ingest.lua"),
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_RESULT "))
    parsed: dict[str, int] = json.loads(line.removeprefix("BENCH_RESULT "))
    return parsed


def _measure(target: str, base: str, connections: int, seconds: int, calls: int) -> Result:
    prefix = f"{target}-{connections}-{uuid.uuid4().hex[:6]}"
    raw = _wrk(base, connections=connections, seconds=seconds, prefix=prefix, calls=calls)
    return Result(
        target=target,
        connections=connections,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


async def _count_packets(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM packets")
        return count
    finally:
        await conn.close()


def _print(results: list[Result]) -> None:
    print(
        f"\n{'target':<10} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'non-2xx':>7} {'sock err':>8}"
    )
    for r in results:
        print(
            f"{r.target:<10} {r.connections:>5} {r.rps:>8.0f} {r.p50_ms:>7.1f} {r.p95_ms:>7.1f} "
            f"{r.p99_ms:>7.1f} {r.non_2xx:>7} {r.socket_errors:>8}"
        )
    by_key = {(r.target, r.connections): r for r in results}
    print()
    for conns in sorted({r.connections for r in results}):
        bare, ours = by_key[("bare", conns)], by_key[("callscope", conns)]
        verdict = ""
        if conns == 64:
            ok = ours.p99_ms < 50 and ours.rps >= 0.7 * bare.rps
            verdict = f"  targets (p99 < 50 ms, >= 0.7x): {'met' if ok else 'NOT met'}"
        print(
            f"{conns:>4} connections: callscope/bare throughput = {ours.rps / bare.rps:.2f}"
            f"{verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--calls", type=int, default=1000, help="concurrent calls streamed")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("benchmark: wrk is needed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    with ExitStack() as stack:
        configured = os.environ.get("CALLSCOPE_DATABASE_URL")
        admin = configured or stack.enter_context(admin_url())
        name = f"callscope_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(ensure_database(admin, name))
        stack.callback(lambda: asyncio.run(drop_database(admin, name)))
        url = database_url(admin, name)
        upgrade_to_head(url)

        ours_port, bare_port = free_port(), free_port()
        env = clean_env(
            CALLSCOPE_DATABASE_URL=url,
            CALLSCOPE_INGEST_TOKENS=TOKEN,
            CALLSCOPE_SUPERVISOR_TOKENS="bench-supervisor",
            CALLSCOPE_LOG_LEVEL="WARNING",
        )
        # Tuning knobs of the ingest path pass through, so they can be compared run against run.
        env.update({k: v for k, v in os.environ.items() if k.startswith("CALLSCOPE_INGEST_")})
        stack.enter_context(
            _process(
                [sys.executable, "-m", "callscope", "serve", "--port", str(ours_port)],
                env,
                "callscope",
            )
        )
        stack.enter_context(
            _process(
                [sys.executable, "-m", "benchmarks.bare_app", "--port", str(bare_port)],
                {**env, "PYTHONPATH": str(HERE.parent)},
                "bare",
            )
        )
        targets = {
            "bare": f"http://127.0.0.1:{bare_port}",
            "callscope": f"http://127.0.0.1:{ours_port}",
        }
        _wait_answering(f"{targets['callscope']}/readyz")
        _wait_answering(f"{targets['bare']}/docs")

        acknowledged = 0
        results: list[Result] = []
        for target, base in targets.items():
            warm = _measure(target, base, 64, args.warmup, args.calls)
            if target == "callscope":
                acknowledged += warm.requests - warm.non_2xx
        for conns in args.connections:
            for target, base in targets.items():
                print(
                    f"measuring {target} at {conns} connections for {args.duration} s ...",
                    flush=True,
                )
                result = _measure(target, base, conns, args.duration, args.calls)
                results.append(result)
                if target == "callscope":
                    acknowledged += result.requests - result.non_2xx
        _print(results)
        time.sleep(1)
        stored = asyncio.run(_count_packets(url))
        print(
            f"\npackets acknowledged (2xx) by callscope: {acknowledged}; stored: {stored} "
            f"({'every acknowledged packet stored' if stored >= acknowledged else 'LOST PACKETS'})"
        )
        return 0 if stored >= acknowledged else 1


if __name__ == "__main__":
    raise SystemExit(main())
