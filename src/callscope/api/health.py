"""Liveness and readiness probes."""

import asyncio
from typing import Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from callscope.api.deps import ResourcesDep
from callscope.api.problems import PROBLEM_JSON, problem_body

router = APIRouter(tags=["operations"])

_DB_CHECK_TIMEOUT_S: Final = 2.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, schema at head, not draining",
    responses={503: {"description": "Not ready; `checks` says why."}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    checks = {"database": "ok", "schema": "ok", "draining": "no"}
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT_S), resources.engine.connect() as conn:
            revision = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
        if revision != resources.head_revision:
            checks["schema"] = f"at {revision}, expected {resources.head_revision}"
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["schema"] = "unknown"
    if resources.draining:
        checks["draining"] = "yes"
    if checks == {"database": "ok", "schema": "ok", "draining": "no"}:
        return JSONResponse({"status": "ready", "checks": checks})
    body = problem_body(
        code="not_ready",
        status=503,
        detail="this instance cannot serve requests now; see checks",
        instance="/readyz",
        checks=checks,
    )
    return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)
