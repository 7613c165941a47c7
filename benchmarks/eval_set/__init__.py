"""The evaluation set of `make eval-ai`: espeak-ng calls (see make_set.py) stored as 8 kHz
G.711 μ-law WAVs, one per track, with their truth in manifest.json."""

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).parent
MULAW_FORMAT: Final = 7  # WAVE_FORMAT_MULAW
RATE: Final = 8000


@dataclass(frozen=True, slots=True)
class EvalRecording:
    path: Path
    call: str  # recordings of one call share it (a caller and an agent track)
    kind: str  # angry, happy, neutral, numbers, turning or dialogue
    track: str  # inbound (the caller) or outbound (the agent)
    speaker: str
    voice: str  # espeak-ng voice and speed
    speed: int
    label: str  # positive, neutral or negative, over the whole call
    final: str  # the speaker's mood at the end of the call
    text: str  # exactly what was said

    def mulaw(self) -> bytes:
        return read_mulaw_wav(self.path)


def eval_set() -> list[EvalRecording]:
    manifest = json.loads((HERE / "manifest.json").read_text())
    recordings = []
    for item in manifest["recordings"]:
        fields = {key: value for key, value in item.items() if key != "file"}
        recordings.append(EvalRecording(path=HERE / item["file"], **fields))
    return recordings


def write_mulaw_wav(path: Path, mulaw: bytes) -> None:
    """A mono 8 kHz μ-law WAV (the standard library's `wave` writes PCM only)."""
    fmt = struct.pack("<HHIIHHH", MULAW_FORMAT, 1, RATE, RATE, 1, 8, 0)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(mulaw))
        + mulaw
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def read_mulaw_wav(path: Path) -> bytes:
    """The samples of a mono 8 kHz μ-law WAV; ValueError for any other file."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a WAV file")
    offset, fmt, samples = 12, b"", None
    while offset + 8 <= len(data):
        kind, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        chunk = data[offset + 8 : offset + 8 + size]
        if kind == b"fmt ":
            fmt = chunk
        elif kind == b"data":
            samples = chunk
        offset += 8 + size + (size & 1)
    if len(fmt) < 16 or samples is None:
        raise ValueError(f"{path} has no fmt or data chunk")
    encoding, channels, rate = struct.unpack("<HHI", fmt[:8])
    if (encoding, channels, rate) != (MULAW_FORMAT, 1, RATE):
        raise ValueError(f"{path} is not mono 8 kHz μ-law")
    return samples
