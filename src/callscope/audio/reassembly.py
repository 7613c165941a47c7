"""A call's audio from its stored packets: in sequence order, decoded to 16-bit PCM, every
missing packet replaced by silence as long as a packet of the call usually is."""

import io
import statistics
import wave
from collections.abc import Sequence
from typing import Final

from callscope.audio.codec import to_pcm16
from callscope.audio.formats import AudioFormat

MAX_SECONDS: Final = 3600  # longest call reassembled: a sequence number can claim any length


class AudioTooLong(ValueError):
    pass


def reassemble(
    packets: Sequence[tuple[int, bytes]], audio_format: AudioFormat, *, last: int
) -> bytes:
    """16-bit PCM of sequences 1..`last` (and 0 if stored), gaps filled with silence.

    `packets` are (sequence, data), sorted by sequence, as stored. A missing packet lasts as
    long as the call's most common packet size. Raises AudioTooLong beyond `MAX_SECONDS`.
    """
    if not packets:
        return b""
    sizes = [len(to_pcm16(data, audio_format.encoding)) for _, data in packets]
    usual = statistics.mode(sizes)
    count = max(last, packets[-1][0]) + 1 - min(packets[0][0], 1)
    if count * usual > MAX_SECONDS * audio_format.sample_rate * 2:
        raise AudioTooLong(
            f"sequences up to {last} make more than {MAX_SECONDS // 60} minutes of audio"
        )
    silence = bytes(usual)
    pieces: list[bytes] = []
    expected = min(packets[0][0], 1)
    for sequence, data in packets:
        pieces.extend(silence for _ in range(sequence - expected))
        pieces.append(to_pcm16(data, audio_format.encoding))
        expected = sequence + 1
    pieces.extend(silence for _ in range(last + 1 - expected))
    return b"".join(pieces)


def wav_bytes(pcm16: bytes, sample_rate: int, *, channels: int = 1) -> bytes:
    """A 16-bit WAV file of these (interleaved, if stereo) samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm16)
    return buffer.getvalue()
