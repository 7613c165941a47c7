"""Spectral folding: what lies at 2-4 kHz gains a mirror image at 4-6 kHz; nothing else moves."""

import numpy as np
import numpy.typing as npt

from callscope.ai.band_extension import BLOCK, RATE, fold_upper_band


def tone(hz: float, seconds: float) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def strongest_above(samples: npt.NDArray[np.float32], hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    frequencies = np.fft.rfftfreq(len(samples), 1 / RATE)
    above = frequencies > hz
    return float(frequencies[above][np.argmax(spectrum[above])])


def test_a_3_khz_tone_gains_its_image_at_5_khz() -> None:
    extended = fold_upper_band(tone(3000, 1.0))
    assert abs(strongest_above(extended, 4000) - 5000) < 2


def test_a_1_khz_tone_gains_nothing_its_image_would_be_above_6_khz() -> None:
    plain = tone(1000, 1.0)
    assert np.allclose(fold_upper_band(plain), plain, atol=1e-3)


def test_long_audio_is_folded_block_by_block_and_keeps_its_length() -> None:
    long = tone(3000, 2.5 * BLOCK / RATE)
    extended = fold_upper_band(long)
    assert extended.shape == long.shape
    assert extended.dtype == np.float32
    last_block = extended[2 * BLOCK :]
    assert abs(strongest_above(last_block, 4000) - 5000) < 3
