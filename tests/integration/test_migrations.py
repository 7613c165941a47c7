"""Migrations run down to nothing and up again on a database of their own."""

import asyncio

import asyncpg
from alembic import command

from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import alembic_config, upgrade_to_head_async
from callscope.settings import asyncpg_dsn
from tests.database import database_url, fresh_database_name


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


async def test_migrations_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    name = fresh_database_name()
    await ensure_database(db_url, name)
    url = database_url(db_url, name)
    try:
        await upgrade_to_head_async(url)
        at_head = await _tables(url)
        assert {"calls", "packets", "call_events", "ai_attempts", "pgqueuer"} <= at_head
        await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
        assert await _tables(url) == set()
        await upgrade_to_head_async(url)
        assert await _tables(url) == at_head
    finally:
        await drop_database(db_url, name)
