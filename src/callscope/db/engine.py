"""Engines: SQLAlchemy for reads and state changes, a raw asyncpg pool for the ingest path."""

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from callscope.settings import asyncpg_dsn, sqlalchemy_url


def create_engine(url: str, *, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_ingest_pool(url: str, *, size: int, command_timeout: float = 10.0) -> asyncpg.Pool:
    """One connection per group-commit flusher; asyncpg caches the prepared batch statements.

    Connections open on first use, so the process starts (and reports not ready) while the
    database is down. A batch stuck longer than `command_timeout` (a lock held elsewhere) fails
    with 503 instead of blocking its flusher for good.
    """
    return await asyncpg.create_pool(
        asyncpg_dsn(url), min_size=0, max_size=size, command_timeout=command_timeout
    )
