"""process_call: transcribe → score sentiment → archive, retrying as the budget allows.

Short retries happen in-process (stamina, jittered); when they are spent the job is handed
back to the queue with a longer full-jitter backoff (pgqueuer's RetryRequested), so no worker
sleeps for minutes. A step that succeeded is stored at once and never redone. Every provider
call spends one attempt of the call's budget, whatever happens to it.
"""

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from random import Random
from typing import TypeVar

import stamina
import structlog
from pgqueuer import RetryRequested

from callscope.ai.errors import ProviderRejected, ProviderUnavailable
from callscope.ai.ports import AIProvider, Transcript
from callscope.calls.processing import AttemptRef, ProcessingService, RunSuperseded, Work
from callscope.jobs.retry import attempts_left, requeue_delay
from callscope.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")


class _CallFinished(Exception):
    """The call was failed for good inside this run; nothing to retry."""


class CallProcessor:
    def __init__(
        self,
        processing: ProcessingService,
        provider: AIProvider,
        settings: Settings,
        rng: Random,
    ) -> None:
        self._processing = processing
        self._provider = provider
        self._settings = settings
        self._rng = rng

    async def run(self, call_id: str) -> None:
        """One job run. Raises RetryRequested when the call should be tried again later."""
        work = await self._processing.begin(call_id)
        if work is None:
            return
        try:
            await self._steps(work)
            await self._processing.archive(work)
        except _CallFinished:
            return
        except RunSuperseded:
            log.warning("ai_run_superseded", call_id=call_id)
            return
        log.info("call_archived", call_id=call_id)

    async def _steps(self, work: Work) -> None:
        used = work.attempts_used
        transcript = work.transcript
        if transcript is None:
            transcribed, used = await self._step(
                work,
                "transcribe",
                used,
                lambda: self._transcribe(work.call_id),
                self._processing.record_transcript,
            )
            transcript = transcribed
        if not work.has_sentiment:
            spoken = transcript
            await self._step(
                work,
                "sentiment",
                used,
                lambda: self._provider.analyze(spoken),
                self._processing.record_sentiment,
            )

    async def _transcribe(self, call_id: str) -> Transcript:
        """The call's audio (a call too long to reassemble is rejected), transcribed."""
        audio = await self._processing.audio(call_id)
        return await self._provider.transcribe(call_id, audio)

    async def _step(
        self,
        work: Work,
        step: str,
        used: int,
        call: Callable[[], Awaitable[T]],
        record: Callable[[Work, AttemptRef, T, float], Awaitable[None]],
    ) -> tuple[T, int]:
        budget = self._processing.max_attempts
        left = attempts_left(used, budget)
        if left == 0:
            await self._processing.fail(work)
            raise _CallFinished
        wait = self._settings.ai_inline_wait
        try:
            for attempt in stamina.retry_context(
                on=ProviderUnavailable,
                attempts=min(self._settings.ai_inline_retries + 1, left),
                wait_initial=wait,
                wait_max=10 * wait,
                wait_jitter=wait,
                timeout=None,
            ):
                with attempt:
                    ref = await self._processing.start_attempt(work, step)
                    used += 1
                    result, duration = await self._timed(work, ref, call)
                    await record(work, ref, result, duration)
                    return result, used
        except ProviderRejected:
            await self._processing.fail(work)
            raise _CallFinished from None
        except ProviderUnavailable as exc:
            if used >= budget:
                await self._processing.fail(work)
                raise _CallFinished from None
            delay = requeue_delay(
                used,
                self._rng,
                base_s=self._settings.ai_retry_base,
                cap_s=self._settings.ai_retry_cap,
            )
            raise RetryRequested(delay=timedelta(seconds=delay), reason=str(exc)) from exc
        raise AssertionError("unreachable: stamina either returned or raised")

    async def _timed(
        self, work: Work, ref: AttemptRef, call: Callable[[], Awaitable[T]]
    ) -> tuple[T, float]:
        """Call the provider; any failure is recorded on the attempt before it propagates.
        An unexpected one (a malformed answer) counts as retryable: the budget bounds it."""
        started = time.monotonic()
        try:
            result = await call()
        except ProviderRejected as exc:
            await self._processing.record_failure(
                work, ref, str(exc), time.monotonic() - started, permanent=True
            )
            raise
        except Exception as exc:
            error = str(exc) if isinstance(exc, ProviderUnavailable) else repr(exc)
            await self._processing.record_failure(
                work, ref, error, time.monotonic() - started, permanent=False
            )
            if isinstance(exc, ProviderUnavailable):
                raise
            raise ProviderUnavailable(error) from exc
        return result, time.monotonic() - started
