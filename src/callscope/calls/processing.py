"""AI processing use-cases, one transaction each: start a job run, record attempts and
results, archive or fail the call, re-drive a failed one.

An attempt row is committed before the provider is called, so a worker killed mid-call
still spends the call's budget: the next run marks it abandoned and counts it.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.ai.ports import Segment, Sentiment, Transcript
from callscope.calls.ai_repository import AiRepository
from callscope.calls.models import AiAttemptRow
from callscope.calls.repository import CallRepository
from callscope.calls.states import CallState
from callscope.calls.transitions import move
from callscope.errors import CallNotFound, InvalidTransition
from callscope.jobs.queue import enqueue_ai_jobs


@dataclass(frozen=True, slots=True)
class Work:
    """What one job run has to do for a call."""

    call_id: str
    epoch: int
    attempts_used: int
    transcript: Transcript | None
    has_sentiment: bool


@dataclass(frozen=True, slots=True)
class AttemptRef:
    id: int
    call_id: str
    number: int
    step: str


class ProcessingService:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, max_attempts: int
    ) -> None:
        self._session_factory = session_factory
        self._max_attempts = max_attempts

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[tuple[CallRepository, AiRepository]]:
        async with self._session_factory() as session, session.begin():
            yield CallRepository(session), AiRepository(session)

    async def begin(self, call_id: str) -> Work | None:
        """Claim the call for this run; None when there is nothing (left) to do."""
        async with self._unit_of_work() as (calls, ai):
            row = await calls.lock(call_id)
            if row is None:
                return None
            if row.state == CallState.COMPLETED:
                move(calls, row, CallState.PROCESSING_AI, {"reason": "job_started"})
            elif row.state != CallState.PROCESSING_AI:
                return None  # archived, failed (re-drive queues a new job) or still live
            for lost in await ai.abandon_unfinished(call_id, row.ai_epoch):
                row.ai_last_error = lost.error
                _record_attempt_event(calls, lost)
            used = len(await ai.attempts(call_id, row.ai_epoch))
            if used >= self._max_attempts:
                _fail(calls, row, used)
                return None
            transcript = await ai.transcript(call_id)
            return Work(
                call_id=call_id,
                epoch=row.ai_epoch,
                attempts_used=used,
                transcript=_transcript(transcript.text, transcript.segments)
                if transcript
                else None,
                has_sentiment=await ai.sentiment(call_id) is not None,
            )

    async def audio(self, call_id: str) -> bytes:
        async with self._unit_of_work() as (_, ai):
            return await ai.audio(call_id)

    async def start_attempt(self, work: Work, step: str) -> AttemptRef:
        async with self._unit_of_work() as (_, ai):
            row = await ai.start_attempt(work.call_id, work.epoch, step)
            return AttemptRef(id=row.id, call_id=row.call_id, number=row.attempt, step=step)

    async def record_failure(
        self, ref: AttemptRef, error: str, duration_s: float, *, permanent: bool
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            attempt = await ai.session.get_one(AiAttemptRow, ref.id)
            attempt.outcome = "rejected" if permanent else "failed"
            attempt.error = error
            attempt.duration_s = duration_s
            call = await calls.lock(ref.call_id)
            if call is not None:
                call.ai_last_error = error
            _record_attempt_event(calls, attempt)

    async def record_transcript(
        self, ref: AttemptRef, transcript: Transcript, duration_s: float
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            await _succeed(calls, ai, ref, duration_s)
            await ai.save_transcript(ref.call_id, transcript)

    async def record_sentiment(
        self, ref: AttemptRef, sentiment: Sentiment, duration_s: float
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            await _succeed(calls, ai, ref, duration_s)
            await ai.save_sentiment(ref.call_id, sentiment)

    async def archive(self, call_id: str) -> None:
        async with self._unit_of_work() as (calls, ai):
            row = await calls.lock(call_id)
            if row is None or row.state != CallState.PROCESSING_AI:
                return
            sentiment = await ai.sentiment(call_id)
            data: dict[str, Any] = {"reason": "ai_done"}
            if sentiment is not None:
                data["sentiment"] = {"label": sentiment.label, "score": sentiment.score}
            row.ai_last_error = None
            move(calls, row, CallState.ARCHIVED, data)

    async def fail(self, call_id: str) -> None:
        """PROCESSING_AI → FAILED with the last error (budget spent or input rejected)."""
        async with self._unit_of_work() as (calls, ai):
            row = await calls.lock(call_id)
            if row is not None and row.state == CallState.PROCESSING_AI:
                _fail(calls, row, len(await ai.attempts(call_id, row.ai_epoch)))

    async def redrive(self, call_id: str) -> None:
        """FAILED → PROCESSING_AI with a fresh attempt budget, and a new job."""
        async with self._unit_of_work() as (calls, _):
            row = await calls.lock(call_id)
            if row is None:
                raise CallNotFound(f"no call {call_id}")
            if row.state != CallState.FAILED:
                raise InvalidTransition(
                    f"only FAILED calls can be re-driven; call {call_id} is {row.state}",
                    from_state=row.state,
                    to_state=CallState.PROCESSING_AI,
                )
            row.ai_epoch += 1
            move(calls, row, CallState.PROCESSING_AI, {"reason": "redrive", "epoch": row.ai_epoch})
            await enqueue_ai_jobs(calls.session, [call_id])


def _transcript(text: str, segments: list[dict[str, Any]]) -> Transcript:
    return Transcript(text=text, segments=tuple(Segment(**s) for s in segments))


async def _succeed(
    calls: CallRepository, ai: AiRepository, ref: AttemptRef, duration: float
) -> None:
    attempt = await ai.session.get_one(AiAttemptRow, ref.id)
    attempt.outcome = "ok"
    attempt.duration_s = duration
    _record_attempt_event(calls, attempt)


def _fail(calls: CallRepository, row: Any, used: int) -> None:
    move(
        calls,
        row,
        CallState.FAILED,
        {"reason": "ai_failed", "attempts": used, "last_error": row.ai_last_error},
    )


def _record_attempt_event(calls: CallRepository, attempt: AiAttemptRow) -> None:
    calls.append_event(
        attempt.call_id,
        "call.ai_attempt",
        from_state=None,
        to_state=None,
        data={
            "epoch": attempt.epoch,
            "attempt": attempt.attempt,
            "step": attempt.step,
            "outcome": attempt.outcome,
            "error": attempt.error,
            "duration_s": attempt.duration_s,
        },
    )
