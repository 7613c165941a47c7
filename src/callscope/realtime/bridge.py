"""PostgreSQL LISTEN → the hub, on one dedicated connection per process (never a pooled one).

The connection is watched (a termination callback plus a periodic `SELECT 1`). When it drops,
`run` raises and the process's `Supervisor` connects again after its backoff; notifications
sent meanwhile are lost, so after every (re)connection the hub is told to resync its clients
with fresh snapshots.
"""

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Final

import asyncpg
import structlog

from callscope.supervision import TaskContext

log = structlog.get_logger(__name__)

APPLICATION_NAME: Final = "callscope-listener"


class ListenerLost(ConnectionError):
    """The LISTEN connection was closed under us."""


class PgListener:
    def __init__(
        self,
        dsn: str,
        *,
        channels: Mapping[str, Callable[[str], None]],
        on_connected: Callable[[], None],
        check_interval: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._channels = channels
        self._on_connected = on_connected
        self._check_interval = check_interval

    async def run(self, context: TaskContext) -> None:
        """Listen until `context.stop` is set; raise when the connection is lost."""
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": APPLICATION_NAME}, timeout=10
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel, handler in self._channels.items():
                await conn.add_listener(channel, _deliver_to(handler))
            log.info("live_listener_connected")
            context.healthy()
            self._on_connected()
            while not context.stop.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first_of(context.stop, lost), self._check_interval)
                if not context.stop.is_set() and not lost.is_set():
                    await conn.execute("SELECT 1", timeout=self._check_interval)
            if lost.is_set() and not context.stop.is_set():
                raise ListenerLost("the LISTEN connection was closed")
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
