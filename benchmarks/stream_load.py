"""Real-time media-stream load for `benchmarks.streams`: `--calls` concurrent calls, each
sending a 20 ms μ-law frame per track every 20 ms over one path:

- `twilio`: `WS /v1/media/twilio`, Twilio's messages, both tracks, `stop` at the end;
- `stream`: `WS /v1/calls/{id}/media`, binary frames, both tracks, `end` at the end; the
  time from sending a frame to the ack that covers it is its frame-to-commit;
- `http`: `POST /v1/call/stream/{id}` per frame (the inbound track: HTTP packets are the
  caller's), `complete` at the end; the time to the 202 is its frame-to-commit;
- `bare`: Twilio's media messages to the bare endpoint (`benchmarks.bare_media`).

Every call connects first; then all send together, spread evenly over each 20 ms tick, for
`--seconds`. The process prints `LOAD_STEADY <epoch>` when every call is sending, and at the
end one line `LOAD_RESULT {json}`.

    .venv/bin/python -m benchmarks.stream_load --port 8000 --transport twilio --calls 50
"""

import argparse
import asyncio
import base64
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.steady_load import Connection
from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame

FRAME: Final = bytes(range(160))  # 20 ms of 8 kHz μ-law
FRAME_B64: Final = base64.b64encode(FRAME).decode()
TICK_S: Final = 0.02
TRACKS: Final = (Track.inbound, Track.outbound)


@dataclass
class Tally:
    frames_sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    acked: dict[str, dict[str, int]] = field(default_factory=dict)  # call -> track -> through
    endings: dict[str, int] = field(default_factory=dict)  # how calls ended -> count
    sent: dict[str, dict[str, int]] = field(default_factory=dict)  # call -> track -> frames

    def ended(self, how: str) -> None:
        self.endings[how] = self.endings.get(how, 0) + 1


class Schedule:
    """The shared clock: every call connects, then all start sending at `start` (epoch),
    call i at i/calls of a tick after it."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.connected = 0
        self.all_connected = asyncio.Event()
        self.start = 0.0
        self.stop = 0.0

    def ready(self) -> None:
        self.connected += 1
        if self.connected == self.calls:
            self.all_connected.set()

    async def ticks(self, index: int) -> Any:
        """Yield tick numbers 1, 2, … at this call's due times until the stop time."""
        await self.all_connected.wait()
        offset = index / self.calls * TICK_S
        tick = 0
        while True:
            tick += 1
            due = self.start + offset + (tick - 1) * TICK_S
            if due >= self.stop:
                return
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield tick


def _twilio(event: str, number: int, body: str) -> str:
    return f'{{"event":"{event}","sequenceNumber":"{number}","streamSid":"MZ1",{body}}}'


def _media(track: Track, chunk: int, number: int) -> str:
    body = (
        f'"media":{{"track":"{track}","chunk":"{chunk}","timestamp":"{chunk * 20}",'
        f'"payload":"{FRAME_B64}"}}'
    )
    return _twilio("media", number, body)


