"""The committed recordings are what the manifest says: 8 kHz mono 16-bit speech."""

import wave

import pytest

from callscope.simulate.speech import Recording, recordings


def test_every_sentiment_is_represented() -> None:
    assert {r.sentiment for r in recordings()} == {"negative", "positive", "neutral"}


@pytest.mark.parametrize("recording", recordings(), ids=lambda r: r.path.name)
def test_a_recording_is_telephone_speech(recording: Recording) -> None:
    with wave.open(str(recording.path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        seconds = wav.getnframes() / wav.getframerate()
    assert 2 < seconds < 20
    assert len(recording.text.split()) >= 10
