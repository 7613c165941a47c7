"""Each background loop, made to fail by a real fault in the database: `/readyz` names it
while it fails, the supervisor restarts it with backoff, and readiness comes back with it."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from callscope.app import create_app
from callscope.process import Process, open_process
from callscope.settings import Settings, asyncpg_dsn
from tests.database import database_url
from tests.factories import post_packet, wait_until_ready
from tests.integration.ai_helpers import FAST_AI


@asynccontextmanager
async def _renamed(db: asyncpg.Connection, table: str) -> AsyncIterator[None]:
    """The table is away (as after a botched migration) until the block ends."""
    await db.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        await db.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


@asynccontextmanager
async def _connections_refused(db: asyncpg.Connection, db_url: str) -> AsyncIterator[None]:
    """No new connection to the test database (existing ones stay) until the block ends."""
    name = await db.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(asyncpg_dsn(database_url(db_url, "postgres")))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def _terminate(db: asyncpg.Connection, application_name: str) -> None:
    """Drop the server side of a process's dedicated connection, as a failover would."""
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database()",
        application_name,
    )


async def _until(predicate: Callable[[], Any], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _readyz_names(client: httpx.AsyncClient, task: str) -> Callable[[], Any]:
    async def names() -> bool:
        ready = await client.get("/readyz")
        return ready.status_code == 503 and task in ready.json()["checks"]["tasks"]

    return names


def _ready(client: httpx.AsyncClient) -> Callable[[], Any]:
    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    return ready


def _process(client: httpx.AsyncClient) -> Process:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    process: Process = transport.app.state.process  # type: ignore[attr-defined]  # our FastAPI app
    return process


async def test_a_failing_idle_sweeper_is_named_until_it_recovers(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    assert (await wait_until_ready(client)).status_code == 200
    async with _renamed(db, "calls"):
        await _until(_readyz_names(client, "idle-sweeper"))
    await _until(_ready(client))
    assert _process(client).supervisor.statuses["idle-sweeper"].restarts >= 1


async def test_a_lost_listener_is_named_until_it_connects_again(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str
) -> None:
    assert (await wait_until_ready(client)).status_code == 200
    process = _process(client)
    connections = process.hub.listener_connections
    async with _connections_refused(db, db_url):
        await _terminate(db, "callscope-listener")
        await _until(_readyz_names(client, "live-listener"))
    await _until(_ready(client))
    assert process.hub.listener_connections == connections + 1
    assert process.supervisor.statuses["live-listener"].restarts >= 1


async def test_failing_progress_flushes_are_named_and_their_calls_sent_after_recovery(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    assert (await wait_until_ready(client)).status_code == 200
    process = _process(client)
    subscriber = process.hub.subscribe(call_id=None)
    try:
        async with _renamed(db, "sentiments"):  # the call summaries join it
            assert (await post_packet(client, "counted", 1)).status_code == 202
            await _until(_readyz_names(client, "live-progress"))
        await _until(_ready(client))
        message = await asyncio.wait_for(subscriber.next(), 5)
    finally:
        process.hub.unsubscribe(subscriber)
    assert '"call_id":"counted"' in getattr(message, "text", "")


@pytest.mark.slow  # waits out the re-queue loop's interval and backoff
async def test_a_failing_requeue_loop_is_named_until_it_recovers(
    settings: Settings, db: asyncpg.Connection
) -> None:
    fast = settings.model_copy(update={**FAST_AI, "worker_heartbeat_timeout": 1.0})
    app = create_app(fast, worker=True)  # API and worker in one process, as `callscope run`
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await wait_until_ready(client)).status_code == 200
        async with _renamed(db, "pgqueuer"):
            await _until(_readyz_names(client, "ai-requeue"))
        await _until(_ready(client))
        assert app.state.process.supervisor.statuses["ai-requeue"].restarts >= 1


async def test_a_worker_whose_queue_connection_drops_reconnects(
    settings: Settings, db: asyncpg.Connection, db_url: str
) -> None:
    async with open_process(settings.model_copy(update=FAST_AI), api=False, worker=True) as p:
        await _until(_no_failures(p))
        async with _connections_refused(db, db_url):
            await _terminate(db, "callscope-worker")
            await _until(_failing(p, "ai-worker"))
        await _until(_no_failures(p))
        assert p.supervisor.statuses["ai-worker"].restarts >= 1


def _no_failures(process: Process) -> Callable[[], Any]:
    async def none() -> bool:
        return not process.supervisor.failing()

    return none


def _failing(process: Process, task: str) -> Callable[[], Any]:
    async def failing() -> bool:
        return task in process.supervisor.failing()

    return failing
