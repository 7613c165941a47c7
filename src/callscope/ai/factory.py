"""Build the provider the settings ask for."""

from contextlib import AsyncExitStack
from random import Random

import httpx

from callscope.ai.flaky import Flaky
from callscope.ai.http import HttpProvider
from callscope.ai.local import (
    PINNED_MODEL_SHA256,
    LocalProvider,
    LocalTranscriber,
    VaderAnalyzer,
    packaged_model_dir,
)
from callscope.ai.mock import MockProvider
from callscope.ai.ports import AIProvider
from callscope.settings import Settings


def flaky_mock(settings: Settings) -> Flaky:
    """The mock behind the settings' failure injection (rate, latency, seed)."""
    return Flaky(
        MockProvider(),
        failure_rate=settings.ai_failure_rate,
        latency_min=settings.ai_latency_min,
        latency_max=settings.ai_latency_max,
        rng=Random(settings.ai_seed),  # noqa: S311 - failure injection, not security
    )


def local_engines(settings: Settings) -> LocalProvider:
    """Whisper (model loaded and checked now, once) and VADER."""
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


async def build_provider(settings: Settings, stack: AsyncExitStack) -> AIProvider:
    """The configured provider; resources it opens are closed with `stack`."""
    if settings.ai_provider == "http":
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.ai_http_url, timeout=settings.ai_http_timeout)
        )
        return HttpProvider(client)
    if settings.ai_provider == "local":
        engines = local_engines(settings)
        stack.push_async_callback(engines.aclose)
        return Flaky(  # failures injected as the brief's API has them; no added latency
            engines,
            failure_rate=settings.ai_failure_rate,
            latency_min=0.0,
            latency_max=0.0,
            rng=Random(settings.ai_seed),  # noqa: S311 - failure injection, not security
        )
    return flaky_mock(settings)
