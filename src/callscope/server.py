"""Run an ASGI app under uvicorn with callscope's process settings (one place, so the
benchmark's baseline runs under exactly the same ones), optionally with the AI worker in the
same event loop (`callscope run`)."""

import asyncio

import uvicorn
from starlette.types import ASGIApp

from callscope.jobs.worker import run_worker
from callscope.logging import redact_tokens_in_server_logs
from callscope.runtime import freeze_startup_objects
from callscope.settings import Settings


def serve(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    worker: Settings | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; with `worker` settings, also process AI jobs, and drain
    them after the HTTP server has stopped."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    redact_tokens_in_server_logs()  # after uvicorn.Config, which sets up uvicorn's loggers
    server = uvicorn.Server(config)
    freeze_startup_objects()
    if worker is None:
        server.run()
        return
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve_with_worker(server, worker))


async def _serve_with_worker(server: uvicorn.Server, settings: Settings) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop), name="ai-worker")
    try:
        await server.serve()
    finally:
        stop.set()
        await worker
