"""`GET /dashboard` and its static files; no build step, no server-side rendering."""

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC: Final = Path(__file__).parent / "static"
# The page loads only its own files and talks only to its own origin (API and WebSocket).
HEADERS: Final = {
    "Cache-Control": "no-cache",
    # media-src blob:: without a service worker the call view plays audio it fetched whole
    # with the token in a header.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "media-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install(app: FastAPI) -> None:
    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", headers=HEADERS)

    @app.get("/dashboard/audio-sw.js", include_in_schema=False)
    async def audio_service_worker() -> FileResponse:
        """The call view's players stream through it (see the file); it may control
        `/dashboard`, which is above its own folder."""
        headers = {**HEADERS, "Service-Worker-Allowed": "/dashboard"}
        return FileResponse(STATIC / "audio-sw.js", headers=headers, media_type="text/javascript")

    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
