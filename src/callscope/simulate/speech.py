"""The recordings `simulate --speech` streams: customer utterances spoken once by espeak-ng
(see recordings/make.sh), 8 kHz 16-bit WAVs with their true text in recordings/manifest.json."""

import json
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from callscope.audio.codec import to_mulaw

RECORDINGS: Final = Path(__file__).parent / "recordings"


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    text: str
    sentiment: str  # what a listener would say: positive, neutral or negative

    def pcm16(self) -> tuple[bytes, int]:
        """The samples and the sample rate."""
        with wave.open(str(self.path)) as wav:
            return wav.readframes(wav.getnframes()), wav.getframerate()

    def mulaw(self) -> bytes:
        pcm16, _ = self.pcm16()  # recorded at 8 kHz, as telephony carries it
        return to_mulaw(pcm16)


def recordings() -> list[Recording]:
    manifest = json.loads((RECORDINGS / "manifest.json").read_text())
    return [
        Recording(path=RECORDINGS / item["file"], text=item["text"], sentiment=item["sentiment"])
        for item in manifest["recordings"]
    ]
