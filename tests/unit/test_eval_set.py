"""The evaluation set of `make eval-ai` is what its manifest says, and its WER counts numbers
alike however they are written."""

from collections import Counter
from pathlib import Path

import pytest
from benchmarks.eval_set import EvalRecording, eval_set, read_mulaw_wav, write_mulaw_wav
from benchmarks.eval_set.scoring import normalise, word_errors

LABELS = {"positive", "neutral", "negative"}


def test_the_set_covers_what_the_issue_asks() -> None:
    recordings = eval_set()
    kinds = Counter(r.kind for r in recordings)
    assert len(recordings) >= 24
    assert set(kinds) == {"angry", "happy", "neutral", "numbers", "turning", "dialogue"}
    assert min(kinds.values()) >= 3
    assert len({r.voice for r in recordings}) >= 4
    assert len({r.speed for r in recordings}) >= 4
    assert {r.label for r in recordings} == LABELS
    two_sided = Counter(r.call for r in recordings if r.kind == "dialogue")
    assert set(two_sided.values()) == {2}
    for call in two_sided:
        tracks = {(r.track, r.speaker) for r in recordings if r.call == call}
        assert tracks == {("inbound", "caller"), ("outbound", "agent")}


@pytest.mark.parametrize("recording", eval_set(), ids=lambda r: r.path.name)
def test_a_recording_is_short_mulaw_telephone_speech(recording: EvalRecording) -> None:
    samples = recording.mulaw()
    assert 2 < len(samples) / 8000 < 40
    assert recording.label in LABELS
    assert recording.final in LABELS
    assert len(recording.text.split()) >= 8


def test_the_wav_reader_refuses_other_files(tmp_path: Path) -> None:
    folder = tmp_path
    write_mulaw_wav(folder / "ok.wav", b"\x7f" * 80)
    assert read_mulaw_wav(folder / "ok.wav") == b"\x7f" * 80
    (folder / "bad.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(ValueError, match="no fmt or data chunk"):
        read_mulaw_wav(folder / "bad.wav")


def test_numbers_count_the_same_however_they_are_written() -> None:
    assert normalise("$125, 4th of March") == ["1", "2", "5", "dollars", "4", "of", "march"]
    assert word_errors("one hundred and twenty five dollars", "$125") == (0, 4)
    assert word_errors("four seven two nine one", "4, 7, 2, 9, 1") == (0, 5)
    assert word_errors("four seven two nine one", "47291") == (0, 5)
    assert word_errors("four seven two nine one", "4 7 2 1") == (1, 5)