async def twilio_call(
    url: str, token: str, call_id: str, *, index: int, schedule: Schedule, tally: Tally
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    start = {
        "callSid": f"CA{call_id}",
        "streamSid": "MZ1",
        "tracks": [t.value for t in TRACKS],
        "customParameters": {"call_id": call_id},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    async with connect(url, additional_headers=headers, compression=None) as ws:
        await ws.send(_twilio("start", 1, f'"start":{json.dumps(start)}'))
        schedule.ready()
        number = 1
        chunk = 0
        async for chunk in schedule.ticks(index):
            for track in TRACKS:
                number += 1
                await ws.send(_media(track, chunk, number))
                tally.frames_sent += 1
        tally.sent[call_id] = {track.value: chunk for track in TRACKS}
        await ws.send(_twilio("stop", number + 1, '"stop":{}'))
        tally.ended(f"closed {await _close_code(ws)}")


async def native_call(
    url: str, token: str, call_id: str, *, index: int, schedule: Schedule, tally: Tally
) -> None:
    pending = {track.value: deque[tuple[int, float]]() for track in TRACKS}
    acked = tally.acked.setdefault(call_id, {})

    async def read_acks(ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] != "ack":
                    tally.ended(message["type"])
                    continue
                now = time.time()
                waiting = pending[message["track"]]
                while waiting and waiting[0][0] <= message["through"]:
                    tally.latencies_ms.append((now - waiting.popleft()[1]) * 1000)
                acked[message["track"]] = message["through"]
        except ConnectionClosed:
            pass

    async with connect(f"{url}/v1/calls/{call_id}/media?token={token}", compression=None) as ws:
        reader = asyncio.create_task(read_acks(ws))
        schedule.ready()
        chunk = 0
        async for chunk in schedule.ticks(index):
            for track in TRACKS:
                pending[track.value].append((chunk, time.time()))
                await ws.send(binary_frame(track, chunk, time.time(), FRAME))
                tally.frames_sent += 1
        tally.sent[call_id] = {track.value: chunk for track in TRACKS}
        await ws.send(json.dumps({"type": "end"}))
        await reader
        tally.ended(f"closed {ws.close_code}")


async def http_call(
    port: int, token: str, call_id: str, *, index: int, schedule: Schedule, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = Connection(reader, writer)
    declare = json.dumps({"call_id": call_id, "encoding": "mulaw", "sample_rate": 8000})
    assert await connection.post("/v1/calls", token, declare.encode()) == 201  # noqa: S101
    schedule.ready()
    chunk, accepted = 0, 0
    async for chunk in schedule.ticks(index):
        body = f'{{"sequence":{chunk},"data":"{FRAME_B64}","timestamp":{time.time()}}}'
        sent = time.time()
        status = await connection.post(f"/v1/call/stream/{call_id}", token, body.encode())
        tally.latencies_ms.append((time.time() - sent) * 1000)
        tally.frames_sent += 1
        accepted += status == 202
    tally.sent[call_id] = {Track.inbound.value: chunk}
    tally.acked[call_id] = {Track.inbound.value: accepted}
    status = await connection.post(f"/v1/calls/{call_id}/complete", token, b"{}")
    tally.ended(f"complete {status}")
    writer.close()


async def _close_code(ws: ClientConnection) -> int | None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return ws.close_code


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    schedule = Schedule(args.calls)
    run_id = args.run or uuid.uuid4().hex[:6]
    base = f"ws://127.0.0.1:{args.port}"

    async def one(index: int) -> None:
        call_id = f"{args.transport}-{run_id}-{index}"
        shared: dict[str, Any] = {"index": index, "schedule": schedule, "tally": tally}
        if args.transport == "twilio":
            await twilio_call(f"{base}/v1/media/twilio", args.token, call_id, **shared)
        elif args.transport == "bare":
            await twilio_call(f"{base}/bare/twilio", "", call_id, **shared)
        elif args.transport == "stream":
            await native_call(base, args.token, call_id, **shared)
        else:
            await http_call(args.port, args.token, call_id, **shared)

    calls = [asyncio.create_task(one(i)) for i in range(args.calls)]
    await schedule.all_connected.wait()
    schedule.start = time.time() + 0.2
    schedule.stop = schedule.start + args.seconds
    print(f"LOAD_STEADY {schedule.start + TICK_S}", flush=True)
    cpu = time.process_time()
    await asyncio.gather(*calls)
    return {
        "transport": args.transport,
        "frames_sent": tally.frames_sent,
        "latencies_ms": tally.latencies_ms,
        "acked": tally.acked,
        "sent": tally.sent,
        "endings": tally.endings,
        "client_cpu_s": time.process_time() - cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["twilio", "stream", "http", "bare"], required=True)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--token", default="")
    parser.add_argument("--run", default="", help="part of every call id (default: random)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print("LOAD_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
