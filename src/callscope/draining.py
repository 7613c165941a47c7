"""Graceful drain of an API process on SIGTERM, before uvicorn's own shutdown:

1. `/readyz` answers 503 `draining` at once, while every request is still served for
   CALLSCOPE_DRAIN_SECONDS, so load balancers take the replica out first;
2. then every open WebSocket is closed with 1001 (going away): a media stream stops being
   read, then closes once each frame it had sent is committed (a native stream gets its
   final acks first), a supervisor feed at once; a new WebSocket is refused with 1001;
3. then uvicorn stops accepting, finishes the requests in flight, and the process's shutdown
   flushes ingestion and stops its tasks (`process.open_process`).
"""

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import structlog

log = structlog.get_logger(__name__)

Closer = Callable[[], Awaitable[None]]
GOING_AWAY_REASON: Final = "the server is shutting down; reconnect"


class OpenSockets:
    """The WebSockets a process has open, each with how to close it for a shutdown."""

    def __init__(self) -> None:
        self._closers: dict[int, Closer] = {}
        self._ids = itertools.count()
        self._closing = False

    def closing(self) -> bool:
        """True from `close_all` on: new sockets are refused. A method, not an attribute: it
        may turn True across any await, and a checker must not take it as still False."""
        return self._closing

    def __len__(self) -> int:
        return len(self._closers)

    @contextlib.contextmanager
    def registered(self, close: Closer) -> Iterator[None]:
        key = next(self._ids)
        self._closers[key] = close
        try:
            yield
        finally:
            self._closers.pop(key, None)

    async def close_all(self) -> None:
        """Close every socket (each its own way, side by side); from now on new ones are
        refused (`closing()`)."""
        self._closing = True
        closers = list(self._closers.values())
        results = await asyncio.gather(*(close() for close in closers), return_exceptions=True)
        for failure in (r for r in results if isinstance(r, BaseException)):
            log.warning("socket_not_closed_cleanly", error=repr(failure))


async def drain(*, mark_draining: Callable[[], None], seconds: float, sockets: OpenSockets) -> None:
    """Steps 1 and 2 above; uvicorn's shutdown is step 3."""
    mark_draining()
    log.info("drain_started", drain_seconds=seconds, sockets=len(sockets))
    await asyncio.sleep(seconds)
    log.info("drain_closing_sockets", sockets=len(sockets))
    await sockets.close_all()
