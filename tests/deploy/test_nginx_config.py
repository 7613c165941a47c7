"""deploy/nginx/nginx.conf run by Debian's nginx in front of recording upstreams (only the
upstream address, listen address and temporary paths are swapped for the test's): WebSocket
handshakes pass on the three stream paths and their bytes flow both ways, other requests
reach the upstream on kept-alive HTTP/1.1 connections, a shedding replica's 503 reaches the
client (and takes no replica out), an upgrade a stopping replica answers 503 goes to the next
one, and /metrics is not served through the balancer."""

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final

import httpx
import pytest
from starlette.routing import WebSocketRoute

from callscope.api.v1 import media
from callscope.cluster_nginx import nginx_config
from callscope.realtime import ws
from tests.deploy.tools import DEPLOY, nginx
from tests.deploy.upstream import Upstream, recording_upstream
from tests.e2e.processes import free_port

pytestmark = pytest.mark.e2e

_START_TIMEOUT_S: Final = 10.0
WEBSOCKET_PATHS: Final = ("/ws/supervisor?since=5", "/v1/media/twilio", "/v1/calls/call-1/media")


def _config_for_test(upstream_ports: list[int], port: int, folder: Path) -> str:
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    servers = "".join(f"server 127.0.0.1:{p};\n        " for p in upstream_ports)
    swapped = text.replace("server api:8000;\n        ", servers)
    swapped = swapped.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    swapped = swapped.replace("/tmp/", f"{folder}/")  # noqa: S108 - text of the config
    assert swapped.count(f"{folder}/") == 6, "the pid and temporary paths moved"
    if os.geteuid() == 0:  # workers would otherwise run as nobody, outside the test's folder
        swapped = "user root;\n" + swapped
    return swapped


def _cluster_config(upstream_ports: list[int], port: int, folder: Path) -> str:
    text = nginx_config(
        host="127.0.0.1", port=port, upstreams=upstream_ports, folder=folder,
        error_log=folder / "error.log",
    )  # fmt: skip
    return ("user root;\n" + text) if os.geteuid() == 0 else text


