"""What observability costs on the ingest path, in instructions counted by Valgrind's
callgrind: a figure that does not drift with the machine's load, where the CPU time that
`benchmarks.ingest` measures side by side moves by as much as the cost from run to run.

Each target (callscope with metrics and tracing at 1 % on or off, as in `benchmarks.ingest`)
runs alone as `callscope serve` under `valgrind --tool=callgrind --instr-atstart=no
--separate-threads=yes`, about 15 times slower than natively. It is warmed up uncounted, then
counted over a window of wrk's load (the same load as `make bench`: 64 connections, 1,000
calls streaming 160-byte frames), then over a window without load. Per request:

- **the event loop's thread**: its instructions in the load window, less what it runs
  without load (timers: sweepers, gauges) over the window's length;
- **the other threads** (the span exporter's): all they ran in both windows, as the spans
  of the load window are exported in it or just after. This share is pessimistic: at
  callgrind's pace an export every 5 s carries ~15 times fewer spans than natively, so each
  span bears more of a POST's fixed cost.

It also counts the database's commits in the two windows: requests per commit is the batches'
size, which sets how many requests share each commit's work (a slower server, for any reason,
would make smaller batches and pay more per request).

Instructions are not time (caches, the kernel and the scheduler are left out), but two
counts of the same build agree within about 2 %. Each round counts every target once, in
a rotating order; the script prints each count, then the medians and the cost against the
baseline.

    .venv/bin/python -m benchmarks.ingest_instructions [--rounds 2] [--seconds 30]

Needs valgrind and wrk (Debian: apt-get install valgrind wrk).
"""

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from tests.e2e.processes import free_port
from tests.otlp import OtlpReceiver, otlp_receiver

from benchmarks.ingest import (
    BASELINE,
    COST_TARGET,
    OBSERVED,
    SPLIT,
    Target,
    base_server_env,
    bench_database,
    server_env,
    server_process,
    start_wrk,
    wrk_result,
)
from callscope.settings import asyncpg_dsn

TARGETS = (BASELINE, *SPLIT, OBSERVED)
CONNECTIONS = 64
CALLS = 1000
WARMUP_SECONDS = 10
EXPORT_DELAY_SECONDS = 5  # the span processor's default OTEL_BSP_SCHEDULE_DELAY
_DUMP = re.compile(r"\.(\d+)-(\d+)$")  # callgrind's <file>.<dump>-<thread>
_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Count:
    """Instructions per request of one target in one round."""

    target: str
    requests: int
    loop: float  # the event loop's thread, net of what it runs without load
    others: float  # every other thread (the span exporter's)
    spans: int  # exported during the two windows
    commits: int  # of the database, during the two windows: the batches, mostly

    @property
    def total(self) -> float:
        return self.loop + self.others


async def _commits(url: str) -> int:
    """The database's committed transactions so far (pg_stat_database)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        committed: int = await conn.fetchval(query)
        return committed
    finally:
        await conn.close()


def _callgrind(pid: int, *command: str) -> None:
    subprocess.run(["callgrind_control", *command, str(pid)], check=True, capture_output=True)


def dumped_counts(out: Path) -> dict[tuple[int, int], int]:
    """Instructions by (dump, thread) from callgrind's files `<out>.<dump>-<thread>`."""
    counted = {}
    for path in out.parent.glob(f"{out.name}.*"):
        dump = _DUMP.search(path.name)
        total = _TOTAL.search(path.read_text(errors="replace"))
        if dump is not None and total is not None:
            counted[int(dump.group(1)), int(dump.group(2))] = int(total.group(1))
    return counted


