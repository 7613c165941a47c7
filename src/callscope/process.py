"""The composition root: `open_process` builds one process's resources (engine and pools,
group committer, live hub and listener, idle sweeper, AI worker), starts their background
tasks under one `Supervisor`, and tears everything down in order. The API's lifespan,
`callscope worker`, `callscope run` and the tests all go through it.
"""

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import stamina
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callscope import gauges, metrics
from callscope.ai.factory import ProviderSource
from callscope.ai.ports import AIProvider
from callscope.calls.service import CallService
from callscope.calls.sweeper import idle_sweep
from callscope.db.channels import AI_HEALTH_CHANNEL, EVENTS_CHANNEL, PROGRESS_CHANNEL
from callscope.db.engine import create_engine, create_ingest_pool, create_session_factory
from callscope.db.migrate import head_revision
from callscope.draining import OpenSockets, drain
from callscope.ingest.committer import GroupCommitter
from callscope.jobs.queue import PgQueuerJobs
from callscope.jobs.worker import AiWorker
from callscope.metrics_server import MetricsServer
from callscope.pipeline.service import PipelineService
from callscope.realtime.bridge import PgListener
from callscope.realtime.hub import Hub
from callscope.realtime.repository import LiveRepository
from callscope.retention import RetentionPolicy, pruning_task
from callscope.settings import Settings, asyncpg_dsn
from callscope.supervision import Supervisor

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Process:
    """What one process shares between requests and background tasks."""

    settings: Settings
    engine: AsyncEngine
    supervisor: Supervisor
    committer: GroupCommitter
    calls: CallService
    pipeline: PipelineService
    live: LiveRepository
    hub: Hub
    head_revision: str
    draining: bool = False
    sockets: OpenSockets = field(default_factory=OpenSockets)

    async def drain(self) -> None:
        """On SIGTERM, before the server shuts down: see `draining`."""

        def mark_draining() -> None:
            self.draining = True

        await drain(
            mark_draining=mark_draining, seconds=self.settings.drain_seconds, sockets=self.sockets
        )


@asynccontextmanager
async def open_process(
    settings: Settings,
    *,
    api: bool = True,
    worker: bool = False,
    provider: AIProvider | None = None,
) -> AsyncIterator[Process]:
    """Build and start a process: `api` serves ingestion and the live feed (and sweeps idle
    calls), `worker` processes AI jobs (with `provider`, or the one the settings name).

    On exit, in order: ingestion stops taking packets and flushes what it queued, every
    background task stops (the worker drains its jobs in flight), then pools close."""
    url = settings.require_database_url()
    metrics.set_enabled(settings.metrics_enabled)
    async with AsyncExitStack() as stack:
        pool = pool_budget(settings, api=api, worker=worker)
        engine = create_engine(
            url,
            pool_size=pool.size,
            max_overflow=pool.overflow,
            pool_timeout=pool.timeout_s,
            application_name=_application_name(api=api, worker=worker),
        )
        stack.push_async_callback(engine.dispose)
        ingest_pool = await create_ingest_pool(url, size=settings.ingest_flushers)
        stack.push_async_callback(ingest_pool.close)
        session_factory = create_session_factory(engine)
        jobs = PgQueuerJobs()
        live = LiveRepository(engine)
        process = Process(
            settings=settings,
            engine=engine,
            supervisor=Supervisor(),
            committer=GroupCommitter(
                ingest_pool,
                batch_max=settings.ingest_batch_max,
                stream_linger=settings.ingest_stream_linger,
                queue_limit=settings.ingest_queue_limit,
                default_format=settings.default_audio_format,
                max_jump=settings.max_sequence_jump,
            ),
            calls=CallService(
                session_factory,
                jobs,
                max_jump=settings.max_sequence_jump,
                silence_redacted=settings.redact_audio,
            ),
            pipeline=PipelineService(
                session_factory,
                jobs,
                max_attempts=settings.ai_max_attempts,
                redaction=settings.redaction == "on",
            ),
            live=live,
            hub=Hub(live, max_queued=settings.live_queue_size),
            head_revision=head_revision(),
        )
        if worker:
            providers = ProviderSource(settings, stack, provider)
            _start_worker_tasks(process, providers, session_factory, jobs)
        if api:
            committer = process.committer
            metrics.INGEST_QUEUE_DEPTH.set_function(lambda: committer.pending)
            _start_api_tasks(process)
        try:
            yield process
        finally:
            process.draining = True
            if api:
                await process.committer.close()
            await process.supervisor.stop()


