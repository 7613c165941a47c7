"""How a simulated call reaches the service: one HTTP request per packet, a Twilio Media
Streams socket, or callscope's own acknowledged stream. Each sends a call's planned frames of
one or two tracks at the requested pace and ends the call."""

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from callscope.simulate.plan import FRAME_SECONDS, CallPlan, Send

TRANSPORTS: Final = ("http", "twilio", "stream")
# A PBX's answer to "come back later" (503 load shed or storage unavailable, 429): wait the
# answer's Retry-After (at most this long) and send the same request again.
_RETRIED_STATUSES: Final = frozenset({429, 503})
_ATTEMPTS: Final = 10
_LONGEST_WAIT_S: Final = 10.0


@dataclass(slots=True)
class Delivery:
    """What sending one call took and what the service answered."""

    frames_sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP statuses, close codes, acks
    missing: dict[str, int] | None = None  # per track, when the service's last answer said


class Transport(Protocol):
    async def send_call(
        self, call_id: str, plans: Mapping[Track, CallPlan], *, metadata: dict[str, Any]
    ) -> Delivery: ...


async def paced_sends(
    plans: Mapping[Track, CallPlan], speed: float
) -> AsyncIterator[tuple[Track, Send]]:
    """The tracks' sends side by side: the n-th send of every track at n * 20 ms / speed
    (all at once with speed 0)."""
    started = time.monotonic()
    longest = max((len(plan.sends) for plan in plans.values()), default=0)
    for index in range(longest):
        if speed > 0:
            due = started + index * FRAME_SECONDS / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        for track, plan in plans.items():
            if index < len(plan.sends):
                yield track, plan.sends[index]


class HttpTransport:
    """`POST /v1/call/stream/{id}` per packet (the inbound track only), then `complete`. A
    request answered 503 or 429 is sent again after its Retry-After, up to ten times (a
    packet sent twice is stored once: the service answers the second one as a duplicate)."""

    def __init__(self, client: httpx.AsyncClient, speed: float) -> None:
        self._client = client
        self._speed = speed

    async def send_call(
        self, call_id: str, plans: Mapping[Track, CallPlan], *, metadata: dict[str, Any]
    ) -> Delivery:
        body = {"call_id": call_id, "encoding": "mulaw", "sample_rate": 8000, "metadata": metadata}
        delivery = Delivery()
        (await self._post("/v1/calls", body, delivery)).raise_for_status()
        async for _, send in paced_sends({Track.inbound: plans[Track.inbound]}, self._speed):
            packet = {
                "sequence": send.sequence,
                "data": base64.b64encode(send.frame).decode(),
                "timestamp": time.time(),
            }
            response = await self._post(f"/v1/call/stream/{call_id}", packet, delivery)
            delivery.frames_sent += 1
            delivery.statuses[str(response.status_code)] += 1
        final = {"final_sequence": plans[Track.inbound].last_sequence}
        completed = await self._post(f"/v1/calls/{call_id}/complete", final, delivery)
        completed.raise_for_status()
        delivery.missing = {t["track"]: t["missing"] for t in completed.json()["tracks"]}
        return delivery

    async def _post(self, url: str, body: dict[str, Any], delivery: Delivery) -> httpx.Response:
        """The answer to `body`, sent again while the service says to come back later (each
        retry counted as `retried <status>`); the last answer after the last attempt."""
        response = await self._client.post(url, json=body)
        for _ in range(_ATTEMPTS - 1):
            if response.status_code not in _RETRIED_STATUSES:
                break
            delivery.statuses[f"retried {response.status_code}"] += 1
            await asyncio.sleep(_retry_after(response))
            response = await self._client.post(url, json=body)
        return response


def _retry_after(response: httpx.Response) -> float:
    """The answer's Retry-After in seconds (a number; 1 when absent or a date), capped."""
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), _LONGEST_WAIT_S)


class TwilioTransport:
    """`WS /v1/media/twilio` as Twilio speaks it: connected, start, media, stop."""

    def __init__(self, ws_url: str, token: str, speed: float) -> None:
        self._url = ws_url + "/v1/media/twilio"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._speed = speed

    async def send_call(
        self, call_id: str, plans: Mapping[Track, CallPlan], *, metadata: dict[str, Any]
    ) -> Delivery:
        delivery = Delivery()
        parameters = {"call_id": call_id, **{k: str(v) for k, v in metadata.items()}}
        start = {
            "callSid": f"CA{call_id}",
            "streamSid": f"MZ{call_id}",
            "tracks": [track.value for track in plans],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        async with connect(self._url, additional_headers=self._headers) as socket:
            numbers = iter(range(1, 1 << 62))
            await socket.send(json.dumps({"event": "connected", "protocol": "Call"}))
            await socket.send(_twilio("start", next(numbers), start=start))
            async for track, send in paced_sends(plans, self._speed):
                media = {
                    "track": track.value,
                    "chunk": str(send.sequence),
                    "timestamp": str(send.sequence * 20),
                    "payload": base64.b64encode(send.frame).decode(),
                }
                await socket.send(_twilio("media", next(numbers), media=media))
                delivery.frames_sent += 1
            await socket.send(_twilio("stop", next(numbers), stop={"callSid": f"CA{call_id}"}))
            delivery.statuses[f"closed {await _closed(socket)}"] += 1
        return delivery


def _twilio(event: str, number: int, **body: Any) -> str:
    return json.dumps({"event": event, "sequenceNumber": str(number), **body})


class NativeTransport:
    """`WS /v1/calls/{id}/media` with binary frames; ends with the tracks' last sequences."""

    def __init__(self, ws_url: str, token: str, speed: float) -> None:
        self._base = ws_url
        self._token = token
        self._speed = speed

    async def send_call(
        self, call_id: str, plans: Mapping[Track, CallPlan], *, metadata: dict[str, Any]
    ) -> Delivery:
        delivery = Delivery()
        url = f"{self._base}/v1/calls/{call_id}/media?token={self._token}"
        async with connect(url) as socket:
            reader = asyncio.create_task(_count_answers(socket, delivery))
            async for track, send in paced_sends(plans, self._speed):
                await socket.send(binary_frame(track, send.sequence, time.time(), send.frame))
                delivery.frames_sent += 1
            finals = {track.value: plan.last_sequence for track, plan in plans.items()}
            await socket.send(json.dumps({"type": "end", "final_sequences": finals}))
            await reader
        del metadata  # the native stream carries audio only; declare a call for metadata
        return delivery


async def _count_answers(socket: ClientConnection, delivery: Delivery) -> None:
    try:
        async for message in socket:
            delivery.statuses[json.loads(message)["type"]] += 1
    except ConnectionClosed:
        pass
    delivery.statuses[f"closed {socket.close_code}"] += 1


async def _closed(socket: ClientConnection) -> int | None:
    """Wait for the server to close (after `stop`, once everything is stored)."""
    try:
        async for _ in socket:
            pass
    except ConnectionClosed:
        pass
    return socket.close_code
