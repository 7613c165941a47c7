"""Recordings that speak a card number, through the real local engine (8 kHz μ-law, 2 % of
the packets lost) and the redaction: no digit run survives, the spans are kept, and every
segment carries the engine's confidence."""

import importlib
import re

import pytest
from benchmarks.eval_ai import lossy_audio
from benchmarks.eval_set import eval_set

from callscope.ai.factory import local_engines
from callscope.ai.ports import RedactionKind
from callscope.ai.redaction import redact
from callscope.settings import Settings

pytestmark = pytest.mark.slow  # Whisper at work: a few seconds of CPU

DIGIT_RUN = re.compile(r"\d(?:[ .,-]*\d){4,}")  # five digits or more, however separated


async def test_spoken_card_numbers_are_heard_as_digits_and_redacted(settings: Settings) -> None:
    engines = local_engines(settings)
    cards = [r for r in eval_set() if r.path.name in {"numbers-card-visa.wav", "numbers-card.wav"}]
    assert len(cards) == 2
    kinds: dict[str, set[RedactionKind]] = {}
    try:
        for seed, recording in enumerate(cards, start=1):
            importlib.import_module("ctranslate2").set_random_seed(seed)
            heard = await engines.transcribe(recording.call, lossy_audio(recording, seed))
            assert DIGIT_RUN.search(heard.text), heard.text  # the number was heard as digits
            stored = redact(heard)
            assert not DIGIT_RUN.search(stored.text), stored.text
            for segment in stored.segments:
                assert not DIGIT_RUN.search(segment.text)
                assert segment.confidence is not None
                assert 0.0 <= segment.confidence <= 1.0
                for span in segment.redactions:
                    assert segment.text[span.start : span.end] == f"[{span.kind}]"
            kinds[recording.path.name] = {r.kind for s in stored.segments for r in s.redactions}
    finally:
        await engines.aclose()
    # A card number heard exactly is a `card`; one heard with a digit more or less fails the
    # Luhn check and goes as an `account`: gone either way.
    for name in ("numbers-card-visa.wav", "numbers-card.wav"):
        assert kinds[name], name
        assert kinds[name] <= {RedactionKind.card, RedactionKind.account}, name
