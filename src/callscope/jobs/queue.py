"""pgqueuer wiring: enqueue the AI job inside the caller's transaction, find calls whose job
was lost. The only module that knows pgqueuer's tables."""

from collections.abc import Sequence
from typing import Final

from pgqueuer import AsyncpgDriver, Queries
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from callscope import tracing
from callscope.calls.states import CallState

PROCESS_CALL: Final = "process_call"

_ORPHANS: Final = text(
    """
    SELECT c.call_id, c.ai_epoch FROM calls AS c
    WHERE c.state IN (:waiting, :processing)
      AND c.updated_at < now() - make_interval(secs => :grace)
      AND NOT EXISTS (
          SELECT 1 FROM pgqueuer AS q
          WHERE q.dedupe_key = c.call_id || ':' || c.ai_epoch
            AND q.status IN ('queued', 'picked')
      )
    ORDER BY c.call_id
    LIMIT :limit
    FOR UPDATE OF c SKIP LOCKED
    """
)


def job_key(call_id: str, epoch: int) -> str:
    """One job per call and budget epoch: a re-drive never collides with the job it replaces."""
    return f"{call_id}:{epoch}"


class PgQueuerJobs:
    """The `calls.ports.AiJobQueue` of this service: pgqueuer's table, same transaction."""

    async def enqueue(self, session: AsyncSession, calls: Sequence[tuple[str, int]]) -> None:
        """Queue one AI job per (call_id, epoch) on the session's own connection: a rollback
        drops the jobs with the state change, a commit keeps both. A job already queued or
        running for the same call and epoch is not queued twice."""
        if not calls:
            return
        # Make sure the transaction has begun on the wire before pgqueuer uses the raw connection.
        await session.execute(text("SELECT 1"))
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        queries = Queries(AsyncpgDriver(raw.driver_connection))  # type: ignore[arg-type]  # asyncpg under SQLAlchemy's adapter
        await queries.enqueue(
            [PROCESS_CALL] * len(calls),
            [call_id.encode() for call_id, _ in calls],
            [0] * len(calls),
            dedupe_key=[job_key(call_id, epoch) for call_id, epoch in calls],
            # The job's run continues the trace of the request that queued it.
            headers=[tracing.outgoing_headers()] * len(calls),
            on_conflict="skip",
        )

    async def requeue_orphans(
        self, session: AsyncSession, *, grace_s: float, limit: int = 100
    ) -> list[str]:
        """Queue a job for calls waiting on AI work that have none (a job lost to an operator's
        hand, a bug, a restored backup): no call waits forever. Returns their ids."""
        parameters = {
            "waiting": CallState.COMPLETED.value,
            "processing": CallState.PROCESSING_AI.value,
            "grace": grace_s,
            "limit": limit,
        }
        rows = (await session.execute(_ORPHANS, parameters)).all()
        await self.enqueue(session, [(row.call_id, row.ai_epoch) for row in rows])
        return [row.call_id for row in rows]
