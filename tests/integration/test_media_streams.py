"""Media streams against a real server: Twilio Media Streams and callscope's own acked
stream, both sides of a call, exact counts under loss, duplicates and reordering."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from callscope.settings import Settings
from callscope.simulate.pbx import SimulationOptions, simulate
from tests.factories import INGEST, INGEST_TOKEN, SUPERVISOR, SUPERVISOR_TOKEN, audio
from tests.integration.checks import assert_counters_match_packets
from tests.live import Served, served

BEARER = {"Authorization": f"Bearer {INGEST_TOKEN}"}


def media(track: str, chunk: int, payload: bytes | None = None, number: int = 0) -> str:
    data = audio(chunk) if payload is None else payload
    body = {
        "track": track,
        "chunk": str(chunk),
        "timestamp": str(chunk * 20),
        "payload": base64.b64encode(data).decode(),
    }
    return json.dumps({"event": "media", "sequenceNumber": str(number), "media": body})


def start(call_id: str | None = "tw-1", **overrides: Any) -> str:
    parameters = {"call_id": call_id} if call_id else {}
    details = {
        "callSid": "CAcafe",
        "streamSid": "MZbeef",
        "tracks": ["inbound", "outbound"],
        "customParameters": {**parameters, "queue": "billing"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        **overrides,
    }
    return json.dumps({"event": "start", "sequenceNumber": "1", "start": details})


STOP = json.dumps({"event": "stop", "sequenceNumber": "999", "stop": {"callSid": "CAcafe"}})


async def closed(socket: ClientConnection, within: float = 10) -> tuple[int | None, str | None]:
    """What the server closed the socket with (after reading whatever it sent)."""
    async with asyncio.timeout(within):
        try:
            async for _ in socket:
                pass
        except ConnectionClosed:
            pass
    return socket.close_code, socket.close_reason


async def answers(socket: ClientConnection, until: str, within: float = 10) -> list[dict[str, Any]]:
    """Messages from the server until one of type `until` (or the socket closes)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        try:
            async for raw in socket:
                got.append(json.loads(raw))
                if got[-1]["type"] == until:
                    break
        except ConnectionClosed:
            pass
    return got


@asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        yield running, http


async def call(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/calls/{call_id}", headers=SUPERVISOR)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_twilio_stream_of_both_sides_is_stored_per_track_and_stop_completes_the_call(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with server(settings) as (running, http):
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0"}))
            await ws.send(start())
            for chunk in (1, 2, 4, 3, 5):  # 3 late
                await ws.send(media("inbound", chunk))
            for chunk in (1, 2, 2, 5):  # 2 twice; 3 and 4 lost
                await ws.send(media("outbound", chunk))
            dtmf = {"track": "inbound_track", "digit": "7"}
            await ws.send(json.dumps({"event": "dtmf", "sequenceNumber": "20", "dtmf": dtmf}))
            await ws.send(
                json.dumps({"event": "mark", "sequenceNumber": "21", "mark": {"name": "x"}})
            )
            await ws.send(STOP)
            assert await closed(ws) == (1000, "stream stopped; call completed")
        stored = await call(http, "tw-1")
        events = (await http.get("/v1/calls/tw-1/events", headers=SUPERVISOR)).json()["items"]
    assert stored["state"] == "COMPLETED"
    assert stored["metadata"] == {"queue": "billing", "call_sid": "CAcafe"}
    tracks = {t["track"]: t for t in stored["tracks"]}
    assert (tracks["inbound"]["received"], tracks["inbound"]["late"]) == (5, 1)
    assert tracks["inbound"]["missing"] == 0
    assert (tracks["outbound"]["received"], tracks["outbound"]["duplicates"]) == (3, 1)
    assert tracks["outbound"]["missing_ranges"] == [{"first": 3, "last": 4}]
    assert stored["packets"]["received"] == 8
    kinds = [e["type"] for e in events]
    assert kinds[0] == "call.created"
    assert {"call.dtmf", "call.mark"} <= set(kinds)
    assert kinds[-1] == "call.state_changed"
    dtmf_event = next(e for e in events if e["type"] == "call.dtmf")
    assert dtmf_event["data"] == {"track": "inbound", "digit": "7"}
    await assert_counters_match_packets(db)


async def test_a_twilio_socket_that_drops_leaves_the_call_open_and_a_reconnect_continues_it(
    settings: Settings,
) -> None:
    async with server(settings) as (running, http):
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start())
            for chunk in (1, 2, 3):
                await ws.send(media("inbound", chunk))
        # No `stop`: a network failure, not the end of the call.
        await asyncio.sleep(0.3)
        assert (await call(http, "tw-1"))["state"] == "IN_PROGRESS"
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start())
            for chunk in (3, 4, 5):  # 3 again: a duplicate, not a conflict
                await ws.send(media("inbound", chunk))
            await ws.send(STOP)
            assert (await closed(ws))[0] == 1000
        stored = await call(http, "tw-1")
    (inbound,) = stored["tracks"]
    assert (inbound["received"], inbound["duplicates"], inbound["missing"]) == (5, 1, 0)
    assert stored["state"] == "COMPLETED"


