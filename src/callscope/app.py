"""create_app(settings): routes, error rendering, and a lifespan that opens the process."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from callscope import __version__
from callscope.ai.ports import AIProvider
from callscope.api import health
from callscope.api.bodies import JsonBodies
from callscope.api.ingest_fast_path import IngestFastPath
from callscope.api.openapi import install_openapi
from callscope.api.problems import install_error_handlers
from callscope.api.request_context import RequestContext
from callscope.api.request_spans import RequestSpans
from callscope.api.v1 import calls, media, stream
from callscope.auth.tokens import TokenChecker
from callscope.process import open_process
from callscope.realtime import ws
from callscope.settings import Settings
from callscope.web import routes as web

DESCRIPTION = """
callscope stores live call audio packets durably in PostgreSQL, tracks every call through
IN_PROGRESS → COMPLETED → PROCESSING_AI → ARCHIVED (or FAILED), and answers supervisors.

Authenticate with `Authorization: Bearer <token>`: ingest tokens post packets and complete
calls; supervisor tokens read calls. Every error is `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: Settings, *, worker: bool = False, provider: AIProvider | None = None
) -> FastAPI:
    """The ASGI app for these settings (`settings.database_url` must be set); with `worker`,
    the same process also runs the AI worker (`callscope run`), with `provider` if given."""
    settings.require_database_url()
    tokens = TokenChecker(
        ingest=[t.get_secret_value() for t in settings.ingest_tokens],
        supervisor=[t.get_secret_value() for t in settings.supervisor_tokens],
        disabled=settings.auth_disabled,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_process(settings, api=True, worker=worker, provider=provider) as process:
            app.state.process = process
            yield

    app = FastAPI(
        title="callscope",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        # callscope makes its own request spans (api/request_spans.py) and metrics: FastAPI's
        # native OpenTelemetry would add a second server span to each request once a global
        # provider is set, and its per-request check of the global providers costs ~2.5 µs.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.tokens = tokens
    install_error_handlers(app)
    install_openapi(app, settings)
    app.include_router(health.router)
    app.include_router(stream.router, prefix="/v1")
    app.include_router(calls.router, prefix="/v1")
    app.include_router(media.router)
    app.include_router(ws.router)
    web.install(app)
    app.add_middleware(JsonBodies, max_bytes=settings.max_body_bytes)
    app.add_middleware(IngestFastPath)
    app.add_middleware(RequestContext)
    app.add_middleware(RequestSpans)  # added last: runs first
    return app
