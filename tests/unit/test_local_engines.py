"""The local engines: the model check, VADER's labels and trend, and the WER helper."""

from pathlib import Path

import pytest
from benchmarks.eval_set.scoring import word_errors

from callscope.ai.local import (
    PINNED_MODEL_SHA256,
    ModelInvalid,
    VaderAnalyzer,
    packaged_model_dir,
    verify_model,
)
from callscope.ai.ports import Segment, SentimentLabel, Transcript


def test_the_packaged_model_is_the_pinned_one() -> None:
    verify_model(packaged_model_dir(), PINNED_MODEL_SHA256)


def test_a_damaged_model_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    model = (packaged_model_dir() / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(model[:1000] + bytes([model[1000] ^ 0xFF]) + model[1001:])
    with pytest.raises(
        ModelInvalid, match=r"sha256 \w+, expected 1a5afae0\w+: the file is damaged"
    ):
        verify_model(tmp_path, PINNED_MODEL_SHA256)


def test_a_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelInvalid, match="no Whisper model"):
        verify_model(tmp_path, None)


def _spoken(*sentences: str) -> Transcript:
    segments = tuple(Segment(float(n), float(n + 1), text) for n, text in enumerate(sentences))
    return Transcript(text=" ".join(sentences), segments=segments)


async def test_vader_labels_angry_happy_and_polite_calls() -> None:
    vader = VaderAnalyzer(neutral_band=0.25)
    angry = await vader.analyze(_spoken("This is unacceptable.", "I am furious and I hate this."))
    happy = await vader.analyze(_spoken("Thank you so much, that is wonderful."))
    polite = await vader.analyze(_spoken("I would like to change my address."))
    assert angry.label == SentimentLabel.negative
    assert happy.label == SentimentLabel.positive
    assert polite.label == SentimentLabel.neutral
    assert polite.score == 0.0  # "I would like to" is courtesy, not mood
    assert len(angry.trend) == 2
    assert all(score < 0 for score in angry.trend)


def test_word_errors_ignore_case_punctuation_and_number_spelling() -> None:
    # numbers count one word per digit: 2 5 dollars at 1 2 baker street
    assert word_errors(
        "Twenty-five dollars, at 12 Baker Street.", "twenty five Dollars at twelve baker street"
    ) == (0, 8)
    assert word_errors("one two three", "one three four") == (2, 3)
