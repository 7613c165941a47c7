"""A real server on a real port (WebSockets need one) and supervisor feed clients for tests."""

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.app import create_app
from callscope.settings import Settings
from tests.factories import SUPERVISOR_TOKEN

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Served:
    app: FastAPI
    http: str  # http://127.0.0.1:port
    ws: str  # ws://127.0.0.1:port


@asynccontextmanager
async def served(settings: Settings, *, send_buffer: int | None = None) -> AsyncIterator[Served]:
    """The app under uvicorn in this event loop, from when it listens for live events until
    the block ends. `send_buffer` shrinks the kernel's send buffer of every connection (they
    inherit it from the listening socket), so a client that stops reading backs up quickly."""
    app = create_app(settings)
    # Named TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # protocol says TCP, and a default socket() says 0: every answer then waited ~40 ms for
    # the client's delayed ACK.
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    # Idle keep-alive connections stay open: a test client may pause between its phases.
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=60)
    config.load()
    server = uvicorn.Server(config)
    # `startup` and `shutdown` without `serve`'s main loop, which looks for `should_exit`
    # only every 0.1 s: a tenth of a second less for each of the many tests that serve.
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[listening])
    if not server.started:
        listening.close()
        raise RuntimeError("the test server did not start; its log says why")
    await server.on_tick(0)  # the loop's first tick: the default headers (date, server)
    try:
        for _ in range(1000):  # 10 s
            if app.state.process.hub.listener_connections:
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("the test server's live listener did not connect within 10 s")
        yield Served(app=app, http=f"http://127.0.0.1:{port}", ws=f"ws://127.0.0.1:{port}")
    finally:
        await asyncio.wait_for(server.shutdown(sockets=[listening]), timeout=30)


def feed_url(ws_base: str, token: str | None = SUPERVISOR_TOKEN, **params: str | int) -> str:
    query = {"token": token, **params} if token is not None else params
    encoded = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{ws_base}/ws/supervisor" + (f"?{encoded}" if encoded else "")


class FeedClient:
    """A supervisor connection that reads every message as it comes, in the background (a
    client that stops reading is a slow client, which the feed resyncs)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()

    async def read_forever(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.connection:
                self.messages.append(json.loads(raw))
                self._arrived.set()

    async def read_until(self, done: Callable[[list[Message]], bool], within: float) -> None:
        deadline = time.monotonic() + within
        while not done(self.messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                types = Counter(m["type"] for m in self.messages)
                raise AssertionError(f"feed condition not met within {within} s; got {types}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def events(self, *types: str) -> list[Message]:
        return [m for m in self.messages if not types or m["type"] in types]


@asynccontextmanager
async def feed(url: str, **options: Any) -> AsyncIterator[FeedClient]:
    async with connect(url, **options) as connection:
        client = FeedClient(connection)
        reader = asyncio.create_task(client.read_forever())
        try:
            yield client
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def has_type(kind: str, call_id: str | None = None, **data: Any) -> Callable[[list[Message]], bool]:
    """A `read_until` condition: some message of this type (for this call, with this data)."""

    def matches(message: Message) -> bool:
        if message["type"] != kind or (call_id is not None and message["call_id"] != call_id):
            return False
        return all(message["data"].get(key) == value for key, value in data.items())

    return lambda messages: any(matches(m) for m in messages)


def latest_progress(messages: list[Message]) -> dict[str, int]:
    """Each call's packets received, as the last `call.progress` naming it said."""
    latest: dict[str, int] = {}
    for message in messages:
        if message["type"] == "call.progress":
            for entry in message["data"]["calls"]:
                latest[entry["call_id"]] = entry["packets"]["received"]
    return latest
