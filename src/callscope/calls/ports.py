"""What the call use-cases need from outside the calls domain, as small protocols."""

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class AiJobQueue(Protocol):
    """Where completed calls go to be transcribed (`jobs.queue.PgQueuerJobs`)."""

    async def enqueue(self, session: AsyncSession, calls: Sequence[tuple[str, int]]) -> None:
        """Queue one AI job per (call_id, epoch) in the session's own transaction: a rollback
        drops the jobs with the state change that needed them, a commit keeps both."""
        ...
