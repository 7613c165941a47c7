"""AI processing use-cases, one transaction each: start a job run, record attempts and
results, archive or fail the call, re-drive a failed one.

An attempt row is committed before the provider is called, so a worker killed mid-call
still spends the call's budget: the next run marks it abandoned and counts it. Each run
claims the call with a fresh token (`calls.ai_run`); every later write of the run checks it,
so a run whose job was re-picked elsewhere (its worker looked dead) stops writing.
"""

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.ai.errors import ProviderRejected
from callscope.ai.ports import CallAudio, Segment, Sentiment, Transcript
from callscope.ai.redaction import redact
from callscope.audio.reassembly import AudioTooLong
from callscope.calls.audio import stored_audio
from callscope.calls.models import AiAttemptRow, CallRow
from callscope.calls.ports import AiJobQueue
from callscope.calls.read_model import call_sentiment, merged_transcript
from callscope.calls.repository import CallRepository, call_transaction
from callscope.calls.states import CallState
from callscope.calls.transitions import move
from callscope.calls.vocabulary import AiStep, AttemptOutcome, EventType, Track
from callscope.errors import AudioPruned, CallNotFound, InvalidTransition
from callscope.metrics import AI_JOB_WAIT_SECONDS
from callscope.pipeline.repository import AiRepository


class RunSuperseded(Exception):
    """Another run owns the call now (or it left PROCESSING_AI): stop without writing."""


@dataclass(frozen=True, slots=True)
class Work:
    """What one job run has to do for a call: each track transcribed, then scored."""

    call_id: str
    run: uuid.UUID
    epoch: int
    attempts_used: int
    budget: int  # provider calls the call may spend in this epoch
    tracks: tuple[Track, ...]  # the call's tracks with audio, inbound first
    transcripts: Mapping[Track, Transcript]  # tracks already transcribed
    scored: frozenset[Track]  # tracks whose sentiment is stored


@dataclass(frozen=True, slots=True)
class AttemptRef:
    id: int
    number: int
    track: Track


