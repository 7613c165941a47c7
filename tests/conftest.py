"""Fixtures: one migrated PostgreSQL database per test session, emptied before each test."""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import upgrade_to_head
from callscope.logging import configure_logging
from callscope.settings import Settings, asyncpg_dsn
from tests.database import admin_url, database_url, fresh_database_name
from tests.factories import make_settings, running_app
from tests.leftovers import marked_session, survivors

_LAYERS = frozenset({"unit", "integration", "e2e"})

# DELETE, not TRUNCATE: the tables are small, and TRUNCATE's new files cost ~85 ms a test.
_EMPTY_TABLES = """
DELETE FROM pgqueuer_log; DELETE FROM pgqueuer; DELETE FROM sentiments; DELETE FROM transcripts;
DELETE FROM ai_attempts; DELETE FROM call_events; DELETE FROM packets; DELETE FROM calls;
ALTER TABLE call_events ALTER COLUMN id RESTART; ALTER TABLE ai_attempts ALTER COLUMN id RESTART;
ALTER SEQUENCE pgqueuer_id_seq RESTART; ALTER SEQUENCE pgqueuer_log_id_seq RESTART;
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its layer, the folder it lives in (`-m unit`, …)."""
    for item in items:
        layer = item.path.relative_to(Path(__file__).parent).parts[0]
        if layer in _LAYERS:
            item.add_marker(layer)


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    """Log as a developer's console does (plain tracebacks, as in production)."""
    configure_logging(level="INFO", json_lines=False)


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Fail the suite if any process a test started (a server, a worker, an embedded
    PostgreSQL) is still alive when the session ends; the survivors are killed."""
    with marked_session() as marker:
        yield
        left = survivors(marker, grace=10)
    assert left == [], f"processes left behind: {left}"


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    configured = os.environ.get("CALLSCOPE_TEST_DATABASE_URL")
    if configured:
        upgrade_to_head(configured)
        yield configured
        return
    with admin_url() as admin:
        name = fresh_database_name()
        asyncio.run(ensure_database(admin, name))
        url = database_url(admin, name)
        upgrade_to_head(url)
        try:
            yield url
        finally:
            asyncio.run(drop_database(admin, name))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for checking what the service stored; tables start empty."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    await conn.execute(_EMPTY_TABLES)
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
