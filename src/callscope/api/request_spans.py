"""A server span for each HTTP request when tracing is on (`tracing`), continuing the
caller's W3C `traceparent`. Named by method and route (`POST /v1/call/stream/{call_id}`).

The sampler decides first, from the caller's `traceparent` if it sent one: a request it drops
(99 of 100 at 1 % sampling) costs a scan of the headers and one random draw, and its `send`
is not wrapped; the route, the attributes and the span are built only for a request it
keeps."""

import re
from collections.abc import Iterable
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callscope import tracing

_PROPAGATED: Final = (b"traceparent", b"tracestate")
_CALL_SEGMENT: Final = re.compile(r"^(/v1/(?:call/stream|calls)/)[^/]+")


class RequestSpans:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        parent = tracing.incoming_context(_carrier(scope["headers"]))
        if not tracing.keeps(parent):
            await self.app(scope, receive, send)
            return
        await self._traced(scope, receive, send, parent)

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, parent: otel_context.Context | None
    ) -> None:
        path: str = scope["path"]
        route = _CALL_SEGMENT.sub(r"\1{call_id}", path)
        attributes = {"http.request.method": scope["method"], "url.path": path, "http.route": route}
        with tracing.kept_span(
            f"{scope['method']} {route}", kind=SpanKind.SERVER, parent=parent, attributes=attributes
        ) as span:

            async def noting_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # noqa: PLR2004
                        span.set_status(StatusCode.ERROR)
                await send(message)

            await self.app(scope, receive, noting_status)


def _carrier(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """The `traceparent` and `tracestate` headers; None (nothing built) when neither came."""
    carrier: dict[str, str] | None = None
    for name, value in headers:
        if name in _PROPAGATED:
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return carrier
