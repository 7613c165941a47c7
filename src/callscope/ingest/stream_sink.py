"""One media stream's frames on their way to the database: queued (bounded), written in
groups through the group committer, their results handed back in order.

The socket's reader `put`s frames; a writer task submits whatever has queued as one group
(one future for all of them) and, while that group commits, the next frames queue behind it,
so a stream's frames share commits without waiting for each other. When `max_pending` frames
wait, `put` waits too: the reader stops reading and the sender's TCP window fills
(back-pressure), instead of memory growing.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog

from callscope.errors import ServiceError
from callscope.ingest.batch import BatchResult
from callscope.ingest.committer import GroupCommitter
from callscope.ingest.packets import IngestPath, Packet

log = structlog.get_logger(__name__)

Written = Callable[[Sequence[tuple[str, Packet]], Sequence[BatchResult]], Awaitable[None]]
_GROUP_MAX: Final = 256


class SinkFailed(Exception):
    """The frames could not be written (overload, storage away), or the results said the
    stream must end (raised by `on_written`); the message says why."""


class StreamSink:
    def __init__(
        self,
        committer: GroupCommitter,
        *,
        path: IngestPath,
        max_pending: int,
        on_written: Written,
    ) -> None:
        self._committer = committer
        self._path = path
        self._max_pending = max_pending
        self._on_written = on_written
        self._queue: deque[tuple[str, Packet]] = deque()
        self._queued = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self.failure: str | None = None
        self._writer = asyncio.create_task(self._write_forever(), name="stream-sink")

    async def put(self, call_id: str, packet: Packet) -> None:
        """Queue a frame, waiting while `max_pending` frames wait. Raises SinkFailed once
        writing failed."""
        while len(self._queue) >= self._max_pending and self.failure is None:
            self._room.clear()
            await self._room.wait()
        if self.failure is not None:
            raise SinkFailed(self.failure)
        self._queue.append((call_id, packet))
        self._queued.set()

    async def drain(self) -> None:
        """Write what is queued, then stop. Raises SinkFailed if writing failed."""
        await self._stop()
        if self.failure is not None:
            raise SinkFailed(self.failure)

    async def abandon(self) -> None:
        """Stop without writing what is still queued (nothing queued was acknowledged); a
        group being written is finished."""
        self._queue.clear()
        await self._stop()

    async def _stop(self) -> None:
        self._closing = True
        self._queued.set()
        await self._writer

    async def _write_forever(self) -> None:
        while True:
            await self._queued.wait()
            if not self._queue:
                if self._closing:
                    return
                self._queued.clear()
                continue
            group = [self._queue.popleft() for _ in range(min(len(self._queue), _GROUP_MAX))]
            self._room.set()
            try:
                results = await self._committer.submit_many(
                    group, path=self._path, wait_for_room=True
                )
            except ServiceError as exc:
                log.warning("stream_frames_not_written", error=exc.code, frames=len(group))
                self._fail(exc.detail)
                return
            try:
                await self._on_written(group, results)
            except SinkFailed as exc:
                self._fail(str(exc))
                return
            except Exception:  # the socket's side failed (it went away): stop writing
                log.exception("stream_results_not_delivered")
                self._fail("the stream's results could not be delivered")
                return

    def _fail(self, reason: str) -> None:
        self.failure = reason
        self._queue.clear()
        self._room.set()
