"""Retention benchmark: ingest latency and CPU under a steady load, without and with a pruning
run going on over a large backlog of old ARCHIVED calls' packets, in the same run.

A fresh database is seeded (SQL, before the server starts) with `--old-calls` ARCHIVED calls
that ended 60 days ago, `--old-packets` packets each, three events each and a queue log row
each; then one `callscope serve` takes a steady load (`benchmarks.steady_load`: `--rate`
packets/s over 200 concurrent calls) three times, `--duration` seconds each: without pruning,
with a pruning run (`callscope.retention.prune`, the worker task's code, here in this process
so that nothing else, such as AI jobs, differs between the phases) and without again. For
each phase it prints ingest p50/p99, the API's CPU per 1,000 requests, the CPU of this
database's PostgreSQL backends, and for the pruning phase what was pruned, the pruner's CPU
(this process and its backend) per 1,000 packets and its transactions' durations (the longest
any row lock is held). Process CPU times, not wall-clock, for the throughput figures.

    .venv/bin/python -m benchmarks.retention [--old-calls 2000] [--old-packets 1000]

Uses CALLSCOPE_DATABASE_URL's server if set, else 127.0.0.1:5432, else an embedded
PostgreSQL; it creates and drops its own database.
"""

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil
from tests.e2e.processes import clean_env, free_port

from benchmarks.harness import bench_database, steady_load, wait_ready
from callscope.db.engine import create_engine
from callscope.retention import PruneReport, RetentionPolicy, prune
from callscope.retention.policy import DEFAULT_PAUSE_RATIO
from callscope.settings import asyncpg_dsn

INGEST_TOKEN = "bench-ingest"
SEED_CHUNK = 100  # old calls per seeding statement


async def _seed(conn: asyncpg.Connection, calls: int, packets: int) -> None:
    """Old ARCHIVED calls with their counters, packets (160 bytes each), events and queue log
    rows; vacuumed and analysed, as a database that has been running a while would be."""
    for first in range(0, calls, SEED_CHUNK):
        ids = [f"old-{n}" for n in range(first, min(calls, first + SEED_CHUNK))]
        await conn.execute(
            "INSERT INTO calls (call_id, state, created_at, updated_at, completed_at) "
            "SELECT id, 'ARCHIVED', now() - interval '61 days', now() - interval '60 days', "
            "now() - interval '60 days' FROM unnest($1::text[]) AS id",
            ids,
        )
        await conn.execute(
            "INSERT INTO call_tracks (call_id, track, packets_received, bytes_received, "
            "max_sequence, has_sequence_zero) "
            "SELECT id, 'inbound', $2::bigint, $2::bigint * 160, $2::bigint, false "
            "FROM unnest($1::text[]) AS id",
            ids,
            packets,
        )
        await conn.execute(
            "INSERT INTO packets (call_id, track, sequence, data, sent_at, received_at) "
            "SELECT id, 'inbound', s, decode(repeat('7f', 160), 'hex'), 0, "
            "now() - interval '61 days' "
            "FROM unnest($1::text[]) AS id, generate_series(1, $2) AS s",
            ids,
            packets,
        )
        print(f"  seeded {first + len(ids)} of {calls} old calls", end="\r", flush=True)
    await conn.execute(
        "INSERT INTO call_events (call_id, type, created_at) "
        "SELECT call_id, t, now() - interval '60 days' FROM calls, "
        "unnest(ARRAY['call.created', 'call.state_changed', 'call.archived']) AS t"
    )
    await conn.execute(
        "INSERT INTO pgqueuer_log (created, job_id, status, priority, entrypoint) "
        "SELECT now() - interval '60 days', n, 'successful', 0, 'process_call' "
        "FROM generate_series(1, $1) AS n",
        calls,
    )
    await conn.execute("VACUUM ANALYZE")
    print()


@dataclass
class Sample:
    api_cpu: float
    backends: dict[int, float]  # this database's PostgreSQL backends: pid → CPU seconds
    vacuums: int  # (auto)vacuums of `packets` so far


