"""pgqueuer wiring: enqueue the AI job inside the caller's transaction."""

from collections.abc import Sequence
from typing import Final

from pgqueuer import AsyncpgDriver, Queries
from sqlalchemy.ext.asyncio import AsyncSession

PROCESS_CALL: Final = "process_call"


async def enqueue_ai_jobs(session: AsyncSession, call_ids: Sequence[str]) -> None:
    """Queue one AI job per call on the session's own connection and transaction: a rollback
    drops the jobs with the state change, a commit keeps both. A call that already has a
    queued or running job gets no second one (pgqueuer's dedupe key)."""
    if not call_ids:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    queries = Queries(AsyncpgDriver(raw.driver_connection))  # type: ignore[arg-type]  # asyncpg under SQLAlchemy's adapter
    await queries.enqueue(
        [PROCESS_CALL] * len(call_ids),
        [call_id.encode() for call_id in call_ids],
        [0] * len(call_ids),
        dedupe_key=list(call_ids),
        on_conflict="skip",
    )
