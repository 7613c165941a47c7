"""`GET /metrics` on a port of its own (CALLSCOPE_METRICS_PORT for an API process,
CALLSCOPE_WORKER_METRICS_PORT for a worker): a minimal HTTP/1.1 responder on asyncio, one
request per connection, so a scraper can reach a process that serves no API (a worker) or
reach the API's metrics on an internal network only. Same body and token rule as the API's
`/metrics` route."""

import asyncio
import hmac
import json
from typing import Final

import structlog
from pydantic import SecretStr

from callscope import metrics
from callscope.api.problems import problem_body
from callscope.supervision import TaskContext

log = structlog.get_logger(__name__)

_HEAD_LIMIT: Final = 8192
_READ_TIMEOUT_S: Final = 10.0


class MetricsServer:
    def __init__(self, *, host: str, port: int, token: SecretStr | None) -> None:
        self._host = host
        self._port = port
        self._expected = (
            None if token is None else f"Bearer {token.get_secret_value()}".encode("latin-1")
        )

    async def run(self, context: TaskContext) -> None:
        """Serve until the process stops (a supervised task)."""
        server = await asyncio.start_server(self._answer, self._host, self._port)
        log.info("metrics_server_listening", host=self._host, port=self._port)
        context.healthy()
        try:
            await context.stop.wait()
        finally:
            server.close()
            await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            writer.write(self._response(head))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sent no whole request, or left: nothing to answer
        finally:
            writer.close()

    def _response(self, head: bytes) -> bytes:
        if len(head) > _HEAD_LIMIT:
            return _problem(431, "request_header_too_large", "the request head is too large")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if path != "/metrics":
            return _problem(404, "not_found", "only /metrics is served on this port")
        if method != "GET":
            return _problem(405, "method_not_allowed", "GET /metrics", allow="GET")
        if self._expected is not None:
            presented = next(
                (
                    value.strip().encode("latin-1")
                    for name, _, value in (line.partition(":") for line in header_lines)
                    if name.strip().lower() == "authorization"
                ),
                b"",
            )
            if not hmac.compare_digest(presented, self._expected):
                return _problem(
                    401, "not_authenticated", "GET /metrics needs the metrics bearer token"
                )
        return _http(200, metrics.CONTENT_TYPE, metrics.render())


def _problem(status: int, code: str, detail: str, *, allow: str | None = None) -> bytes:
    body = json.dumps(
        problem_body(code=code, status=status, detail=detail, instance="/metrics")
    ).encode()
    extra = f"Allow: {allow}\r\n" if allow else ""
    return _http(status, "application/problem+json", body, extra)


def _http(status: int, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + body


_REASONS: Final = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}
