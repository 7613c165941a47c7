"""The idle sweeper: completes calls that stopped sending packets without saying goodbye.
Run it with `Supervisor.every`; it is safe with many replicas (rows are claimed with
SKIP LOCKED)."""

from collections.abc import Awaitable, Callable

import structlog

from callscope.calls.service import CallService

log = structlog.get_logger(__name__)


def idle_sweep(calls: CallService, *, idle_seconds: float) -> Callable[[], Awaitable[None]]:
    """One sweep: complete every call quiet for `idle_seconds`."""

    async def sweep() -> None:
        for call_id in await calls.complete_idle(idle_seconds):
            log.info("call_completed_idle", call_id=call_id, idle_seconds=idle_seconds)

    return sweep
