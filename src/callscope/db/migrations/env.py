"""Alembic environment: runs migrations over the async engine of the configured URL."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import callscope.calls.models  # noqa: F401 - registers the tables on the metadata
from callscope.db.base import Base

target_metadata = Base.metadata


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate leaves pgqueuer's tables alone: revision 0003 installs them verbatim."""
    return not (type_ == "table" and name is not None and name.startswith("pgqueuer"))


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, include_name=_ours)
    with context.begin_transaction():
        # One migrator at a time, even when several replicas start together.
        context.execute("SELECT pg_advisory_xact_lock(74230001)")
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None  # noqa: S101 - set by callscope.db.migrate
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_run_online())
