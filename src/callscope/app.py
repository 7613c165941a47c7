"""create_app(settings): routes, error rendering and the lifespan that owns process resources."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from callscope import __version__
from callscope.api import health
from callscope.api.body_limit import BodySizeLimit
from callscope.api.ingest_fast_path import IngestFastPath
from callscope.api.problems import install_error_handlers
from callscope.api.v1 import calls, stream
from callscope.auth.tokens import TokenChecker
from callscope.calls.processing import ProcessingService
from callscope.calls.service import CallService
from callscope.calls.sweeper import sweep_idle_calls
from callscope.db.engine import create_engine, create_ingest_pool, create_session_factory
from callscope.db.migrate import head_revision
from callscope.ingest.committer import GroupCommitter
from callscope.realtime import ws
from callscope.realtime.bridge import EVENTS_CHANNEL, PROGRESS_CHANNEL, PgListener
from callscope.realtime.hub import Hub
from callscope.realtime.repository import LiveRepository
from callscope.resources import Resources
from callscope.settings import Settings, asyncpg_dsn
from callscope.web import routes as web

log = structlog.get_logger(__name__)

DESCRIPTION = """
callscope stores live call audio packets durably in PostgreSQL, tracks every call through
IN_PROGRESS → COMPLETED → PROCESSING_AI → ARCHIVED (or FAILED), and answers supervisors.

Authenticate with `Authorization: Bearer <token>`: ingest tokens post packets and complete
calls; supervisor tokens read calls. Every error is `application/problem+json` (RFC 9457).
"""


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app for these settings; `settings.database_url` must be set."""
    database_url = settings.require_database_url()
    tokens = TokenChecker(
        ingest=[t.get_secret_value() for t in settings.ingest_tokens],
        supervisor=[t.get_secret_value() for t in settings.supervisor_tokens],
        disabled=settings.auth_disabled,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, pool_size=settings.db_pool_size)
        pool = await create_ingest_pool(database_url, size=settings.ingest_flushers)
        committer = GroupCommitter(
            pool,
            batch_max=settings.ingest_batch_max,
            queue_limit=settings.ingest_queue_limit,
            flushers=settings.ingest_flushers,
            default_format=settings.default_audio_format,
        )
        session_factory = create_session_factory(engine)
        call_service = CallService(session_factory)
        live = LiveRepository(engine)
        hub = Hub(
            live,
            max_queued=settings.live_queue_size,
            progress_interval=settings.live_progress_interval,
        )
        resources = Resources(
            settings=settings,
            engine=engine,
            committer=committer,
            calls=call_service,
            processing=ProcessingService(session_factory, max_attempts=settings.ai_max_attempts),
            tokens=tokens,
            hub=hub,
            live=live,
            head_revision=head_revision(),
        )
        app.state.resources = resources
        committer.start()
        stop = asyncio.Event()
        listener = PgListener(
            asyncpg_dsn(database_url),
            channels={EVENTS_CHANNEL: hub.on_event, PROGRESS_CHANNEL: hub.on_progress},
            on_connected=hub.on_listener_connected,
        )
        background = [
            asyncio.create_task(
                sweep_idle_calls(
                    call_service,
                    idle_seconds=settings.call_idle_timeout,
                    interval=settings.sweep_interval,
                    stop=stop,
                ),
                name="idle-sweeper",
            ),
            asyncio.create_task(listener.run(stop), name="live-listener"),
            asyncio.create_task(hub.run(stop), name="live-hub"),
        ]
        try:
            yield
        finally:
            resources.draining = True
            stop.set()
            for task, outcome in zip(
                background, await asyncio.gather(*background, return_exceptions=True), strict=True
            ):
                if isinstance(outcome, BaseException):
                    log.error("background_task_failed", task=task.get_name(), error=repr(outcome))
            await committer.close()
            await pool.close()
            await engine.dispose()

    app = FastAPI(
        title="callscope",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(stream.router, prefix="/v1")
    app.include_router(calls.router, prefix="/v1")
    app.include_router(ws.router)
    web.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(IngestFastPath)  # added last: runs first
    return app
