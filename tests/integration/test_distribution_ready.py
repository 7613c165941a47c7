"""The schema can be distributed by `call_id` (docs/scaling.md): every per-call table's
unique constraints and indexes contain `call_id`, so none spans calls."""

import asyncpg
import pytest

pytestmark = pytest.mark.integration

PER_CALL_TABLES = (
    "calls",
    "call_tracks",
    "packets",
    "call_events",
    "ai_attempts",
    "transcripts",
    "sentiments",
)


async def test_no_unique_index_of_a_per_call_table_spans_calls(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        """
        SELECT t.relname AS table_name, i.relname AS index_name,
               array_agg(a.attname::text) AS columns
        FROM pg_index x
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
        WHERE x.indisunique AND t.relname = ANY($1::text[])
        GROUP BY t.relname, i.relname
        """,
        list(PER_CALL_TABLES),
    )
    assert {row["table_name"] for row in rows} == set(PER_CALL_TABLES)  # each has a key
    spanning = [row["index_name"] for row in rows if "call_id" not in row["columns"]]
    assert spanning == []
