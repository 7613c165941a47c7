"""Build the provider the settings ask for."""

from contextlib import AsyncExitStack
from random import Random

import httpx

from callscope.ai.flaky import Flaky
from callscope.ai.http import HttpProvider
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


async def build_provider(settings: Settings, stack: AsyncExitStack) -> AIProvider:
    """The configured provider; resources it opens are closed with `stack`."""
    if settings.ai_provider == "http":
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.ai_http_url, timeout=settings.ai_http_timeout)
        )
        return HttpProvider(client)
    return flaky_mock(settings)