class PipelineService:
    """`max_attempts` is the budget per track: a call with both sides may spend twice as many
    provider calls (its steps are twice as many). With `redaction`, transcripts are redacted
    before they are stored (`ai/redaction.py`): what is stored is all the archive event, the
    live feed and the API ever see."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        jobs: AiJobQueue,
        *,
        max_attempts: int,
        redaction: bool = True,
    ) -> None:
        self._session_factory = session_factory
        self._jobs = jobs
        self.max_attempts = max_attempts
        self._redaction = redaction

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[tuple[CallRepository, AiRepository]]:
        async with call_transaction(self._session_factory) as calls:
            yield calls, AiRepository(calls.session)

    async def begin(self, call_id: str) -> Work | None:
        """Claim the call for this run; None when there is nothing (left) to do."""
        async with self._unit_of_work() as (calls, ai):
            row = await calls.lock(call_id)
            if row is None:
                return None
            if row.state == CallState.COMPLETED:
                _job_started(calls, row)
            elif row.state != CallState.PROCESSING_AI:
                return None  # archived, failed (re-drive queues a new job) or still live
            row.ai_run = uuid.uuid4()
            for lost in await ai.abandon_unfinished(call_id, row.ai_epoch):
                row.ai_last_error = lost.error
                _record_attempt_event(calls, lost)
            tracks = tuple(t.track for t in await calls.tracks(call_id)) or (Track.inbound,)
            used = len(await ai.attempts(call_id, row.ai_epoch))
            budget = self.max_attempts * len(tracks)
            if used >= budget:
                _fail(calls, row, used)
                return None
            return Work(
                call_id=call_id,
                run=row.ai_run,
                epoch=row.ai_epoch,
                attempts_used=used,
                budget=budget,
                tracks=tracks,
                transcripts={
                    t.track: _transcript(t.text, t.segments)
                    for t in await calls.transcripts(call_id)
                },
                scored=frozenset(s.track for s in await calls.sentiments(call_id)),
            )

    async def audio(self, call_id: str, track: Track) -> CallAudio:
        """One track's audio as 16-bit PCM, missing packets as silence."""
        async with self._unit_of_work() as (calls, _):
            stored = await stored_audio(calls, call_id)
        try:
            pcm16 = await stored.pcm16(track)
        except AudioTooLong as exc:
            raise ProviderRejected(str(exc)) from exc  # no retry can help: the call FAILS
        return CallAudio(pcm16, stored.audio_format.sample_rate)

    async def start_attempt(self, work: Work, step: AiStep, track: Track) -> AttemptRef:
        async with self._unit_of_work() as (calls, ai):
            await _owned(calls, work)
            row = await ai.start_attempt(work.call_id, work.epoch, step, track)
            return AttemptRef(id=row.id, number=row.attempt, track=track)

    async def record_failure(
        self, work: Work, ref: AttemptRef, error: str, duration_s: float, *, permanent: bool
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            call = await _owned(calls, work)
            attempt = await ai.attempt(work.call_id, ref.id)
            attempt.outcome = AttemptOutcome.rejected if permanent else AttemptOutcome.failed
            attempt.error = error
            attempt.duration_s = duration_s
            call.ai_last_error = error
            _record_attempt_event(calls, attempt)

    async def record_transcript(
        self, work: Work, ref: AttemptRef, transcript: Transcript, duration_s: float
    ) -> None:
        stored = redact(transcript) if self._redaction else transcript
        async with self._unit_of_work() as (calls, ai):
            await _succeed(calls, ai, work, ref, duration_s)
            await ai.save_transcript(work.call_id, ref.track, stored)

    async def record_sentiment(
        self, work: Work, ref: AttemptRef, sentiment: Sentiment, duration_s: float
    ) -> None:
        async with self._unit_of_work() as (calls, ai):
            await _succeed(calls, ai, work, ref, duration_s)
            await ai.save_sentiment(work.call_id, ref.track, sentiment)

    async def archive(self, work: Work) -> None:
        async with self._unit_of_work() as (calls, _):
            row = await _owned(calls, work)
            transcript = merged_transcript(
                await calls.transcripts(work.call_id), tracks=work.tracks
            )
            sentiment = call_sentiment(await calls.sentiments(work.call_id), tracks=work.tracks)
            result: dict[str, Any] = {
                "transcript": transcript.text if transcript else None,
                "sentiment": {
                    "label": sentiment.label,
                    "score": sentiment.score,
                    "trend": list(sentiment.trend),
                }
                if sentiment
                else None,
            }
            row.ai_last_error = None
            move(calls, row, CallState.ARCHIVED, {"reason": "ai_done"})
            calls.append_event(work.call_id, EventType.archived, data=result)

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
                _job_started(calls, row)
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
            if row.audio_pruned_at is not None:
                raise AudioPruned(
                    f"call {call_id}'s audio was dropped by the retention on "
                    f"{row.audio_pruned_at.isoformat()}: there is nothing to transcribe again"
                )
            row.ai_epoch += 1
            row.ai_run = None
            move(calls, row, CallState.PROCESSING_AI, {"reason": "redrive", "epoch": row.ai_epoch})
            await self._jobs.enqueue(calls.session, [(call_id, row.ai_epoch)])


def _job_started(calls: CallRepository, row: CallRow) -> None:
    """COMPLETED → PROCESSING_AI on a job's first run, its wait observed in
    `callscope_ai_job_wait_seconds`."""
    move(calls, row, CallState.PROCESSING_AI, {"reason": "job_started"})
    if row.completed_at is not None:
        waited = (datetime.now(UTC) - row.completed_at).total_seconds()
        AI_JOB_WAIT_SECONDS.observe(max(0.0, waited))


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
    attempt = await ai.attempt(work.call_id, ref.id)
    attempt.outcome = AttemptOutcome.ok
    attempt.duration_s = duration
    _record_attempt_event(calls, attempt)


def _fail(calls: CallRepository, row: CallRow, used: int) -> None:
    row.ai_run = None
    outcome = {"attempts": used, "last_error": row.ai_last_error}
    move(calls, row, CallState.FAILED, {"reason": "ai_failed", **outcome})
    calls.append_event(row.call_id, EventType.failed, data=outcome)


def _record_attempt_event(calls: CallRepository, attempt: AiAttemptRow) -> None:
    calls.append_event(
        attempt.call_id,
        EventType.ai_attempt,
        data={
            "epoch": attempt.epoch,
            "attempt": attempt.attempt,
            "step": attempt.step,
            "track": attempt.track,
            "outcome": attempt.outcome,
            "error": attempt.error,
            "duration_s": attempt.duration_s,
        },
    )
