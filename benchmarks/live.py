"""Live feed benchmark: delay from commit to receipt at 10 supervisors while ingesting at a
steady rate, and ingest latency with and without those supervisors, in the same run.

One `callscope serve` process; a load process (`benchmarks.steady_load`) streams `--calls`
concurrent calls at `--rate` packets/s in all, completing each after `--packets-per-call`
packets and starting another, so the feed carries `call.created` and `call.state_changed`
events plus every active call's coalesced progress. The delay of an event
is its receipt time minus its `at` (the start of the transaction that wrote it, which is
before its commit, so the figure is an upper bound). Both clocks are this machine's.

    .venv/bin/python -m benchmarks.live [--rate 1000] [--duration 20] [--supervisors 10]

Uses CALLSCOPE_DATABASE_URL's server if set, else 127.0.0.1:5432, else an embedded
PostgreSQL; it creates and drops its own database. Target: p99 < 100 ms.
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import asyncpg
from tests.e2e.processes import clean_env, free_port
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.harness import bench_database, steady_load, wait_ready
from callscope.settings import asyncpg_dsn

INGEST_TOKEN = "bench-ingest"
SUPERVISOR_TOKEN = "bench-supervisor"
PROGRESS_PREFIX = '"type":"call.progress"'


class Supervisor:
    """One feed connection that notes how late each event arrives."""

    def __init__(self) -> None:
        self.delays_ms: list[float] = []
        self.progress = 0
        self.snapshots = 0

    async def watch(self, url: str, ready: asyncio.Event) -> None:
        """Until the connection closes; only event messages are parsed in full."""
        async with connect(url, max_size=None) as ws:
            with contextlib.suppress(ConnectionClosed):
                await self._read(ws, ready)

    async def _read(self, ws: ClientConnection, ready: asyncio.Event) -> None:
        async for raw in ws:
            received = time.time()
            if PROGRESS_PREFIX in raw[:40]:
                self.progress += 1
                continue
            message = json.loads(raw)
            if message["type"] == "snapshot":
                self.snapshots += 1
                ready.set()
            elif message.get("event_id") is not None:
                at = datetime.fromisoformat(message["time"]).timestamp()
                self.delays_ms.append((received - at) * 1000)


class RawListener:
    """The baseline: the same events as a plain LISTEN connection gets them from PostgreSQL."""

    def __init__(self) -> None:
        self.delays_ms: list[float] = []

    def on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        received = time.time()
        row = json.loads(str(payload))
        if "created_at" in row:
            at = datetime.fromisoformat(row["created_at"]).timestamp()
            self.delays_ms.append((received - at) * 1000)


def _quantiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100)
    return (
        f"p50 {cuts[49]:.1f} ms, p95 {cuts[94]:.1f} ms, p99 {cuts[98]:.1f} ms, "
        f"max {max(values):.1f} ms ({len(values)} events)"
    )


def _describe(load: dict[str, Any]) -> str:
    return (
        f"{load['achieved_rate']:.0f} packets/s, ingest p50 {load['p50_ms']:.1f} ms, "
        f"p99 {load['p99_ms']:.1f} ms, HTTP statuses {load['statuses']}"
    )


async def _bench(args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        url = await bench_database(stack, "live")

        port = free_port()
        env = clean_env(
            CALLSCOPE_DATABASE_URL=url,
            CALLSCOPE_INGEST_TOKENS=INGEST_TOKEN,
            CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR_TOKEN,
            CALLSCOPE_LOG_LEVEL="WARNING",
        )
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callscope", "serve", "--port", str(port), env=env
        )

        async def stop_server() -> None:
            if server.returncode is None:
                server.terminate()
                await server.wait()

        stack.push_async_callback(stop_server)
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)

        print(f"ingesting {args.rate:.0f} packets/s for {args.duration} s, no supervisor ...")
        alone = await steady_load(port, args, token=INGEST_TOKEN)

        print(f"again with {args.supervisors} supervisors connected ...", flush=True)
        supervisors = [Supervisor() for _ in range(args.supervisors)]
        readiness = [asyncio.Event() for _ in supervisors]
        feed = f"ws://127.0.0.1:{port}/ws/supervisor?token={SUPERVISOR_TOKEN}"
        watchers = [
            asyncio.create_task(s.watch(feed, ready))
            for s, ready in zip(supervisors, readiness, strict=True)
        ]
        for ready in readiness:
            await asyncio.wait_for(ready.wait(), 30)
        raw = RawListener()
        listener = await asyncpg.connect(asyncpg_dsn(url))
        stack.push_async_callback(listener.close)
        await listener.add_listener("callscope_events", raw.on_notification)
        watched = await steady_load(port, args, token=INGEST_TOKEN)
        await asyncio.sleep(2)
        await stop_server()  # closes the feeds, which ends the watchers
        await asyncio.gather(*watchers)

    delays = [d for s in supervisors for d in s.delays_ms]
    cuts = statistics.quantiles(delays, n=100)
    per_supervisor = {len(s.delays_ms) for s in supervisors}
    print(f"\nno supervisor:   {_describe(alone)}")
    print(f"{args.supervisors} supervisors: {_describe(watched)}")
    print(
        f"\nevents received: {len(delays)} ({sorted(per_supervisor)} per supervisor), "
        f"progress messages: {sum(s.progress for s in supervisors)}, "
        f"resync snapshots: {sum(s.snapshots for s in supervisors) - len(supervisors)}"
    )
    print(f"transaction start → plain LISTEN (baseline): {_quantiles(raw.delays_ms)}")
    print(f"transaction start → supervisor WebSocket:    {_quantiles(delays)}")
    met = cuts[98] < 100
    print(f"target (p99 < 100 ms): {'met' if met else 'NOT met'}")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="packets per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds per phase")
    parser.add_argument("--supervisors", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls")
    parser.add_argument("--packets-per-call", type=int, default=50)
    return asyncio.run(_bench(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
