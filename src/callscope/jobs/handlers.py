"""process_call: transcribe → score sentiment → archive, retrying as the budget allows.

A failed attempt is retried in-process after a short jittered wait (stamina). Under the
adaptive policy (the default) that goes on until the call's budget is spent, and every
provider call first passes the worker's circuit breaker (`ProviderGate`): an unlucky call is
retried within a second or two, and while the provider is down no call hammers it. Under the
backoff policy the quick retries are few, then the job is handed back to the queue with a
full-jitter exponential backoff (pgqueuer's RetryRequested). A step that succeeded is stored
at once and never redone. Every provider call spends one attempt of the call's budget,
whatever happens to it.
"""

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from random import Random
from typing import TypeVar

import stamina
import structlog
from pgqueuer import RetryRequested

from callscope import tracing
from callscope.ai.errors import ProviderRejected, ProviderUnavailable
from callscope.ai.ports import AIProvider, Transcript
from callscope.calls.vocabulary import AiStep, Track
from callscope.jobs.provider_gate import ProviderGate, WorkerStopping
from callscope.jobs.retry import attempts_left, requeue_delay
from callscope.metrics import AI_ATTEMPTS, AI_PROVIDER_SECONDS
from callscope.pipeline.service import AttemptRef, PipelineService, RunSuperseded, Work
from callscope.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

STOPPING_REQUEUE_DELAY = timedelta(seconds=1)  # a job handed back while the worker drains


class _CallFinished(Exception):
    """The call was failed for good inside this run; nothing to retry."""


class CallProcessor:
    def __init__(
        self,
        pipeline: PipelineService,
        provider: AIProvider,
        settings: Settings,
        rng: Random,
        gate: ProviderGate,
    ) -> None:
        self._pipeline = pipeline
        self._provider = provider
        self._settings = settings
        self._rng = rng
        self._gate = gate

    async def run(self, call_id: str) -> None:
        """One job run. Raises RetryRequested when the call should be tried again later."""
        work = await self._pipeline.begin(call_id)
        if work is None:
            return
        try:
            await self._steps(work)
            with tracing.span("call.archive"):
                await self._pipeline.archive(work)
        except _CallFinished:
            return
        except RunSuperseded:
            log.warning("ai_run_superseded", call_id=call_id)
            return
        log.info("call_archived", call_id=call_id)

    async def _steps(self, work: Work) -> None:
        """Each track transcribed, then each track scored; a step done is never redone."""
        used = work.attempts_used
        transcripts = dict(work.transcripts)
        for track in work.tracks:
            if track not in transcripts:
                transcripts[track], used = await self._step(
                    work,
                    step=AiStep.transcribe,
                    track=track,
                    used=used,
                    call=partial(self._transcribe, work.call_id, track),
                    record=self._pipeline.record_transcript,
                )
        for track in work.tracks:
            if track not in work.scored:
                _, used = await self._step(
                    work,
                    step=AiStep.sentiment,
                    track=track,
                    used=used,
                    call=partial(self._provider.analyze, transcripts[track]),
                    record=self._pipeline.record_sentiment,
                )

    async def _transcribe(self, call_id: str, track: Track) -> Transcript:
        """One track's audio (a call too long to reassemble is rejected), transcribed."""
        audio = await self._pipeline.audio(call_id, track)
        return await self._provider.transcribe(call_id, audio)

    async def _step(
        self,
        work: Work,
        *,
        step: AiStep,
        track: Track,
        used: int,
        call: Callable[[], Awaitable[T]],
        record: Callable[[Work, AttemptRef, T, float], Awaitable[None]],
    ) -> tuple[T, int]:
        budget = work.budget
        left = attempts_left(used, budget)
        if left == 0:
            await self._pipeline.fail(work)
            raise _CallFinished
        settings = self._settings
        quick = left if settings.ai_retry_policy == "adaptive" else settings.ai_inline_retries + 1
        wait = settings.ai_inline_wait
        try:
            async for attempt in stamina.retry_context(
                on=ProviderUnavailable,
                attempts=min(quick, left),
                wait_initial=wait,
                wait_max=10 * wait,
                wait_jitter=wait,
                timeout=None,
            ):
                with attempt:
                    async with self._gate.admitted() as report:
                        ref = await self._pipeline.start_attempt(work, step, track)
                        used += 1
                        result, duration = await self._timed(work, step, ref, call, report)
                    await record(work, ref, result, duration)
                    return result, used
        except ProviderRejected:
            await self._pipeline.fail(work)
            raise _CallFinished from None
        except WorkerStopping:
            raise RetryRequested(delay=STOPPING_REQUEUE_DELAY, reason="worker stopping") from None
        except ProviderUnavailable as exc:
            if used >= budget:
                await self._pipeline.fail(work)
                raise _CallFinished from None
            delay = requeue_delay(
                used, self._rng, base_s=settings.ai_retry_base, cap_s=settings.ai_retry_cap
            )
            raise RetryRequested(delay=timedelta(seconds=delay), reason=str(exc)) from exc
        raise AssertionError("unreachable: stamina either returned or raised")

    async def _timed(
        self,
        work: Work,
        step: AiStep,
        ref: AttemptRef,
        call: Callable[[], Awaitable[T]],
        report: Callable[[bool], None],
    ) -> tuple[T, float]:
        """Call the provider and `report` whether it failed; a failure is recorded on the
        attempt before it propagates. An unexpected one (a malformed answer) counts as
        retryable: the budget bounds it. A rejection is an answer: the provider is up."""
        started = time.monotonic()
        attributes = {"callscope.step": step.value, "callscope.track": ref.track.value}
        try:
            with tracing.span(f"ai.provider.{step.value}", attributes=attributes):
                result = await call()
        except ProviderRejected as exc:
            report(False)
            duration = _observed(step, "rejected", started)
            await self._pipeline.record_failure(work, ref, str(exc), duration, permanent=True)
            _log_failure(step, ref, str(exc), duration, permanent=True)
            raise
        except Exception as exc:
            report(True)
            duration = _observed(step, "failed", started)
            error = str(exc) if isinstance(exc, ProviderUnavailable) else repr(exc)
            await self._pipeline.record_failure(work, ref, error, duration, permanent=False)
            _log_failure(step, ref, error, duration, permanent=False)
            if isinstance(exc, ProviderUnavailable):
                raise
            raise ProviderUnavailable(error) from exc
        report(False)
        return result, _observed(step, "succeeded", started)


def _log_failure(
    step: AiStep, ref: AttemptRef, error: str, duration: float, *, permanent: bool
) -> None:
    """One line per failed provider attempt (the job's `call_id` and `job_id` are bound)."""
    log.warning(
        "ai_attempt_failed",
        step=step.value,
        track=ref.track.value,
        attempt=ref.number,
        error=error,
        permanent=permanent,
        duration_s=round(duration, 3),
    )


def _observed(step: AiStep, outcome: str, started: float) -> float:
    """The provider call's duration, counted in `callscope_ai_attempts_total` and
    `callscope_ai_provider_seconds`."""
    duration = time.monotonic() - started
    AI_ATTEMPTS.labels(step.value, outcome).inc()
    AI_PROVIDER_SECONDS.labels(step.value).observe(duration)
    return duration
