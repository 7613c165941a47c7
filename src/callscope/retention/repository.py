"""Every SQL statement of retention, on a connection whose transaction the caller owns.

Deletes go through indexes only (the packets' primary key, `ix_call_events_created_at`,
pgqueuer's `pgqueuer_log_created`) and lock with SKIP LOCKED: a pruner never waits for
ingestion, the AI worker or another pruner; they wait for it at most one short transaction,
and only when they touch a call it is pruning (a late packet of a finished call).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from callscope.calls.models import AUDIO_PRUNABLE

# The oldest calls whose audio is due, each with the packets its counters say it stored (for a
# call already half pruned an overestimate, which only makes its batch smaller). Reads
# `ix_calls_audio_prunable` in order.
_AUDIO_CANDIDATES: Final = text(f"""
SELECT call_id,
       (SELECT coalesce(sum(t.packets_received), 0) FROM call_tracks AS t
        WHERE t.call_id = calls.call_id)::bigint AS packets
FROM calls
WHERE {AUDIO_PRUNABLE} AND updated_at < :cutoff
ORDER BY updated_at, call_id
LIMIT :limit
""")

# Lock the chosen calls that are still due (a re-drive may have taken one meanwhile). NO KEY
# UPDATE: events and attempts may still be inserted for them (their foreign key checks take
# KEY SHARE); SKIP LOCKED: a call ingestion or another pruner holds is left for later.
_LOCK_CALLS: Final = text(f"""
SELECT call_id FROM calls
WHERE call_id = ANY(CAST(:call_ids AS text[])) AND {AUDIO_PRUNABLE} AND updated_at < :cutoff
ORDER BY call_id
FOR NO KEY UPDATE SKIP LOCKED
""")

# Up to :limit packets of these calls, the first calls' first. Each call's packets are a range
# of the primary key, read in its order (which makes it a plain index scan that stops at the
# LIMIT; a bitmap scan would read the call's whole range every batch).
_DELETE_PACKETS: Final = text("""
WITH doomed AS (
    SELECT p.ctid
    FROM unnest(CAST(:call_ids AS text[])) AS c(call_id)
    CROSS JOIN LATERAL (
        SELECT ctid FROM packets WHERE packets.call_id = c.call_id
        ORDER BY track, sequence LIMIT :limit
    ) AS p
    LIMIT :limit
),
gone AS (
    DELETE FROM packets WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) RETURNING 1
)
SELECT count(*) FROM gone
""")

# After the delete, in the same transaction: a call not marked yet is marked (its audio answers
# 410 from this commit on) and stays pending while packets are left; a pending call with none
# left is done. Returns, per call it changed, whether packets are left.
_RECORD_PRUNED: Final = text("""
UPDATE calls AS c
SET audio_pruned_at = coalesce(c.audio_pruned_at, now()),
    audio_prune_pending = EXISTS (SELECT FROM packets AS p WHERE p.call_id = c.call_id)
WHERE c.call_id = ANY(CAST(:call_ids AS text[]))
  AND (c.audio_pruned_at IS NULL
       OR NOT EXISTS (SELECT FROM packets AS p WHERE p.call_id = c.call_id))
RETURNING c.audio_prune_pending
""")

# The oldest :limit rows written before :cutoff, through the index on the time column.
_DELETE_OLD_ROWS: Final = """
WITH gone AS (
    DELETE FROM {table} WHERE id = ANY(ARRAY(
        SELECT id FROM {table} WHERE {column} < :cutoff
        ORDER BY {column} LIMIT :limit FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) FROM gone
"""
_DELETE_EVENTS: Final = text(_DELETE_OLD_ROWS.format(table="call_events", column="created_at"))
_DELETE_QUEUE_LOG: Final = text(_DELETE_OLD_ROWS.format(table="pgqueuer_log", column="created"))

_COUNT_AUDIO: Final = text(f"""
SELECT count(*) AS calls,
       coalesce(sum((SELECT count(*) FROM packets AS p WHERE p.call_id = calls.call_id)), 0)
           AS packets
FROM calls
WHERE {AUDIO_PRUNABLE} AND updated_at < :cutoff
""")
_COUNT_EVENTS: Final = text("SELECT count(*) FROM call_events WHERE created_at < :cutoff")
_COUNT_QUEUE_LOG: Final = text("SELECT count(*) FROM pgqueuer_log WHERE created < :cutoff")


class RetentionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def now(self) -> datetime:
        """The database's clock: the one that stamped `updated_at` and `created_at`."""
        now: datetime = (await self.conn.execute(text("SELECT now()"))).scalar_one()
        return now

    async def audio_candidates(self, cutoff: datetime, limit: int) -> list[tuple[str, int]]:
        """(call id, packets stored) of the oldest calls due, at most `limit`."""
        rows = await self.conn.execute(_AUDIO_CANDIDATES, {"cutoff": cutoff, "limit": limit})
        return [(call_id, packets) for call_id, packets in rows]

    async def lock_due(self, call_ids: Sequence[str], cutoff: datetime) -> list[str]:
        """Those of `call_ids` still due and not held elsewhere, now locked."""
        rows = await self.conn.execute(_LOCK_CALLS, {"call_ids": list(call_ids), "cutoff": cutoff})
        return list(rows.scalars())

    async def delete_packets(self, call_ids: Sequence[str], limit: int) -> int:
        """Delete up to `limit` packets of these (locked) calls; how many went."""
        rows = await self.conn.execute(
            _DELETE_PACKETS, {"call_ids": list(call_ids), "limit": limit}
        )
        deleted: int = rows.scalar_one()
        return deleted

    async def record_pruned(self, call_ids: Sequence[str]) -> int:
        """Mark these (locked) calls' audio as pruned, pending while packets are left; how
        many of them are done now (no packet left)."""
        rows = await self.conn.execute(_RECORD_PRUNED, {"call_ids": list(call_ids)})
        return sum(1 for (pending,) in rows if not pending)

    async def delete_events(self, cutoff: datetime, limit: int) -> int:
        rows = await self.conn.execute(_DELETE_EVENTS, {"cutoff": cutoff, "limit": limit})
        deleted: int = rows.scalar_one()
        return deleted

    async def delete_queue_log(self, cutoff: datetime, limit: int) -> int:
        rows = await self.conn.execute(_DELETE_QUEUE_LOG, {"cutoff": cutoff, "limit": limit})
        deleted: int = rows.scalar_one()
        return deleted

    async def count_audio(self, cutoff: datetime) -> tuple[int, int]:
        """(calls, packets) a run with this cutoff would drop."""
        row = (await self.conn.execute(_COUNT_AUDIO, {"cutoff": cutoff})).one()
        return int(row.calls), int(row.packets)

    async def count_events(self, cutoff: datetime) -> int:
        count: int = (await self.conn.execute(_COUNT_EVENTS, {"cutoff": cutoff})).scalar_one()
        return count

    async def count_queue_log(self, cutoff: datetime) -> int:
        count: int = (await self.conn.execute(_COUNT_QUEUE_LOG, {"cutoff": cutoff})).scalar_one()
        return count
