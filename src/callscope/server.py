"""Run an ASGI app under uvicorn with callscope's process settings (one place, so the
benchmark's baseline runs under exactly the same ones)."""

import uvicorn
from starlette.types import ASGIApp

from callscope.runtime import freeze_startup_objects


def serve(app: ASGIApp, *, host: str, port: int, log_level: str, access_log: bool) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    freeze_startup_objects()
    server.run()
