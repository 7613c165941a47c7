"""The audio formats a call may declare: telephony μ-law, or linear PCM.

G.711 μ-law at 8 kHz mono is what Twilio-style media streams carry; linear PCM (signed 16-bit
little-endian, mono) at 8 or 16 kHz is the other common choice.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class AudioEncoding(StrEnum):
    mulaw = "mulaw"
    pcm_s16le = "pcm_s16le"


BYTES_PER_SAMPLE: Final = {AudioEncoding.mulaw: 1, AudioEncoding.pcm_s16le: 2}
SAMPLE_RATES: Final = {AudioEncoding.mulaw: (8000,), AudioEncoding.pcm_s16le: (8000, 16000)}


class UnsupportedFormat(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AudioFormat:
    encoding: AudioEncoding
    sample_rate: int

    def __post_init__(self) -> None:
        rates = SAMPLE_RATES[self.encoding]
        if self.sample_rate not in rates:
            allowed = " or ".join(str(rate) for rate in rates)
            raise UnsupportedFormat(f"{self.encoding} audio must be sampled at {allowed} Hz")

    @property
    def bytes_per_sample(self) -> int:
        return BYTES_PER_SAMPLE[self.encoding]

    def fits(self, size: int) -> bool:
        """Whether a packet of `size` bytes holds whole samples of this format."""
        return size > 0 and size % self.bytes_per_sample == 0
