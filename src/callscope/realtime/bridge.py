"""PostgreSQL LISTEN → the hub, on one dedicated connection per process (never a pooled one).

The connection is watched (a termination callback plus a periodic `SELECT 1`); when it drops,
notifications sent meanwhile are lost, so after every (re)connection the hub is told to
resync its clients with fresh snapshots.
"""

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

APPLICATION_NAME = "callscope-listener"
EVENTS_CHANNEL = "callscope_events"  # one call_events row per notification (migration 0003)
PROGRESS_CHANNEL = "callscope_progress"  # call ids a committed ingest batch touched


class PgListener:
    def __init__(
        self,
        dsn: str,
        *,
        channels: Mapping[str, Callable[[str], None]],
        on_connected: Callable[[], None],
        check_interval: float = 5.0,
        retry_delay: float = 0.5,
        retry_cap: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._channels = channels
        self._on_connected = on_connected
        self._check_interval = check_interval
        self._retry_delay = retry_delay
        self._retry_cap = retry_cap
        self._listened = False  # whether the current attempt got as far as listening

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, reconnecting whenever the connection is lost (after
        a jittered delay that doubles up to `retry_cap` while connecting keeps failing)."""
        failures = 0
        while not stop.is_set():
            self._listened = False
            try:
                await self._listen_once(stop)
            except Exception as exc:  # whatever broke it, the feed must come back
                failures = 1 if self._listened else failures + 1
                log.warning("live_listener_lost", error=repr(exc), failures=failures)
            ceiling = min(self._retry_cap, self._retry_delay * 2 ** max(failures - 1, 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(ceiling / 2, ceiling))  # noqa: S311

    async def _listen_once(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": APPLICATION_NAME}, timeout=10
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel, handler in self._channels.items():
                await conn.add_listener(channel, _deliver_to(handler))
            log.info("live_listener_connected")
            self._listened = True
            self._on_connected()
            while not stop.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first_of(stop, lost), self._check_interval)
                if not stop.is_set() and not lost.is_set():
                    await conn.execute("SELECT 1", timeout=self._check_interval)
            if lost.is_set() and not stop.is_set():
                raise OSError("the LISTEN connection was closed")
        finally:
            if not conn.is_closed():
                await conn.close(timeout=2)


def _deliver_to(handler: Callable[[str], None]) -> Callable[[Any, int, str, object], None]:
    def deliver(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        handler(str(payload))

    return deliver


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
