"""Pruning runs: each kind of data deleted in short transactions of at most `batch_size` rows,
oldest first, until nothing is due; a dry run counts the same rows instead. `pruning_task` is
the worker's supervised loop around them.

A call's audio goes like this: the transaction that deletes its first packets marks it
(`audio_pruned_at`, so its audio answers 410 from that commit on, never a partly silent WAV)
and, while packets are left, pending (`audio_prune_pending`); later transactions delete the
rest, and the one that deletes the last packet clears `pending`. A run stopped half-way (a
crash, a deploy) leaves the call pending, and the next run finishes it first.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from callscope.retention.policy import (
    FIRST_WINDOW,
    RetentionPolicy,
    calls_in_batch,
    candidate_window,
)
from callscope.retention.report import PruneReport
from callscope.retention.repository import RetentionRepository
from callscope.supervision import LongTask, TaskContext, sleep_unless_stopped

log = structlog.get_logger(__name__)

OnBatch = Callable[[float], None]  # called with each committed batch's duration (s)
DeleteOld = Callable[[RetentionRepository, datetime, int], Awaitable[int]]


async def prune(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    *,
    stop: asyncio.Event | None = None,
    on_batch: OnBatch | None = None,
) -> PruneReport:
    """One run: whatever is due now goes, one transaction per batch, each followed by a
    pause (`policy.pause_ratio`). Returns between two batches once `stop` is set; `on_batch`
    is called after each committed batch with how long it took."""
    cutoffs = policy.cutoffs(await _database_now(engine))
    steps = _Steps(engine, policy, stop, on_batch or _nothing)
    report = PruneReport()
    if cutoffs.audio is not None:
        report += await steps.audio(cutoffs.audio)
    if cutoffs.events is not None:
        events, batches = await steps.rows(RetentionRepository.delete_events, cutoffs.events)
        report += PruneReport(events=events, batches=batches)
        rows, batches = await steps.rows(RetentionRepository.delete_queue_log, cutoffs.events)
        report += PruneReport(queue_log=rows, batches=batches)
    return report


async def preview(engine: AsyncEngine, policy: RetentionPolicy) -> PruneReport:
    """What `prune` would remove now, counted in one snapshot; it writes nothing (the
    connection closes without a commit)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        repository = RetentionRepository(conn)
        cutoffs = policy.cutoffs(await repository.now())
        calls, packets = (0, 0)
        if cutoffs.audio is not None:
            calls, packets = await repository.count_audio(cutoffs.audio)
        events = queue_log = 0
        if cutoffs.events is not None:
            events = await repository.count_events(cutoffs.events)
            queue_log = await repository.count_queue_log(cutoffs.events)
    return PruneReport(calls=calls, packets=packets, events=events, queue_log=queue_log)


def pruning_task(engine: AsyncEngine, policy: RetentionPolicy) -> LongTask:
    """For `Supervisor.start`: a run, then `policy.interval` seconds of rest, until the
    process stops (a run stops between two batches); each run that removed something is
    logged as `retention_pruned`. The task is healthy after every batch and every run, so a
    long first run does not hold back readiness. (Its own loop, not `Supervisor.every`: a
    run needs the stop event and the health callback between its batches.)"""

    async def run(context: TaskContext) -> None:
        while not context.stop.is_set():
            started = time.monotonic()
            report = await prune(
                engine, policy, stop=context.stop, on_batch=lambda _: context.healthy()
            )
            if report.removed_anything:
                log.info(
                    "retention_pruned",
                    calls=report.calls,
                    packets=report.packets,
                    events=report.events,
                    queue_log=report.queue_log,
                    transactions=report.batches,
                    seconds=round(time.monotonic() - started, 3),
                )
            context.healthy()
            await sleep_unless_stopped(context.stop, policy.interval)

    return run


class _Steps:
    """The batch loops of one run, and what happens between two batches."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: RetentionPolicy,
        stop: asyncio.Event | None,
        on_batch: OnBatch,
    ) -> None:
        self._engine = engine
        self._batch_size = policy.batch_size
        self._pause_ratio = policy.pause_ratio
        self._stop = stop or asyncio.Event()
        self._on_batch = on_batch

    async def audio(self, cutoff: datetime) -> PruneReport:
        report = PruneReport()
        window = min(self._batch_size, FIRST_WINDOW)
        while not self._stop.is_set():
            started = time.perf_counter()
            async with self._engine.begin() as conn:
                repository = RetentionRepository(conn)
                batch = await _audio_batch(repository, cutoff, self._batch_size, window)
            if batch is None:
                break
            done, chosen = batch
            report += done
            window = candidate_window(chosen, self._batch_size)
            await self._committed(started)
        return report

    async def rows(self, delete: DeleteOld, cutoff: datetime) -> tuple[int, int]:
        """(rows deleted, transactions) of one kind of timestamped rows."""
        deleted = batches = 0
        while not self._stop.is_set():
            started = time.perf_counter()
            async with self._engine.begin() as conn:
                count = await delete(RetentionRepository(conn), cutoff, self._batch_size)
            if count == 0:
                break
            deleted += count
            batches += 1
            await self._committed(started)
            if count < self._batch_size:
                break
        return deleted, batches

    async def _committed(self, started: float) -> None:
        """After a batch that started at `started` (perf_counter): report it, then leave the
        database to others for `pause_ratio` times as long as the batch took."""
        took = time.perf_counter() - started
        self._on_batch(took)
        if self._pause_ratio > 0:
            await sleep_unless_stopped(self._stop, took * self._pause_ratio)


async def _audio_batch(
    repository: RetentionRepository, cutoff: datetime, batch_size: int, window: int
) -> tuple[PruneReport, int] | None:
    """One transaction's worth, and how many calls it chose among the first `window` due;
    None when no call is due (or every chosen one is held elsewhere)."""
    candidates = await repository.audio_candidates(cutoff, window)
    if not candidates:
        return None
    chosen = calls_in_batch(candidates, batch_size)
    locked = await repository.lock_due(chosen, cutoff)
    if not locked:
        return None  # another pruner holds them: it will finish them
    packets = await repository.delete_packets(locked, batch_size)
    calls = await repository.record_pruned(locked)
    return PruneReport(calls=calls, packets=packets, batches=1), len(chosen)


async def _database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as conn:
        return await RetentionRepository(conn).now()


def _nothing(_took: float) -> None:
    return
