"""The SQL of the ingest path: a whole batch of packets in one statement (one round trip).

The statement runs in autocommit, so it is its own transaction: all of it commits or none.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg

from callscope.ingest.packets import Packet

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

CLOSED_CALL_RACE_SQLSTATE: Final = "CS409"

# Reading guide:
#   locked     existing calls of the batch, locked in call_id order (no deadlocks between
#              batches), with their latest committed state and counters;
#   firsts     the first occurrence of each (call_id, sequence) among packets of calls that
#              take packets (IN_PROGRESS, or not created yet);
#   inserted   what was really new (ON CONFLICT DO NOTHING);
#   accepted   new packets with the highest sequence their call had before each of them,
#              in arrival order (the prior maximum, then earlier packets of this batch);
#   verdicts   every packet of an open call: accepted, duplicate (same bytes as the stored
#              or the batch's first copy), conflict (other bytes) or unknown (stored by a
#              batch that committed after this statement's snapshot; resolved afterwards);
#   upserted   each call's counters raised by its deltas, creating new calls; a new call that
#              was completed meanwhile aborts the statement (CS409) so the batch is retried.
_WRITE_BATCH: Final = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::float8[], $5::timestamptz[])
        WITH ORDINALITY AS i(call_id, sequence, data, sent_at, received_at, idx)
),
locked AS (
    SELECT call_id, state, packets_received, has_sequence_zero, max_sequence, final_sequence
    FROM calls WHERE call_id = ANY($6::text[]) ORDER BY call_id FOR UPDATE
),
open_input AS (
    SELECT i.*, l.max_sequence AS prior_max
    FROM input AS i LEFT JOIN locked AS l USING (call_id)
    WHERE l.call_id IS NULL OR l.state = 'IN_PROGRESS'
),
firsts AS (
    SELECT DISTINCT ON (call_id, sequence) * FROM open_input ORDER BY call_id, sequence, idx
),
inserted AS (
    INSERT INTO packets (call_id, sequence, data, sent_at, received_at)
    SELECT call_id, sequence, data, sent_at, received_at FROM firsts
    ON CONFLICT (call_id, sequence) DO NOTHING
    RETURNING call_id, sequence
),
accepted AS (
    SELECT f.call_id, f.sequence, f.idx, f.data, length(f.data) AS size,
           GREATEST(f.prior_max, max(f.sequence) OVER earlier) AS highest_before
    FROM firsts AS f JOIN inserted USING (call_id, sequence)
    WINDOW earlier AS (
        PARTITION BY f.call_id ORDER BY f.idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    )
),
verdicts AS (
    SELECT o.idx, o.call_id, o.sequence, a.highest_before, a.size,
           CASE
               WHEN a.idx = o.idx THEN 'accepted'
               WHEN coalesce(a.data, p.data) IS NULL THEN 'unknown'
               WHEN coalesce(a.data, p.data) = o.data THEN 'duplicate'
               ELSE 'conflict'
           END AS outcome
    FROM open_input AS o
    LEFT JOIN accepted AS a USING (call_id, sequence)
    LEFT JOIN packets AS p
        ON a.idx IS NULL AND p.call_id = o.call_id AND p.sequence = o.sequence
),
deltas AS (
    SELECT call_id,
           count(*) FILTER (WHERE outcome = 'accepted') AS received,
           count(*) FILTER (WHERE outcome = 'duplicate') AS duplicates,
           count(*) FILTER (WHERE outcome = 'accepted' AND sequence < highest_before) AS late,
           coalesce(sum(size) FILTER (WHERE outcome = 'accepted'), 0) AS bytes,
           max(sequence) FILTER (WHERE outcome = 'accepted') AS max_sequence,
           coalesce(bool_or(sequence = 0) FILTER (WHERE outcome = 'accepted'), false) AS has_zero
    FROM verdicts
    GROUP BY call_id
    HAVING count(*) FILTER (WHERE outcome IN ('accepted', 'duplicate')) > 0
),
upserted AS (
    INSERT INTO calls AS c (
        call_id, state, packets_received, packets_duplicate, packets_late, bytes_received,
        max_sequence, has_sequence_zero
    )
    SELECT call_id, 'IN_PROGRESS', received, duplicates, late, bytes, max_sequence, has_zero
    FROM deltas ORDER BY call_id
    ON CONFLICT (call_id) DO UPDATE SET
        packets_received = CASE
            WHEN c.state = 'IN_PROGRESS' THEN c.packets_received + excluded.packets_received
            ELSE callscope_reject_closed_call(c.call_id)
        END,
        packets_duplicate = c.packets_duplicate + excluded.packets_duplicate,
        packets_late = c.packets_late + excluded.packets_late,
        bytes_received = c.bytes_received + excluded.bytes_received,
        max_sequence = GREATEST(c.max_sequence, excluded.max_sequence),
        has_sequence_zero = c.has_sequence_zero OR excluded.has_sequence_zero,
        last_packet_at = now(),
        updated_at = now()
    RETURNING c.call_id, c.xmax = 0 AS created, c.packets_received, c.has_sequence_zero,
              c.max_sequence, c.final_sequence
),
created_events AS (
    INSERT INTO call_events (call_id, type, to_state)
    SELECT call_id, 'call.created', 'IN_PROGRESS' FROM upserted WHERE created ORDER BY call_id
)
SELECT i.idx, i.call_id, i.sequence, coalesce(v.outcome, 'closed') AS outcome,
       v.highest_before, coalesce(l.state, 'IN_PROGRESS') AS state, u.created IS TRUE AS created,
       coalesce(u.packets_received, l.packets_received) AS received,
       coalesce(u.has_sequence_zero, l.has_sequence_zero) AS has_sequence_zero,
       coalesce(u.max_sequence, l.max_sequence) AS max_sequence,
       coalesce(u.final_sequence, l.final_sequence) AS final_sequence
FROM input AS i
LEFT JOIN verdicts AS v USING (idx)
LEFT JOIN locked AS l ON l.call_id = i.call_id
LEFT JOIN upserted AS u ON u.call_id = i.call_id
ORDER BY i.idx
"""

