"""Races on one call across its ingest paths at once: HTTP packets, a Twilio stream and the
native stream carrying the same frames, and every way a call can be ended racing the others.
Each test checks PostgreSQL afterwards."""

import asyncio
import contextlib
import json
import time

import asyncpg
import httpx
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from callscope.settings import Settings
from tests.factories import INGEST, INGEST_TOKEN, audio, packet_body
from tests.integration.checks import assert_counters_match_packets
from tests.integration.test_media_streams import BEARER, STOP, media, start
from tests.live import served

FRAMES = 120


async def _drain(socket: ClientConnection) -> tuple[int | None, str | None]:
    try:
        async with asyncio.timeout(15):
            async for _ in socket:
                pass
    except ConnectionClosed:
        pass
    return socket.close_code, socket.close_reason


async def _twilio(
    ws_base: str, call_id: str, chunks: list[int], *, stop: bool, listen: float = 0
) -> tuple[int | None, str | None]:
    """Stream `chunks` of the caller's track; then `stop`, or wait `listen` seconds for the
    server to close and close it ourselves (a dropped stream)."""
    async with connect(ws_base + "/v1/media/twilio", additional_headers=BEARER) as ws:
        await ws.send(start(call_id))
        for chunk in chunks:
            await ws.send(media("inbound", chunk))
            if chunk % 10 == 0:
                await asyncio.sleep(0)
        if stop:
            await ws.send(STOP)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), listen)
            await ws.close()
        return await _drain(ws)


async def _native(
    ws_base: str, call_id: str, sequences: list[int]
) -> tuple[int | None, str | None]:
    url = f"{ws_base}/v1/calls/{call_id}/media?token={INGEST_TOKEN}"
    async with connect(url) as ws:
        for sequence in sequences:
            await ws.send(binary_frame(Track.inbound, sequence, 1.0, audio(sequence)))
            if sequence % 10 == 0:
                await asyncio.sleep(0)
        await ws.close()
        return await _drain(ws)


async def _http(http: httpx.AsyncClient, call_id: str, sequences: list[int]) -> list[int]:
    responses = await asyncio.gather(
        *(
            http.post(f"/v1/call/stream/{call_id}", json=packet_body(s), headers=INGEST)
            for s in sequences
        )
    )
    return [r.status_code for r in responses]


