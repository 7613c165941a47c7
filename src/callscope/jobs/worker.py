"""The AI worker: pgqueuer's QueueManager on a dedicated connection, a concurrency cap,
heartbeats (a dead worker's job is re-picked after `worker_heartbeat_timeout`), a sweep that
re-queues calls whose job was lost, and a drain on stop: no new jobs are taken and the ones
in flight finish. If the worker fails (its connection drops), it starts again."""

import asyncio
import contextlib
from contextlib import AsyncExitStack
from datetime import timedelta
from random import Random

import asyncpg
import structlog
from pgqueuer import AsyncpgDriver, Job, QueueManager, RetryRequested
from pgqueuer import Queries as PgqQueries
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.ai.factory import build_provider
from callscope.ai.ports import AIProvider
from callscope.calls.processing import ProcessingService
from callscope.db.engine import create_engine, create_session_factory
from callscope.jobs.handlers import CallProcessor
from callscope.jobs.queue import PROCESS_CALL, requeue_orphans
from callscope.settings import Settings, asyncpg_dsn

log = structlog.get_logger(__name__)

_RESTART_DELAY_S = 1.0


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, provider: AIProvider | None = None
) -> None:
    """Process AI jobs until `stop` is set, then drain; restart after a failure. `provider`
    replaces the one the settings would build (tests pass one they built, to read it)."""
    while not stop.is_set():
        try:
            await _work(settings, stop, provider)
        except Exception:  # process boundary: a worker that died silently would strand calls
            log.exception("worker_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_RESTART_DELAY_S)


async def _work(settings: Settings, stop: asyncio.Event, provider: AIProvider | None) -> None:
    url = settings.require_database_url()
    async with AsyncExitStack() as stack:
        engine = create_engine(url, pool_size=settings.worker_concurrency)
        stack.push_async_callback(engine.dispose)
        session_factory = create_session_factory(engine)
        if provider is None:
            provider = await build_provider(settings, stack)
        processing = ProcessingService(session_factory, max_attempts=settings.ai_max_attempts)
        processor = CallProcessor(
            processing,
            provider,
            settings,
            Random(settings.ai_seed),  # noqa: S311 - retry jitter, not security
        )
        connection = await asyncpg.connect(asyncpg_dsn(url))
        stack.push_async_callback(connection.close)
        manager = QueueManager(PgqQueries(AsyncpgDriver(connection)))
        # pgqueuer's own cap is at least 2; this one makes CALLSCOPE_WORKER_CONCURRENCY exact.
        slots = asyncio.Semaphore(settings.worker_concurrency)

        @manager.entrypoint(PROCESS_CALL)
        async def process_call(job: Job) -> None:
            assert job.payload is not None  # noqa: S101 - every job we queue names its call
            async with slots:
                await _run_job(processor, processing, settings, job.payload.decode(), job.attempts)

        async def stop_when_asked() -> None:
            await stop.wait()
            log.info("worker_draining")
            manager.shutdown.set()

        background = [
            asyncio.create_task(stop_when_asked()),
            asyncio.create_task(_repair_forever(session_factory, settings, stop)),
        ]
        try:
            batch = max(1, settings.worker_concurrency // 2)
            await manager.run(
                # Re-queued jobs come due without a notification: look again every second.
                dequeue_timeout=timedelta(seconds=1),
                batch_size=batch,
                max_concurrent_tasks=max(settings.worker_concurrency, 2 * batch),
                heartbeat_timeout=timedelta(seconds=settings.worker_heartbeat_timeout),
            )
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            log.info("worker_stopped")


async def _run_job(
    processor: CallProcessor,
    processing: ProcessingService,
    settings: Settings,
    call_id: str,
    job_attempts: int,
) -> None:
    try:
        await processor.run(call_id)
    except RetryRequested:
        raise
    except Exception as exc:
        # Job boundary: a dropped job would leave the call waiting forever, and a job that
        # fails the same way every time must not retry forever either.
        log.exception("ai_job_crashed", call_id=call_id, job_attempts=job_attempts)
        if job_attempts + 1 >= settings.ai_max_attempts:
            await processing.give_up(call_id, f"job kept failing: {exc!r}")
            return
        delay = timedelta(seconds=settings.ai_retry_cap)
        raise RetryRequested(delay=delay, reason=type(exc).__name__) from exc


async def _repair_forever(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    grace = 3 * settings.worker_heartbeat_timeout
    while not stop.is_set():
        try:
            async with session_factory() as session, session.begin():
                for call_id in await requeue_orphans(session, grace_s=grace):
                    log.warning("ai_job_requeued", call_id=call_id)
        except Exception:  # loop boundary: retried next round
            log.exception("ai_job_repair_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=grace)
