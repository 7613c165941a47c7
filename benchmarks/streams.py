"""Media-stream benchmark: real-time calls over the Twilio socket, the native stream and
HTTP, beside a bare endpoint that only parses Twilio frames (the ceiling), in one run.

For each path, `--calls` concurrent calls send a 20 ms μ-law frame per track every 20 ms
(both tracks; HTTP carries the caller's only) from `--load-processes` load processes
(`benchmarks.stream_load`). Once every call is sending and `--warmup` seconds have passed,
the script measures for `--seconds`:

- frames stored per second (the bare endpoint: parsed);
- API CPU µs per stored frame, and PostgreSQL CPU µs per stored frame (process CPU times of
  the server and of every PostgreSQL process, robust on a noisy machine);
- frame-to-commit p50/p99: native, the time from sending a frame to the ack covering it;
  HTTP, to the 202; Twilio (which reads nothing back), from the frame's arrival to its
  commit, from the server's `callscope_ingest_commit_seconds` histogram;
- live calls one API core carries (1 CPU second / the API CPU of one call-second);
- and after the run, whether every acknowledged frame is stored.

    .venv/bin/python -m benchmarks.streams        # or: make bench-streams
    .venv/bin/python -m benchmarks.streams --calls 200 --paths twilio

Uses CALLSCOPE_DATABASE_URL's server if set, else 127.0.0.1:5432, else an embedded
PostgreSQL; it creates and drops its own database.
"""

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from tests.database import admin_url, database_url
from tests.e2e.processes import clean_env, free_port

from callscope.answering import wait_answering
from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import upgrade_to_head
from callscope.settings import asyncpg_dsn

HERE = Path(__file__).parent
TOKEN: Final = "bench-ingest"
FRAMES_PER_TRACK_SECOND: Final = 50
TARGETS: Final = {"twilio": 300, "stream": 500}  # live calls per API core
# The issue's API CPU per frame for those: "<= 65 µs" for Twilio; 1e6 / (500 x 50) for the
# native stream. Both count a call as one 50-frame/s track.
BUDGETS_US: Final = {"twilio": 65.0, "stream": 1e6 / (500 * 50)}
LATENCY_TARGET_CALLS: Final = 200  # Twilio frame-to-commit p99 <= 250 ms at this many calls


@dataclass
class Snapshot:
    at: float
    stored: int
    api_cpu: float
    pg_cpu: dict[int, float]
    load_cpu: float
    commit_buckets: list[tuple[float, float]]
    batches: tuple[float, float]  # (batches, packets) committed so far


@dataclass
class PathResult:
    path: str
    calls: int
    seconds: float
    stored: int
    api_cpu: float
    pg_cpu: float
    load_cpu: float
    tracks: int
    latencies_ms: list[float] = field(default_factory=list)
    batches: float = 0.0
    batched: float = 0.0
    acked_lost: int | None = None
    endings: dict[str, int] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.stored / self.seconds

    def us_per_frame(self, cpu: float) -> float:
        return 1e6 * cpu / self.stored if self.stored else math.nan

    @property
    def calls_per_core(self) -> float:
        call_second = self.tracks * FRAMES_PER_TRACK_SECOND * self.us_per_frame(self.api_cpu)
        return 1e6 / call_second


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs, in ms."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower * 1000
            return (lower + (upper - lower) * (rank - below) / max(count - below, 1)) * 1000
        lower, below = upper, count
    return math.nan


