"""The idle sweeper: completes calls that stopped sending packets without saying goodbye."""

import asyncio

import structlog

from callscope.calls.service import CallService

log = structlog.get_logger(__name__)


async def sweep_idle_calls_forever(
    calls: CallService, *, idle_seconds: float, interval: float
) -> None:
    """Run until cancelled; safe with many replicas (rows are claimed with SKIP LOCKED)."""
    while True:
        try:
            completed = await calls.complete_idle(idle_seconds)
        except Exception:  # loop boundary: a failed sweep is retried next tick
            log.exception("idle_sweep_failed")
        else:
            for call_id in completed:
                log.info("call_completed_idle", call_id=call_id, idle_seconds=idle_seconds)
        await asyncio.sleep(interval)
