"""Hostile and broken requests: each gets its 4xx problem+json and nothing is stored."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR, packet_body, post_packet, post_raw, running_app
from tests.live import served

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


async def test_every_route_documents_and_answers_the_body_refusals(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The body middleware runs before any route: each may answer 413 and 415, and the
    OpenAPI document says so for each."""
    document = (await client.get("/openapi.json")).json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if not {"413", "415"} <= operation["responses"].keys()
    ]
    assert undocumented == []
    retry = await client.post(
        "/v1/calls/c1/retry",
        content=b"please",
        headers={**SUPERVISOR, "content-type": "text/plain"},
    )
    oversized = b"[" + b"0," * settings.max_body_bytes + b"0]"
    listing = await client.request(
        "GET",
        "/v1/calls",
        content=oversized,
        headers={**SUPERVISOR, "content-type": "application/json"},
    )
    assert (retry.status_code, listing.status_code) == (415, 413)
    assert retry.headers["content-type"] == listing.headers["content-type"]
    assert retry.headers["content-type"] == "application/problem+json"


UNREADABLE_BODIES = {
    "not UTF-8": json.dumps(GOOD).encode()[:-1] + b', "\xff": 1}',
    "an integer of 5000 digits": json.dumps({**GOOD, "sequence": 0})
    .encode()
    .replace(b'"sequence": 0', b'"sequence": ' + b"9" * 5000),
    "nested 2000 deep": json.dumps({**GOOD, "sequence": 0})
    .encode()
    .replace(b'"sequence": 0', b'"sequence": ' + b"[" * 2000 + b"]" * 2000),
}


@pytest.mark.parametrize("chunked", [False, True], ids=["fast-path", "fastapi-route"])
@pytest.mark.parametrize("body", UNREADABLE_BODIES.values(), ids=UNREADABLE_BODIES.keys())
async def test_a_body_the_json_parser_gives_up_on_is_malformed(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: bytes, chunked: bool
) -> None:
    response = await post_raw(
        client,
        "/v1/call/stream/c1",
        body,
        headers={**INGEST, "content-type": "application/json"},
        chunked=chunked,
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "malformed_json"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


def _nested(depth: int) -> object:
    """`depth` levels of objects and arrays within each other, the outermost an object (and
    counting 1)."""
    value: object = "leaf"
    for level in range(depth - 1, -1, -1):
        value = [value] if level % 2 else {"level": value}
    return value


UNSTORABLE_METADATA = {
    "NaN": b'{"call_id": "m", "metadata": {"x": NaN}}',
    "Infinity": b'{"call_id": "m", "metadata": {"x": -Infinity}}',
    "1e400": b'{"call_id": "m", "metadata": {"x": 1e400}}',
    "a lone surrogate": b'{"call_id": "m", "metadata": {"x": "\\ud83d"}}',
    "a NUL in a key": b'{"call_id": "m", "metadata": {"a\\u0000b": 1}}',
    "nested 33 deep": json.dumps({"call_id": "m", "metadata": _nested(33)}).encode(),
    "nested 600 deep": json.dumps({"call_id": "m", "metadata": _nested(600)}).encode(),
}


@pytest.mark.parametrize("body", UNSTORABLE_METADATA.values(), ids=UNSTORABLE_METADATA.keys())
async def test_metadata_postgresql_cannot_store_is_invalid(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: bytes
) -> None:
    response = await client.post(
        "/v1/calls", content=body, headers={**INGEST, "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["loc"] == ["body", "metadata"]
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


async def test_metadata_nested_32_deep_is_stored_and_read_back(client: httpx.AsyncClient) -> None:
    declared = {"call_id": "m", "metadata": _nested(32)}
    assert (await client.post("/v1/calls", json=declared, headers=INGEST)).status_code == 201
    read = await client.get("/v1/calls/m", headers=SUPERVISOR)
    assert read.status_code == 200
    assert read.json()["metadata"] == declared["metadata"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/call/stream/c1", "POST"),
        ("DELETE", "/v1/calls", "GET, POST"),
        ("GET", "/v1/calls/c1/complete", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_a_method_not_allowed_says_which_are(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path, headers=INGEST)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == allowed


async def test_a_body_cut_short_by_a_disconnect_is_not_stored(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """The client declared more than it sent, then went away: the server never had the
    request, so nothing of it is stored (what came is valid JSON, but not the body)."""
    sent = json.dumps(GOOD).encode()
    async with served(settings) as server:
        host, port = server.http.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /v1/call/stream/cut HTTP/1.1\r\nHost: callscope\r\n"
            f"Authorization: {INGEST['Authorization']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(sent) + 100}\r\n\r\n"
        )
        writer.write(head.encode() + sent)
        await writer.drain()
        await asyncio.sleep(0.2)  # the server has read what came
        writer.close()
        await writer.wait_closed()
        async with httpx.AsyncClient(base_url=server.http) as client:
            assert (await post_packet(client, "after", 1)).status_code == 202
        await asyncio.sleep(0.3)  # time enough for the cut request to have been stored
    assert await db.fetchval("SELECT array_agg(call_id) FROM calls") == ["after"]
