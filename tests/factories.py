"""Tiny builders for tests: settings, a running app, packet bodies, auth headers."""

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from callscope.app import create_app
from callscope.settings import Settings

INGEST_TOKEN = "test-ingest-token"
SUPERVISOR_TOKEN = "test-supervisor-token"
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
SUPERVISOR = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "ingest_tokens": [SecretStr(INGEST_TOKEN)],
        "supervisor_tokens": [SecretStr(SUPERVISOR_TOKEN)],
        "sweep_interval": 0.1,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, behind an in-process HTTP client."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://callscope", timeout=30
        ) as client,
    ):
        yield client


async def wait_until_ready(client: httpx.AsyncClient, within: float = 10.0) -> httpx.Response:
    """GET /readyz until it answers 200 (background tasks start right after the app)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ready = await client.get("/readyz")
        if ready.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            return ready
        await asyncio.sleep(0.05)


def pcm16(*samples: int) -> bytes:
    """These samples as signed 16-bit little-endian PCM."""
    return struct.pack(f"<{len(samples)}h", *samples)


def audio(sequence: int, size: int = 160) -> bytes:
    """Deterministic audio bytes for a sequence, so duplicates are byte-identical."""
    return bytes((sequence * 7 + i) % 256 for i in range(size))


def packet_body(
    sequence: int, data: bytes | None = None, timestamp: float = 1764340000.0
) -> dict[str, Any]:
    payload = audio(sequence) if data is None else data
    return {
        "sequence": sequence,
        "data": base64.b64encode(payload).decode(),
        "timestamp": timestamp + sequence * 0.02,
    }


async def post_packet(
    client: httpx.AsyncClient, call_id: str, sequence: int, data: bytes | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/call/stream/{call_id}", json=packet_body(sequence, data), headers=INGEST
    )


async def post_raw(
    client: httpx.AsyncClient,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str],
    chunked: bool = False,
) -> httpx.Response:
    """POST `body` as JSON; chunked (no Content-Length) takes the FastAPI route of ingestion,
    a plain body its fast path."""
    if not chunked:
        return await client.post(path, content=body, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    return await client.post(path, content=chunks(), headers=headers)