class Server:
    """`callscope serve` or the bare endpoint, as a child process."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.port = free_port()
        self.log = Path(tempfile.gettempdir()) / f"callscope-bench-streams-{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*args, "--port", str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.cpu = psutil.Process(self.process.pid)

    def wait_answering(self, path: str, timeout: float = 60) -> None:
        wait_answering(
            f"http://127.0.0.1:{self.port}{path}",
            self.process,
            name=self.name,
            log=self.log,
            timeout=timeout,
        )

    def cpu_seconds(self) -> float:
        times = self.cpu.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Load:
    """`--load-processes` load processes of one path; their output read in threads."""

    def __init__(self, path: str, port: int, calls: int, seconds: float, processes: int) -> None:
        self.steady: list[float] = []
        self.results: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._children: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        run = uuid.uuid4().hex[:6]
        shares = [calls // processes + (i < calls % processes) for i in range(processes)]
        for n, share in enumerate(s for s in shares if s):
            child = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.stream_load", "--port", str(port),
                 "--transport", path, "--calls", str(share), "--seconds", str(seconds),
                 "--token", TOKEN, "--run", f"{run}{n}"],
                stdout=subprocess.PIPE, text=True, cwd=HERE.parent,
            )  # fmt: skip
            self._children.append(child)
            reader = threading.Thread(target=self._read, args=(child,), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, child: "subprocess.Popen[str]") -> None:
        assert child.stdout is not None  # noqa: S101
        for line in child.stdout:
            with self._lock:
                if line.startswith("LOAD_STEADY "):
                    self.steady.append(float(line.split()[1]))
                elif line.startswith("LOAD_RESULT "):
                    self.results.append(json.loads(line.removeprefix("LOAD_RESULT ")))

    def wait_steady(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while len(self.steady) < len(self._children):
            if time.monotonic() > deadline or any(c.poll() for c in self._children):
                raise RuntimeError("the load processes did not all start sending")
            time.sleep(0.05)
        return max(self.steady)

    def cpu_seconds(self) -> float:
        total = 0.0
        for child in self._children:
            try:
                times = psutil.Process(child.pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def finish(self, timeout: float = 120) -> list[dict[str, Any]]:
        for child in self._children:
            if child.wait(timeout=timeout) != 0:
                raise RuntimeError(f"a load process failed (exit {child.returncode})")
        for reader in self._readers:
            reader.join()
        return self.results


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: asyncpg.Connection[asyncpg.Record] | None = None
        self.loop = asyncio.new_event_loop()
        self.postmaster = self._run(self._postmaster())

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _connection(self) -> "asyncpg.Connection[asyncpg.Record]":
        if self.conn is None:
            self.conn = await asyncpg.connect(asyncpg_dsn(self.url))
        return self.conn

    async def _postmaster(self) -> psutil.Process:
        conn = await self._connection()
        backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
        parent = backend.parent()
        if parent is None:
            raise RuntimeError("PostgreSQL's postmaster is not visible from here")
        return parent

    def cpu_by_process(self) -> dict[int, float]:
        cpu: dict[int, float] = {}
        for process in [self.postmaster, *self.postmaster.children()]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            cpu[process.pid] = times.user + times.system
        return cpu

    def stored(self, prefix: str) -> int:
        async def count() -> int:
            conn = await self._connection()
            total = await conn.fetchval(
                "SELECT coalesce(sum(packets_received), 0) FROM call_tracks WHERE call_id LIKE $1",
                prefix + "-%",
            )
            return int(total)

        stored: int = self._run(count())
        return stored

    def lost(self, path: str, results: list[dict[str, Any]]) -> int:
        """Acknowledged frames not stored: native acks (through N: 1..N) and HTTP 202s; for
        Twilio, whose `stop` is answered with 1000 only once everything is stored, every
        frame sent on a socket that closed with 1000."""

        async def check() -> int:
            conn = await self._connection()
            rows = await conn.fetch(
                "SELECT call_id, track, count(*) AS n, max(sequence) AS top FROM packets "
                "WHERE call_id LIKE $1 GROUP BY call_id, track",
                path + "-%",
            )
            stored = {(r["call_id"], r["track"]): (r["n"], r["top"]) for r in rows}
            lost = 0
            for result in results:
                promised = result["acked"] if path in ("stream", "http") else result["sent"]
                for call_id, tracks in promised.items():
                    for track, through in tracks.items():
                        count, _ = stored.get((call_id, track), (0, 0))
                        lost += max(0, through - count)
            return lost

        lost: int = self._run(check())
        return lost

    def close(self) -> None:
        if self.conn is not None:
            self._run(self.conn.close())
        self.loop.close()


def _scrape(server: Server) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    """The commit-time histogram's buckets, and (batches, packets) committed so far."""
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    buckets = [
        (float(le), value)
        for (name, le), value in samples.items()
        if name == "callscope_ingest_commit_seconds_bucket" and le is not None
    ]
    batches = (
        samples[("callscope_ingest_batch_size_count", None)],
        samples[("callscope_ingest_batch_size_sum", None)],
    )
    return sorted(buckets), batches


