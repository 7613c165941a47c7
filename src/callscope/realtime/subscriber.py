"""One supervisor's bounded queue: the hub offers without ever waiting; the feed drains it.

Events queue in order, at most `max_queued` of them: a supervisor that falls further behind
loses its queue and is owed a fresh snapshot instead (a resync), so a slow or stuck client
costs a bounded amount of memory and never slows the publisher. Packet progress does not
queue: each call keeps only its latest counts until the next `call.progress` message is sent
(counts only grow, so older ones are worth nothing), which bounds it by the number of calls.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from callscope.calls.read_model import CallProgress
from callscope.realtime.messages import Outgoing, progress_message

# A client that overflows this often is not slow for a moment but cannot keep up: every
# resync costs a snapshot query and message, so the feed closes it instead (code 4408).
OVERFLOWS_TOLERATED: Final = 3
OVERFLOW_WINDOW_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Resync:
    """The client must be sent a fresh snapshot; `reason` says why."""

    reason: str


class Subscriber:
    def __init__(
        self,
        *,
        call_id: str | None,
        max_queued: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call_id = call_id
        self.max_queued = max_queued
        self.watermark = 0  # highest event id the client already has (snapshot or replay)
        self.overflows = 0
        self._clock = clock
        self._recent_overflows: deque[float] = deque(maxlen=OVERFLOWS_TOLERATED)
        self._queue: deque[Outgoing] = deque()
        self._progress: dict[str, CallProgress] = {}  # call id → latest counts
        self._resync: Resync | None = None
        self._wakeup = asyncio.Event()

    @property
    def cannot_keep_up(self) -> bool:
        """Overflowed `OVERFLOWS_TOLERATED` times within `OVERFLOW_WINDOW_S` seconds."""
        recent = self._recent_overflows
        return len(recent) == OVERFLOWS_TOLERATED and self._clock() - recent[0] <= OVERFLOW_WINDOW_S

    @property
    def queued(self) -> tuple[int, int]:
        """What is waiting: (events, calls with unsent progress)."""
        return len(self._queue), len(self._progress)

    def offer(self, message: Outgoing) -> None:
        """Queue an event for this client, or mark it for a resync when it is too far behind."""
        if self.call_id is not None and message.call_id not in (None, self.call_id):
            return
        if self._resync is not None:
            return  # the snapshot that is owed will carry it
        if len(self._queue) >= self.max_queued:
            self.overflows += 1
            self._recent_overflows.append(self._clock())
            self.resync("overflow")
            return
        self._queue.append(message)
        self._wakeup.set()

    def offer_progress(self, calls: list[CallProgress]) -> None:
        """Note the latest packet counts of these calls."""
        if self._resync is not None:
            return
        for call in calls:
            if self.call_id is None or call.call_id == self.call_id:
                self._progress[call.call_id] = call
        if self._progress:
            self._wakeup.set()

    def resync(self, reason: str) -> None:
        """Drop what is queued: the client gets a fresh snapshot next."""
        self._queue.clear()
        self._progress.clear()
        self._resync = Resync(reason)
        self._wakeup.set()

    async def next(self) -> Outgoing | Resync:
        """The next thing to send: an owed resync first, then events in order, then progress."""
        while not self._queue and not self._progress and self._resync is None:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._resync is not None:
            resync, self._resync = self._resync, None
            return resync
        if self._queue:
            return self._queue.popleft()
        entries, self._progress = list(self._progress.values()), {}
        return progress_message(entries, datetime.now(UTC))
