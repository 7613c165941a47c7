"""A pure ASGI middleware for request bodies, before anything parses them: a body must be
JSON (415 otherwise) and within the size limit (413 otherwise)."""

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from callscope.api.raw import replay_body, send_problem
from callscope.errors import PayloadTooLarge, UnsupportedMediaType

_JSON: Final = (b"application/json", b"application/problem+json")


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request bodies are limited to {max_bytes} bytes")


class JsonBodies:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        has_body = declared != b"0" and (
            declared is not None or b"chunked" in headers.get(b"transfer-encoding", b"")
        )
        if has_body and not _is_json(headers.get(b"content-type")):
            error = UnsupportedMediaType("request bodies must be application/json")
            await send_problem(send, error, scope["path"])
            return
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await send_problem(send, too_large(self.max_bytes), scope["path"])
                return
            await self.app(scope, receive, send)  # the server enforces Content-Length
            return
        await self._buffered(scope, receive, send)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without Content-Length (chunked): read it up to the limit, then replay it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_problem(send, too_large(self.max_bytes), scope["path"])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(b"".join(chunks), receive), send)


def _is_json(content_type: bytes | None) -> bool:
    """application/json (any parameters), or a +json type."""
    if content_type is None:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type in _JSON or media_type.endswith(b"+json")
