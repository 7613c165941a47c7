"""Sequences at most CALLSCOPE_MAX_SEQUENCE_JUMP ahead of their track's highest (0 for a new
call): on HTTP (both ingest paths), both media streams, and `final_sequence` on complete."""

import asyncio
import base64
import json
import time
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from callscope.calls.vocabulary import Track
from callscope.errors import SequenceOutOfRange
from callscope.ingest.native import binary_frame
from callscope.ingest.packets import IngestPath, Packet, PacketStatus
from callscope.settings import Settings
from tests.committers import own_committer
from tests.factories import (
    INGEST,
    INGEST_TOKEN,
    SUPERVISOR,
    audio,
    make_settings,
    packet_body,
    post_raw,
    running_app,
)
from tests.integration.checks import assert_counters_match_packets
from tests.integration.test_media_streams import STOP, answers, closed, media, start
from tests.live import served

JUMP = 100
BEARER = {"Authorization": f"Bearer {INGEST_TOKEN}"}


@pytest.fixture
def bounded(db_url: str, db: asyncpg.Connection) -> Settings:
    return make_settings(db_url, max_sequence_jump=JUMP)


@pytest.fixture(params=["fast-path", "fastapi-route"])
def chunked(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "fastapi-route")


async def _post(
    client: httpx.AsyncClient, call_id: str, sequence: int, *, chunked: bool
) -> httpx.Response:
    return await post_raw(
        client,
        f"/v1/call/stream/{call_id}",
        json.dumps(packet_body(sequence)).encode(),
        headers={**INGEST, "content-type": "application/json"},
        chunked=chunked,
    )


def _assert_out_of_range(response: httpx.Response, sequence: int, highest: int) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["type"], problem["code"]) == (
        "/problems/sequence_out_of_range",
        "sequence_out_of_range",
    )
    assert (problem["sequence"], problem["highest"], problem["max_jump"]) == (
        sequence,
        highest,
        JUMP,
    )


async def test_a_new_call_counts_the_jump_from_zero(
    bounded: Settings, db: asyncpg.Connection, chunked: bool
) -> None:
    async with running_app(bounded) as client:
        refused = await _post(client, "far", JUMP + 1, chunked=chunked)
        accepted = await _post(client, "edge", JUMP, chunked=chunked)
    _assert_out_of_range(refused, JUMP + 1, 0)
    assert accepted.status_code == 202
    assert accepted.json()["missing"] == JUMP - 1
    calls = await db.fetch("SELECT call_id FROM calls ORDER BY call_id")
    assert [row["call_id"] for row in calls] == ["edge"]  # nothing of `far`: not even the call
    assert await db.fetchval("SELECT count(*) FROM call_events WHERE call_id = 'far'") == 0


async def test_an_absurd_sequence_is_refused_and_changes_nothing(
    settings: Settings, db: asyncpg.Connection, chunked: bool
) -> None:
    """The default bound (6 hours of 20 ms frames) against the report's 2**62."""
    async with running_app(settings) as client:
        assert (await _post(client, "c", 1, chunked=chunked)).status_code == 202
        before = await db.fetchrow("SELECT * FROM call_tracks WHERE call_id = 'c'")
        response = await _post(client, "c", 2**52, chunked=chunked)
        later = await _post(client, "c", 2 + settings.max_sequence_jump, chunked=chunked)
    _assert_out_of_range_default(response, settings.max_sequence_jump)
    assert later.status_code == 422
    assert await db.fetchrow("SELECT * FROM call_tracks WHERE call_id = 'c'") == before
    assert await db.fetchval("SELECT count(*) FROM packets WHERE call_id = 'c'") == 1


def _assert_out_of_range_default(response: httpx.Response, jump: int) -> None:
    assert response.status_code == 422
    assert response.json()["code"] == "sequence_out_of_range"
    assert response.json()["max_jump"] == jump == 6 * 3600 * 50


async def test_the_jump_is_counted_from_the_tracks_highest_sequence(
    bounded: Settings, db: asyncpg.Connection, chunked: bool
) -> None:
    async with running_app(bounded) as client:
        assert (await _post(client, "c", 40, chunked=chunked)).status_code == 202
        _assert_out_of_range(await _post(client, "c", 40 + JUMP + 1, chunked=chunked), 141, 40)
        edge = await _post(client, "c", 40 + JUMP, chunked=chunked)
        late = await _post(client, "c", 3, chunked=chunked)  # behind: always within the bound
    assert edge.status_code == 202
    assert (late.status_code, late.json()["in_order"]) == (202, False)
    stored = await db.fetch("SELECT sequence FROM packets WHERE call_id = 'c' ORDER BY sequence")
    assert [row["sequence"] for row in stored] == [3, 40, 140]
    await assert_counters_match_packets(db)