async def _until_stored(db: asyncpg.Connection, packets: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while await db.fetchval("SELECT count(*) FROM packets") < packets:
        assert time.monotonic() < deadline, f"fewer than {packets} packets stored"
        await asyncio.sleep(0.05)


async def test_the_same_frames_over_http_twilio_and_native_on_two_replicas_are_stored_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """Two replicas (each its own committer and pools) and every path on each, one call."""
    everything = list(range(1, FRAMES + 1))
    async with (
        served(settings) as a,
        served(settings) as b,
        httpx.AsyncClient(base_url=b.http) as http,
    ):
        results = await asyncio.gather(
            _twilio(a.ws, "shared", everything, stop=False),
            _twilio(b.ws, "shared", everything[::-1], stop=False),
            _native(b.ws, "shared", everything),
            _native(a.ws, "shared", everything[::-1]),
            _http(http, "shared", everything),
        )
    *closes, statuses = results
    assert set(statuses) == {202}, statuses
    assert all(code == 1000 for code, _ in closes), closes
    stored = await db.fetch("SELECT sequence, data FROM packets WHERE call_id = 'shared'")
    assert sorted(r["sequence"] for r in stored) == everything
    assert all(r["data"] == audio(r["sequence"]) for r in stored)
    duplicates = await db.fetchval(
        "SELECT packets_duplicate FROM call_tracks WHERE call_id = 'shared'"
    )
    assert duplicates == 4 * FRAMES
    assert await db.fetchval("SELECT count(*) FROM calls") == 1
    created = await db.fetchval(
        "SELECT count(*) FROM call_events WHERE call_id = 'shared' AND type = 'call.created'"
    )
    assert created == 1
    await assert_counters_match_packets(db)


async def test_every_way_of_ending_a_call_raced_together_ends_it_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """Twilio's stop, the native stream's end and HTTP completes with other final sequences,
    all at once, while packets still arrive: one transition, the winner's final sequence,
    and every late packet either acknowledged and stored or refused and not stored."""
    first = list(range(1, 41))
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        await _http(http, "ending", first)
        native_url = f"{running.ws}/v1/calls/ending/media?token={INGEST_TOKEN}"

        async def native_end() -> tuple[int | None, str | None]:
            async with connect(native_url) as ws:
                end = {"type": "end", "final_sequences": {"inbound": 50}}
                await ws.send(json.dumps(end))
                return await _drain(ws)

        async def complete(final: int) -> int:
            body = {"final_sequence": final}
            answer = await http.post("/v1/calls/ending/complete", json=body, headers=INGEST)
            return answer.status_code

        twilio_close, native_close, completes, late = await asyncio.gather(
            _twilio(running.ws, "ending", list(range(41, 61)), stop=True),
            native_end(),
            asyncio.gather(*(complete(final) for final in (45, 55, 60, 70))),
            _http(http, "ending", list(range(61, 101))),
        )
    assert twilio_close[0] in (1000, 4409), twilio_close  # stopped first, or too late
    assert native_close == (1000, "stream ended; call completed")
    assert await db.fetchval("SELECT state FROM calls WHERE call_id = 'ending'") == "COMPLETED"
    changes = await db.fetch(
        "SELECT * FROM call_events WHERE call_id = 'ending' AND type = 'call.state_changed'"
    )
    assert len(changes) == 1, changes
    final = await db.fetchval("SELECT final_sequence FROM call_tracks WHERE call_id = 'ending'")
    winner = json.loads(changes[0]["data"])["reason"]
    possible = {"complete_request": {45, 55, 60, 70}, "stream_ended": {50}, "stream_stopped": {60}}
    assert final in possible[winner], (winner, final)
    assert set(completes) <= {200, 409}, completes
    assert set(late) <= {202, 409}, late
    stored = {r["sequence"] for r in await db.fetch("SELECT sequence FROM packets")}
    accepted_late = {s for s, status in zip(range(61, 101), late, strict=True) if status == 202}
    assert stored >= set(first)
    assert stored & set(range(61, 101)) == accepted_late
    await assert_counters_match_packets(db)


async def test_a_declaration_racing_first_frames_on_every_path_leaves_one_format(
    settings: Settings, db: asyncpg.Connection
) -> None:
    declaration = {"call_id": "fresh", "encoding": "pcm_s16le", "sample_rate": 16000}
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        declared, twilio_close, native_close, statuses = await asyncio.gather(
            asyncio.gather(
                *(http.post("/v1/calls", json=declaration, headers=INGEST) for _ in range(5))
            ),
            _twilio(running.ws, "fresh", [1, 2, 3], stop=False, listen=1),
            _native(running.ws, "fresh", [4, 5]),
            _http(http, "fresh", [6, 7]),
        )
    encoding = await db.fetchval("SELECT encoding FROM calls WHERE call_id = 'fresh'")
    stored = {r["sequence"] for r in await db.fetch("SELECT sequence FROM packets")}
    assert (native_close[0], statuses) == (1000, [202, 202])
    codes = sorted(d.status_code for d in declared)
    if encoding == "pcm_s16le":  # declared first: Twilio's μ-law is refused
        assert codes == [200, 200, 200, 200, 201]
        assert twilio_close == (4409, "call fresh already has pcm_s16le audio at 16000 Hz")
        assert stored == {4, 5, 6, 7}
    else:  # a frame came first, in the default format
        assert codes == [409] * 5
        assert twilio_close[0] == 1000
        assert stored == {1, 2, 3, 4, 5, 6, 7}
    await assert_counters_match_packets(db)


async def test_native_acks_racing_a_complete_name_only_stored_frames(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        await _http(http, "acked", [1])
        url = f"{running.ws}/v1/calls/acked/media?token={INGEST_TOKEN}"
        acked = 0
        async with connect(url) as ws:

            async def send() -> None:
                for sequence in range(2, 2000):
                    await ws.send(binary_frame(Track.inbound, sequence, 1.0, audio(sequence)))
                    if sequence == 400:
                        await http.post("/v1/calls/acked/complete", headers=INGEST)
                    if sequence % 20 == 0:
                        await asyncio.sleep(0.001)

            sender = asyncio.create_task(send())
            try:
                async with asyncio.timeout(20):
                    async for raw in ws:
                        message = json.loads(raw)
                        if message["type"] == "ack":
                            acked = max(acked, message["through"])
            except ConnectionClosed:
                pass
            sender.cancel()

    stored = {r["sequence"] for r in await db.fetch("SELECT sequence FROM packets")}
    assert set(range(1, acked + 1)) <= stored
    assert acked >= 1
    await assert_counters_match_packets(db)


async def test_frames_sent_just_before_the_client_leaves_are_stored_without_an_error(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """The native stream greets a known call with its acks; a client already gone made that
    send fail, and the frames it had sent were dropped with an error logged."""
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        await _http(http, "left", [1])
        with capture_logs() as logs:
            for first in range(2, 42, 4):
                await _native(running.ws, "left", [first, first + 1])
                await _twilio(running.ws, "left", [first + 2, first + 3], stop=False)
            await _until_stored(db, 41)
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    await assert_counters_match_packets(db)
