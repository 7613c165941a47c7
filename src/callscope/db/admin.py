"""Creating and dropping whole databases (first start, tests, benchmarks)."""

import asyncpg

from callscope.settings import asyncpg_dsn


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` unless it exists, connected to the server's `admin_url` db."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name`, disconnecting whoever is still connected."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
