"""Gauges of the whole system, refreshed by a cheap periodic count: calls by state (API
processes) and AI jobs by status (workers). Each process that runs one exports the same
figure, so dashboards take `max` over processes."""

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from callscope import metrics
from callscope.calls.states import CallState
from callscope.jobs.queue import PROCESS_CALL

# The metric's `status` for each pgqueuer status: a picked job is one a worker is running.
JOB_STATUSES: Final = {"queued": "queued", "picked": "running"}

# An index-only scan of ix_calls_state_call_id.
_CALLS_BY_STATE: Final = text("SELECT state, count(*) AS n FROM calls GROUP BY state")
_JOBS_BY_STATUS: Final = text(
    "SELECT status::text AS status, count(*) AS n FROM pgqueuer "
    "WHERE entrypoint = :entrypoint GROUP BY status"
)


async def count_calls(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        result = await conn.execute(_CALLS_BY_STATE)
        counted: dict[str, int] = {row.state: row.n for row in result}
    for state in CallState:
        metrics.CALLS.labels(state.value).set(counted.get(state.value, 0))


async def count_jobs(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        rows = await conn.execute(_JOBS_BY_STATUS, {"entrypoint": PROCESS_CALL})
        counted: dict[str, int] = {row.status: row.n for row in rows}
    for queue_status, status in JOB_STATUSES.items():
        metrics.AI_JOBS.labels(status).set(counted.get(queue_status, 0))
