"""Liveness and readiness probes, and the metrics scrape."""

import asyncio
import hmac
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from callscope import metrics
from callscope.api.deps import ProcessDep
from callscope.api.problems import PROBLEM_JSON, problem_body, problem_responses
from callscope.errors import NotAuthenticated
from callscope.metrics import CONTENT_TYPE
from callscope.process import Process

router = APIRouter(tags=["operations"])

_DB_CHECK_TIMEOUT_S: Final = 2.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, schema at head, background tasks running, not draining",
    responses=problem_responses({503: "Not ready; `checks` says why, `tasks` which task fails."}),
)
async def readyz(process: ProcessDep) -> JSONResponse:
    checks = {"database": "ok", "schema": "ok", "tasks": "ok", "draining": "no"}
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT_S), process.engine.connect() as conn:
            revision = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
        if revision != process.head_revision:
            checks["schema"] = f"at {revision}, expected {process.head_revision}"
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["schema"] = "unknown"
    failing = process.supervisor.failing()
    if failing:
        checks["tasks"] = "; ".join(f"{name} {what}" for name, what in sorted(failing.items()))
    if process.draining:
        checks["draining"] = "yes"
    tasks = _tasks(process)
    if checks == {"database": "ok", "schema": "ok", "tasks": "ok", "draining": "no"}:
        return JSONResponse({"status": "ready", "checks": checks, "tasks": tasks})
    body = problem_body(
        code="not_ready",
        status=503,
        detail="this instance cannot serve requests now; see checks",
        instance="/readyz",
        checks=checks,
        tasks=tasks,
    )
    return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)


def _tasks(process: Process) -> dict[str, Any]:
    return {
        name: {"status": status.describe(), "restarts": status.restarts}
        for name, status in sorted(process.supervisor.statuses.items())
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process (text exposition format)",
    response_class=PlainTextResponse,
    responses=problem_responses(
        {
            401: "CALLSCOPE_METRICS_TOKEN is set and the request does not carry it.",
            404: "Metrics are switched off (CALLSCOPE_METRICS_ENABLED=false).",
        }
    ),
)
async def metrics_scrape(process: ProcessDep, request: Request) -> Response:
    if not metrics.ENABLED:
        raise HTTPException(404, "metrics are switched off (CALLSCOPE_METRICS_ENABLED=false)")
    expected = process.settings.metrics_token
    if expected is not None:
        presented = request.headers.get("authorization", "").encode()
        wanted = f"Bearer {expected.get_secret_value()}".encode()
        if not hmac.compare_digest(presented, wanted):
            raise NotAuthenticated("GET /metrics needs the metrics bearer token")
    return Response(metrics.render(), media_type=CONTENT_TYPE)