_STORED_DATA: Final = """
SELECT k.call_id, k.sequence, p.data
FROM unnest($1::text[], $2::int8[]) AS k(call_id, sequence)
JOIN packets AS p ON p.call_id = k.call_id AND p.sequence = k.sequence
"""

_ADD_DUPLICATES: Final = """
UPDATE calls AS c SET packets_duplicate = c.packets_duplicate + d.count, updated_at = now()
FROM unnest($1::text[], $2::int8[]) AS d(call_id, count)
WHERE c.call_id = d.call_id
"""

PacketKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PacketRow:
    """What the batch statement says about one packet, in the order they were given."""

    call_id: str
    sequence: int
    outcome: str  # accepted | duplicate | conflict | unknown | closed
    highest_before: int | None
    state: str
    created: bool
    received: int
    has_sequence_zero: bool
    max_sequence: int | None
    final_sequence: int | None


async def write_packets(conn: "Connection", batch: Sequence[tuple[str, Packet]]) -> list[PacketRow]:
    rows = await conn.fetch(
        _WRITE_BATCH,
        [call_id for call_id, _ in batch],
        [packet.sequence for _, packet in batch],
        [packet.data for _, packet in batch],
        [packet.sent_at for _, packet in batch],
        [packet.received_at for _, packet in batch],
        sorted({call_id for call_id, _ in batch}),
    )
    return [
        PacketRow(
            call_id=row["call_id"],
            sequence=row["sequence"],
            outcome=row["outcome"],
            highest_before=row["highest_before"],
            state=row["state"],
            created=row["created"],
            received=row["received"],
            has_sequence_zero=row["has_sequence_zero"],
            max_sequence=row["max_sequence"],
            final_sequence=row["final_sequence"],
        )
        for row in rows
    ]


async def stored_data(conn: "Connection", keys: Sequence[PacketKey]) -> dict[PacketKey, bytes]:
    rows = await conn.fetch(_STORED_DATA, [k[0] for k in keys], [k[1] for k in keys])
    return {(row["call_id"], row["sequence"]): row["data"] for row in rows}


async def add_duplicates(conn: "Connection", counts: dict[str, int]) -> None:
    call_ids = sorted(counts)
    await conn.execute(_ADD_DUPLICATES, call_ids, [counts[c] for c in call_ids])