@dataclass
class Phase:
    name: str
    load: dict[str, Any]
    api_cpu: float
    pg_cpu: float
    vacuums: int
    pruned: PruneReport | None = None
    pruner_cpu: float = 0.0
    pruning_seconds: float = 0.0
    batch_ms: list[float] = field(default_factory=list)

    @classmethod
    def between(cls, name: str, load: dict[str, Any], first: Sample, last: Sample) -> "Phase":
        pg = sum(cpu - first.backends.get(pid, 0.0) for pid, cpu in last.backends.items())
        return cls(name, load, last.api_cpu - first.api_cpu, pg, last.vacuums - first.vacuums)


class Meter:
    """Process CPU seconds of the API server and of this database's PostgreSQL backends (the
    pruner's and autovacuum's included), and how often `packets` was vacuumed."""

    def __init__(self, server_pid: int, conn: asyncpg.Connection, database: str) -> None:
        self.server = psutil.Process(server_pid)
        self.conn = conn
        self.database = database

    async def sample(self) -> Sample:
        times = self.server.cpu_times()
        pids = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database
        )
        vacuums = await self.conn.fetchval(
            "SELECT vacuum_count + autovacuum_count FROM pg_stat_user_tables "
            "WHERE relname = 'packets'"
        )
        return Sample(times.user + times.system, {pid: _cpu(pid) for (pid,) in pids}, vacuums)


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


async def _phase(
    name: str, meter: Meter, port: int, args: argparse.Namespace, *, pruner: Any = None
) -> Phase:
    print(f"{name}: {args.rate:.0f} packets/s for {args.duration:.0f} s ...", flush=True)
    first = await meter.sample()
    if pruner is None:
        load = await steady_load(port, args, token=INGEST_TOKEN)
        return Phase.between(name, load, first, await meter.sample())
    stop, durations, started = asyncio.Event(), list[float](), time.perf_counter()
    own = time.process_time()

    async def pruning_run() -> tuple[PruneReport, float]:
        """The run and how long it lasted (it may end before the load if it runs out)."""
        report = await prune(pruner, args.policy, stop=stop, on_batch=durations.append)
        return report, time.perf_counter() - started

    pruning = asyncio.create_task(pruning_run())
    load = await steady_load(port, args, token=INGEST_TOKEN)
    stop.set()
    report, seconds = await pruning
    phase = Phase.between(name, load, first, await meter.sample())
    phase.pruned, phase.pruner_cpu = report, time.process_time() - own
    phase.pruning_seconds = seconds
    phase.batch_ms = [took * 1000 for took in durations]
    return phase


def _print(phases: list[Phase], args: argparse.Namespace) -> None:
    print(f"\n{'phase':<16} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>6} {'API CPU ms/1k req':>18} "
          f"{'PG CPU s':>9} {'vacuums':>7}  statuses")  # fmt: skip
    for p in phases:
        print(f"{p.name:<16} {p.load['p50_ms']:>7.2f} {p.load['p99_ms']:>7.2f} "
              f"{p.load['achieved_rate']:>6.0f} {_api_per_k(p):>18.1f} {p.pg_cpu:>9.2f} "
              f"{p.vacuums:>7}  {p.load['statuses']}")  # fmt: skip
    pruning = [p for p in phases if p.pruned is not None]
    print("\nmedian of the phases    p50 ms  p99 ms  API CPU ms/1k req  PG CPU s")
    without = [p for p in phases if p.pruned is None]
    for label, group in (("without pruning", without), ("while pruning", pruning)):
        p50, p99 = _median(group, _p50), _median(group, _p99)
        api, pg = _median(group, _api_per_k), _median(group, lambda p: p.pg_cpu)
        print(f"{label:<22} {p50:>7.2f} {p99:>7.2f} {api:>18.1f} {pg:>9.2f}")
    report = sum((p.pruned for p in pruning if p.pruned is not None), PruneReport())
    seconds = sum(p.pruning_seconds for p in pruning)
    batch_ms = [ms for p in pruning for ms in p.batch_ms]
    cuts = statistics.quantiles(batch_ms, n=100) if len(batch_ms) > 1 else [0.0] * 99
    print(
        f"\npruning (batch size {args.policy.batch_size}, pause ratio "
        f"{args.policy.pause_ratio:g}): {report.packets} packets of {report.calls} calls, "
        f"{report.events} events, {report.queue_log} queue log rows in {report.batches} "
        f"transactions over {seconds:.1f} s ({report.packets / max(seconds, 1e-9):.0f} packets/s)"
    )
    print(
        f"transaction durations: p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, "
        f"max {max(batch_ms, default=0):.1f} ms ({sum(ms > 100 for ms in batch_ms)} over 100 ms)"
    )
    cpu = sum(p.pruner_cpu for p in pruning)
    rows = report.packets + report.events + report.queue_log
    print(
        f"pruner CPU (this process): {cpu:.2f} s, {1e6 * cpu / max(rows, 1):.1f} ms per "
        "1,000 rows; its PostgreSQL backend's CPU is in the phases' PG CPU"
    )


