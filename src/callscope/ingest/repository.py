"""Every SQL statement of the ingest path; each takes a whole batch as arrays (one round trip).

All run inside the caller's transaction on a raw asyncpg connection.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from callscope.calls.states import CallState
from callscope.ingest.packets import CallTally

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_CREATE_CALLS = """
WITH created AS (
    INSERT INTO calls (call_id, state)
    SELECT id, 'IN_PROGRESS' FROM unnest($1::text[]) AS t(id) ORDER BY id
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id
)
INSERT INTO call_events (call_id, type, to_state)
SELECT call_id, 'call.created', 'IN_PROGRESS' FROM created ORDER BY call_id
RETURNING call_id
"""

# call_id order: two flushers (or two replicas) touching the same calls cannot deadlock.
_LOCK_CALLS = """
SELECT call_id, state, packets_received, packets_duplicate, packets_late, max_sequence,
       has_sequence_zero, bytes_received, final_sequence
FROM calls WHERE call_id = ANY($1::text[]) ORDER BY call_id FOR UPDATE
"""

_INSERT_PACKETS = """
INSERT INTO packets (call_id, sequence, data, sent_at, received_at)
SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::float8[], $5::timestamptz[])
ON CONFLICT (call_id, sequence) DO NOTHING
RETURNING call_id, sequence
"""

_STORED_DATA = """
SELECT k.call_id, k.sequence, p.data
FROM unnest($1::text[], $2::int8[]) AS k(call_id, sequence)
JOIN packets AS p ON p.call_id = k.call_id AND p.sequence = k.sequence
"""

# Increments and GREATEST: order-independent, correct whatever else commits in between.
_ADD_TO_COUNTERS = """
UPDATE calls AS c SET
    packets_received = c.packets_received + d.received,
    packets_duplicate = c.packets_duplicate + d.duplicates,
    packets_late = c.packets_late + d.late,
    bytes_received = c.bytes_received + d.bytes,
    max_sequence = GREATEST(c.max_sequence, d.max_sequence),
    has_sequence_zero = c.has_sequence_zero OR d.has_zero,
    last_packet_at = now(),
    updated_at = now()
FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::bool[])
    AS d(call_id, received, duplicates, late, bytes, max_sequence, has_zero)
WHERE c.call_id = d.call_id
"""

PacketKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class LockedCall:
    state: CallState
    tally: CallTally


@dataclass(frozen=True, slots=True)
class NewPacket:
    call_id: str
    sequence: int
    data: bytes
    sent_at: float
    received_at: datetime


async def create_missing_calls(conn: "Connection", call_ids: Sequence[str]) -> set[str]:
    """Create the calls that do not exist yet (with their `call.created` event)."""
    rows = await conn.fetch(_CREATE_CALLS, call_ids)
    return {row["call_id"] for row in rows}


async def lock_calls(conn: "Connection", call_ids: Sequence[str]) -> dict[str, LockedCall]:
    rows = await conn.fetch(_LOCK_CALLS, call_ids)
    return {
        row["call_id"]: LockedCall(
            state=CallState(row["state"]),
            tally=CallTally(
                received=row["packets_received"],
                duplicates=row["packets_duplicate"],
                late=row["packets_late"],
                max_sequence=row["max_sequence"],
                has_sequence_zero=row["has_sequence_zero"],
                bytes_received=row["bytes_received"],
                final_sequence=row["final_sequence"],
            ),
        )
        for row in rows
    }


async def insert_packets(conn: "Connection", packets: Sequence[NewPacket]) -> set[PacketKey]:
    """Insert what is not stored yet; return the keys that were actually inserted."""
    rows = await conn.fetch(
        _INSERT_PACKETS,
        [p.call_id for p in packets],
        [p.sequence for p in packets],
        [p.data for p in packets],
        [p.sent_at for p in packets],
        [p.received_at for p in packets],
    )
    return {(row["call_id"], row["sequence"]) for row in rows}


async def stored_data(conn: "Connection", keys: Sequence[PacketKey]) -> dict[PacketKey, bytes]:
    if not keys:
        return {}
    rows = await conn.fetch(_STORED_DATA, [k[0] for k in keys], [k[1] for k in keys])
    return {(row["call_id"], row["sequence"]): row["data"] for row in rows}


async def add_to_counters(
    conn: "Connection", before: dict[str, CallTally], after: dict[str, CallTally]
) -> None:
    """Add the difference between each call's tally before and after the batch.

    Calls whose tally did not change (every packet refused) are left untouched.
    """
    call_ids = sorted(c for c in after if after[c] != before[c])
    if not call_ids:
        return
    await conn.execute(
        _ADD_TO_COUNTERS,
        call_ids,
        [after[c].received - before[c].received for c in call_ids],
        [after[c].duplicates - before[c].duplicates for c in call_ids],
        [after[c].late - before[c].late for c in call_ids],
        [after[c].bytes_received - before[c].bytes_received for c in call_ids],
        [after[c].max_sequence for c in call_ids],
        [after[c].has_sequence_zero for c in call_ids],
    )