@pytest.mark.parametrize("agent", [False, True], ids=["caller only", "caller and agent"])
@pytest.mark.parametrize("transport", ["twilio", "stream"])
async def test_counts_are_exact_per_track_under_loss_duplicates_and_reordering(
    settings: Settings, db: asyncpg.Connection, transport: str, agent: bool
) -> None:
    async with server(settings) as (running, _):
        options = SimulationOptions(
            url=running.http,
            token=INGEST_TOKEN,
            supervisor_token=SUPERVISOR_TOKEN,
            calls=4,
            seconds=1.0,
            loss=0.05,
            duplicates=0.05,
            reorder=0.1,
            speed=0,
            seed=5,
            transport=transport,  # type: ignore[arg-type]  # one of the parametrized names
            agent=agent,
        )
        report = await simulate(options)
    assert (report.calls, report.missing_as_planned, report.unchecked) == (4, 4, 0)
    tracks = await db.fetch("SELECT track, count(*) FROM call_tracks GROUP BY track")
    assert {row["track"] for row in tracks} == ({"inbound", "outbound"} if agent else {"inbound"})
    assert await db.fetchval("SELECT count(*) FROM calls WHERE state = 'COMPLETED'") == 4
    duplicates = await db.fetchval("SELECT sum(packets_duplicate) FROM call_tracks")
    stored = await db.fetchval("SELECT count(*) FROM packets")
    assert stored + duplicates == report.packets_sent  # every frame stored once, or a duplicate
    await assert_counters_match_packets(db)


async def test_native_acks_follow_commits_and_a_resend_after_reconnect_duplicates_nothing(
    settings: Settings, db: asyncpg.Connection
) -> None:
    url = "/v1/calls/nat-1/media?token=" + INGEST_TOKEN
    async with server(settings) as (running, http):
        async with connect(running.ws + url) as ws:
            for sequence in (1, 2, 4, 5):
                await ws.send(binary_frame(Track.inbound, sequence, 1.0, audio(sequence)))
            body = {"track": "outbound", "sequence": 1, "data": "f39/f39/", "timestamp": 1.0}
            await ws.send(json.dumps(body))
            acks = await _acks_until(ws, {Track.inbound: 5, Track.outbound: 1})
            assert acks[Track.inbound]["missing"] == [[3, 3]]
            stored_now = await db.fetchval("SELECT count(*) FROM packets")
            assert stored_now == 5  # acked, so committed
        # Reconnect: the server says where each track stands, the client resends from there.
        async with connect(running.ws + url) as ws:
            initial = await _acks_until(ws, {Track.inbound: 5, Track.outbound: 1})
            assert initial[Track.inbound]["missing"] == [[3, 3]]
            for sequence in (3, 4, 5, 6):
                await ws.send(binary_frame(Track.inbound, sequence, 1.0, audio(sequence)))
            final = await _acks_until(ws, {Track.inbound: 6})
            assert final[Track.inbound]["missing"] == []
            await ws.send(json.dumps({"type": "end", "final_sequences": {"inbound": 6}}))
            ended = await answers(ws, "ended")
            assert ended[-1] == {"type": "ended", "call_id": "nat-1", "state": "COMPLETED"}
            assert (await closed(ws))[0] == 1000
        stored = await call(http, "nat-1")
    assert await db.fetchval("SELECT count(*) FROM packets WHERE track = 'inbound'") == 6
    inbound = next(t for t in stored["tracks"] if t["track"] == "inbound")
    assert (inbound["received"], inbound["duplicates"], inbound["missing"]) == (6, 2, 0)
    await assert_counters_match_packets(db)