def _p50(phase: Phase) -> float:
    return float(phase.load["p50_ms"])


def _p99(phase: Phase) -> float:
    return float(phase.load["p99_ms"])


def _api_per_k(phase: Phase) -> float:
    """API CPU ms per 1,000 requests."""
    return 1e6 * phase.api_cpu / int(phase.load["requests"])


def _median(phases: list[Phase], figure: Callable[[Phase], float]) -> float:
    return statistics.median(figure(p) for p in phases) if phases else math.nan


async def _bench(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        url = await bench_database(stack, "retention")
        conn = await asyncpg.connect(asyncpg_dsn(url))
        stack.push_async_callback(conn.close)
        name = await conn.fetchval("SELECT current_database()")
        print(f"seeding {args.old_calls} old ARCHIVED calls x {args.old_packets} packets ...")
        await _seed(conn, args.old_calls, args.old_packets)

        port = free_port()
        env = clean_env(
            CALLSCOPE_DATABASE_URL=url,
            CALLSCOPE_INGEST_TOKENS=INGEST_TOKEN,
            CALLSCOPE_SUPERVISOR_TOKENS="bench-supervisor",
            CALLSCOPE_LOG_LEVEL="WARNING",
        )
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callscope", "serve", "--port", str(port), env=env
        )
        stack.push_async_callback(_stop, server)
        await wait_ready(f"http://127.0.0.1:{port}")
        pruner = create_engine(url, pool_size=1)
        stack.push_async_callback(pruner.dispose)
        meter = Meter(server.pid, conn, name)
        phases = [await _phase("without 1", meter, port, args)]
        for n in range(1, args.rounds + 1):
            phases.append(await _phase(f"while pruning {n}", meter, port, args, pruner=pruner))
            phases.append(await _phase(f"without {n + 1}", meter, port, args))
    _print(phases, args)


async def _stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        server.terminate()
        await server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-calls", type=int, default=2000, help="old ARCHIVED calls")
    parser.add_argument("--old-packets", type=int, default=1000, help="packets per old call")
    parser.add_argument("--batch-size", type=int, default=500, help="CALLSCOPE_PRUNE_BATCH_SIZE")
    parser.add_argument(
        "--pause-ratio",
        type=float,
        default=DEFAULT_PAUSE_RATIO,
        help="pause after each transaction, as a multiple of its duration",
    )
    parser.add_argument("--rate", type=float, default=500, help="packets per second")
    parser.add_argument("--duration", type=float, default=15, help="seconds per phase")
    parser.add_argument(
        "--rounds", type=int, default=2, help="pruning phases, each followed by one without"
    )
    parser.add_argument("--calls", type=int, default=200, help="concurrent live calls")
    parser.add_argument("--packets-per-call", type=int, default=50)
    args = parser.parse_args()
    args.policy = RetentionPolicy(
        audio_days=30, events_days=30, batch_size=args.batch_size, pause_ratio=args.pause_ratio
    )
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