async def test_a_refused_packet_does_not_raise_the_bound_for_packets_of_its_batch(
    bounded: Settings, db: asyncpg.Connection, db_url: str
) -> None:
    """In one group commit: 150 is refused, so 240 (within 100 of it) is refused too, while
    50, then 140 (within 100 of 50), are accepted."""
    sequences = [150, 240, 50, 140]
    async with own_committer(db_url, bounded, batch_max=10, queue_limit=10, flushing=False) as (
        committer,
        start_flushing,
    ):
        now = time.time()
        submitted = [
            asyncio.create_task(
                committer.submit(
                    "batch",
                    Packet(Track.inbound, sequence, audio(sequence), 1.0, now),
                    path=IngestPath.http,
                )
            )
            for sequence in sequences
        ]
        await asyncio.sleep(0)  # all queued before the flusher starts: one batch
        start_flushing()
        results = await asyncio.gather(*submitted, return_exceptions=True)
    assert [type(result) for result in results[:2]] == [SequenceOutOfRange] * 2
    assert [getattr(result, "status", None) for result in results[2:]] == [
        PacketStatus.accepted
    ] * 2
    stored = await db.fetch("SELECT sequence FROM packets WHERE call_id = 'batch' ORDER BY 1")
    assert [row["sequence"] for row in stored] == [50, 140]
    await assert_counters_match_packets(db)


async def test_final_sequence_on_complete_obeys_the_same_bound(
    bounded: Settings, db: asyncpg.Connection
) -> None:
    async with running_app(bounded) as client:
        await _post(client, "c", 10, chunked=False)
        await _post(client, "d", 10, chunked=False)
        refused = await client.post(
            "/v1/calls/c/complete", json={"final_sequence": 10 + JUMP + 1}, headers=INGEST
        )
        state = (await client.get("/v1/calls/c", headers=SUPERVISOR)).json()["state"]
        edge = await client.post(
            "/v1/calls/d/complete", json={"final_sequence": 10 + JUMP}, headers=INGEST
        )
    _assert_out_of_range(refused, 10 + JUMP + 1, 10)
    assert state == "IN_PROGRESS"
    assert await db.fetchval("SELECT final_sequence FROM call_tracks WHERE call_id = 'c'") is None
    assert edge.status_code == 200
    assert edge.json()["packets"]["missing"] == JUMP + 9


async def test_final_sequence_of_a_call_without_packets_counts_from_zero(
    bounded: Settings,
) -> None:
    async with running_app(bounded) as client:
        declared = {"call_id": "empty", "encoding": "mulaw"}
        assert (await client.post("/v1/calls", json=declared, headers=INGEST)).status_code == 201
        refused = await client.post(
            "/v1/calls/empty/complete", json={"final_sequence": JUMP + 1}, headers=INGEST
        )
        edge = await client.post(
            "/v1/calls/empty/complete", json={"final_sequence": JUMP}, headers=INGEST
        )
    _assert_out_of_range(refused, JUMP + 1, 0)
    assert (edge.status_code, edge.json()["state"]) == (200, "COMPLETED")


def _json_frame(sequence: int, track: str = "inbound") -> str:
    data = base64.b64encode(audio(sequence)).decode()
    return json.dumps({"track": track, "sequence": sequence, "data": data, "timestamp": 1.0})


async def test_the_native_stream_refuses_the_frame_says_why_and_goes_on(
    bounded: Settings, db: asyncpg.Connection
) -> None:
    async with served(bounded) as running:
        url = running.ws + "/v1/calls/nat/media"
        async with connect(url, additional_headers=BEARER) as ws:
            await ws.send(_json_frame(1))
            await ws.send(binary_frame(Track.inbound, 1 + JUMP + 1, 1.0, audio(2)))
            await ws.send(_json_frame(1 + JUMP))
            await ws.send(json.dumps({"type": "end"}))
            got = await answers(ws, until="ended")
    errors = [message for message in got if message["type"] == "error"]
    assert [(e["code"], e["sequence"], e["track"]) for e in errors] == [
        ("sequence_out_of_range", 102, "inbound")
    ]
    assert got[-1] == {"type": "ended", "call_id": "nat", "state": "COMPLETED"}
    stored = await db.fetch("SELECT sequence FROM packets WHERE call_id = 'nat' ORDER BY 1")
    assert [row["sequence"] for row in stored] == [1, 101]