async def _acks_until(
    ws: ClientConnection, through: dict[Track, int], within: float = 10
) -> dict[Track, dict[str, Any]]:
    latest: dict[Track, dict[str, Any]] = {}
    async with asyncio.timeout(within):
        while any(latest.get(t, {}).get("through", -1) < n for t, n in through.items()):
            message = json.loads(await ws.recv())
            assert message["type"] == "ack", message
            latest[Track(message["track"])] = message
    return latest


async def test_a_conflicting_native_frame_is_refused_with_an_error_and_the_stream_goes_on(
    settings: Settings, db: asyncpg.Connection
) -> None:
    url = "/v1/calls/c/media?token=" + INGEST_TOKEN
    async with server(settings) as (running, _), connect(running.ws + url) as ws:
        await ws.send(binary_frame(Track.inbound, 1, 1.0, b"first"))
        await _acks_until(ws, {Track.inbound: 1})
        await ws.send(binary_frame(Track.inbound, 1, 1.0, b"other"))
        await ws.send(binary_frame(Track.inbound, 2, 1.0, b"second"))
        got = await answers(ws, "ack")
        assert got[0]["type"] == "error"
        assert (got[0]["code"], got[0]["sequence"]) == ("packet_conflict", 1)
        assert got[-1]["through"] == 2
    assert await db.fetchval("SELECT data FROM packets WHERE sequence = 1") == b"first"


async def test_a_conflicting_twilio_chunk_closes_the_stream_with_4409_and_keeps_the_first(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """Twilio reads nothing back, so a chunk that conflicts with a stored one ends its
    stream (4409, naming the chunk); what was stored before stays, the call stays open."""
    async with (
        server(settings) as (running, _),
        connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws,
    ):
        await ws.send(start("tw-conflict"))
        await ws.send(media("inbound", 1, b"\x7f" * 160))
        await ws.send(media("inbound", 2))
        await ws.send(media("inbound", 1, b"\x00" * 160))  # chunk 1 again, other audio
        code, reason = await closed(ws)
    assert (code, reason) == (4409, "packet_conflict: chunk 1 of inbound")
    stored = await db.fetch("SELECT sequence, data FROM packets ORDER BY sequence")
    assert [(row["sequence"], row["data"]) for row in stored] == [(1, b"\x7f" * 160), (2, audio(2))]
    assert await db.fetchval("SELECT state FROM calls WHERE call_id = 'tw-conflict'") == (
        "IN_PROGRESS"
    )


async def test_a_stream_for_a_completed_call_is_closed_as_a_conflict(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    async with server(settings) as (running, http):
        await http.post("/v1/call/stream/done", json=_packet(1), headers=INGEST)
        await http.post("/v1/calls/done/complete", headers=INGEST)
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start("done"))
            code, reason = await closed(ws)
        assert (code, reason) == (4409, "call done is COMPLETED")
        async with connect(running.ws + "/v1/calls/done/media?token=" + INGEST_TOKEN) as ws:
            await ws.send(binary_frame(Track.inbound, 2, 1.0, b"late"))
            got = await answers(ws, "error")
            assert got[-1]["code"] == "call_not_accepting_packets"
            assert (await closed(ws))[0] == 4409


def _packet(sequence: int) -> dict[str, Any]:
    return {"sequence": sequence, "data": "f39/f39/", "timestamp": 1764340000.0}
