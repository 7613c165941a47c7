"""Steady packet load for benchmarks: `--calls` concurrent calls sharing `--rate` packets per
second round-robin; a call is completed once its `--packets-per-call` packets were all
acknowledged, and a new call takes its place (calls start and end spread over time). Prints
one line `LOAD_RESULT {json}` with the packet request latencies (ms) and the HTTP statuses.

    .venv/bin/python -m benchmarks.steady_load --port 8000 --token T

A minimal HTTP/1.1 keep-alive client over asyncio streams: httpx spends milliseconds of CPU
per request with a large pool, which would make the load generator the bottleneck.
"""

import argparse
import asyncio
import base64
import json
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

FRAME = base64.b64encode(bytes(160)).decode()  # 20 ms of 8 kHz μ-law


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def post(self, path: str, token: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


def _packet(run: str, n: int, calls: int, per_call: int) -> tuple[str, int, int]:
    """The call, sequence and call length of the n-th packet. Calls take turns (round robin
    over `calls` slots); slot i's first call is shorter by i/calls of a call, so calls start
    and end spread evenly over time instead of all at once."""
    round_number, slot = divmod(n, calls)
    offset = slot * per_call // calls
    generation, position = divmod(round_number + offset, per_call)
    if generation == 0:
        return f"steady-{run}-{slot}-0", round_number + 1, per_call - offset
    return f"steady-{run}-{slot}-{generation}", position + 1, per_call


async def _run(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:6]
    tally = Tally()
    jobs: asyncio.Queue[int | None] = asyncio.Queue()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        connection = Connection(reader, writer)
        while (n := await jobs.get()) is not None:
            call_id, sequence, length = _packet(run, n, args.calls, args.packets_per_call)
            body = json.dumps({"sequence": sequence, "data": FRAME, "timestamp": time.time()})
            started = time.perf_counter()
            status = await connection.post(f"/v1/call/stream/{call_id}", args.token, body.encode())
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            tally.statuses[status] += 1
            tally.acknowledged[call_id] += status == 202
            if tally.acknowledged[call_id] == length:
                tally.statuses[
                    await connection.post(f"/v1/calls/{call_id}/complete", args.token, b"")
                ] += 1
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(args.connections)]
    start = time.perf_counter()
    total = int(args.rate * args.duration)
    for n in range(total):
        delay = start + n / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        jobs.put_nowait(n)
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(tally.latencies_ms, n=100)
    result = {
        "requests": len(tally.latencies_ms),
        "achieved_rate": len(tally.latencies_ms) / elapsed,
        "statuses": dict(tally.statuses),
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
    }
    print("LOAD_RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, default=500, help="packets per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds")
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls")
    parser.add_argument("--packets-per-call", type=int, default=50)
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
