"""Probes, OpenAPI, and models agreeing with the migrations."""

import asyncpg
import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from callscope.calls import models  # noqa: F401 - registers the tables
from callscope.db.base import Base
from callscope.settings import Settings, sqlalchemy_url
from tests.factories import (
    INGEST,
    SUPERVISOR,
    make_settings,
    post_packet,
    running_app,
    wait_until_ready,
)


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await wait_until_ready(client)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["tasks"]) == {
        "ingest-flusher-0",
        "ingest-flusher-1",
        "live-listener",
        "live-events",
        "live-progress",
        "idle-sweeper",
        "calls-gauge",
    }


async def test_unreachable_database_is_not_ready_and_ingest_says_503() -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nowhere")
    async with running_app(settings) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["code"] == "not_ready"
        assert ready.json()["checks"]["database"].startswith("unreachable")
        response = await post_packet(client, "c1", 1)
        assert response.status_code == 503
        assert response.json()["code"] == "storage_unavailable"
        assert response.headers["retry-after"] == "1"


async def test_schema_behind_head_is_not_ready(settings: Settings, db: asyncpg.Connection) -> None:
    head = await db.fetchval("SELECT version_num FROM alembic_version")
    await db.execute("UPDATE alembic_version SET version_num = 'older'")
    try:
        async with running_app(settings) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "older" in ready.json()["checks"]["schema"]
    finally:
        await db.execute("UPDATE alembic_version SET version_num = $1", head)


async def test_openapi_documents_every_route_and_field(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {
        "/v1/call/stream/{call_id}",
        "/v1/calls",
        "/v1/calls/{call_id}",
        "/v1/calls/{call_id}/complete",
        "/v1/calls/{call_id}/events",
        "/v1/calls/{call_id}/retry",
        "/healthz",
        "/readyz",
    } <= set(spec["paths"])
    packet = spec["components"]["schemas"]["PacketIn"]
    assert packet["additionalProperties"] is False
    assert all(field.get("description") for field in packet["properties"].values())
    assert packet.get("examples")
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/nothing", headers=INGEST)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """pgqueuer's tables come from its own frozen DDL, not from our models."""
    return not (type_ == "table" and name is not None and name.startswith("pgqueuer"))


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"include_name": _ours})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_the_migrations(db_url: str) -> None:
    engine = create_async_engine(sqlalchemy_url(db_url))
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_reads_with_the_database_down_are_503_problem_json() -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nowhere")
    async with running_app(settings) as client:
        response = await client.get("/v1/calls/c1", headers=SUPERVISOR)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "storage_unavailable"
