"""The SQL of the ingest path: a whole batch of packets in one transaction of three
statements (four when the batch starts new calls; a large batch first asks for a plan of
its own, see `CUSTOM_PLAN_FROM`)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg
import msgspec

from callscope.audio.formats import AudioEncoding, AudioFormat
from callscope.calls.states import CallState
from callscope.calls.vocabulary import EventType
from callscope.db.channels import PROGRESS_CHANNEL
from callscope.ingest.packets import Packet, PacketVerdict

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

# Statement 1: create the calls not seen before ($4: IN_PROGRESS, with the server's default
# audio format), in call_id order; returns the calls it created. For calls that exist it only
# looks them up in the primary key: no row is rewritten. A call none of whose packets ($5
# sequences) is within the bound ($6) of 0 is not created: they are all refused.
_CREATE_CALLS: Final = """
INSERT INTO calls (call_id, state, encoding, sample_rate)
SELECT DISTINCT call_id, $4::text, $2::text, $3::int
FROM unnest($1::text[], $5::int8[]) AS t(call_id, sequence)
WHERE sequence <= $6::int8
ORDER BY call_id
ON CONFLICT (call_id) DO NOTHING
RETURNING call_id
"""

# Statement 2: lock every call of the batch (in call_id order, so concurrent batches never
# deadlock), with a snapshot that sees calls other transactions created meanwhile. A row lock
# writes no new row version: under thousands of batches a second, the call rows stay small.
_LOCK_CALLS: Final = """
SELECT call_id FROM calls WHERE call_id = ANY($1::text[]) ORDER BY call_id FOR UPDATE
"""

# Statement 3 runs with a snapshot taken after statement 2 holds every lock, and every writer
# of packets or counters holds its call's lock, so everything it reads about these calls and
# their tracks is current, and nothing it inserts can collide. Each (call, track) has its own
# sequences and counters. The packets flow through one chain of window functions, never a
# join between two intermediate results: the planner cannot know how many rows those hold,
# and guessing one row, it would compare every packet with every other one (quadratic in the
# batch).
#   marked      every packet with its call's state, its track's counters before the batch,
#               the stored packet of the same sequence (an index probe), and whether it is
#               `open` (its call IN_PROGRESS, its size whole samples of the call's format;
#               never for a call statement 1 left uncreated: its packets are out of range);
#   reached,    whether it is `in_range`: at most the bound ($16) ahead of `reach_base`, the
#   ranged      highest sequence its track had (0 for a new track) or, if higher, that of an
#               earlier open packet of this batch within the bound of it. (Exact whenever a
#               batch does not climb more than twice the bound; beyond that it refuses, never
#               accepts, too much);
#   verdicts    out_of_range, accepted (open, in range, the batch's first such copy of its
#               sequence, not stored), duplicate (the same bytes as the stored copy or the
#               batch's first copy), conflict (other bytes), misfit or closed, and the highest
#               sequence its track had before it: the prior maximum, then the earlier open
#               packets in range of this batch (those not accepted repeat a sequence already
#               counted, so they do not change the maximum);
#   inserted    the accepted packets;
#   counted     each track's counters raised once by its deltas, and its `last_packet_at`
#               (what the idle sweeper reads); the row is created by the track's first packet;
#   progress    one NOTIFY on `callscope_progress` naming the counted calls (space-separated;
#               when they would not fit the 8,000-byte payload limit, `*` and this
#               transaction's start, from which on `last_packet_at` finds them), delivered at
#               commit: the live feed's packet progress costs no event rows.
# The final SELECT gives each packet its verdict and its track's counters after the batch
# (before, plus the batch's accepted packets), and the highest sequence before it (for a
# packet out of range, the one it was measured against); it counts `progress` only so that
# PostgreSQL evaluates it. Names of states, encodings and verdicts are parameters ($7…$15,
# see `_WRITE_PARAMETERS`), so the enums stay their only spelling.
_WRITE_PACKETS: Final = """
WITH input AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::int8[], $4::bytea[], $5::float8[], $6::float8[]
    ) WITH ORDINALITY AS i(call_id, track, sequence, data, sent_at, received_at, idx)
),
marked AS (
    SELECT i.*, coalesce(c.state, $7::text) AS state, t.packets_received AS prior_received,
           t.has_sequence_zero AS prior_zero, t.max_sequence AS prior_max, t.final_sequence,
           coalesce(
               c.state = $7::text AND (c.encoding <> $8::text OR length(i.data) % 2 = 0), false
           ) AS open,
           coalesce(t.max_sequence, 0) + $16::int8 AS first_reach,
           p.data AS stored_data
    FROM input AS i
    LEFT JOIN calls AS c ON c.call_id = i.call_id
    LEFT JOIN call_tracks AS t ON t.call_id = i.call_id AND t.track = i.track
    LEFT JOIN packets AS p
        ON p.call_id = i.call_id AND p.track = i.track AND p.sequence = i.sequence
),
reached AS (
    SELECT m.*,
           GREATEST(
               coalesce(m.prior_max, 0),
               max(m.sequence) FILTER (WHERE m.open AND m.sequence <= m.first_reach) OVER earlier
           ) AS reach_base
    FROM marked AS m
    WINDOW earlier AS (
        PARTITION BY m.call_id, m.track ORDER BY m.idx
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    )
),
ranged AS (
    SELECT r.*, r.sequence - r.reach_base <= $16::int8 AS in_range FROM reached AS r
),
verdicts AS (
    SELECT r.*,
           CASE
               WHEN NOT r.in_range THEN $15::text
               WHEN NOT r.open THEN CASE WHEN r.state = $7::text THEN $12::text ELSE $13::text END
               WHEN r.stored_data IS NULL AND row_number() OVER same_sequence = 1 THEN $9::text
               WHEN coalesce(r.stored_data, first_value(r.data) OVER same_sequence) = r.data
                   THEN $10::text
               ELSE $11::text
           END AS outcome,
           GREATEST(r.prior_max, max(r.sequence) FILTER (WHERE r.open AND r.in_range) OVER earlier)
               AS highest_before
    FROM ranged AS r
    WINDOW same_sequence AS (
               PARTITION BY r.call_id, r.track, r.sequence, r.in_range ORDER BY r.idx
           ),
           earlier AS (
               PARTITION BY r.call_id, r.track ORDER BY r.idx
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           )
),
inserted AS (
    INSERT INTO packets (call_id, track, sequence, data, sent_at, received_at)
    SELECT call_id, track, sequence, data, sent_at, to_timestamp(received_at) FROM verdicts
    WHERE outcome = $9::text
),
deltas AS (
    SELECT call_id, track,
           count(*) FILTER (WHERE outcome = $9::text) AS received,
           count(*) FILTER (WHERE outcome = $10::text) AS duplicates,
           count(*) FILTER (WHERE outcome = $9::text AND sequence < highest_before) AS late,
           coalesce(sum(length(data)) FILTER (WHERE outcome = $9::text), 0) AS bytes,
           max(sequence) FILTER (WHERE outcome = $9::text) AS max_sequence,
           coalesce(bool_or(sequence = 0) FILTER (WHERE outcome = $9::text), false) AS has_zero
    FROM verdicts
    GROUP BY call_id, track
    HAVING count(*) FILTER (WHERE outcome IN ($9::text, $10::text)) > 0
),
counted AS (
    INSERT INTO call_tracks AS t (
        call_id, track, packets_received, packets_duplicate, packets_late, bytes_received,
        max_sequence, has_sequence_zero, last_packet_at
    )
    SELECT call_id, track, received, duplicates, late, bytes, max_sequence, has_zero, now()
    FROM deltas
    ORDER BY call_id, track
    ON CONFLICT (call_id, track) DO UPDATE SET
        packets_received = t.packets_received + excluded.packets_received,
        packets_duplicate = t.packets_duplicate + excluded.packets_duplicate,
        packets_late = t.packets_late + excluded.packets_late,
        bytes_received = t.bytes_received + excluded.bytes_received,
        max_sequence = GREATEST(t.max_sequence, excluded.max_sequence),
        has_sequence_zero = t.has_sequence_zero OR excluded.has_sequence_zero,
        last_packet_at = excluded.last_packet_at
    RETURNING t.call_id
),
progress AS (
    SELECT pg_notify(
        $14::text,
        CASE WHEN octet_length(ids) <= 7900 THEN ids ELSE '*' || extract(epoch FROM now()) END
    )
    FROM (SELECT string_agg(DISTINCT call_id, ' ') AS ids FROM counted) AS named
    WHERE ids IS NOT NULL
)
SELECT v.outcome, v.state,
       CASE WHEN v.in_range THEN v.highest_before ELSE v.reach_base END AS highest_before,
       coalesce(v.prior_received, 0) + count(*) FILTER (WHERE v.outcome = $9::text) OVER track
           AS received,
       coalesce(v.prior_zero, false) OR coalesce(
           bool_or(v.sequence = 0) FILTER (WHERE v.outcome = $9::text) OVER track, false
       ) AS has_sequence_zero,
       GREATEST(v.prior_max, max(v.sequence) FILTER (WHERE v.outcome = $9::text) OVER track)
           AS max_sequence,
       v.final_sequence
