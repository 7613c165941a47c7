"""Ingest benchmark: callscope (group commit on PostgreSQL) against a bare FastAPI endpoint,
and what observability costs: callscope with Prometheus metrics and OpenTelemetry tracing at
1 % sampling (exported over OTLP/HTTP to a stub collector in this script) against the same
build with both off (`--split` adds metrics only and tracing only, to tell the two apart).

All run as uvicorn processes through the same `callscope.server.serve` (same server and
process settings, log level WARNING, no access log); wrk drives each with the same load (many
calls streaming 160-byte frames), and each measurement takes the server process's CPU over
wrk's window. The script measures in rounds, and prints every measurement, then the medians:

- the bare endpoint and callscope one at a time (their order alternating round by round),
  for req/s, latency and callscope/bare throughput;
- callscope and each observability variant side by side, at the same time, one wrk each
  (and a control: a second process of callscope's own build and settings, whose "cost" is
  the measurement's bias):
  on a shared machine whose load drifts from second to second (other processes, PostgreSQL,
  wrk itself), two processes measured in the same window meet the same contention, where
  two measured one after the other do not (one after the other, CPU per request of the
  same build varied by +-30 % here). The cost is the median over rounds of the per-round
  ratio of API CPU per request (and of req/s).

Afterwards it checks that every packet callscope acknowledged is in the database.

    .venv/bin/python -m benchmarks.ingest            # or: make bench
    .venv/bin/python -m benchmarks.ingest --connections 64 --rounds 7 --split

Needs `wrk` (Debian: apt-get install wrk). Uses CALLSCOPE_DATABASE_URL's server if set, else
127.0.0.1:5432, else an embedded PostgreSQL; it creates and drops its own database.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
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
import psutil
from tests.database import admin_url, database_url
from tests.e2e.processes import clean_env, free_port
from tests.otlp import otlp_receiver

from callscope.answering import wait_answering
from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import upgrade_to_head
from callscope.settings import asyncpg_dsn

HERE = Path(__file__).parent
TOKEN = "bench-ingest-token"
COST_TARGET = 0.05  # of observability, per request


@dataclass(frozen=True)
class Target:
    """One server under test: callscope with metrics and tracing switched on or off."""

    name: str
    metrics: bool
    tracing: bool


BASELINE = Target("callscope", metrics=False, tracing=False)
OBSERVED = Target("observed", metrics=True, tracing=True)
SPLIT = (Target("metrics", metrics=True, tracing=False), Target("tracing", False, True))
# A second process of the baseline's build and settings, measured beside it like a variant:
# what it "costs" is the measurement's own bias (process age, scheduling), not observability.
CONTROL = Target("control", metrics=False, tracing=False)


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
    cpu_seconds: float  # of the server process, during the measurement

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.cpu_seconds / max(self.requests, 1)


@contextmanager
def server_process(
    args: list[str], env: dict[str, str], name: str, *, ready: str, timeout: float = 60
) -> Iterator[psutil.Process]:
    """The server `args` start, once GET `ready` answers 200 (its output in a log file)."""
    log = Path(tempfile.gettempdir()) / f"callscope-bench-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_answering(ready, process, name=name, log=log, timeout=timeout)
            yield psutil.Process(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def start_wrk(
    base: str, *, connections: int, seconds: int, prefix: str, calls: int
) -> subprocess.Popen[str]:
    """wrk, started (its BENCH_RESULT line comes from `wrk_result`)."""
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_PREFIX": prefix, "BENCH_CALLS": str(calls)}
    return subprocess.Popen(
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
        stdout=subprocess.PIPE,
        text=True,
    )


def wrk_result(wrk: subprocess.Popen[str]) -> dict[str, int]:
    out, _ = wrk.communicate()
    if wrk.returncode != 0:
        raise subprocess.CalledProcessError(wrk.returncode, wrk.args, out)
    line = next(x for x in out.splitlines() if x.startswith("BENCH_RESULT "))
    parsed: dict[str, int] = json.loads(line.removeprefix("BENCH_RESULT "))
    return parsed


Server = tuple[str, psutil.Process]


def _measure(target: str, server: Server, connections: int, seconds: int, calls: int) -> Result:
    """One target alone."""
    (result,) = _measure_together({target: server}, connections, seconds, calls)
    return result


def _measure_together(
    servers: dict[str, Server], connections: int, seconds: int, calls: int
) -> list[Result]:
    """The targets at the same time, one wrk each with the same load: each server process's
    CPU is taken over the same window, under the same contention from the rest of the
    machine, so their CPU per request compares even when that contention drifts."""
    cpu = {target: _cpu(process) for target, (_, process) in servers.items()}
    running = {
        target: start_wrk(
            base,
            connections=connections,
            seconds=seconds,
            prefix=f"{target}-{connections}-{uuid.uuid4().hex[:6]}",
            calls=calls,
        )
        for target, (base, _) in servers.items()
    }
    raws = {target: wrk_result(wrk) for target, wrk in running.items()}
    used = {target: _cpu(process) - cpu[target] for target, (_, process) in servers.items()}
    return [_result(target, connections, raw, used[target]) for target, raw in raws.items()]


def _result(target: str, connections: int, raw: dict[str, int], cpu_seconds: float) -> Result:
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
        cpu_seconds=cpu_seconds,
    )


async def _count_packets(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM packets")
        return count
    finally:
        await conn.close()


_HEADER = (
    f"{'target':<10} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
    f"{'p99 ms':>7} {'non-2xx':>7} {'sock err':>8} {'CPU µs/req':>10}"
)


def _row(r: Result) -> str:
    return (
        f"{r.target:<10} {r.connections:>5} {r.rps:>8.0f} {r.p50_ms:>7.1f} {r.p95_ms:>7.1f} "
        f"{r.p99_ms:>7.1f} {r.non_2xx:>7} {r.socket_errors:>8} {r.cpu_us_per_request:>10.1f}"
    )


def _median(results: list[Result]) -> Result:
    """Per figure, the median over rounds (errors summed)."""
    med = statistics.median
    seconds = med(r.seconds for r in results)
    requests = med(r.rps for r in results) * seconds
    return Result(
        target=results[0].target,
        connections=results[0].connections,
        requests=round(requests),
        seconds=seconds,
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        p50_ms=med(r.p50_ms for r in results),
        p95_ms=med(r.p95_ms for r in results),
        p99_ms=med(r.p99_ms for r in results),
        cpu_seconds=med(r.cpu_us_per_request for r in results) * requests / 1e6,
    )


def _costs(mine: list[Result], baseline: list[Result]) -> tuple[list[float], list[float]]:
    """Per round: the change of req/s and of API CPU per request against the baseline."""
    throughput = [m.rps / b.rps - 1 for m, b in zip(mine, baseline, strict=True)]
    cpu = [
        m.cpu_us_per_request / b.cpu_us_per_request - 1 for m, b in zip(mine, baseline, strict=True)
    ]
    return throughput, cpu


def _percent(values: list[float]) -> str:
    middle = f"{100 * statistics.median(values):+.1f} %"
    if len(values) == 1:
        return middle
    return f"{middle} (rounds {100 * min(values):+.1f} .. {100 * max(values):+.1f})"


def _table(results: list[Result], names: list[str]) -> dict[tuple[str, int], list[Result]]:
    """Prints the medians over rounds of each target; returns the results by target and
    connection count, in round order."""
    rounds: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        rounds.setdefault((r.target, r.connections), []).append(r)
    print(_HEADER)
    for conns in sorted({r.connections for r in results}):
        for name in names:
            print(_row(_median(rounds[name, conns])))
    return rounds


def _print(alone: list[Result], pairs: list[tuple[Result, Result]], variants: list[str]) -> None:
    count = len(alone) // len({(r.target, r.connections) for r in alone})
    print(f"\nOne target at a time, medians of {count} round(s):")
    rounds = _table(alone, ["bare", BASELINE.name])
    for conns in sorted({r.connections for r in alone}):
        bare, ours = _median(rounds["bare", conns]), _median(rounds[BASELINE.name, conns])
        verdict = ""
        if conns == 64:
            ok = ours.p99_ms < 50 and ours.rps >= 0.7 * bare.rps
            verdict = f"  targets (p99 < 50 ms, >= 0.7x): {'met' if ok else 'NOT met'}"
        print(
            f"{conns:>4} connections: callscope/bare throughput = {ours.rps / bare.rps:.2f}"
            f"{verdict}"
        )
    print(
        f"\nSide by side ({BASELINE.name} and each variant at the same time, one wrk each), "
        f"medians of {count} round(s):"
    )
    print(_HEADER)
    for conns in sorted({r.connections for r in alone}):
        for name in variants:
            mine = [(b, v) for b, v in pairs if v.target == name and v.connections == conns]
            baseline, variant = [b for b, _ in mine], [v for _, v in mine]
            print(f"{_row(_median(baseline))}   (beside {name})\n{_row(_median(variant))}")
            throughput, cpu = _costs(variant, baseline)
            verdict = ""
            if name == OBSERVED.name:
                met = statistics.median(cpu) <= COST_TARGET
                verdict = f"  (target <= 5 %: {'met' if met else 'NOT met'})"
            print(
                f"{conns:>4} connections: {name} vs {BASELINE.name}: API CPU per request "
                f"{_percent(cpu)}, throughput {_percent(throughput)}{verdict}"
            )


def bench_database(stack: ExitStack) -> str:
    """A new database at head on CALLSCOPE_DATABASE_URL's server (else 127.0.0.1:5432, else
    an embedded PostgreSQL), dropped when `stack` closes; its URL."""
    admin = os.environ.get("CALLSCOPE_DATABASE_URL") or stack.enter_context(admin_url())
    name = f"callscope_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_database(admin, name))
    stack.callback(lambda: asyncio.run(drop_database(admin, name)))
    url = database_url(admin, name)
    upgrade_to_head(url)
    return url


def base_server_env(url: str) -> dict[str, str]:
    """The settings every benchmarked server of callscope runs with, before `server_env`."""
    env = clean_env(
        CALLSCOPE_DATABASE_URL=url,
        CALLSCOPE_INGEST_TOKENS=TOKEN,
        CALLSCOPE_SUPERVISOR_TOKENS="bench-supervisor",
        CALLSCOPE_LOG_LEVEL="WARNING",
        # No idle sweep during the run: it would complete each measurement's 1,000 calls
        # 30 s later, in the window of whichever measurement of that server runs then.
        CALLSCOPE_CALL_IDLE_TIMEOUT="86400",
    )
    # Tuning knobs of the ingest path pass through, so they can be compared run against run.
    env.update({k: v for k, v in os.environ.items() if k.startswith("CALLSCOPE_INGEST_")})
    return env


def server_env(base: dict[str, str], target: Target, collector: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("OTEL_")}
    env["CALLSCOPE_METRICS_ENABLED"] = "true" if target.metrics else "false"
    if target.tracing:
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.01",
        )
    return env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--calls", type=int, default=1000, help="concurrent calls streamed")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (medians)")
    parser.add_argument(
        "--split", action="store_true", help="also measure metrics only and tracing only"
    )
    return parser


def main() -> int:
    args = _parser().parse_args()
    if shutil.which("wrk") is None:
        print("benchmark: wrk is needed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    with ExitStack() as stack:
        url = bench_database(stack)
        env = base_server_env(url)
        collector = stack.enter_context(otlp_receiver())
        servers = [BASELINE, CONTROL, *(SPLIT if args.split else ()), OBSERVED]
        ports = {"bare": free_port()} | {target.name: free_port() for target in servers}
        bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        processes = {
            "bare": server_process(
                [sys.executable, "-m", "benchmarks.bare_app", "--port", str(ports["bare"])],
                {**server_env(env, BASELINE, collector.url), "PYTHONPATH": str(HERE.parent)},
                "bare",
                ready=f"{bases['bare']}/docs",
            ),
        }
        for target in servers:
            processes[target.name] = server_process(
                [sys.executable, "-m", "callscope", "serve", "--port", str(ports[target.name])],
                server_env(env, target, collector.url),
                target.name,
                ready=f"{bases[target.name]}/readyz",
            )
        targets = {
            target: (bases[target], stack.enter_context(process))
            for target, process in processes.items()
        }
        variants = [target.name for target in servers if target != BASELINE]

        acknowledged = 0
        alone: list[Result] = []
        pairs: list[tuple[Result, Result]] = []  # (baseline, variant), measured together

        def note(result: Result, round_number: int) -> None:
            nonlocal acknowledged
            print(f"{_row(result)}   (round {round_number})", flush=True)
            if result.target != "bare":
                acknowledged += result.requests - result.non_2xx

        for target, server in targets.items():
            warm = _measure(target, server, 64, args.warmup, args.calls)
            if target != "bare":
                acknowledged += warm.requests - warm.non_2xx
        print(_HEADER)
        for conns in args.connections:
            for n in range(1, args.rounds + 1):
                order = ["bare", BASELINE.name][:: 1 if n % 2 else -1]
                for target in order:
                    result = _measure(target, targets[target], conns, args.duration, args.calls)
                    alone.append(result)
                    note(result, n)
                for variant in variants[n % len(variants) :] + variants[: n % len(variants)]:
                    pair = {name: targets[name] for name in (BASELINE.name, variant)}
                    baseline, measured = _measure_together(pair, conns, args.duration, args.calls)
                    pairs.append((baseline, measured))
                    note(baseline, n)
                    note(measured, n)
        _print(alone, pairs, variants)
        spans = collector.span_names()
        print(
            "spans exported by the traced targets to the stub collector: "
            f"{len(collector.requests)} posts, {spans.total()} spans: "
            + ", ".join(f"{n} {name}" for name, n in spans.most_common())
        )
        time.sleep(1)
        stored = asyncio.run(_count_packets(url))
        print(
            f"\npackets acknowledged (2xx) by callscope: {acknowledged}; stored: {stored} "
            f"({'every acknowledged packet stored' if stored >= acknowledged else 'LOST PACKETS'})"
        )
        return 0 if stored >= acknowledged else 1


if __name__ == "__main__":
    raise SystemExit(main())
