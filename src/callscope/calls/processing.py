"""AI processing use-cases, one transaction each: start a job run, record attempts and
results, archive or fail the call, re-drive a failed one.

An attempt row is committed before the provider is called, so a worker killed mid-call
still spends the call's budget: the next run marks it abandoned and counts it. Each run
claims the call with a fresh token (`calls.ai_run`); every later write of the run checks it,
so a run whose job was re-picked elsewhere (its worker looked dead) stops writing.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.ai.errors import ProviderRejected
from callscope.ai.ports import CallAudio, Segment, Sentiment, Transcript
from callscope.audio.reassembly import AudioTooLong
from callscope.calls.ai_repository import AiRepository
from callscope.calls.audio import stored_audio
from callscope.calls.models import AiAttemptRow, CallRow
from callscope.calls.repository import CallRepository
from callscope.calls.states import CallState
from callscope.calls.transitions import move
from callscope.errors import CallNotFound, InvalidTransition
from callscope.jobs.queue import enqueue_ai_jobs


class RunSuperseded(Exception):
    """Another run owns the call now (or it left PROCESSING_AI): stop without writing."""


@dataclass(frozen=True, slots=True)
class Work:
    """What one job run has to do for a call."""

    call_id: str
    run: uuid.UUID
    epoch: int
    attempts_used: int
    transcript: Transcript | None
    has_sentiment: bool


@dataclass(frozen=True, slots=True)
class AttemptRef:
    id: int
    number: int


class ProcessingService:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, max_attempts: int
    ) -> None:
        self._session_factory = session_factory
        self.max_attempts = max_attempts

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[tuple[CallRepository, AiRepository]]:
        async with self._session_factory() as session, session.begin():
            calls = CallRepository(session)
            yield calls, AiRepository(session)
            await calls.write_events()

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
            row.ai_run = uuid.uuid4()
            for lost in await ai.abandon_unfinished(call_id, row.ai_epoch):
                row.ai_last_error = lost.error
                _record_attempt_event(calls, lost)
            used = len(await ai.attempts(call_id, row.ai_epoch))
            if used >= self.max_attempts:
                _fail(calls, row, used)
                return None
            transcript = await ai.transcript(call_id)
            return Work(
                call_id=call_id,
                run=row.ai_run,
                epoch=row.ai_epoch,
                attempts_used=used,
                transcript=_transcript(transcript.text, transcript.segments)
                if transcript
                else None,
                has_sentiment=await ai.sentiment(call_id) is not None,
            )

    async def audio(self, call_id: str) -> CallAudio:
        """The call's audio as 16-bit PCM, missing packets as silence."""
        async with self._unit_of_work() as (calls, _):
            stored = await stored_audio(calls, call_id)
        try:
            pcm16 = await stored.pcm16()
        except AudioTooLong as exc:
            raise ProviderRejected(str(exc)) from exc  # no retry can help: the call FAILS
        return CallAudio(pcm16, stored.audio_format.sample_rate)

    async def start_attempt(self, work: Work, step: str) -> AttemptRef:
        async with self._unit_of_work() as (calls, ai):
            await _owned(calls, work)
            row = await ai.start_attempt(work.call_id, work.epoch, step)
            return AttemptRef(id=row.id, number=row.attempt)

    async def record_failure(
        self, work: Work, ref: AttemptRef, error: str, duration_s: float, *, permanent: bool
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            call = await _owned(calls, work)
            attempt = await ai.session.get_one(AiAttemptRow, ref.id)
            attempt.outcome = "rejected" if permanent else "failed"
            attempt.error = error
            attempt.duration_s = duration_s
            call.ai_last_error = error
            _record_attempt_event(calls, attempt)

    async def record_transcript(
        self, work: Work, ref: AttemptRef, transcript: Transcript, duration_s: float
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            await _succeed(calls, ai, work, ref, duration_s)
            await ai.save_transcript(work.call_id, transcript)

    async def record_sentiment(
        self, work: Work, ref: AttemptRef, sentiment: Sentiment, duration_s: float
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            await _succeed(calls, ai, work, ref, duration_s)
            await ai.save_sentiment(work.call_id, sentiment)

    async def archive(self, work: Work) -> None:
        async with self._unit_of_work() as (calls, ai):
            row = await _owned(calls, work)
            transcript = await ai.transcript(work.call_id)
            sentiment = await ai.sentiment(work.call_id)
            result: dict[str, Any] = {
                "transcript": transcript.text if transcript else None,
                "sentiment": {"label": sentiment.label, "score": sentiment.score}
                if sentiment
                else None,
            }
            row.ai_last_error = None
            move(calls, row, CallState.ARCHIVED, {"reason": "ai_done"})
            calls.append_event(
                work.call_id, "call.archived", from_state=None, to_state=None, data=result
            )

    async def fail(self, work: Work) -> None:
        """PROCESSING_AI → FAILED with the last error (budget spent or input rejected)."""
        async with self._unit_of_work() as (calls, ai):
            row = await _owned(calls, work)
            _fail(calls, row, len(await ai.attempts(work.call_id, row.ai_epoch)))

    async def give_up(self, call_id: str, error: str) -> None:
        """FAILED after repeated errors outside any provider call (a job that keeps crashing)."""
        async with self._unit_of_work() as (calls, ai):
            row = await calls.lock(call_id)
            if row is None or row.state not in (CallState.COMPLETED, CallState.PROCESSING_AI):
                return
            if row.state == CallState.COMPLETED:
                move(calls, row, CallState.PROCESSING_AI, {"reason": "job_started"})
            row.ai_last_error = error
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
            row.ai_run = None
            move(calls, row, CallState.PROCESSING_AI, {"reason": "redrive", "epoch": row.ai_epoch})
            await enqueue_ai_jobs(calls.session, [(call_id, row.ai_epoch)])


async def _owned(calls: CallRepository, work: Work) -> CallRow:
    """The call row, locked, if this run still owns it."""
    row = await calls.lock(work.call_id)
    if row is None or row.ai_run != work.run or row.state != CallState.PROCESSING_AI:
        raise RunSuperseded(work.call_id)
    return row


def _transcript(text: str, segments: list[dict[str, Any]]) -> Transcript:
    return Transcript(text=text, segments=tuple(Segment(**s) for s in segments))


async def _succeed(
    calls: CallRepository, ai: AiRepository, work: Work, ref: AttemptRef, duration: float
) -> None:
    await _owned(calls, work)
    attempt = await ai.session.get_one(AiAttemptRow, ref.id)
    attempt.outcome = "ok"
    attempt.duration_s = duration
    _record_attempt_event(calls, attempt)


def _fail(calls: CallRepository, row: CallRow, used: int) -> None:
    row.ai_run = None
    outcome = {"attempts": used, "last_error": row.ai_last_error}
    move(calls, row, CallState.FAILED, {"reason": "ai_failed", **outcome})
    calls.append_event(row.call_id, "call.failed", from_state=None, to_state=None, data=outcome)


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
