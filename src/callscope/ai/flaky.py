"""Failure injection around any provider: latency and 503-like failures, as the brief's API."""

import asyncio
from collections.abc import Awaitable, Callable
from random import Random

from callscope.ai.errors import ProviderUnavailable
from callscope.ai.ports import AIProvider, CallAudio, Sentiment, Transcript


class Flaky:
    """Wraps a provider: every call waits uniform(latency_min, latency_max) seconds, then fails
    with ProviderUnavailable with probability `failure_rate`. Seeded, so runs repeat."""

    def __init__(
        self,
        inner: AIProvider,
        *,
        failure_rate: float,
        latency_min: float,
        latency_max: float,
        rng: Random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._failure_rate = failure_rate
        self._latency = (latency_min, max(latency_min, latency_max))
        self._rng = rng
        self._sleep = sleep
        self.failures_injected = 0

    async def _maybe_fail(self, what: str) -> None:
        # Both draws before the sleep: the sequence of outcomes follows the order of the calls,
        # however their sleeps overlap.
        latency = self._rng.uniform(*self._latency)
        fails = self._rng.random() < self._failure_rate
        await self._sleep(latency)
        if fails:
            self.failures_injected += 1
            raise ProviderUnavailable(f"503 Service Unavailable (injected) during {what}")

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        await self._maybe_fail("transcribe")
        return await self._inner.transcribe(call_id, audio)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        await self._maybe_fail("analyze")
        return await self._inner.analyze(transcript)
