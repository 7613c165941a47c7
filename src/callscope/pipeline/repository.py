"""SQL of AI processing: attempts and results."""

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callscope.ai.ports import Sentiment, Transcript
from callscope.calls.models import AiAttemptRow, SentimentRow, TranscriptRow
from callscope.calls.vocabulary import AiStep, AttemptOutcome, Track


class AiRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def attempts(self, call_id: str, epoch: int) -> Sequence[AiAttemptRow]:
        stmt = (
            select(AiAttemptRow)
            .where(AiAttemptRow.call_id == call_id, AiAttemptRow.epoch == epoch)
            .order_by(AiAttemptRow.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def attempt(self, call_id: str, attempt_id: int) -> AiAttemptRow:
        return await self.session.get_one(AiAttemptRow, (call_id, attempt_id))

    async def abandon_unfinished(self, call_id: str, epoch: int) -> Sequence[AiAttemptRow]:
        """Attempts a dead worker left open count as failed: they spent the budget."""
        stmt = (
            update(AiAttemptRow)
            .where(
                AiAttemptRow.call_id == call_id,
                AiAttemptRow.epoch == epoch,
                AiAttemptRow.outcome.is_(None),
            )
            .values(
                outcome=AttemptOutcome.abandoned, error="the worker stopped during this attempt"
            )
            .returning(AiAttemptRow)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def start_attempt(
        self, call_id: str, epoch: int, step: AiStep, track: Track
    ) -> AiAttemptRow:
        number = (
            select(func.coalesce(func.max(AiAttemptRow.attempt), 0) + 1)
            .where(AiAttemptRow.call_id == call_id, AiAttemptRow.epoch == epoch)
            .scalar_subquery()
        )
        stmt = (
            pg_insert(AiAttemptRow)
            .values(call_id=call_id, epoch=epoch, attempt=number, step=step, track=track)
            .returning(AiAttemptRow)
        )
        return (await self.session.execute(stmt)).scalar_one()

    async def save_transcript(self, call_id: str, track: Track, transcript: Transcript) -> None:
        segments: list[dict[str, Any]] = [asdict(s) for s in transcript.segments]
        stmt = (
            pg_insert(TranscriptRow)
            .values(call_id=call_id, track=track, text=transcript.text, segments=segments)
            .on_conflict_do_nothing(index_elements=[TranscriptRow.call_id, TranscriptRow.track])
        )
        await self.session.execute(stmt)

    async def save_sentiment(self, call_id: str, track: Track, sentiment: Sentiment) -> None:
        stmt = (
            pg_insert(SentimentRow)
            .values(
                call_id=call_id,
                track=track,
                label=sentiment.label,
                score=sentiment.score,
                trend=list(sentiment.trend),
            )
            .on_conflict_do_nothing(index_elements=[SentimentRow.call_id, SentimentRow.track])
        )
        await self.session.execute(stmt)
