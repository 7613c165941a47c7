"""Run an ASGI app under uvicorn with callscope's process settings (one place, so the
benchmark's baseline runs under exactly the same ones), and the signal handling that lets a
stopped process clean up after itself."""

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final

import structlog
import uvicorn
from starlette.types import ASGIApp

from callscope.logging import take_over_server_logs
from callscope.runtime import freeze_startup_objects

log = structlog.get_logger(__name__)

_serving: list[uvicorn.Server] = []  # the server while it runs (at most one per process)
_before_a_forced_exit: list[Callable[[], None]] = []
FORCED_EXIT_CLEANUP_S: Final = 15.0  # the most a forced exit waits for its cleanups
Drain = Callable[[], Awaitable[None]]


def once(cleanup: Callable[[], None]) -> Callable[[], None]:
    """`cleanup`, run by the first caller only, from whichever thread; later callers wait
    for that run to end."""
    lock = threading.Lock()
    done = False

    def run_once() -> None:
        nonlocal done
        with lock:
            if not done:
                done = True
                cleanup()

    return run_once


@contextmanager
def cleaned_up_even_at_a_forced_exit(cleanup: Callable[[], None]) -> Iterator[None]:
    """While the block runs, `cleanup` also runs if the grace period ends the process, which
    skips every `finally` (`exit_at_the_latest`): for what must not outlive the process, such
    as the embedded PostgreSQL `callscope run` started. It then runs on another thread, for
    at most FORCED_EXIT_CLEANUP_S; give the block's own `finally` the same `once` cleanup."""
    _before_a_forced_exit.append(cleanup)
    try:
        yield
    finally:
        _before_a_forced_exit.remove(cleanup)


def _run_forced_exit_cleanups() -> None:
    for cleanup in list(_before_a_forced_exit):
        try:
            cleanup()
        except Exception:  # the exit must happen whatever a cleanup does
            log.exception("forced_exit_cleanup_failed")


def exit_on_signals() -> None:
    """Make SIGINT and SIGTERM raise SystemExit(128 + signal) instead of killing the process,
    so `finally` blocks run (`callscope run` stops the embedded database it started).

    While a server runs, uvicorn handles both signals itself (a graceful shutdown), then
    raises the signal again for whoever handled it before: that one is already dealt with, and
    the process goes on to exit normally."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if any(server.should_exit for server in _serving):
            return  # uvicorn's re-raise after its graceful shutdown
        raise SystemExit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)


class DrainingServer(uvicorn.Server):
    """uvicorn, with a drain before its shutdown: the first SIGTERM (what orchestrators send)
    runs `drain` while the server goes on serving, then shuts down as uvicorn does; SIGINT
    (Ctrl-C) or a second signal shuts down at once. Whatever happens, the process ends `grace`
    seconds after the first signal (it is killed by itself if it has not)."""

    def __init__(self, config: uvicorn.Config, *, drain: Drain | None, grace: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None
        self._signalled = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self._signalled
        self._signalled = True
        if first:
            exit_at_the_latest(self._grace)
        if first and sig == signal.SIGTERM and self._drain is not None and self._loop is not None:
            super().handle_exit(sig, frame)  # noted, so it is raised again after the shutdown
            self.should_exit = False  # not yet: first the drain
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        assert self._drain is not None  # noqa: S101 - only scheduled with a drain
        self._draining = asyncio.create_task(self._drain_then_exit(self._drain))

    async def _drain_then_exit(self, drain: Drain) -> None:
        try:
            await drain()
        except Exception:  # the shutdown must go on
            log.exception("drain_failed")
        self.should_exit = True


def exit_at_the_latest(grace: float) -> None:
    """End the process after `grace` seconds if it has not ended by then."""

    def give_up() -> None:
        log.error("shutdown_grace_exceeded", grace_seconds=grace)
        cleaning = threading.Thread(target=_run_forced_exit_cleanups, daemon=True)
        cleaning.start()
        cleaning.join(FORCED_EXIT_CLEANUP_S)  # a stuck cleanup must not keep the process
        os._exit(1)

    timer = threading.Timer(grace, give_up)
    timer.daemon = True
    timer.start()


def serve(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    drain: Drain | None = None,
    grace: float = 30.0,
    drain_seconds: float = 0.0,
) -> None:
    """Serve until SIGINT/SIGTERM: `drain` first (if given, expected to take about
    `drain_seconds`), then uvicorn's graceful shutdown and the app's lifespan, which closes
    the process; all within `grace` seconds."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level.lower(),
        # What is left of the grace period once drained, less time for the lifespan's end.
        timeout_graceful_shutdown=max(1, int(grace - drain_seconds) // 2),
        # Media frames are small and already compressed (μ-law): inflating each one would
        # cost more CPU than the socket saves.
        ws_per_message_deflate=False,
    )
    take_over_server_logs()  # after uvicorn.Config, which sets up uvicorn's loggers
    server = DrainingServer(config, drain=drain, grace=grace)
    freeze_startup_objects()
    _serving.append(server)
    try:
        server.run()
    finally:
        _serving.remove(server)
