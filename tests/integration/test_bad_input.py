"""Hostile and broken requests: each gets its 4xx problem+json and nothing is stored."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR, packet_body, post_packet, post_raw, running_app

MAX_PACKET = 1024
GOOD = packet_body(1)


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings.model_copy(update={"max_packet_bytes": MAX_PACKET})) as c:
        yield c


def _with(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def _without(field: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != field}).encode()


BAD_BODIES = {
    "invalid base64": (_with(data="not base64!"), 422, "validation_error"),
    "unpadded base64": (_with(data="AAE"), 422, "validation_error"),
    "non-canonical base64": (_with(data="QR=="), 422, "validation_error"),
    "empty data": (_with(data=""), 422, "validation_error"),
    "oversize data": (
        _with(data=base64.b64encode(bytes(MAX_PACKET + 1)).decode()),
        413,
        "packet_too_large",
    ),
    "negative sequence": (_with(sequence=-1), 422, "validation_error"),
    "string sequence": (_with(sequence="7"), 422, "validation_error"),
    "float sequence": (_with(sequence=7.5), 422, "validation_error"),
    "boolean sequence": (_with(sequence=True), 422, "validation_error"),
    "huge sequence": (_with(sequence=2**64), 422, "validation_error"),
    "NaN timestamp": (_with(timestamp=float("nan")), 422, "validation_error"),
    "infinite timestamp": (_with(timestamp=float("inf")), 422, "validation_error"),
    "string timestamp": (_with(timestamp="now"), 422, "validation_error"),
    "unknown field": (_with(codec="pcmu"), 422, "validation_error"),
    "missing data": (_without("data"), 422, "validation_error"),
    "malformed JSON": (b'{"sequence": 1, "data": ', 400, "malformed_json"),
    "JSON array": (b"[1, 2, 3]", 422, "validation_error"),
    "body over the limit": (b"x" * 10_000, 413, "payload_too_large"),
}


@pytest.mark.parametrize("chunked", [False, True], ids=["fast-path", "fastapi-route"])
@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_bad_packet_is_refused_and_nothing_stored(
    small_client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: bytes,
    status: int,
    code: str,
    chunked: bool,
) -> None:
    response = await post_raw(
        small_client,
        "/v1/call/stream/c1",
        body,
        headers={**INGEST, "content-type": "application/json"},
        chunked=chunked,
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"] == f"/problems/{code}"
    assert "not base64!" not in response.text  # inputs are never echoed back
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
    assert await db.fetchval("SELECT count(*) FROM packets") == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["fast-path", "fastapi-route"])
@pytest.mark.parametrize(
    "call_id", ["has space", "a" * 129, "semi;colon", "caf%C3%A9", "%20", "...", "%2E%2E%2E"]
)
async def test_bad_call_id_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection, call_id: str, chunked: bool
) -> None:
    response = await post_raw(
        client,
        f"/v1/call/stream/{call_id}",
        json.dumps(GOOD).encode(),
        headers={**INGEST, "content-type": "application/json"},
        chunked=chunked,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["loc"] == ["path", "call_id"]
    assert response.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


async def test_call_id_with_a_slash_is_no_route(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/v1/call/stream/slash%2Fin", json=GOOD, headers=INGEST)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


async def test_longest_allowed_call_id_is_accepted(client: httpx.AsyncClient) -> None:
    call_id = "A-z_0.9:" * 16
    assert len(call_id) == 128
    assert (await post_packet(client, call_id, 1)).status_code == 202


@pytest.mark.parametrize("chunked", [False, True], ids=["fast-path", "fastapi-route"])
@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "not_authenticated"),
        ({"Authorization": "Bearer wrong-token"}, 401, "not_authenticated"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401, "not_authenticated"),
        (SUPERVISOR, 403, "forbidden"),
    ],
)
async def test_packet_without_an_ingest_token_is_refused(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    headers: dict[str, str],
    status: int,
    code: str,
    chunked: bool,
) -> None:
    response = await post_raw(
        client,
        "/v1/call/stream/c1",
        json.dumps(GOOD).encode(),
        headers={**headers, "content-type": "application/json"},
        chunked=chunked,
    )
    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["fast-path", "fastapi-route"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/call/stream/c1", b'{"sequence": "one"}'),
        ("/v1/call/stream/c1", b'{"sequence": 1, "data": '),
        ("/v1/call/stream/c1", b"x" * 200_000),
        ("/v1/call/stream/bad%20id", b"{"),
    ],
)
async def test_unauthenticated_request_gets_401_whatever_else_is_wrong(
    client: httpx.AsyncClient, chunked: bool, path: str, body: bytes
) -> None:
    response = await post_raw(
        client, path, body, headers={"content-type": "application/json"}, chunked=chunked
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def test_body_that_is_not_json_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/call/stream/c1",
        content=b"sequence=1",
        headers={**INGEST, "content-type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
