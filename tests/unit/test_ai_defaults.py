"""Failure injection is the mock's: off by default for the real engines and the HTTP API, on
(25 %, 1 to 3 s) for the mock, and on around the real engines with `callscope run --demo`."""

from contextlib import AsyncExitStack
from typing import Literal

import pytest

from callscope.ai.errors import ProviderUnavailable
from callscope.ai.factory import (
    build_provider,
    describe_provider,
    flaky_mock,
    injected_failure_rate,
)
from callscope.ai.flaky import Flaky
from callscope.ai.ports import CallAudio
from callscope.cli import _parser, _with_demo
from callscope.settings import Settings

Provider = Literal["mock", "local", "http"]


def _settings(provider: Provider, **extra: object) -> Settings:
    return Settings(_env_file=None, ai_provider=provider, **extra)  # type: ignore[arg-type]  # keyword fields


@pytest.mark.parametrize(("provider", "rate"), [("mock", 0.25), ("local", 0.0), ("http", 0.0)])
def test_only_the_mock_injects_failures_by_default(provider: Provider, rate: float) -> None:
    assert injected_failure_rate(_settings(provider)) == rate


@pytest.mark.parametrize(("provider", "rate"), [("mock", 0.0), ("mock", 0.6), ("local", 0.1)])
def test_an_explicit_failure_rate_wins(provider: Provider, rate: float) -> None:
    assert injected_failure_rate(_settings(provider, ai_failure_rate=rate)) == rate


def test_the_http_provider_injects_nothing_itself_even_when_a_rate_is_set() -> None:
    """The rate is for `callscope mock-ai` (same environment): it must not be applied twice."""
    assert injected_failure_rate(_settings("http", ai_failure_rate=0.3)) == 0.0


def test_the_mock_takes_one_to_three_seconds_by_default() -> None:
    settings = _settings("mock")
    assert (settings.ai_latency_min, settings.ai_latency_max) == (1.0, 3.0)


async def test_the_default_mock_fails_about_a_quarter_of_its_calls() -> None:
    provider = flaky_mock(_settings("mock", ai_seed=4, ai_latency_min=0, ai_latency_max=0))
    audio = CallAudio(bytes(320), 8000)
    failures = 0
    for _ in range(400):
        try:
            await provider.transcribe("c1", audio)
        except ProviderUnavailable:
            failures += 1
    assert 70 <= failures <= 130
    assert provider.failures_injected == failures


async def test_the_mock_is_built_flaky() -> None:
    async with AsyncExitStack() as stack:
        assert isinstance(await build_provider(_settings("mock"), stack), Flaky)


def test_run_demo_injects_the_briefs_failures_around_the_real_engines() -> None:
    assert _parser().parse_args(["run", "--demo"]).demo
    assert not _parser().parse_args(["run"]).demo
    demo = _with_demo(_settings("local"))
    assert injected_failure_rate(demo) == 0.25
    explicit = _with_demo(_settings("local", ai_failure_rate=0.05))
    assert injected_failure_rate(explicit) == 0.05


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (_settings("local"), "AI provider local, no failures injected"),
        (
            _settings("local", ai_failure_rate=0.25),
            "AI provider local, 25% of calls fail (injected)",
        ),
        (_settings("mock"), "AI provider mock, 25% of calls fail (injected)"),
        (
            _settings("http", ai_http_url="http://ai.internal:8100"),
            "AI provider http at http://ai.internal:8100 (no failures injected here)",
        ),
    ],
)
def test_run_says_which_provider_runs_and_whether_failures_are_injected(
    settings: Settings, line: str
) -> None:
    assert describe_provider(settings) == line
