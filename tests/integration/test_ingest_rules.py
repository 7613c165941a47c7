"""Single-packet rules: acknowledgement body, duplicates, conflicts, late packets, gaps."""

import json
import random
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from tests.factories import INGEST, SUPERVISOR, audio, packet_body, post_raw

Post = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture(params=["fast-path", "fastapi-route"])
def post_packet(request: pytest.FixtureRequest) -> Post:
    """Every rule holds on both ingest paths: the raw fast path and the FastAPI route."""
    chunked = request.param == "fastapi-route"

    async def post(
        client: httpx.AsyncClient, call_id: str, sequence: int, data: bytes | None = None
    ) -> httpx.Response:
        return await post_raw(
            client,
            f"/v1/call/stream/{call_id}",
            json.dumps(packet_body(sequence, data)).encode(),
            headers={**INGEST, "content-type": "application/json"},
            chunked=chunked,
        )

    return post


async def test_first_packet_creates_the_call_and_is_acknowledged(
    client: httpx.AsyncClient, db: asyncpg.Connection, post_packet: Post
) -> None:
    response = await post_packet(client, "CA-1", 1)
    assert response.status_code == 202
    assert response.json() == {
        "call_id": "CA-1",
        "sequence": 1,
        "status": "accepted",
        "in_order": True,
        "state": "IN_PROGRESS",
        "missing": 0,
    }
    row = await db.fetchrow("SELECT * FROM packets WHERE call_id = 'CA-1'")
    assert row is not None
    assert row["data"] == audio(1)
    assert row["sent_at"] == 1764340000.02
    events = await db.fetch("SELECT type, to_state FROM call_events WHERE call_id = 'CA-1'")
    assert [(e["type"], e["to_state"]) for e in events] == [("call.created", "IN_PROGRESS")]


async def test_same_packet_again_is_a_duplicate_stored_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, post_packet: Post
) -> None:
    await post_packet(client, "dup", 1)
    again = await post_packet(client, "dup", 1)
    assert again.status_code == 202
    assert again.json()["status"] == "duplicate"
    assert await db.fetchval("SELECT count(*) FROM packets WHERE call_id = 'dup'") == 1
    duplicates = "SELECT packets_duplicate FROM call_tracks WHERE call_id = 'dup'"
    assert await db.fetchval(duplicates) == 1


async def test_same_sequence_with_other_data_conflicts_and_changes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection, post_packet: Post
) -> None:
    await post_packet(client, "clash", 1)
    before = await db.fetchrow("SELECT * FROM calls WHERE call_id = 'clash'")
    response = await post_packet(client, "clash", 1, data=b"other audio")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "packet_conflict"
    assert await db.fetchval("SELECT data FROM packets WHERE call_id = 'clash'") == audio(1)
    after = await db.fetchrow("SELECT * FROM calls WHERE call_id = 'clash'")
    assert before is not None
    assert after is not None
    assert dict(after) == dict(before)


async def test_late_packet_is_counted_and_fills_its_hole(
    client: httpx.AsyncClient, db: asyncpg.Connection, post_packet: Post
) -> None:
    acks = [(await post_packet(client, "late", s)).json() for s in (1, 4, 2)]
    assert [a["in_order"] for a in acks] == [True, True, False]
    assert [a["missing"] for a in acks] == [0, 2, 1]
    call = (await client.get("/v1/calls/late", headers=SUPERVISOR)).json()
    assert call["packets"]["late"] == 1
    assert call["packets"]["missing"] == 1
    assert call["tracks"][0]["missing_ranges"] == [{"first": 3, "last": 3}]


async def test_sequence_zero_is_accepted(client: httpx.AsyncClient, post_packet: Post) -> None:
    assert (await post_packet(client, "zero", 0)).status_code == 202
    assert (await post_packet(client, "zero", 1)).json()["missing"] == 0


async def test_a_gap_logs_one_structured_warning(
    client: httpx.AsyncClient, post_packet: Post
) -> None:
    with capture_logs() as logs:
        await post_packet(client, "gappy", 1)
        await post_packet(client, "gappy", 5)
        await post_packet(client, "gappy", 3)
    gaps = [entry for entry in logs if entry["event"] == "packet_gap_detected"]
    assert gaps == [
        {
            "event": "packet_gap_detected",
            "log_level": "warning",
            "call_id": "gappy",
            "track": "inbound",
            "first_missing": 2,
            "last_missing": 4,
        }
    ]


async def test_packet_after_complete_is_refused_and_not_stored(
    client: httpx.AsyncClient, db: asyncpg.Connection, post_packet: Post
) -> None:
    await post_packet(client, "ended", 1)
    completed = await client.post("/v1/calls/ended/complete", headers=INGEST)
    assert completed.status_code == 200
    late = await post_packet(client, "ended", 2)
    assert late.status_code == 409
    assert late.json()["code"] == "call_not_accepting_packets"
    assert await db.fetchval("SELECT count(*) FROM packets WHERE call_id = 'ended'") == 1
    # even a byte-identical repeat of a stored packet is refused once the call has ended
    assert (await post_packet(client, "ended", 1)).status_code == 409


async def test_counters_follow_an_independent_model_over_random_streams(
    client: httpx.AsyncClient, post_packet: Post
) -> None:
    """Packets sent one at a time in random order, with repeats: the call's counters equal
    what a plain reading of the rules gives (late = below the highest seen before it)."""
    rng = random.Random(99)
    for n in range(3):
        call_id = f"model-{n}"
        sequences = [s for s in range(1, 41) if rng.random() > 0.15]
        arrivals = sequences + rng.sample(sequences, 8)
        rng.shuffle(arrivals)
        seen: set[int] = set()
        highest = 0
        late = duplicates = 0
        for sequence in arrivals:
            ack = (await post_packet(client, call_id, sequence)).json()
            if sequence in seen:
                duplicates += 1
                assert ack["status"] == "duplicate"
            else:
                assert ack["in_order"] is (sequence > highest)
                late += sequence < highest
                seen.add(sequence)
                highest = max(highest, sequence)
            assert ack["missing"] == highest - len(seen)
        packets = (await client.get(f"/v1/calls/{call_id}", headers=SUPERVISOR)).json()["packets"]
        assert (packets["received"], packets["duplicates"], packets["late"]) == (
            len(seen),
            duplicates,
            late,
        )
        assert packets["missing"] == highest - len(seen)
