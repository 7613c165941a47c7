"""Assertions against what PostgreSQL actually holds."""

import asyncpg


async def assert_counters_match_packets(db: asyncpg.Connection) -> None:
    """Every call's counters equal what its stored packets say."""
    rows = await db.fetch(
        """
        SELECT c.call_id, c.packets_received, c.bytes_received, c.max_sequence,
               count(p.sequence) AS stored, coalesce(sum(length(p.data)), 0) AS stored_bytes,
               max(p.sequence) AS stored_max
        FROM calls c LEFT JOIN packets p USING (call_id)
        GROUP BY c.call_id
        """
    )
    for row in rows:
        assert row["packets_received"] == row["stored"], row["call_id"]
        assert row["bytes_received"] == row["stored_bytes"], row["call_id"]
        assert row["max_sequence"] == row["stored_max"], row["call_id"]
