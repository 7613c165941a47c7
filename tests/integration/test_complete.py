"""Completing calls: by request (idempotent, race-safe) and by the idle sweeper."""

import asyncio
import json
import time

import asyncpg
import httpx

from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR, post_packet, running_app
from tests.integration.checks import assert_counters_match_packets


async def _state_changes(db: asyncpg.Connection, call_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT from_state, to_state, data FROM call_events "
        "WHERE call_id = $1 AND type = 'call.state_changed' ORDER BY id",
        call_id,
    )


async def test_complete_moves_the_call_and_records_one_event(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await post_packet(client, "done", 1)
    first = await client.post("/v1/calls/done/complete", headers=INGEST)
    again = await client.post("/v1/calls/done/complete", headers=INGEST)
    assert first.status_code == again.status_code == 200
    assert first.json()["state"] == again.json()["state"] == "COMPLETED"
    assert first.json()["completed_at"] is not None
    changes = await _state_changes(db, "done")
    assert [(c["from_state"], c["to_state"]) for c in changes] == [("IN_PROGRESS", "COMPLETED")]
    history = (await client.get("/v1/calls/done/events", headers=SUPERVISOR)).json()["items"]
    assert [e["type"] for e in history] == ["call.created", "call.state_changed"]
    assert history[0]["id"] < history[1]["id"]
    assert history[1]["data"] == {"reason": "complete_request"}


async def test_final_sequence_counts_trailing_missing_packets(client: httpx.AsyncClient) -> None:
    for sequence in (1, 2, 4):
        await post_packet(client, "short", sequence)
    response = await client.post(
        "/v1/calls/short/complete", json={"final_sequence": 7}, headers=INGEST
    )
    (inbound,) = response.json()["tracks"]
    assert inbound["track"] == "inbound"
    assert inbound["final_sequence"] == 7
    assert inbound["missing"] == response.json()["packets"]["missing"] == 4
    assert inbound["missing_ranges"] == [{"first": 3, "last": 3}, {"first": 5, "last": 7}]


async def test_concurrent_completes_write_one_event(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await post_packet(client, "raced", 1)
    responses = await asyncio.gather(
        *(
            (client if n % 2 else replica_b).post("/v1/calls/raced/complete", headers=INGEST)
            for n in range(40)
        )
    )
    assert {r.status_code for r in responses} == {200}
    assert len(await _state_changes(db, "raced")) == 1


async def test_packets_racing_a_complete_are_either_stored_or_refused(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await post_packet(client, "closing", 1)
    packets = [post_packet(replica_b, "closing", s) for s in range(2, 202)]
    complete = client.post("/v1/calls/closing/complete", headers=INGEST)
    *acks, completed = await asyncio.gather(*packets, complete)
    assert completed.status_code == 200
    assert {a.status_code for a in acks} <= {202, 409}
    accepted = {s for s, a in zip(range(2, 202), acks, strict=True) if a.status_code == 202}
    stored = {r["sequence"] for r in await db.fetch("SELECT sequence FROM packets")}
    assert stored == accepted | {1}
    await assert_counters_match_packets(db)


async def test_complete_of_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/calls/nobody/complete", headers=INGEST)
    assert response.status_code == 404
    assert response.json()["code"] == "call_not_found"


async def test_complete_needs_an_ingest_token(client: httpx.AsyncClient) -> None:
    await post_packet(client, "mine", 1)
    response = await client.post("/v1/calls/mine/complete", headers=SUPERVISOR)
    assert response.status_code == 403


async def test_complete_rejects_a_bad_body(client: httpx.AsyncClient) -> None:
    await post_packet(client, "body", 1)
    for body in ({"final_sequence": "9"}, {"final_sequence": -1}, {"final": 9}):
        response = await client.post("/v1/calls/body/complete", json=body, headers=INGEST)
        assert response.status_code == 422, body
    assert (await client.get("/v1/calls/body", headers=SUPERVISOR)).json()["state"] == (
        "IN_PROGRESS"
    )


async def test_idle_sweeper_completes_a_quiet_call(
    settings: Settings, db: asyncpg.Connection
) -> None:
    quick = settings.model_copy(update={"call_idle_timeout": 0.5, "sweep_interval": 0.1})
    async with running_app(quick) as client:
        await post_packet(client, "quiet", 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = (await client.get("/v1/calls/quiet", headers=SUPERVISOR)).json()["state"]
            if state == "COMPLETED":
                break
            await asyncio.sleep(0.1)
    changes = await _state_changes(db, "quiet")
    assert len(changes) == 1
    assert json.loads(changes[0]["data"]) == {"reason": "idle_timeout", "idle_seconds": 0.5}


async def test_idle_sweeper_leaves_a_talking_call_alone(
    settings: Settings, db: asyncpg.Connection
) -> None:
    quick = settings.model_copy(update={"call_idle_timeout": 0.6, "sweep_interval": 0.05})
    async with running_app(quick) as client:
        for sequence in range(1, 16):
            assert (await post_packet(client, "talking", sequence)).status_code == 202
            await asyncio.sleep(0.1)
    assert await _state_changes(db, "talking") == []
