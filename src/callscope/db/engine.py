"""Engines: SQLAlchemy for reads and state changes, a raw asyncpg pool for the ingest path."""

from typing import Final

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from callscope.settings import asyncpg_dsn, sqlalchemy_url

INGEST_APPLICATION_NAME: Final = "callscope-ingest"  # the group committer's connections


def create_engine(
    url: str,
    *,
    pool_size: int,
    max_overflow: int | None = None,
    pool_timeout: float = 30.0,
    application_name: str = "callscope",
) -> AsyncEngine:
    """`max_overflow` connections beyond `pool_size` open in bursts (default: as many again);
    a caller waits at most `pool_timeout` seconds for one; `application_name` names them in
    `pg_stat_activity`."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
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
        asyncpg_dsn(url),
        min_size=0,
        max_size=size,
        command_timeout=command_timeout,
        # The batch statements' generic plans, made once: planning the packets statement
        # afresh cost PostgreSQL ~0.65 ms, more than the rest of a batch of ten HTTP packets.
        # Batches of `ingest.repository.CUSTOM_PLAN_FROM` packets and more ask for a plan of
        # their own (`SET LOCAL`), which then costs less than the generic plan's guesses.
        # The statements reach rows by key only, and a plan made once must not scan a table:
        # one made on a new, empty database scanned `packets`, and cost 65 times as much
        # once it held 300,000 rows (PostgreSQL had not analysed it again yet).
        server_settings={
            "application_name": INGEST_APPLICATION_NAME,
            "plan_cache_mode": "force_generic_plan",
            "enable_seqscan": "off",
        },
        # These connections never change their session (no SET, LISTEN, advisory locks or
        # cursors; a large batch's SET LOCAL ends with its transaction): nothing to reset,
        # and a round trip saved on every batch.
        reset=_nothing_to_reset,
    )


async def _nothing_to_reset(_conn: asyncpg.Connection) -> None:
    return
