"""Silencing stretches of PCM: every channel, clipped to the audio, overlaps allowed."""

from callscope.audio.silence import silenced
from tests.factories import pcm16


def test_a_span_silences_every_channel_of_its_frames() -> None:
    stereo = pcm16(*range(1, 21))  # 10 frames of (left, right) at 10 frames a second
    out = silenced(stereo, 10, [(0.2, 0.5)], channels=2)
    assert out == pcm16(1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)


def test_spans_past_either_end_or_overlapping_are_clipped() -> None:
    mono = pcm16(*range(1, 11))
    assert silenced(mono, 10, [(-1.0, 0.2), (0.15, 0.3), (0.9, 5.0)]) == pcm16(
        0, 0, 0, 4, 5, 6, 7, 8, 9, 0
    )


def test_no_span_or_an_empty_one_changes_nothing() -> None:
    mono = pcm16(*range(1, 11))
    assert silenced(mono, 10, []) is mono
    assert silenced(mono, 10, [(0.5, 0.5), (2.0, 3.0)]) is mono
