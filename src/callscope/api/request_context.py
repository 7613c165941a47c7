"""Every log line of a request carries its `request_id` and, when its path names one, its
`call_id` (bound through structlog's contextvars, so tasks the request starts carry them too).
The request id is the client's `X-Request-ID` when it is a plain token, else a new one, and is
echoed in the response's `X-Request-ID`.

The two are set straight on structlog's own context variables (the ones `bind_contextvars`
sets and `merge_contextvars` reads) and reset when the request ends: structlog's
`bound_contextvars` copies and scans the whole context on each use, which cost as much as the
rest of this middleware together (~3 µs of an ingest request)."""

import re
import secrets
from contextvars import ContextVar
from typing import Final

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callscope.calls.ids import is_call_id

HEADER: Final = "x-request-id"
_HEADER_BYTES: Final = HEADER.encode()
_ACCEPTED_ID: Final = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# /v1/call/stream/{id}, /v1/calls/{id}, /v1/calls/{id}/…
_CALL_PATH: Final = re.compile(r"/v1/(?:call/stream|calls)/([^/]+)")


def _structlog_var(key: str) -> ContextVar[object]:
    """structlog's context variable for `key`, got through its public API: bound once to
    structlog's unset marker (`...`) and reset at once, so no context keeps a value."""
    token = structlog.contextvars.bind_contextvars(**{key: ...})[key]
    token.var.reset(token)
    return token.var


_REQUEST_ID: Final = _structlog_var("request_id")
_CALL_ID: Final = _structlog_var("call_id")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        request_token = _REQUEST_ID.set(request_id)
        call_id = _call_id(scope["path"])
        call_token = None if call_id is None else _CALL_ID.set(call_id)
        try:
            if scope["type"] == "http":
                send = _echoing(send, request_id.encode())
            await self.app(scope, receive, send)
        finally:
            if call_token is not None:
                _CALL_ID.reset(call_token)
            _REQUEST_ID.reset(request_token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _HEADER_BYTES:
            presented: str = value.decode("latin-1")
            if _ACCEPTED_ID.fullmatch(presented):
                return presented
            break
    return secrets.token_hex(8)


def _call_id(path: str) -> str | None:
    match = _CALL_PATH.match(path)
    if match is None:
        return None
    call_id: str = match.group(1)
    return call_id if is_call_id(call_id) else None


def _echoing(send: Send, request_id: bytes) -> Send:
    async def echo(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (_HEADER_BYTES, request_id)]
        await send(message)

    return echo