# A worker's jobs queue for its few connections by design (hundreds of jobs, a handful of
# connections): on a busy machine a job may wait longer than a request would be let to.
_WORKER_POOL_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class PoolBudget:
    size: int
    overflow: int
    timeout_s: float


def pool_budget(settings: Settings, *, api: bool, worker: bool) -> PoolBudget:
    """The shared pool: the API's `db_pool_size` (and as many again in bursts) plus, in a
    process that runs AI jobs, `worker_db_pool_size` more that never overflow. A worker's jobs
    hold a connection only for their short transactions, so its share does not grow with
    `worker_concurrency` (docs/operations.md, "Database connections")."""
    api_share = settings.db_pool_size if api or not worker else 0
    worker_share = settings.worker_db_pool_size if worker else 0
    return PoolBudget(
        size=api_share + worker_share,
        overflow=api_share,
        timeout_s=30.0 if api else _WORKER_POOL_TIMEOUT_S,
    )


def connections_at_most(settings: Settings, *, api: bool, worker: bool) -> int:
    """The most database connections one such process opens: its pool and the pool's
    overflow, and for an API its ingest flushers and its LISTEN connection, for a worker its
    queue connection (docs/operations.md, "Database connections")."""
    pool = pool_budget(settings, api=api, worker=worker)
    api_own = settings.ingest_flushers + 1 if api else 0
    return pool.size + pool.overflow + api_own + (1 if worker else 0)


def _application_name(*, api: bool, worker: bool) -> str:
    """How the pool's connections are named in `pg_stat_activity`."""
    if worker and not api:
        return "callscope-worker-jobs"
    return "callscope-api" if api and not worker else "callscope"


def _start_api_tasks(process: Process) -> None:
    settings, supervisor, hub = process.settings, process.supervisor, process.hub
    for n in range(settings.ingest_flushers):
        flusher = process.committer.flush_forever
        supervisor.start(f"ingest-flusher-{n}", flusher, cancel_at_stop=True)
    listener = PgListener(
        asyncpg_dsn(settings.require_database_url()),
        channels={
            EVENTS_CHANNEL: hub.on_event,
            PROGRESS_CHANNEL: hub.on_progress,
            AI_HEALTH_CHANNEL: hub.on_ai_health,
        },
        on_connected=hub.on_listener_connected,
    )
    supervisor.start("live-listener", listener.run)
    supervisor.start("live-events", hub.publish_events, cancel_at_stop=True)
    supervisor.every("live-progress", settings.live_progress_interval, hub.flush_progress)
    sweep = idle_sweep(process.calls, idle_seconds=settings.call_idle_timeout)
    supervisor.every("idle-sweeper", settings.sweep_interval, sweep)
    _start_metrics(process, "calls-gauge", gauges.count_calls, settings.metrics_port)


def _start_worker_tasks(
    process: Process,
    providers: ProviderSource,
    session_factory: async_sessionmaker[AsyncSession],
    jobs: PgQueuerJobs,
) -> None:
    # The handlers log and count every failed attempt (`ai_attempt_failed`,
    # `callscope_ai_attempts_total`); stamina's own hooks would add a line per retry naming
    # "<context block>" with empty arguments, and a `stamina_retries_total` counter.
    stamina.instrumentation.set_on_retry_hooks([])
    worker = AiWorker(
        process.settings,
        engine=process.engine,
        session_factory=session_factory,
        jobs=jobs,
        pipeline=process.pipeline,
        providers=providers,
    )
    process.supervisor.start("ai-worker", worker.run)
    process.supervisor.every("ai-requeue", worker.requeue_interval, worker.requeue_lost)
    worker_port = process.settings.worker_metrics_port
    _start_metrics(process, "jobs-gauge", gauges.count_jobs, worker_port)
    retention = RetentionPolicy.from_settings(process.settings)
    if retention.is_active:
        process.supervisor.start("retention-pruner", pruning_task(process.engine, retention))


def _start_metrics(
    process: Process,
    gauge: str,
    count: Callable[[AsyncEngine], Awaitable[None]],
    port: int | None,
) -> None:
    """The periodic count behind a gauge, and the metrics port if one is set: neither when
    metrics are off (CALLSCOPE_METRICS_ENABLED=false)."""
    settings = process.settings
    if not settings.metrics_enabled:
        return
    process.supervisor.every(
        gauge, settings.gauge_interval, functools.partial(count, process.engine)
    )
    if port is not None:
        server = MetricsServer(host=settings.host, port=port, token=settings.metrics_token)
        process.supervisor.start(f"metrics-server-{port}", server.run)
