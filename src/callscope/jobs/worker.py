"""The AI worker: pgqueuer's QueueManager on a dedicated connection, a concurrency cap,
heartbeats (a dead worker's job is re-picked after `worker_heartbeat_timeout`), and a drain
on stop: no new jobs are taken, the ones in flight finish, and those waiting for the provider
to recover are handed back to the queue. Jobs share the process's small connection pool
(`worker_db_pool_size`) for their short transactions, whatever the concurrency. It runs under
the process's `Supervisor`, which restarts it when it fails (its connection drops);
`requeue_lost` is the periodic repair that queues a job for calls whose job was lost."""

import asyncio
from datetime import timedelta
from random import Random
from typing import Final

import asyncpg
import structlog
from opentelemetry.trace import SpanKind
from pgqueuer import AsyncpgDriver, Job, QueueManager, RetryRequested
from pgqueuer import Queries as PgqQueries
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callscope import tracing
from callscope.ai.factory import ProviderSource
from callscope.jobs.breaker import BreakerPolicy, CircuitBreaker
from callscope.jobs.handlers import CallProcessor
from callscope.jobs.provider_gate import ProviderGate
from callscope.jobs.provider_health import HealthAnnouncer, worker_name
from callscope.jobs.queue import PROCESS_CALL, PgQueuerJobs
from callscope.pipeline.service import PipelineService
from callscope.settings import Settings, asyncpg_dsn
from callscope.supervision import TaskContext

log = structlog.get_logger(__name__)

APPLICATION_NAME: Final = "callscope-worker"  # of the queue connection, in pg_stat_activity


def job_concurrency(settings: Settings) -> int:
    """Jobs one worker runs at once: CALLSCOPE_WORKER_CONCURRENCY, but no more than the local
    engines can work on (CALLSCOPE_AI_LOCAL_CONCURRENCY): they are CPU-bound, and a job that
    waited for them would hold an open attempt (an attempt abandoned if the worker dies) and
    show as running when it is not."""
    if settings.ai_provider == "local":
        return min(settings.worker_concurrency, settings.ai_local_concurrency)
    return settings.worker_concurrency


class AiWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        jobs: PgQueuerJobs,
        pipeline: PipelineService,
        providers: ProviderSource,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._session_factory = session_factory
        self._jobs = jobs
        self._pipeline = pipeline
        self._providers = providers
        self._rng = Random(settings.ai_seed)  # noqa: S311 - retry jitter, not security
        self._processor: CallProcessor | None = None
        # pgqueuer's own cap is at least 2; this one makes CALLSCOPE_WORKER_CONCURRENCY exact.
        self.concurrency = job_concurrency(settings)
        self._slots = asyncio.Semaphore(self.concurrency)

    @property
    def requeue_interval(self) -> float:
        """How often, and after how long without progress, a call's job counts as lost."""
        return 3 * self._settings.worker_heartbeat_timeout

    async def run(self, context: TaskContext) -> None:
        """Process jobs until `context.stop`, then drain; raises if the provider cannot be
        built or the queue connection fails."""
        settings = self._settings
        provider = await self._providers.get()
        gate = ProviderGate(self._breaker(), stopping=context.stop, rng=self._rng)
        self._processor = CallProcessor(self._pipeline, provider, settings, self._rng, gate)
        connection = await asyncpg.connect(
            asyncpg_dsn(settings.require_database_url()),
            server_settings={"application_name": APPLICATION_NAME},
            timeout=10,
        )
        try:
            manager = QueueManager(PgqQueries(AsyncpgDriver(connection)))
            manager.entrypoint(PROCESS_CALL)(self._process_call)

            async def stop_when_asked() -> None:
                await context.stop.wait()
                log.info("worker_draining")
                manager.shutdown.set()

            batch = max(1, self.concurrency // 2)
            stopper = asyncio.create_task(stop_when_asked())
            context.healthy()
            try:
                await manager.run(
                    # Re-queued jobs come due without a notification: look now and then.
                    dequeue_timeout=timedelta(seconds=settings.worker_poll_interval),
                    batch_size=batch,
                    max_concurrent_tasks=max(self.concurrency, 2 * batch),
                    heartbeat_timeout=timedelta(seconds=settings.worker_heartbeat_timeout),
                )
            finally:
                stopper.cancel()
                await asyncio.gather(stopper, return_exceptions=True)
            log.info("worker_stopped")
        finally:
            await connection.close(timeout=5)

    def _breaker(self) -> CircuitBreaker | None:
        """The adaptive policy's circuit breaker, which tells of its changes; none under the
        backoff policy."""
        settings = self._settings
        if settings.ai_retry_policy != "adaptive":
            return None
        policy = BreakerPolicy(
            window_s=settings.ai_breaker_window,
            window_calls=settings.ai_breaker_window_calls,
            failure_rate=settings.ai_breaker_failure_rate,
            min_calls=settings.ai_breaker_min_calls,
            open_s=settings.ai_breaker_open,
        )
        announcer = HealthAnnouncer(self._engine, worker=worker_name())
        return CircuitBreaker(policy, on_change=announcer)

    async def requeue_lost(self) -> None:
        """Queue a job for every call that waits on AI work but has none."""
        async with self._session_factory() as session, session.begin():
            for call_id in await self._jobs.requeue_orphans(session, grace_s=self.requeue_interval):
                log.warning("ai_job_requeued", call_id=call_id)

    async def _process_call(self, job: Job) -> None:
        assert job.payload is not None  # noqa: S101 - every job we queue names its call
        call_id = job.payload.decode()
        async with self._slots:
            with (
                structlog.contextvars.bound_contextvars(job_id=str(job.id), call_id=call_id),
                tracing.span(
                    "ai.job",
                    kind=SpanKind.CONSUMER,
                    parent=tracing.incoming_context(job.headers),
                    attributes={
                        "callscope.call_id": call_id,
                        "callscope.job_id": str(job.id),
                        "callscope.job_attempts": job.attempts,
                    },
                ),
            ):
                await self._run_job(call_id, job.attempts)

    async def _run_job(self, call_id: str, job_attempts: int) -> None:
        assert self._processor is not None  # noqa: S101 - set before any job is taken
        try:
            await self._processor.run(call_id)
        except RetryRequested:
            raise
        except Exception as exc:
            # Job boundary: a dropped job would leave the call waiting forever, and a job that
            # fails the same way every time must not retry forever either.
            log.exception("ai_job_crashed", call_id=call_id, job_attempts=job_attempts)
            if job_attempts + 1 >= self._settings.ai_max_attempts:
                await self._pipeline.give_up(call_id, f"job kept failing: {exc!r}")
                return
            delay = timedelta(seconds=self._settings.ai_retry_cap)
            raise RetryRequested(delay=delay, reason=type(exc).__name__) from exc
