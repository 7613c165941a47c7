"""Fixtures: one migrated PostgreSQL database per test session, emptied before each test."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from callscope.db.admin import drop_database, ensure_database
from callscope.settings import Settings, asyncpg_dsn
from tests.database import admin_url, database_url, fresh_database_name
from tests.factories import make_settings, running_app


def _migrate_with_cli(url: str) -> None:
    """Migrate through the real command, so `callscope migrate` is exercised every run."""
    env = {**os.environ, "CALLSCOPE_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "callscope", "migrate"], env=env, check=True)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    configured = os.environ.get("CALLSCOPE_TEST_DATABASE_URL")
    if configured:
        _migrate_with_cli(configured)
        yield configured
        return
    with admin_url() as admin:
        name = fresh_database_name()
        asyncio.run(ensure_database(admin, name))
        url = database_url(admin, name)
        _migrate_with_cli(url)
        try:
            yield url
        finally:
            asyncio.run(drop_database(admin, name))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for checking what the service stored; tables start empty."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    await conn.execute(
        "TRUNCATE calls, packets, call_events, ai_attempts, transcripts, sentiments, "
        "pgqueuer, pgqueuer_log RESTART IDENTITY CASCADE"
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def settings(db_url: str, db: asyncpg.Connection) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as client:
        yield client


@pytest.fixture
async def replica_b(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app instance on the same database, with its own batcher and pools."""
    async with running_app(settings) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail on errors asyncio only logs (a never-retrieved task or future exception)."""
    yield
    errors = [r for r in caplog.get_records("call") if r.name == "asyncio" and r.levelno >= 40]
    assert errors == [], [r.getMessage() for r in errors]
