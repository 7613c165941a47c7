"""Telephone audio made to look a little more like the wideband speech Whisper learnt from.

A phone line carries nothing above 4 kHz, where much of the energy of /s/, /f/ and /th/ is;
tiny.en then hears "say" as "pay" and "send" as "end". Spectral folding, the oldest trick of
bandwidth extension, mirrors the 2-4 kHz band into 4-6 kHz: multiplying 16 kHz samples by
(-1)^n maps each frequency f to 8 kHz - f, and a band-pass keeps only the new 4-6 kHz part.
On the evaluation set it lowered the mean WER from 0.208 to 0.182, for one FFT per 30 s of
audio (docs/ai-quality.md).
"""

from typing import Final

import numpy as np
import numpy.typing as npt

RATE: Final = 16000
BAND: Final = (4000.0, 6000.0)  # Hz: where the folded copy is kept
BLOCK: Final = 30 * RATE  # samples per FFT: Whisper's window, and bounded memory


def fold_upper_band(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """16 kHz `samples` with their 2-4 kHz band mirrored into 4-6 kHz and added."""
    folded = np.empty_like(samples)
    for start in range(0, len(samples), BLOCK):
        block = samples[start : start + BLOCK]
        mirrored = block * np.where(np.arange(len(block)) % 2, -1.0, 1.0).astype(np.float32)
        spectrum = np.fft.rfft(mirrored)
        frequencies = np.fft.rfftfreq(len(block), 1 / RATE)
        spectrum[(frequencies < BAND[0]) | (frequencies > BAND[1])] = 0
        folded[start : start + len(block)] = np.fft.irfft(spectrum, len(block))
    return samples + folded
