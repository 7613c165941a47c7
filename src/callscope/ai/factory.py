"""Build the provider the settings ask for.

The local engines (Whisper, numpy) and the HTTP client are imported only when chosen: they
are a good part of a process's start-up time, and a worker loads them after the API is up.
"""

import asyncio
from contextlib import AsyncExitStack
from random import Random
from typing import TYPE_CHECKING, Final

from callscope.ai.flaky import Flaky
from callscope.ai.mock import MockProvider
from callscope.ai.ports import AIProvider
from callscope.settings import Settings

if TYPE_CHECKING:
    from callscope.ai.local import LocalProvider

# The brief's external API fails a quarter of its calls: the mock's failure rate unless set.
MOCK_FAILURE_RATE: Final = 0.25


def injected_failure_rate(settings: Settings) -> float:
    """The share of provider calls made to fail: CALLSCOPE_AI_FAILURE_RATE when set, else the
    brief's 25 % for the mock and none for the real engines. (`http` injects nothing here: the
    external API brings its own failures, and `callscope mock-ai` injects the mock's.)"""
    if settings.ai_provider == "http":
        return 0.0
    return _rate_for(settings, mock=settings.ai_provider == "mock")


def _rate_for(settings: Settings, *, mock: bool) -> float:
    if settings.ai_failure_rate is not None:
        return settings.ai_failure_rate
    return MOCK_FAILURE_RATE if mock else 0.0


def describe_provider(settings: Settings) -> str:
    """One line for `callscope run`'s start: which provider runs, and what is injected."""
    if settings.ai_provider == "http":
        return f"AI provider http at {settings.ai_http_url} (no failures injected here)"
    rate = injected_failure_rate(settings)
    injected = f"{rate:.0%} of calls fail (injected)" if rate else "no failures injected"
    return f"AI provider {settings.ai_provider}, {injected}"


def flaky_mock(settings: Settings) -> Flaky:
    """The mock behind the settings' failure injection (rate, latency, seed); the mock fails
    25 % of its calls unless CALLSCOPE_AI_FAILURE_RATE says otherwise."""
    return Flaky(
        MockProvider(),
        failure_rate=_rate_for(settings, mock=True),
        latency_min=settings.ai_latency_min,
        latency_max=settings.ai_latency_max,
        rng=Random(settings.ai_seed),  # noqa: S311 - failure injection, not security
    )


def local_engines(settings: Settings) -> "LocalProvider":
    """Whisper (model loaded and checked now, once) and VADER."""
    from callscope.ai.local import (  # noqa: PLC0415 - heavy, only when chosen (see above)
        PINNED_MODEL_SHA256,
        LocalProvider,
        LocalTranscriber,
        VaderAnalyzer,
        packaged_model_dir,
    )

    folder = settings.whisper_model_dir
    expected = settings.whisper_model_sha256
    if folder is None:
        folder, expected = packaged_model_dir(), expected or PINNED_MODEL_SHA256
    transcriber = LocalTranscriber(
        folder,
        expected_sha256=expected,
        beam_size=settings.whisper_beam_size,
        threads=settings.whisper_threads,
        concurrency=settings.ai_local_concurrency,
    )
    return LocalProvider(transcriber, VaderAnalyzer(neutral_band=settings.sentiment_neutral_band))


class ProviderSource:
    """The provider a worker uses: the one given, or the configured one, built on first use.

    The worker's supervised task asks for it, so loading the model happens after the API is
    up, off the event loop; a model that will not load shows as a failing `ai-worker` task
    (with the reason in `/readyz` and the log) and is tried again, while the API serves."""

    def __init__(self, settings: Settings, stack: AsyncExitStack, given: AIProvider | None):
        self._settings = settings
        self._stack = stack
        self._provider = given

    async def get(self) -> AIProvider:
        if self._provider is None:
            self._provider = await build_provider(self._settings, self._stack)
        return self._provider


async def build_provider(settings: Settings, stack: AsyncExitStack) -> AIProvider:
    """The configured provider; resources it opens are closed with `stack`."""
    if settings.ai_provider == "http":
        import httpx  # noqa: PLC0415 - only when chosen (see above)

        from callscope.ai.http import HttpProvider  # noqa: PLC0415 - the same

        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.ai_http_url, timeout=settings.ai_http_timeout)
        )
        return HttpProvider(client)
    if settings.ai_provider == "local":
        engines = await asyncio.to_thread(local_engines, settings)
        stack.push_async_callback(engines.aclose)
        rate = injected_failure_rate(settings)
        if not rate:  # the real engines as they are
            return engines
        return Flaky(  # failures injected on request (`callscope run --demo`); no added latency
            engines,
            failure_rate=rate,
            latency_min=0.0,
            latency_max=0.0,
            rng=Random(settings.ai_seed),  # noqa: S311 - failure injection, not security
        )
    return flaky_mock(settings)