@contextmanager
def running_nginx(
    upstream_ports: list[int], folder: Path, *, cluster: bool = False
) -> Iterator[str]:
    """nginx with the deploy configuration (or `callscope cluster`'s) in front of the given
    upstreams; its base URL."""
    port = free_port()
    config = folder / "nginx.conf"
    make = _cluster_config if cluster else _config_for_test
    config.write_text(make(upstream_ports, port, folder))
    with (folder / "nginx.log").open("wb") as log:
        process = subprocess.Popen(
            [nginx(), "-e", "stderr", "-p", str(folder), "-c", str(config)]
            + ([] if cluster else ["-g", "daemon off;"]),  # the cluster's says it itself
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(port, process, folder / "nginx.log")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nginx exited:\n{log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError(f"nginx did not listen within {_START_TIMEOUT_S} s:\n{log.read_text()}")


def _handshake(base: str, path: str) -> tuple[str, socket.socket]:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: calls.example\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    return head.split(b"\r\n", 1)[0].decode(), sock


@pytest.fixture
def balanced(tmp_path: Path) -> Iterator[tuple[str, Upstream]]:
    with recording_upstream() as upstream, running_nginx([upstream.port], tmp_path) as base:
        yield base, upstream


@pytest.mark.parametrize("path", WEBSOCKET_PATHS)
def test_websocket_upgrades_pass_and_stream_both_ways(
    balanced: tuple[str, Upstream], path: str
) -> None:
    base, upstream = balanced
    status, sock = _handshake(base, path)
    with sock:
        assert status == "HTTP/1.1 101 Switching Protocols"
        sock.sendall(b"frame-1")
        assert sock.recv(64) == b"echo:frame-1"
    [seen] = upstream.seen
    assert seen.path == path
    assert seen.headers["upgrade"] == "websocket"
    assert seen.headers["connection"].lower() == "upgrade"
    assert seen.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert seen.headers["x-forwarded-for"] == "127.0.0.1"


def test_plain_requests_use_kept_alive_http11_upstream_connections(
    balanced: tuple[str, Upstream],
) -> None:
    base, upstream = balanced
    body = "x" * 90_000  # the largest packet: 64 KiB of audio as base64, plus JSON
    with httpx.Client(base_url=base, timeout=5) as client:
        for sequence in range(3):
            answer = client.post(f"/v1/call/stream/c-{sequence}", content=body)
            assert answer.status_code == 200
    assert [s.path for s in upstream.seen] == [f"/v1/call/stream/c-{n}" for n in range(3)]
    for seen in upstream.seen:
        assert seen.version == "HTTP/1.1"
        assert "connection" not in seen.headers  # keep-alive, not nginx's default "close"
        assert "upgrade" not in seen.headers
        assert seen.body_bytes == len(body)
        assert seen.headers["host"] == f"127.0.0.1:{base.rsplit(':', 1)[1]}"


def test_metrics_are_not_served_through_the_balancer(balanced: tuple[str, Upstream]) -> None:
    base, upstream = balanced
    assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404
    assert upstream.seen == []


@pytest.mark.parametrize("cluster", [False, True], ids=["deploy", "callscope cluster"])
def test_load_shedding_reaches_the_client_and_takes_no_replica_out(
    tmp_path: Path, cluster: bool
) -> None:
    """Retried, a 503 counted as the replica failing: with both replicas shedding, nginx took
    both out and answered 502 "no live upstreams" until fail_timeout passed."""
    with ExitStack() as stack:
        shedding = [stack.enter_context(recording_upstream(status=503)) for _ in range(2)]
        ports = [u.port for u in shedding]
        base = stack.enter_context(running_nginx(ports, tmp_path, cluster=cluster))
        with httpx.Client(base_url=base, timeout=5) as client:
            answers = [client.post("/v1/call/stream/c", content="{}") for _ in range(6)]
    assert [a.status_code for a in answers] == [503] * 6
    assert [len(u.seen) for u in shedding] == [3, 3]  # each asked once per request


@pytest.mark.parametrize("cluster", [False, True], ids=["deploy", "callscope cluster"])
@pytest.mark.parametrize("path", WEBSOCKET_PATHS)
def test_an_upgrade_a_stopping_replica_refuses_goes_to_the_next(
    tmp_path: Path, path: str, cluster: bool
) -> None:
    with ExitStack() as stack:
        stopping = stack.enter_context(recording_upstream(status=503))
        healthy = stack.enter_context(recording_upstream())
        ports = [stopping.port, healthy.port]
        base = stack.enter_context(running_nginx(ports, tmp_path, cluster=cluster))
        for _ in range(2):
            status, sock = _handshake(base, path)
            sock.close()
            assert status == "HTTP/1.1 101 Switching Protocols"
    assert len(healthy.seen) == 2
    assert len(stopping.seen) >= 1  # round robin sent one there first


def test_every_stream_path_of_the_app_has_a_websocket_location() -> None:
    """The configuration's WebSocket locations cover the app's WebSocket routes (the routers
    the app mounts without a prefix)."""
    ws_paths = {
        route.path
        for router in (media.router, ws.router)
        for route in router.routes
        if isinstance(route, WebSocketRoute)
    }
    assert ws_paths == {"/ws/supervisor", "/v1/media/twilio", "/v1/calls/{call_id}/media"}
    config = (DEPLOY / "nginx" / "nginx.conf").read_text()
    locations = re.findall(r"location (?:= |~ )?(\S+) \{", config)
    for path in ws_paths:
        concrete = path.replace("{call_id}", "call-1")
        assert any(_matches(location, concrete) for location in locations if location != "/")
    for path in WEBSOCKET_PATHS:
        assert any(_matches(loc, path.split("?")[0]) for loc in locations if loc != "/")


def _matches(location: str, path: str) -> bool:
    if location.startswith("^"):
        return re.match(location, path) is not None
    return path == location or (location.endswith("/") and path.startswith(location))