def _count(
    target: Target,
    url: str,
    env: dict[str, str],
    collector: OtlpReceiver,
    *,
    seconds: int,
    workdir: Path,
) -> Count:
    out = workdir / f"{target.name}-{uuid.uuid4().hex[:6]}.out"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        *("-m", "callscope", "serve", "--port", str(port)),
    ]
    environment = server_env(env, target, collector.url)
    name = f"cg-{target.name}"
    with server_process(args, environment, name, ready=f"{base}/readyz", timeout=600) as server:
        load = {"connections": CONNECTIONS, "calls": CALLS}
        wrk_result(start_wrk(base, seconds=WARMUP_SECONDS, prefix=f"w{out.stem}", **load))
        time.sleep(EXPORT_DELAY_SECONDS + 1)  # the warm-up's spans go before counting
        spans_before = collector.span_names().total()
        commits_before = asyncio.run(_commits(url))
        _callgrind(server.pid, "--instr=on")
        raw = wrk_result(start_wrk(base, seconds=seconds, prefix=f"m{out.stem}", **load))
        _callgrind(server.pid, "--dump=load")
        idle_seconds = 2 * EXPORT_DELAY_SECONDS
        time.sleep(idle_seconds)
        _callgrind(server.pid, "--dump=idle")
        _callgrind(server.pid, "--instr=off")
        spans = collector.span_names().total() - spans_before
        commits = asyncio.run(_commits(url)) - commits_before
    counted = dumped_counts(out)
    window = raw["duration_us"] / 1e6
    requests = raw["requests"]
    loop = counted[1, 1] - counted[2, 1] / idle_seconds * window
    others = sum(n for (_, thread), n in counted.items() if thread != 1)
    return Count(target.name, requests, loop / requests, others / requests, spans, commits)


def _row(c: Count) -> str:
    return (
        f"{c.target:<10} {c.requests:>8} {c.loop:>12,.0f} {c.others:>12,.0f} "
        f"{c.total:>12,.0f} {c.spans:>7} {c.requests / max(c.commits, 1):>12.1f}"
    )


_HEADER = (
    f"{'target':<10} {'requests':>8} {'loop/req':>12} {'others/req':>12} {'total/req':>12} "
    f"{'spans':>7} {'req/commit':>12}"
)


def _print_costs(counts: list[Count]) -> None:
    """The medians, and each variant's cost against the baseline."""
    by_target = {t.name: [c for c in counts if c.target == t.name] for t in TARGETS}
    median = {
        name: {
            part: statistics.median(getattr(c, part) for c in mine)
            for part in ("loop", "others", "total")
        }
        for name, mine in by_target.items()
    }
    base = median[BASELINE.name]
    print(f"\nmedians of {len(by_target[BASELINE.name])} round(s), instructions per request:")
    for name, figures in median.items():
        line = (
            f"{name:<10} loop {figures['loop']:>9,.0f}   others {figures['others']:>7,.0f}   "
            f"total {figures['total']:>9,.0f}"
        )
        if name != BASELINE.name:
            cost = figures["total"] / base["total"] - 1
            loop = figures["loop"] / base["loop"] - 1
            line += (
                f"   cost {100 * cost:+.1f} % (the event loop's thread alone {100 * loop:+.1f} %)"
            )
            if name == OBSERVED.name:
                met = cost <= COST_TARGET
                line += f"   target <= 5 %: {'met' if met else 'NOT met'}"
        print(line)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="counts of each target")
    parser.add_argument("--seconds", type=int, default=30, help="the counted window of load")
    return parser


def main() -> int:
    args = _parser().parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control", "wrk") if not shutil.which(tool)]
    if missing:
        print(f"benchmark: {', '.join(missing)} needed (Debian: apt-get install valgrind wrk)")
        return 2
    with ExitStack() as stack:
        url = bench_database(stack)
        env = base_server_env(url)
        collector = stack.enter_context(otlp_receiver())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callgrind-")))
        counts: list[Count] = []
        print(_HEADER)
        for n in range(args.rounds):
            for target in TARGETS[n % len(TARGETS) :] + TARGETS[: n % len(TARGETS)]:
                counts.append(
                    _count(target, url, env, collector, seconds=args.seconds, workdir=workdir)
                )
                print(f"{_row(counts[-1])}   (round {n + 1})", flush=True)
        _print_costs(counts)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