FROM verdicts AS v
CROSS JOIN (SELECT count(*) FROM progress) AS notified
WINDOW track AS (PARTITION BY v.call_id, v.track)
ORDER BY v.idx
"""


# Statement 4, only when statement 1 created calls: their `call.created` events. It runs last
# because inserting events takes the lock that keeps event ids in commit order (migration
# 0003) until the transaction ends.
_CREATED_EVENTS: Final = """
INSERT INTO call_events (call_id, type, to_state)
SELECT call_id, $2::text, $3::text FROM unnest($1::text[]) AS t(call_id)
"""

# The statements a batch runs, by name: what tests/integration/test_batch_plans.py plans
# generically to check that none of them scans a whole table.
BATCH_STATEMENTS: Final = {
    "create-calls": _CREATE_CALLS,
    "lock-calls": _LOCK_CALLS,
    "write-packets": _WRITE_PACKETS,
    "created-events": _CREATED_EVENTS,
}

# From this many packets a batch has its packets statement planned for it, knowing its arrays'
# sizes; smaller ones use the generic plan the ingest pool's sessions ask for (db/engine.py).
# Measured on PostgreSQL 15, CPU per batch, custom -> generic plan: 1 packet 1.05 -> 0.41 ms,
# 10: 1.24 -> 0.52, 100: 2.5 -> 1.8, 200: 4.4 -> 3.8, 350: 7.2 -> 7.8, 512: 10.3 -> 13.6.
CUSTOM_PLAN_FROM: Final = 256
# Enum members by their text (a dict lookup per row instead of an enum call).
_VERDICTS: Final = {verdict.value: verdict for verdict in PacketVerdict}
_STATES: Final = {state.value: state for state in CallState}

# $7…$15 of `_WRITE_PACKETS`, in order.
_WRITE_PARAMETERS: Final = (
    CallState.IN_PROGRESS.value,
    AudioEncoding.pcm_s16le.value,
    PacketVerdict.accepted.value,
    PacketVerdict.duplicate.value,
    PacketVerdict.conflict.value,
    PacketVerdict.misfit.value,
    PacketVerdict.closed.value,
    PROGRESS_CHANNEL,
    PacketVerdict.out_of_range.value,
)


class PacketRecord(msgspec.Struct, frozen=True, gc=False):
    """What the batch says about one packet, and its track after the batch, in the order the
    packets were given. (A Struct: one is made per packet, see `Packet`.)"""

    verdict: PacketVerdict
    highest_before: int | None
    state: CallState
    received: int
    has_sequence_zero: bool
    max_sequence: int | None
    final_sequence: int | None


async def write_batch(
    conn: "Connection",
    batch: Sequence[tuple[str, Packet]],
    *,
    max_jump: int,
    default_format: AudioFormat,
) -> list[PacketRecord]:
    """All statements in one transaction: all of the batch commits, or none of it. Calls the
    batch creates get `default_format`; a packet may be up to `max_jump` ahead of its track's
    highest sequence."""
    call_ids = [call_id for call_id, _ in batch]
    async with conn.transaction():
        if len(batch) >= CUSTOM_PLAN_FROM:
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        packets = [packet for _, packet in batch]
        sequences = [packet.sequence for packet in packets]
        rows = await conn.fetch(
            _CREATE_CALLS,
            call_ids,
            default_format.encoding.value,
            default_format.sample_rate,
            CallState.IN_PROGRESS.value,
            sequences,
            max_jump,
        )
        created = [row["call_id"] for row in rows]
        await conn.execute(_LOCK_CALLS, call_ids)
        rows = await conn.fetch(
            _WRITE_PACKETS,
            call_ids,
            [packet.track for packet in packets],  # a StrEnum is its text
            sequences,
            [packet.data for packet in packets],
            [packet.sent_at for packet in packets],
            [packet.received_at for packet in packets],
            *_WRITE_PARAMETERS,
            max_jump,
        )
        if created:
            await conn.execute(
                _CREATED_EVENTS, created, EventType.created.value, CallState.IN_PROGRESS.value
            )
    return [
        PacketRecord(
            verdict=_VERDICTS[row["outcome"]],
            highest_before=row["highest_before"],
            state=_STATES[row["state"]],
            received=row["received"],
            has_sequence_zero=row["has_sequence_zero"],
            max_sequence=row["max_sequence"],
            final_sequence=row["final_sequence"],
        )
        for row in rows
    ]
