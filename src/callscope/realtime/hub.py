"""In-process fan-out: notifications in, one encoded message per event out to every client.

Publishing only appends to bounded per-client queues (`Subscriber.offer`), so nothing here
ever waits for a socket. With no supervisor connected, progress notifications are dropped
and cost nothing beyond their parsing.
"""

import asyncio
import contextlib
import json

import structlog

from callscope.realtime.coalesce import ProgressCoalescer
from callscope.realtime.events import Outgoing, event_message, progress_entry
from callscope.realtime.repository import LiveRepository
from callscope.realtime.subscriber import Subscriber

log = structlog.get_logger(__name__)


class Hub:
    def __init__(self, live: LiveRepository, *, max_queued: int, progress_interval: float) -> None:
        self._live = live
        self._max_queued = max_queued
        self._progress_interval = progress_interval
        self._subscribers: set[Subscriber] = set()
        self._progress = ProgressCoalescer()
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self.listener_connections = 0

    @property
    def subscribers(self) -> frozenset[Subscriber]:
        return frozenset(self._subscribers)

    def subscribe(self, *, call_id: str | None) -> Subscriber:
        subscriber = Subscriber(call_id=call_id, max_queued=self._max_queued)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def publish(self, message: Outgoing) -> None:
        for subscriber in self._subscribers:
            subscriber.offer(message)

    # Listener callbacks: called from the LISTEN connection's protocol, never await.

    def on_event(self, payload: str) -> None:
        self._incoming.put_nowait(payload)

    def on_progress(self, payload: str) -> None:
        if self._subscribers:
            self._progress.mark(payload)

    def on_listener_connected(self) -> None:
        """Notifications may have been missed while not listening: every client resyncs."""
        self.listener_connections += 1
        reason = "reconnect" if self.listener_connections > 1 else "listener_ready"
        for subscriber in self._subscribers:
            subscriber.resync(reason)

    async def run(self, stop: asyncio.Event) -> None:
        """Turn notifications into messages until `stop` is set."""
        tasks = [
            asyncio.create_task(self._publish_events(), name="live-events"),
            asyncio.create_task(self._publish_progress(stop), name="live-progress"),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _publish_events(self) -> None:
        """One payload at a time, so messages leave in the order the commits happened."""
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
                for subscriber in self._subscribers:
                    subscriber.resync("event_lost")

    async def _publish_progress(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._progress_interval)
            call_ids, unnamed_since = self._progress.take()
            if not (call_ids or unnamed_since) or not self._subscribers:
                continue
            try:
                calls = await self._live.live_calls(call_ids, touched_since=unnamed_since)
            except Exception:  # the database may be briefly away: the next flush retries
                log.exception("live_progress_failed", calls=len(call_ids))
                self._progress.restore(call_ids, unnamed_since)
                continue
            entries = [progress_entry(call) for call in calls]
            for subscriber in self._subscribers:
                subscriber.offer_progress(entries)
