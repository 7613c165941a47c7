"""The AI worker: pgqueuer's QueueManager on a dedicated connection, a concurrency cap,
heartbeats (a dead worker's job is re-picked after `worker_heartbeat_timeout`) and a drain
on stop: no new jobs are taken and the ones in flight finish."""

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from random import Random

import asyncpg
import structlog
from pgqueuer import AsyncpgDriver, Job, QueueManager, RetryRequested
from pgqueuer import Queries as PgqQueries

from callscope.ai.factory import build_provider
from callscope.ai.ports import AIProvider
from callscope.calls.processing import ProcessingService
from callscope.db.engine import create_engine, create_session_factory
from callscope.jobs.handlers import CallProcessor
from callscope.jobs.queue import PROCESS_CALL
from callscope.settings import Settings, asyncpg_dsn

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, provider: AIProvider | None = None
) -> None:
    """Process AI jobs until `stop` is set, then drain. `provider` replaces the one the
    settings would build (tests pass the one they built, to read its counters)."""
    url = settings.require_database_url()
    async with AsyncExitStack() as stack:
        engine = create_engine(url, pool_size=settings.worker_concurrency)
        stack.push_async_callback(engine.dispose)
        if provider is None:
            provider = await build_provider(settings, stack)
        processing = ProcessingService(
            create_session_factory(engine), max_attempts=settings.ai_max_attempts
        )
        processor = CallProcessor(
            processing,
            provider,
            settings,
            Random(settings.ai_seed),  # noqa: S311 - retry jitter, not security
        )
        connection = await asyncpg.connect(asyncpg_dsn(url))
        stack.push_async_callback(connection.close)
        manager = QueueManager(PgqQueries(AsyncpgDriver(connection)))

        @manager.entrypoint(PROCESS_CALL)
        async def process_call(job: Job) -> None:
            assert job.payload is not None  # noqa: S101 - every job we queue names its call
            call_id = job.payload.decode()
            try:
                await processor.run(call_id)
            except RetryRequested:
                raise
            except Exception as exc:
                # Job boundary: a dropped job would leave the call in PROCESSING_AI forever.
                log.exception("ai_job_crashed", call_id=call_id)
                delay = timedelta(seconds=settings.ai_retry_cap)
                raise RetryRequested(delay=delay, reason=type(exc).__name__) from exc

        async def stop_when_asked() -> None:
            await stop.wait()
            log.info("worker_draining")
            manager.shutdown.set()

        stopper = asyncio.create_task(stop_when_asked())
        try:
            batch = max(1, settings.worker_concurrency // 2)
            await manager.run(
                dequeue_timeout=timedelta(seconds=5),
                batch_size=batch,
                max_concurrent_tasks=max(settings.worker_concurrency, 2 * batch),
                heartbeat_timeout=timedelta(seconds=settings.worker_heartbeat_timeout),
            )
        finally:
            stopper.cancel()
            log.info("worker_stopped")