def _bare_frames(server: Server) -> int:
    frames: int = httpx.get(f"http://127.0.0.1:{server.port}/bare/frames", timeout=10).json()[
        "frames"
    ]
    return frames


def _snapshot(path: str, server: Server, db: Database, load: Load) -> Snapshot:
    bare = path == "bare"
    buckets, batches = ([], (0.0, 0.0)) if bare else _scrape(server)
    return Snapshot(
        at=time.time(),
        stored=_bare_frames(server) if bare else db.stored(path),
        api_cpu=server.cpu_seconds(),
        pg_cpu=db.cpu_by_process(),
        load_cpu=load.cpu_seconds(),
        commit_buckets=buckets,
        batches=batches,
    )


def _measure(path: str, server: Server, db: Database, args: argparse.Namespace) -> PathResult:
    print(f"{path}: {args.calls} calls ...", flush=True)
    load = Load(path, server.port, args.calls, args.warmup + args.seconds + 1, args.load_processes)
    steady = load.wait_steady()
    time.sleep(max(0.0, steady + args.warmup - time.time()))
    first = _snapshot(path, server, db, load)
    time.sleep(args.seconds)
    last = _snapshot(path, server, db, load)
    results = load.finish()
    pg = sum(cpu - first.pg_cpu.get(pid, 0.0) for pid, cpu in last.pg_cpu.items())
    result = PathResult(
        path=path,
        calls=args.calls,
        seconds=last.at - first.at,
        stored=last.stored - first.stored,
        api_cpu=last.api_cpu - first.api_cpu,
        pg_cpu=0.0 if path == "bare" else pg,
        load_cpu=last.load_cpu - first.load_cpu,
        tracks=1 if path == "http" else 2,
        batches=last.batches[0] - first.batches[0],
        batched=last.batches[1] - first.batches[1],
    )
    for outcome in results:
        result.latencies_ms += outcome["latencies_ms"]
        for how, count in outcome["endings"].items():
            result.endings[how] = result.endings.get(how, 0) + count
    if path == "twilio":
        window = [
            (bound, count - before)
            for (bound, count), (_, before) in zip(
                last.commit_buckets, first.commit_buckets, strict=True
            )
        ]
        result.latencies_ms = [_histogram_quantile(window, 0.5), _histogram_quantile(window, 0.99)]
    if path != "bare":
        time.sleep(1)
        result.acked_lost = db.lost(path, results)
    return result


