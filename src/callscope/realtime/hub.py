"""In-process fan-out: notifications in, one encoded message per event out to every client.

Publishing only appends to bounded per-client queues (`Subscriber.offer`), so nothing here
ever waits for a socket. With no supervisor connected, progress notifications are dropped
and cost nothing beyond their parsing. Two supervised tasks drive it: `publish_events` (one
payload at a time, in commit order) and `flush_progress` (every `live_progress_interval`).
"""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Final

import structlog

from callscope.metrics import LIVE_CLIENTS, LIVE_LISTENER_RECONNECTS
from callscope.realtime.coalesce import ProgressCoalescer
from callscope.realtime.messages import Outgoing, ai_provider_message, event_message
from callscope.realtime.repository import LiveRepository
from callscope.realtime.subscriber import Subscriber
from callscope.supervision import TaskContext

log = structlog.get_logger(__name__)

# How long a worker's word that its breaker is not closed holds. A breaker that holds calls
# back changes state every few seconds (open, a probe, open again), and each change is told
# again; a worker that crashed while degraded never says it closed.
DEGRADED_FRESH_S: Final = 60.0


class Hub:
    def __init__(
        self,
        live: LiveRepository,
        *,
        max_queued: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._live = live
        self._max_queued = max_queued
        self._clock = clock
        self._subscribers: set[Subscriber] = set()
        self._progress = ProgressCoalescer()
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self.listener_connections = 0
        # The latest `ai.provider` message of each worker whose breaker is not closed, and
        # when it came (`clock`).
        self._degraded: dict[str, tuple[float, Outgoing]] = {}

    def degraded_providers(self) -> list[Outgoing]:
        """The latest `ai.provider` message of each worker that said within DEGRADED_FRESH_S
        that its breaker is not closed."""
        now = self._clock()
        for worker, (at, _) in list(self._degraded.items()):
            if now - at > DEGRADED_FRESH_S:
                del self._degraded[worker]
        return [message for _, message in self._degraded.values()]

    @property
    def subscribers(self) -> frozenset[Subscriber]:
        return frozenset(self._subscribers)

    def subscribe(self, *, call_id: str | None) -> Subscriber:
        subscriber = Subscriber(call_id=call_id, max_queued=self._max_queued)
        self._subscribers.add(subscriber)
        LIVE_CLIENTS.inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            LIVE_CLIENTS.dec()

    def publish(self, message: Outgoing) -> None:
        for subscriber in self._subscribers:
            subscriber.offer(message)

    def resync_all(self, reason: str) -> None:
        for subscriber in self._subscribers:
            subscriber.resync(reason)

    # Listener callbacks: called from the LISTEN connection's protocol, never await.

    def on_event(self, payload: str) -> None:
        self._incoming.put_nowait(payload)

    def on_progress(self, payload: str) -> None:
        if self._subscribers:
            self._progress.mark(payload)

    def on_ai_health(self, payload: str) -> None:
        """A worker's circuit breaker changed: tell every supervisor, remember it if degraded."""
        try:
            message = ai_provider_message(payload)
            data = json.loads(payload)
        except ValueError:
            log.exception("ai_health_unreadable", payload=payload[:200])
            return
        if data["degraded"]:
            self._degraded[data["worker"]] = (self._clock(), message)
        else:
            self._degraded.pop(data["worker"], None)
        self.publish(message)

    def on_listener_connected(self) -> None:
        """Notifications may have been missed while not listening: every client resyncs."""
        self.listener_connections += 1
        if self.listener_connections > 1:
            LIVE_LISTENER_RECONNECTS.inc()
        self.resync_all("reconnect" if self.listener_connections > 1 else "listener_ready")

    # Supervised tasks.

    async def publish_events(self, context: TaskContext) -> None:
        """Turn event notifications into messages, one payload at a time, so messages leave in
        the order the commits happened. Runs until cancelled (it holds nothing to finish)."""
        context.healthy()
        while True:
            payload = await self._incoming.get()
            try:
                row = json.loads(payload)
                if row.get("truncated"):
                    row = await self._live.event(row["id"])
                    if row is None:  # its call was deleted since
                        continue
                self.publish(event_message(row))
            except Exception:  # an event we cannot send: every client starts over
                log.exception("live_event_lost", payload=payload[:200])
                self.resync_all("event_lost")

    async def flush_progress(self) -> None:
        """Send the latest counts of the calls touched since the last flush. When the database
        cannot say, the calls are kept for the next flush and the error propagates."""
        call_ids, unnamed_since = self._progress.take()
        if not (call_ids or unnamed_since) or not self._subscribers:
            return
        try:
            calls = await self._live.progress(call_ids, touched_since=unnamed_since)
        except BaseException:
            self._progress.restore(call_ids, unnamed_since)
            raise
        for subscriber in self._subscribers:
            subscriber.offer_progress(calls)
