"""A recording HTTP/1.1 upstream for checking a load balancer's configuration: it answers
every request with its own status and notes what arrived (request line and headers); a
WebSocket handshake to an upstream whose status is 200 gets 101, then every chunk the client
sends comes back as b"echo:"+chunk.
"""

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

_HEAD_END: Final = b"\r\n\r\n"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body_bytes: int


@dataclass
class Upstream:
    port: int
    status: int
    seen: list[Seen] = field(default_factory=list)


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes | None:
    while _HEAD_END not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(_HEAD_END)
    buffer[:] = rest
    return head


def _parse(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, version = request_line.split(" ")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, version, headers


def _handler(upstream: Upstream) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            buffer = bytearray()
            while (head := _read_head(sock, buffer)) is not None:
                method, path, version, headers = _parse(head)
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                del buffer[:length]
                upstream.seen.append(Seen(method, path, version, headers, length))
                if headers.get("upgrade", "").lower() == "websocket" and upstream.status == 200:
                    self._tunnel(sock)
                    return
                body = b"{}"
                sock.sendall(
                    f"HTTP/1.1 {upstream.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

        def _tunnel(self, sock: socket.socket) -> None:
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            while chunk := sock.recv(65536):
                sock.sendall(b"echo:" + chunk)

    return Handler


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def recording_upstream(status: int = 200) -> Iterator[Upstream]:
    """An upstream on a free loopback port, serving until the block ends."""
    upstream = Upstream(port=0, status=status)
    with _Server(("127.0.0.1", 0), _handler(upstream)) as server:
        upstream.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield upstream
        finally:
            server.shutdown()
            thread.join(timeout=5)
