"""Telling everyone about the AI provider's health as a worker's circuit breaker sees it: a log
line per change, the `callscope_ai_breaker_state` gauge, and a NOTIFY on the AI health
channel that every API process turns into an `ai.provider` message on the supervisor feed."""

import asyncio
import json
import os
import socket
from datetime import UTC, datetime
from typing import Final

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from callscope import metrics
from callscope.db.channels import AI_HEALTH_CHANNEL
from callscope.jobs.breaker import BreakerChange, BreakerState

log = structlog.get_logger(__name__)

_NOTIFY: Final = text("SELECT pg_notify(:channel, :payload)")


def worker_name() -> str:
    """How a worker is named in health messages: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def show_state(state: BreakerState) -> None:
    for each in BreakerState:
        metrics.AI_BREAKER_STATE.labels(each.value).set(1 if each == state else 0)


class HealthAnnouncer:
    """The breaker's `on_change`: called on the event loop, never waits."""

    def __init__(self, engine: AsyncEngine, *, worker: str) -> None:
        self._engine = engine
        self._worker = worker
        self._last_sent: asyncio.Task[None] | None = None  # notifications leave in order
        show_state(BreakerState.closed)

    def __call__(self, change: BreakerChange) -> None:
        show_state(change.state)
        fields = {
            "previous": change.previous.value,
            "failure_rate": round(change.failure_rate, 3),
            "calls_in_window": change.calls_in_window,
            "retry_in_s": round(change.retry_in_s, 3),
        }
        if change.state == BreakerState.open:
            log.warning("ai_breaker_opened", **fields)
        else:
            log.info(f"ai_breaker_{change.state.value}", **fields)
        message = {
            "worker": self._worker,
            "state": change.state.value,
            "degraded": change.state != BreakerState.closed,
            **fields,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        after = self._last_sent
        self._last_sent = asyncio.get_running_loop().create_task(
            self._notify(json.dumps(message), after=after)
        )

    async def _notify(self, payload: str, *, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.gather(after, return_exceptions=True)
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    _NOTIFY, {"channel": AI_HEALTH_CHANNEL, "payload": payload}
                )
        except Exception:  # the log line above is the record; the feed is told next time
            log.exception("ai_health_notify_failed")