def _print(results: list[PathResult]) -> int:
    print(
        f"\n{'path':<7} {'calls':>5} {'frames/s':>9} {'API µs/fr':>9} {'PG µs/fr':>9} "
        f"{'load µs/fr':>10} {'batch':>6} {'p50 ms':>7} {'p99 ms':>7} {'calls/core':>10} "
        f"{'acked lost':>10}"
    )
    for r in results:
        if r.path == "twilio":
            p50, p99 = r.latencies_ms
        else:
            p50, p99 = _quantile(r.latencies_ms, 0.5), _quantile(r.latencies_ms, 0.99)
        lost = "-" if r.acked_lost is None else str(r.acked_lost)
        batch = r.batched / r.batches if r.batches else math.nan
        print(
            f"{r.path:<7} {r.calls:>5} {r.frames_per_second:>9.0f} "
            f"{r.us_per_frame(r.api_cpu):>9.1f} {r.us_per_frame(r.pg_cpu):>9.1f} "
            f"{r.us_per_frame(r.load_cpu):>10.1f} {batch:>6.0f} {p50:>7.1f} {p99:>7.1f} "
            f"{r.calls_per_core:>10.0f} {lost:>10}"
        )
    print(
        "\nbatch: mean packets per committed batch. frame-to-commit: stream, from sending a "
        "frame to the ack covering it; http, to the 202; twilio, from its arrival to its commit "
        "(the server's histogram, interpolated). calls/core: one API core over the API CPU of "
        "one call-second (2 tracks x 50 frames; http: 1 track)."
    )
    by_path = {r.path: r for r in results}
    for path, wanted in TARGETS.items():
        if path in by_path:
            # The issue's figure (300 calls per core, "<= 65 µs API CPU per frame") counts
            # a call as one 50-frame/s track; a call with both tracks sends twice as many.
            r = by_path[path]
            per_frame = r.us_per_frame(r.api_cpu)
            budget = BUDGETS_US[path]
            one_track = 1e6 / (FRAMES_PER_TRACK_SECOND * per_frame)
            print(f"target {path}: >= {wanted} calls per API core (<= {budget:.0f} µs API CPU "
                  f"per frame): {per_frame:.1f} µs per frame, {one_track:.0f} one-track calls, "
                  f"{r.calls_per_core:.0f} two-track calls per core "
                  f"({'met' if per_frame <= budget else 'NOT met'}; with both tracks: "
                  f"{'met' if r.calls_per_core >= wanted else 'NOT met'})")  # fmt: skip
    if "twilio" in by_path and "bare" in by_path:
        twilio, bare = by_path["twilio"], by_path["bare"]
        ratio = bare.us_per_frame(bare.api_cpu) / twilio.us_per_frame(twilio.api_cpu)
        met = ratio >= 0.6
        print(f"target twilio >= 0.6x the bare endpoint's frames per CPU second: {ratio:.2f}x "
              f"({'met' if met else 'NOT met'})")  # fmt: skip
    if "twilio" in by_path:
        twilio = by_path["twilio"]
        p99 = twilio.latencies_ms[1]
        verdict = (
            ("met" if p99 <= 250 else "NOT met")
            if twilio.calls >= LATENCY_TARGET_CALLS
            else f"not judged with fewer calls: run --calls {LATENCY_TARGET_CALLS}"
        )
        print(f"twilio frame-to-commit p99 at {twilio.calls} calls: {p99:.0f} ms "
              f"(target <= 250 ms at {LATENCY_TARGET_CALLS} calls: {verdict})")  # fmt: skip
    lost_frames = sum(r.acked_lost or 0 for r in results)
    verdict = "none" if not lost_frames else "LOST FRAMES"
    print(f"acknowledged frames lost: {lost_frames} ({verdict})")
    return 1 if lost_frames else 0


@contextmanager
def _database(stack: ExitStack) -> Iterator[str]:
    configured = os.environ.get("CALLSCOPE_DATABASE_URL")
    admin = configured or stack.enter_context(admin_url())
    name = f"callscope_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_database(admin, name))
    try:
        url = database_url(admin, name)
        upgrade_to_head(url)
        yield url
    finally:
        asyncio.run(drop_database(admin, name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="concurrent calls per path")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per path")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument(
        "--paths", nargs="+", default=["bare", "twilio", "stream", "http"],
        choices=["bare", "twilio", "stream", "http"],
    )  # fmt: skip
    args = parser.parse_args()
    with ExitStack() as stack:
        url = stack.enter_context(_database(stack))
        env = clean_env(
            CALLSCOPE_DATABASE_URL=url,
            CALLSCOPE_INGEST_TOKENS=TOKEN,
            CALLSCOPE_SUPERVISOR_TOKENS="bench-supervisor",
            CALLSCOPE_LOG_LEVEL="WARNING",
        )
        env.update({k: v for k, v in os.environ.items() if k.startswith("CALLSCOPE_INGEST_")})
        db = Database(url)
        stack.callback(db.close)
        ours = Server([sys.executable, "-m", "callscope", "serve"], env, "callscope")
        stack.callback(ours.stop)
        bare = Server(
            [sys.executable, "-m", "benchmarks.bare_media"],
            {**env, "PYTHONPATH": str(HERE.parent)},
            "bare",
        )
        stack.callback(bare.stop)
        ours.wait_answering("/readyz")
        bare.wait_answering("/bare/frames")
        results = [
            _measure(path, bare if path == "bare" else ours, db, args) for path in args.paths
        ]
        return _print(results)


if __name__ == "__main__":
    raise SystemExit(main())
