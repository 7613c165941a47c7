"""Group commit: requests queue their packet and wait; flushers write whole batches at once.

A request is answered only after the transaction holding its packet committed. The queue is
bounded (admission control): beyond `queue_limit` waiting packets, `submit` fails fast with
IngestOverloaded (HTTP 503 + Retry-After) instead of letting latency grow without bound.
"""

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

import asyncpg
import structlog

from callscope.audio.formats import AudioFormat
from callscope.errors import IngestOverloaded, ServiceError, StorageUnavailable
from callscope.ingest.batch import BatchReport, IngestOutcome, write_batch
from callscope.ingest.packets import Packet

log = structlog.get_logger(__name__)

_RETRYABLE_SQLSTATES = frozenset(
    {
        "40P01",  # deadlock detected
        "40001",  # serialization failure
    }
)
_MAX_BATCH_TRIES = 3


@dataclass(slots=True)
class _Waiting:
    call_id: str
    packet: Packet
    future: asyncio.Future[IngestOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitter:
    """Owns the ingest queue and its flusher tasks; one per process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_max: int,
        queue_limit: int,
        flushers: int,
        default_format: AudioFormat,
    ) -> None:
        self._pool = pool
        self._default_format = default_format
        self._batch_max = batch_max
        self._queue_limit = queue_limit
        self._flusher_count = flushers
        self._queue: deque[_Waiting] = deque()
        self._has_work = asyncio.Event()
        self._flushers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def pending(self) -> int:
        """Packets queued or being written."""
        return len(self._queue) + self._in_flight

    def start(self) -> None:
        self._flushers = [
            asyncio.create_task(self._flush_forever(), name=f"ingest-flusher-{n}")
            for n in range(self._flusher_count)
        ]

    async def submit(self, call_id: str, packet: Packet) -> IngestOutcome:
        """Queue one packet and wait until its batch has committed."""
        if self._closing:
            raise StorageUnavailable("the server is shutting down")
        if self.pending >= self._queue_limit:
            raise IngestOverloaded("too many packets are waiting to be written; retry shortly")
        waiting = _Waiting(call_id, packet)
        self._queue.append(waiting)
        self._idle.clear()
        self._has_work.set()
        return await waiting.future

    async def close(self) -> None:
        """Stop taking packets, write everything already queued, then stop the flushers."""
        self._closing = True
        await self._idle.wait()
        for task in self._flushers:
            task.cancel()
        for task in self._flushers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _flush_forever(self) -> None:
        while True:
            await self._has_work.wait()
            batch = self._take_batch()
            if not batch:
                continue
            self._in_flight += len(batch)
            try:
                await self._flush(batch)
            finally:
                self._in_flight -= len(batch)
                if not self.pending:
                    self._idle.set()

    def _take_batch(self) -> list[_Waiting]:
        size = min(len(self._queue), self._batch_max)
        batch = [self._queue.popleft() for _ in range(size)]
        if not self._queue:
            self._has_work.clear()
        return batch

    async def _flush(self, batch: list[_Waiting]) -> None:
        try:
            report = await self._write_with_retry([(w.call_id, w.packet) for w in batch])
        except Exception as exc:  # flusher boundary: every waiter must be answered
            log.exception("ingest_batch_failed", packets=len(batch))
            for waiting in batch:
                if not waiting.future.done():
                    error = StorageUnavailable("the packet could not be stored; retry shortly")
                    error.__cause__ = exc
                    waiting.future.set_exception(error)
            return
        for waiting, result in zip(batch, report.results, strict=True):
            if waiting.future.done():  # the client went away; its packet is stored anyway
                continue
            if isinstance(result, ServiceError):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
        for call_id, gap in report.gaps:
            log.warning(
                "packet_gap_detected",
                call_id=call_id,
                first_missing=gap.first,
                last_missing=gap.last,
            )

    async def _write_with_retry(self, batch: list[tuple[str, Packet]]) -> BatchReport:
        for attempt in range(1, _MAX_BATCH_TRIES + 1):
            try:
                async with self._pool.acquire() as conn:
                    return await write_batch(conn, batch, default_format=self._default_format)
            except asyncpg.PostgresError as exc:
                if not _is_retryable(exc) or attempt == _MAX_BATCH_TRIES:
                    raise
                log.warning("ingest_batch_retried", attempt=attempt, sqlstate=exc.sqlstate)
        raise AssertionError("unreachable")


def _is_retryable(exc: asyncpg.PostgresError) -> bool:
    return exc.sqlstate in _RETRYABLE_SQLSTATES
