"""The packets statement runs on its generic plan for small batches and on a plan of its own
from `CUSTOM_PLAN_FROM` packets on, with the same verdicts either way; no plan of the batch
statements scans a table."""

import json
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from callscope.calls.vocabulary import Track
from callscope.db.engine import create_ingest_pool
from callscope.ingest import repository
from callscope.ingest.packets import Packet, PacketVerdict
from callscope.ingest.repository import CUSTOM_PLAN_FROM, write_batch
from callscope.settings import Settings
from tests.factories import audio
from tests.integration.checks import assert_counters_match_packets

# The packets statement's plans so far in this session (not this query's own, whose text
# holds the pattern too).
_PLANS = """
SELECT generic_plans, custom_plans FROM pg_prepared_statements
WHERE statement LIKE '%WITH input AS%' AND statement NOT LIKE '%pg_prepared_statements%'
"""


def _batch(call_id: str, size: int) -> list[tuple[str, Packet]]:
    """`size` packets of one call: in order, then a gap, a duplicate and a conflict at the
    end."""
    now = time.time()
    packets = [Packet(Track.inbound, n, audio(n), now, now) for n in range(size - 3)]
    packets.append(Packet(Track.inbound, size + 5, audio(size + 5), now, now))  # a gap
    packets.append(Packet(Track.inbound, 1, audio(1), now, now))  # a duplicate
    packets.append(Packet(Track.inbound, 2, audio(99), now, now))  # a conflict
    return [(call_id, packet) for packet in packets]


async def test_large_batches_get_their_own_plan_with_the_same_verdicts(
    db: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    pool = await create_ingest_pool(db_url, size=1)
    try:
        async with pool.acquire() as conn:
            verdicts = {}
            for size in (10, CUSTOM_PLAN_FROM - 1, CUSTOM_PLAN_FROM):
                records = await write_batch(
                    conn,
                    _batch(f"plans-{size}", size),
                    max_jump=settings.max_sequence_jump,
                    default_format=settings.default_audio_format,
                )
                verdicts[size] = [record.verdict for record in records]
            plans = await conn.fetchrow(_PLANS)
            mode = await conn.fetchval("SELECT current_setting('plan_cache_mode')")
            name = await conn.fetchval("SELECT current_setting('application_name')")
    finally:
        await pool.close()

    for size, found in verdicts.items():
        accepted = [PacketVerdict.accepted] * (size - 2)
        assert found == [*accepted, PacketVerdict.duplicate, PacketVerdict.conflict], size
    assert plans is not None
    assert (plans["generic_plans"], plans["custom_plans"]) == (2, 1)
    assert mode == "force_generic_plan"  # the large batch's SET LOCAL ended with it
    assert name == "callscope-ingest"  # in pg_stat_activity
    await assert_counters_match_packets(db)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize(
    "statement",
    repository.BATCH_STATEMENTS.values(),
    ids=repository.BATCH_STATEMENTS.keys(),
)
async def test_the_ingest_sessions_generic_plans_scan_no_table(db_url: str, statement: str) -> None:
    """A generic plan is made once, on whatever the tables held then (here: a few rows),
    and kept while they grow: it must reach rows by key."""
    pool = await create_ingest_pool(db_url, size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"PREPARE batch_statement AS {statement}")
            try:
                arity = await conn.fetchval(
                    "SELECT cardinality(parameter_types) FROM pg_prepared_statements "
                    "WHERE name = 'batch_statement'"
                )
                nulls = ", ".join(["NULL"] * arity)
                explained = await conn.fetchval(
                    f"EXPLAIN (FORMAT JSON) EXECUTE batch_statement({nulls})"
                )
            finally:
                await conn.execute("DEALLOCATE batch_statement")
    finally:
        await pool.close()
    (plan,) = json.loads(explained)
    scans = [
        node.get("Relation Name")
        for node in _nodes(plan["Plan"])
        if node["Node Type"] == "Seq Scan"
    ]
    assert scans == []
