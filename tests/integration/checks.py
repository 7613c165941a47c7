"""Assertions against what PostgreSQL actually holds."""

import asyncpg


async def assert_counters_match_packets(db: asyncpg.Connection) -> None:
    """Every track's counters equal what its stored packets say."""
    rows = await db.fetch(
        """
        SELECT t.call_id, t.track, t.packets_received, t.bytes_received, t.max_sequence,
               count(p.sequence) AS stored, coalesce(sum(length(p.data)), 0) AS stored_bytes,
               max(p.sequence) AS stored_max
        FROM call_tracks t LEFT JOIN packets p USING (call_id, track)
        GROUP BY t.call_id, t.track
        """
    )
    for row in rows:
        where = (row["call_id"], row["track"])
        assert row["packets_received"] == row["stored"], where
        assert row["bytes_received"] == row["stored_bytes"], where
        assert row["max_sequence"] == row["stored_max"], where
    stray = await db.fetchval(
        "SELECT count(*) FROM packets p WHERE NOT EXISTS "
        "(SELECT 1 FROM call_tracks t WHERE t.call_id = p.call_id AND t.track = p.track)"
    )
    assert stray == 0, "packets of a track without counters"
