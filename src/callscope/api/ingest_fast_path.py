"""The common case of `POST /v1/call/stream/{call_id}`, served below FastAPI's routing.

FastAPI's per-request machinery (routing, dependency solving, the Request object, the
exception middleware) cost as much as storing the packet did (see `benchmarks/ingest.py`).
Requests with `Content-Type: application/json` and a `Content-Length` are answered here with
the same checks in the same order (token, call id, body size, packet, decoded size), the same
models and the same problem+json answers; every other request falls through to the FastAPI
route in `api/v1/stream.py`, which is also what /docs documents.
"""

import re
from typing import Final

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from callscope.api.body_limit import too_large
from callscope.api.problems import invalid_request
from callscope.api.raw import send_body, send_problem
from callscope.api.v1.stream import store_packet
from callscope.auth.tokens import Role
from callscope.calls.schemas import CALL_ID_PATTERN, PacketIn
from callscope.errors import ServiceError
from callscope.resources import Resources

_PREFIX: Final = "/v1/call/stream/"
_CALL_ID: Final = re.compile(CALL_ID_PATTERN)
_JSON_TYPES: Final = (b"application/json", b"application/json; charset=utf-8")


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _plain_json_post(scope)
        if request is None:
            await self.app(scope, receive, send)
            return
        authorization, length = request
        path: str = scope["path"]
        try:
            ack = await self._ingest(scope, receive, authorization, length)
        except ServiceError as exc:
            await send_problem(send, exc, path)
        else:
            await send_body(send, status=202, content_type="application/json", body=ack)

    async def _ingest(
        self, scope: Scope, receive: Receive, authorization: str | None, length: int
    ) -> bytes:
        resources: Resources = scope["app"].state.resources
        resources.tokens.authorize(authorization, Role.ingest)
        call_id: str = scope["path"][len(_PREFIX) :]
        if not _CALL_ID.fullmatch(call_id):
            raise invalid_request(
                [
                    {
                        "loc": ("path", "call_id"),
                        "msg": "invalid call id",
                        "type": "string_pattern_mismatch",
                    }
                ]
            )
        if length > resources.settings.max_body_bytes:
            raise too_large(resources.settings.max_body_bytes)
        body = await _read_body(receive)
        try:
            packet = PacketIn.model_validate_json(body)
        except ValidationError as exc:
            raise invalid_request(exc.errors(), loc_prefix=("body",)) from None
        return await store_packet(resources, call_id, packet)


def _plain_json_post(scope: Scope) -> tuple[str | None, int] | None:
    """(Authorization header, Content-Length) when this path should serve the request."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX) or "/" in path[len(_PREFIX) :]:
        return None
    authorization = content_type = length = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.lower()
        elif name == b"content-length":
            length = value
    if content_type not in _JSON_TYPES or length is None or not length.isdigit():
        return None
    return authorization, int(length)


async def _read_body(receive: Receive) -> bytes:
    """The whole body; the server has already bounded it by its Content-Length."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
