"""The committed speech recordings (recordings/manifest.json) for tests."""

import json
import wave
from dataclasses import dataclass
from pathlib import Path

RECORDINGS = Path(__file__).parents[1] / "recordings"


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    text: str
    sentiment: str

    def pcm16(self) -> tuple[bytes, int]:
        """The samples and the sample rate."""
        with wave.open(str(self.path)) as wav:
            return wav.readframes(wav.getnframes()), wav.getframerate()


def recordings() -> list[Recording]:
    manifest = json.loads((RECORDINGS / "manifest.json").read_text())
    return [
        Recording(path=RECORDINGS / item["file"], text=item["text"], sentiment=item["sentiment"])
        for item in manifest["recordings"]
    ]
