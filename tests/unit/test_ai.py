"""The mock provider, failure injection and the durable retry schedule."""

import contextlib
from random import Random

import pytest

from callscope.ai.errors import ProviderRejected, ProviderUnavailable
from callscope.ai.flaky import Flaky
from callscope.ai.mock import MockProvider
from callscope.ai.ports import CallAudio, SentimentLabel, Transcript
from callscope.jobs.retry import attempts_left, requeue_delay


def _spoken(text: str) -> Transcript:
    return Transcript(text=text, segments=())


async def test_mock_transcribes_one_segment_per_second_of_audio() -> None:
    transcript = await MockProvider().transcribe("c1", CallAudio(bytes(16000 * 2 + 200), 8000))
    assert [(s.start, s.end) for s in transcript.segments] == [
        (0.0, 1.0),
        (1.0, 2.0),
        (2.0, 2.0125),
    ]
    assert transcript.text.startswith("second 1 of call c1")


async def test_mock_rejects_a_call_without_audio() -> None:
    with pytest.raises(ProviderRejected):
        await MockProvider().transcribe("c1", CallAudio(b"", 8000))


async def test_mock_sentiment_is_deterministic_and_in_range() -> None:
    first = await MockProvider().analyze(_spoken("thank you so much"))
    again = await MockProvider().analyze(_spoken("thank you so much"))
    assert first == again
    assert -1.0 <= first.score <= 1.0
    assert first.label in set(SentimentLabel)


class _Clock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _flaky(rate: float, seed: int, clock: _Clock) -> Flaky:
    return Flaky(
        MockProvider(),
        failure_rate=rate,
        latency_min=1.0,
        latency_max=3.0,
        rng=Random(seed),
        sleep=clock.sleep,
    )


async def test_flaky_fails_at_its_rate_with_its_latency_and_repeats_with_its_seed() -> None:
    outcomes = []
    for _ in range(2):
        clock = _Clock()
        provider = _flaky(0.25, seed=42, clock=clock)
        run = []
        for n in range(400):
            try:
                await provider.analyze(_spoken(f"text {n}"))
                run.append(True)
            except ProviderUnavailable:
                run.append(False)
        outcomes.append(run)
        assert all(1.0 <= s <= 3.0 for s in clock.slept)
        assert provider.failures_injected == run.count(False)
    assert outcomes[0] == outcomes[1]
    assert 0.18 < outcomes[0].count(False) / 400 < 0.32


@pytest.mark.parametrize(("rate", "failures"), [(0.0, 0), (1.0, 50)])
async def test_flaky_rate_zero_never_fails_and_one_always_does(rate: float, failures: int) -> None:
    provider = _flaky(rate, seed=1, clock=_Clock())
    for n in range(50):
        with contextlib.suppress(ProviderUnavailable):
            await provider.transcribe("c", CallAudio(bytes(10 + 2 * n), 8000))
    assert provider.failures_injected == failures


def test_requeue_delay_is_full_jitter_under_a_doubling_ceiling() -> None:
    rng = Random(3)
    for failed, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        delays = [requeue_delay(failed, rng, base_s=2.0, cap_s=60.0) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2


def test_attempts_left_never_negative() -> None:
    assert attempts_left(3, 8) == 5
    assert attempts_left(8, 8) == 0
    assert attempts_left(9, 8) == 0