async def test_the_native_streams_end_with_a_final_sequence_too_far_ahead_is_refused(
    bounded: Settings,
) -> None:
    async with served(bounded) as running, httpx.AsyncClient(base_url=running.http) as http:
        url = running.ws + "/v1/calls/fin/media"
        async with connect(url, additional_headers=BEARER) as ws:
            await ws.send(_json_frame(5))
            final = {"inbound": 5 + JUMP + 1}
            await ws.send(json.dumps({"type": "end", "final_sequences": final}))
            got = await answers(ws, until="error")
            code, reason = await closed(ws)
        state = (await http.get("/v1/calls/fin", headers=SUPERVISOR)).json()["state"]
    assert got[-1]["code"] == "sequence_out_of_range"
    assert (code, reason) == (4400, "sequence_out_of_range: a final sequence")
    assert state == "IN_PROGRESS"


async def test_a_twilio_stream_with_a_chunk_too_far_ahead_is_closed_with_4400(
    bounded: Settings, db: asyncpg.Connection
) -> None:
    async with served(bounded) as running:
        url = running.ws + "/v1/media/twilio"
        async with connect(url, additional_headers=BEARER) as ws:
            await ws.send(start("tw-far"))
            await ws.send(media("inbound", 1))
            await ws.send(media("inbound", 2 + JUMP))
            code, reason = await closed(ws)
    assert (code, reason) == (4400, f"sequence_out_of_range: chunk {2 + JUMP} of inbound")
    stored = await db.fetch("SELECT sequence FROM packets WHERE call_id = 'tw-far'")
    assert 2 + JUMP not in [row["sequence"] for row in stored]
    state = await db.fetchval("SELECT state FROM calls WHERE call_id = 'tw-far'")
    assert state == "IN_PROGRESS"


async def test_a_twilio_stream_at_the_bound_is_stored(
    bounded: Settings, db: asyncpg.Connection
) -> None:
    async with served(bounded) as running:
        url = running.ws + "/v1/media/twilio"
        async with connect(url, additional_headers=BEARER) as ws:
            await ws.send(start("tw-edge"))
            await ws.send(media("inbound", JUMP))
            await ws.send(STOP)
            assert await closed(ws) == (1000, "stream stopped; call completed")
    track: Any = await db.fetchrow(
        "SELECT packets_received, max_sequence FROM call_tracks WHERE call_id = 'tw-edge'"
    )
    assert (track["packets_received"], track["max_sequence"]) == (1, JUMP)


async def test_refused_sequences_are_counted_once_as_invalid_on_every_path(
    bounded: Settings,
) -> None:
    async with served(bounded) as running, httpx.AsyncClient(base_url=running.http) as http:
        before = _samples((await http.get("/metrics")).text)
        for chunked in (False, True):  # the fast path, then the FastAPI route
            assert (await _post(http, "m-far", JUMP + 1, chunked=chunked)).status_code == 422
        async with connect(running.ws + "/v1/calls/m-far/media", additional_headers=BEARER) as ws:
            await ws.send(_json_frame(1))
            await ws.send(_json_frame(2 + JUMP))
            await ws.send(json.dumps({"type": "end"}))
            await answers(ws, until="ended")
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start("m-far-twilio"))
            await ws.send(media("inbound", JUMP + 1))
            assert (await closed(ws))[0] == 4400
        after = _samples((await http.get("/metrics")).text)
    for path, refused in (("http", 2), ("stream", 1), ("twilio", 1)):
        assert _delta(before, after, path) == refused, path


def _samples(exposition: str) -> dict[tuple[str, str], float]:
    """`callscope_ingest_packets_total` by (path, outcome)."""
    return {
        (sample.labels["path"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "callscope_ingest_packets_total"
    }


def _delta(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], path: str
) -> float:
    return after.get((path, "invalid"), 0.0) - before.get((path, "invalid"), 0.0)


async def test_a_native_stream_whose_every_frame_was_refused_ends_without_a_call(
    bounded: Settings, db: asyncpg.Connection
) -> None:
    async with served(bounded) as running:
        url = running.ws + "/v1/calls/nothing/media"
        async with connect(url, additional_headers=BEARER) as ws:
            await ws.send(_json_frame(JUMP + 1))
            await ws.send(json.dumps({"type": "end"}))
            got = await answers(ws, until="error")
            assert await closed(ws) == (4400, "call_not_found: no frame was stored")
    assert got[-1]["code"] == "sequence_out_of_range"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


async def test_the_openapi_contract_documents_the_bound_on_each_ingest_route(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/call/stream/{call_id}", "/v1/calls/{call_id}/complete"):
        refusal = paths[path]["post"]["responses"]["422"]["description"]
        assert "sequence_out_of_range" in refusal, path
        assert "CALLSCOPE_MAX_SEQUENCE_JUMP" in refusal, path
