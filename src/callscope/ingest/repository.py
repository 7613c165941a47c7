"""The SQL of the ingest path: a whole batch of packets in one transaction of two statements
(three when the batch starts new calls)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg

from callscope.audio.formats import AudioFormat
from callscope.ingest.packets import Packet

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

# Statement 1: create the calls not seen before and lock every call of the batch, in call_id
# order, so concurrent batches never deadlock. The no-op DO UPDATE is what takes the row lock
# on calls that already exist. New calls get the server's default audio format. Returns the
# calls it created.
_LOCK_CALLS: Final = """
WITH locked AS (
    INSERT INTO calls AS c (call_id, state, encoding, sample_rate)
    SELECT DISTINCT call_id, 'IN_PROGRESS', $2::text, $3::int FROM unnest($1::text[]) AS t(call_id)
    ORDER BY call_id
    ON CONFLICT (call_id) DO UPDATE SET call_id = c.call_id
    RETURNING c.call_id, c.xmax = 0 AS created
)
SELECT call_id FROM locked WHERE created ORDER BY call_id
"""

# Statement 2 runs with a snapshot taken after statement 1 holds every lock, and every writer
# of packets holds its call's lock, so everything it reads about these calls is current.
#   open_input  packets of calls still IN_PROGRESS whose size fits the call's audio format
#               (whole 16-bit samples for PCM), with the call's highest sequence so far;
#   firsts      the first occurrence of each (call_id, sequence) in the batch;
#   inserted    what was really new (ON CONFLICT DO NOTHING);
#   accepted    new packets with the highest sequence their call had before each of them,
#               in arrival order (the prior maximum, then earlier packets of this batch);
#   verdicts    accepted, duplicate (same bytes as the stored copy or the batch's first copy)
#               or conflict (other bytes);
#   updated     each call's counters raised once by its deltas;
#   progress    one NOTIFY on `callscope_progress` naming the updated calls (space-separated;
#               when they would not fit the 8,000-byte payload limit, `*` and this
#               transaction's start, from which on `last_packet_at` finds them), delivered at
#               commit: the live feed's packet progress costs no event rows. The final SELECT
#               joins its row count only so that PostgreSQL evaluates it.
_WRITE_PACKETS: Final = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::float8[], $5::timestamptz[])
        WITH ORDINALITY AS i(call_id, sequence, data, sent_at, received_at, idx)
),
calls_now AS (
    SELECT call_id, state, packets_received, has_sequence_zero, max_sequence, final_sequence,
           encoding
    FROM calls WHERE call_id IN (SELECT call_id FROM input)
),
open_input AS (
    SELECT i.*, c.max_sequence AS prior_max
    FROM input AS i JOIN calls_now AS c USING (call_id)
    WHERE c.state = 'IN_PROGRESS' AND (c.encoding <> 'pcm_s16le' OR length(i.data) % 2 = 0)
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
updated AS (
    UPDATE calls AS c SET
        packets_received = c.packets_received + d.received,
        packets_duplicate = c.packets_duplicate + d.duplicates,
        packets_late = c.packets_late + d.late,
        bytes_received = c.bytes_received + d.bytes,
        max_sequence = GREATEST(c.max_sequence, d.max_sequence),
        has_sequence_zero = c.has_sequence_zero OR d.has_zero,
        last_packet_at = now(),
        updated_at = now()
    FROM deltas AS d
    WHERE c.call_id = d.call_id
    RETURNING c.call_id, c.packets_received, c.has_sequence_zero, c.max_sequence
),
progress AS (
    SELECT pg_notify(
        'callscope_progress',
        CASE WHEN octet_length(ids) <= 7900 THEN ids ELSE '*' || extract(epoch FROM now()) END
    )
    FROM (SELECT string_agg(call_id, ' ') AS ids FROM updated) AS touched
    WHERE ids IS NOT NULL
)
SELECT i.idx, i.call_id, i.sequence,
       coalesce(v.outcome, CASE WHEN c.state = 'IN_PROGRESS' THEN 'misfit' ELSE 'closed' END)
           AS outcome,
       v.highest_before, c.state,
       coalesce(u.packets_received, c.packets_received) AS received,
       coalesce(u.has_sequence_zero, c.has_sequence_zero) AS has_sequence_zero,
       coalesce(u.max_sequence, c.max_sequence) AS max_sequence,
       c.final_sequence
FROM input AS i
JOIN calls_now AS c USING (call_id)
LEFT JOIN verdicts AS v USING (idx)
LEFT JOIN updated AS u ON u.call_id = i.call_id
CROSS JOIN (SELECT count(*) FROM progress) AS notified
ORDER BY i.idx
"""


# Statement 3, only when statement 1 created calls: their `call.created` events. It runs last
# because inserting events takes the lock that keeps event ids in commit order (migration
# 0003) until the transaction ends.
_CREATED_EVENTS: Final = """
INSERT INTO call_events (call_id, type, to_state)
SELECT call_id, 'call.created', 'IN_PROGRESS' FROM unnest($1::text[]) AS t(call_id)
"""


@dataclass(frozen=True, slots=True)
class PacketVerdict:
    """What the batch says about one packet, in the order the packets were given."""

    call_id: str
    sequence: int
    outcome: str  # accepted | duplicate | conflict | closed | misfit
    highest_before: int | None
    state: str
    received: int
    has_sequence_zero: bool
    max_sequence: int | None
    final_sequence: int | None


async def write_batch(
    conn: "Connection", batch: Sequence[tuple[str, Packet]], *, default_format: AudioFormat
) -> list[PacketVerdict]:
    """All statements in one transaction: all of the batch commits, or none of it. Calls the
    batch creates get `default_format`."""
    call_ids = [call_id for call_id, _ in batch]
    async with conn.transaction():
        rows = await conn.fetch(
            _LOCK_CALLS, call_ids, default_format.encoding, default_format.sample_rate
        )
        created = [row["call_id"] for row in rows]
        rows = await conn.fetch(
            _WRITE_PACKETS,
            call_ids,
            [packet.sequence for _, packet in batch],
            [packet.data for _, packet in batch],
            [packet.sent_at for _, packet in batch],
            [packet.received_at for _, packet in batch],
        )
        if created:
            await conn.execute(_CREATED_EVENTS, created)
    return [
        PacketVerdict(
            call_id=row["call_id"],
            sequence=row["sequence"],
            outcome=row["outcome"],
            highest_before=row["highest_before"],
            state=row["state"],
            received=row["received"],
            has_sequence_zero=row["has_sequence_zero"],
            max_sequence=row["max_sequence"],
            final_sequence=row["final_sequence"],
        )
        for row in rows
    ]
