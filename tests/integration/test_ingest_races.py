"""Concurrent ingestion, checked against the database afterwards."""

import asyncio
import random
import time

import asyncpg
import asyncpg.transaction
import httpx
import pytest

from callscope.calls.vocabulary import Track
from callscope.errors import CallNotAcceptingPackets
from callscope.ingest.packets import IngestPath, Packet, PacketStatus
from callscope.settings import Settings, asyncpg_dsn
from tests.committers import own_committer
from tests.factories import INGEST, SUPERVISOR, audio, post_packet, running_app
from tests.integration.checks import assert_counters_match_packets

HTTP = IngestPath.http


async def test_two_simultaneous_first_packets_create_one_call(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for round_ in range(20):
        call_id = f"twin-{round_}"
        first, second = await asyncio.gather(
            post_packet(client, call_id, 1), post_packet(replica_b, call_id, 2)
        )
        assert (first.status_code, second.status_code) == (202, 202)
    assert await db.fetchval("SELECT count(*) FROM calls") == 20
    assert await db.fetchval("SELECT count(*) FROM packets") == 40
    created = await db.fetchval("SELECT count(*) FROM call_events WHERE type = 'call.created'")
    assert created == 20
    await assert_counters_match_packets(db)


async def test_one_hot_call_with_duplicates_in_random_order(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rng = random.Random(2026)
    sequences = list(range(1, 501)) + rng.sample(range(1, 501), 20)
    rng.shuffle(sequences)
    in_flight = asyncio.Semaphore(128)
    peak = 0
    active = 0

    async def send(index: int, sequence: int) -> httpx.Response:
        nonlocal peak, active
        async with in_flight:
            active += 1
            peak = max(peak, active)
            try:
                return await post_packet(client if index % 2 else replica_b, "hot", sequence)
            finally:
                active -= 1

    responses = await asyncio.gather(*(send(i, s) for i, s in enumerate(sequences)))
    assert peak >= 100
    assert all(r.status_code == 202 for r in responses), {r.status_code for r in responses}
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("accepted") == 500
    assert statuses.count("duplicate") == 20
    stored = await db.fetch("SELECT sequence, data FROM packets WHERE call_id = 'hot'")
    assert sorted(row["sequence"] for row in stored) == list(range(1, 501))
    assert all(row["data"] == audio(row["sequence"]) for row in stored)
    call = await db.fetchrow("SELECT * FROM call_tracks WHERE call_id = 'hot'")
    assert call is not None
    assert (call["packets_received"], call["packets_duplicate"], call["max_sequence"]) == (
        500,
        20,
        500,
    )
    late_acks = sum(
        1 for r in responses if r.json()["status"] == "accepted" and not r.json()["in_order"]
    )
    assert call["packets_late"] == late_acks
    await assert_counters_match_packets(db)
    detail = (await client.get("/v1/calls/hot", headers=SUPERVISOR)).json()
    assert detail["packets"]["missing"] == 0
    assert detail["packets"]["late"] == late_acks


CALLS = 100  # 20 packets each, 200 requests in flight at once, over two replicas


async def test_many_calls_with_loss_and_duplicates(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rng = random.Random(7)
    sends: list[tuple[str, int]] = []
    expected_missing: dict[str, int] = {}
    expected_duplicates: dict[str, int] = {}
    for n in range(CALLS):
        call_id = f"call-{n:03d}"
        kept = [s for s in range(1, 21) if s == 20 or rng.random() >= 0.02]
        repeated = [s for s in kept if rng.random() < 0.03]
        expected_missing[call_id] = 20 - len(kept)
        expected_duplicates[call_id] = len(repeated)
        sends += [(call_id, s) for s in kept + repeated]
    rng.shuffle(sends)
    in_flight = asyncio.Semaphore(200)

    async def send(index: int, call_id: str, sequence: int) -> httpx.Response:
        async with in_flight:
            return await post_packet(client if index % 2 else replica_b, call_id, sequence)

    responses = await asyncio.gather(*(send(i, c, s) for i, (c, s) in enumerate(sends)))
    assert all(r.status_code == 202 for r in responses), {r.status_code for r in responses}
    assert sum(expected_missing.values()) > 0
    assert sum(expected_duplicates.values()) > 0
    rows = await db.fetch(
        "SELECT call_id, packets_duplicate, max_sequence, packets_received FROM call_tracks"
    )
    assert len(rows) == CALLS
    for row in rows:
        call_id = row["call_id"]
        assert row["max_sequence"] == 20
        assert 20 - row["packets_received"] == expected_missing[call_id], call_id
        assert row["packets_duplicate"] == expected_duplicates[call_id], call_id
    await assert_counters_match_packets(db)
    listed = await client.get("/v1/calls", params={"limit": 500}, headers=SUPERVISOR)
    missing_by_api = {c["call_id"]: c["packets"]["missing"] for c in listed.json()["items"]}
    assert missing_by_api == expected_missing


async def test_overload_is_shed_with_503_and_nothing_acknowledged_is_lost(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with running_app(settings.model_copy(update={"ingest_queue_limit": 4})) as client:
        responses = await asyncio.gather(*(post_packet(client, "flood", s) for s in range(1, 301)))
    by_status: dict[int, set[int]] = {}
    for sequence, response in enumerate(responses, start=1):
        by_status.setdefault(response.status_code, set()).add(sequence)
    assert set(by_status) == {202, 503}
    shed = responses[min(by_status[503]) - 1]
    assert shed.json()["code"] == "ingest_overloaded"
    assert shed.headers["retry-after"] == "1"
    stored = {r["sequence"] for r in await db.fetch("SELECT sequence FROM packets")}
    assert stored == by_status[202]


async def _hold_call_lock(db: asyncpg.Connection, call_id: str) -> asyncpg.transaction.Transaction:
    transaction = db.transaction()
    await transaction.start()
    await db.execute("SELECT 1 FROM calls WHERE call_id = $1 FOR UPDATE", call_id)
    return transaction


async def _until_waiting_on_a_lock(db_url: str, sessions: int = 1) -> None:
    """Wait until `sessions` sessions of this database are blocked on a lock."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        for _ in range(100):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if waiting >= sessions:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("no batch ever waited on the call lock")
    finally:
        await conn.close()


@pytest.mark.parametrize(("second_data", "expected"), [(None, {202}), (b"other", {202, 409})])
async def test_twins_waiting_on_the_same_call_are_compared_byte_for_byte(
    client: httpx.AsyncClient,
    replica_b: httpx.AsyncClient,
    db: asyncpg.Connection,
    db_url: str,
    second_data: bytes | None,
    expected: set[int],
) -> None:
    """Two replicas' batches with the same sequence both wait on the call's lock; the second
    must see the first one's committed packet and tell a duplicate from a conflict."""
    await post_packet(client, "twins", 1)
    lock = await _hold_call_lock(db, "twins")
    first = asyncio.create_task(post_packet(client, "twins", 7))
    second = asyncio.create_task(post_packet(replica_b, "twins", 7, data=second_data))
    await _until_waiting_on_a_lock(db_url, sessions=2)
    await lock.commit()
    responses = [await first, await second]
    assert {r.status_code for r in responses} == expected
    assert await db.fetchval("SELECT count(*) FROM packets WHERE sequence = 7") == 1
    duplicates = await db.fetchval(
        "SELECT packets_duplicate FROM call_tracks WHERE call_id = 'twins'"
    )
    assert duplicates == (1 if second_data is None else 0)
    await assert_counters_match_packets(db)


async def test_packet_of_a_call_completed_while_its_batch_waited_is_refused(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection, db_url: str
) -> None:
    """A batch waits (on another call's lock) while another replica completes call `fresh`;
    its packet for `fresh` must be refused, not stored into the completed call."""
    await post_packet(client, "busy", 1)
    await post_packet(client, "fresh", 5)
    lock = await _hold_call_lock(db, "busy")
    async with own_committer(db_url, settings, batch_max=10, queue_limit=10, flushing=False) as (
        committer,
        start_flushing,
    ):
        now = time.time()
        busy = asyncio.create_task(
            committer.submit("busy", Packet(Track.inbound, 2, audio(2), 1.0, now), path=HTTP)
        )
        fresh = asyncio.create_task(
            committer.submit("fresh", Packet(Track.inbound, 1, audio(1), 1.0, now), path=HTTP)
        )
        await asyncio.sleep(0)  # both queued before the flusher starts: one batch
        start_flushing()
        await _until_waiting_on_a_lock(db_url)
        assert (await client.post("/v1/calls/fresh/complete", headers=INGEST)).status_code == 200
        await lock.commit()
        assert (await busy).status is PacketStatus.accepted
        with pytest.raises(CallNotAcceptingPackets):
            await fresh
    stored = await db.fetch("SELECT sequence FROM packets WHERE call_id = 'fresh'")
    assert [r["sequence"] for r in stored] == [5]
    await assert_counters_match_packets(db)


async def test_a_call_created_by_a_waiting_batch_is_not_seen_half_made(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection, db_url: str
) -> None:
    """A batch creates call `newborn`, then waits on another call's lock. The same packet for
    `newborn` arriving on another replica waits for that batch instead of racing it: one copy
    is accepted, the other is a duplicate, and the counters say so."""
    await post_packet(client, "busy", 1)
    lock = await _hold_call_lock(db, "busy")
    batched = asyncio.gather(post_packet(client, "busy", 2), post_packet(client, "newborn", 1))
    await _until_waiting_on_a_lock(db_url)
    other = asyncio.create_task(post_packet(replica_b, "newborn", 1))
    await _until_waiting_on_a_lock(db_url, sessions=2)
    await lock.commit()
    busy, first = await batched
    second = await other
    assert [busy.status_code, first.status_code, second.status_code] == [202, 202, 202]
    assert [first.json()["status"], second.json()["status"]] == ["accepted", "duplicate"]
    assert await db.fetchval("SELECT count(*) FROM call_events WHERE call_id = 'newborn'") == 1
    await assert_counters_match_packets(db)


async def test_same_first_packet_of_a_new_call_on_two_replicas_is_stored_once(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for round_ in range(20):
        call_id = f"resent-{round_}"
        responses = await asyncio.gather(
            post_packet(client, call_id, 1),
            post_packet(replica_b, call_id, 1),
            post_packet(replica_b, f"other-{round_}", 1),
        )
        assert [r.status_code for r in responses] == [202, 202, 202]
        assert sorted(r.json()["status"] for r in responses[:2]) == ["accepted", "duplicate"]
    assert await db.fetchval("SELECT count(*) FROM packets WHERE call_id LIKE 'resent-%'") == 20
    duplicates = await db.fetchval(
        "SELECT sum(packets_duplicate) FROM call_tracks WHERE call_id LIKE 'resent-%'"
    )
    assert duplicates == 20
    await assert_counters_match_packets(db)


async def test_late_flags_agree_with_the_late_counter_at_call_start(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    late_acks = 0
    for round_ in range(20):
        call_id = f"start-{round_}"
        high, low = await asyncio.gather(
            post_packet(client, call_id, 5), post_packet(replica_b, call_id, 3)
        )
        late_acks += sum(not r.json()["in_order"] for r in (high, low))
    assert await db.fetchval("SELECT sum(packets_late) FROM call_tracks") == late_acks
