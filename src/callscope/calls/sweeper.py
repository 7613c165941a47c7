"""The idle sweeper: completes calls that stopped sending packets without saying goodbye."""

import asyncio
import contextlib

import structlog

from callscope.calls.service import CallService

log = structlog.get_logger(__name__)


async def sweep_idle_calls(
    calls: CallService, *, idle_seconds: float, interval: float, stop: asyncio.Event
) -> None:
    """Sweep every `interval` seconds until `stop` is set; a sweep in progress is finished,
    never cancelled mid-query. Safe with many replicas (rows are claimed with SKIP LOCKED)."""
    while not stop.is_set():
        try:
            completed = await calls.complete_idle(idle_seconds)
        except Exception:  # loop boundary: a failed sweep is retried next tick
            log.exception("idle_sweep_failed")
        else:
            for call_id in completed:
                log.info("call_completed_idle", call_id=call_id, idle_seconds=idle_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
