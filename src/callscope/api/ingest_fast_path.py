"""The common case of `POST /v1/call/stream/{call_id}`, served below FastAPI's routing.

FastAPI's per-request machinery (routing, dependency solving, the Request object, the
exception middleware) cost as much as storing the packet did (see `benchmarks/ingest.py`).
This middleware checks the ingest token of every request to the ingest route first (so both
paths refuse an unauthenticated request before looking at its body), then serves a request
itself only when it is the plain, valid case: `Content-Type: application/json`, a
`Content-Length` within the limit, a valid call id and a body that is a valid `PacketIn`.
Everything else — chunked bodies, other media types, any invalid input — goes on to the
FastAPI route in `api/v1/stream.py` (with the body already read replayed to it), so error
answers come from one place and both paths answer alike.
"""

from typing import Final

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callscope.api.raw import replay_body, send_body, send_problem
from callscope.api.v1.stream import store_packet
from callscope.auth.tokens import Role, TokenChecker
from callscope.calls.ids import is_call_id
from callscope.calls.schemas import PacketIn
from callscope.errors import ServiceError
from callscope.ingest.packets import IngestPath
from callscope.metrics import INGEST_PACKETS
from callscope.process import Process

_PREFIX: Final = "/v1/call/stream/"
_JSON_TYPES: Final = (b"application/json", b"application/json; charset=utf-8")
# Answers that refuse the request's input: malformed, too large, not JSON, invalid.
_INVALID_STATUSES: Final = frozenset({400, 413, 415, 422})


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_ingest_post(scope):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        tokens: TokenChecker = state.tokens
        process: Process = state.process
        authorization, content_type, length = _headers(scope)
        try:
            tokens.authorize(authorization, Role.ingest)
        except ServiceError as exc:
            await send_problem(send, exc, scope["path"])
            return
        call_id: str = scope["path"][len(_PREFIX) :]
        plain = (
            content_type in _JSON_TYPES
            and length is not None
            and length <= process.settings.max_body_bytes
            and is_call_id(call_id)
        )
        if not plain:
            await self.app(scope, receive, _counting_invalid(send))
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before its whole body came: nothing to store
        try:
            packet = PacketIn.model_validate_json(body)
        except ValidationError:
            await self.app(scope, replay_body(body, receive), _counting_invalid(send))
            return
        try:
            ack = await store_packet(process, call_id, packet)
        except ServiceError as exc:
            if exc.status in _INVALID_STATUSES:
                INGEST_PACKETS.add(IngestPath.http, "invalid")
            await send_problem(send, exc, scope["path"])
        else:
            await send_body(send, status=202, content_type="application/json", body=ack)


def _counting_invalid(send: Send) -> Send:
    """`send`, counting a refusal of bad input as an `invalid` packet (the route's other
    answers are counted where they are decided: the group committer)."""

    async def counted(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in _INVALID_STATUSES:
            INGEST_PACKETS.add(IngestPath.http, "invalid")
        await send(message)

    return counted


def _is_ingest_post(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    return path.startswith(_PREFIX) and "/" not in path[len(_PREFIX) :]


def _headers(scope: Scope) -> tuple[str | None, bytes | None, int | None]:
    """(Authorization, Content-Type, Content-Length) in one pass over the raw headers."""
    authorization = content_type = length = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.lower()
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return authorization, content_type, length


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (the server has already bounded it by its Content-Length); None when
    the client disconnected before sending all of it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
