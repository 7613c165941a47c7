"""Silencing stretches of 16-bit PCM: the WAV export's redacted sentences."""

from collections.abc import Iterable

_SAMPLE_BYTES = 2


def silenced(
    pcm16: bytes, sample_rate: int, spans: Iterable[tuple[float, float]], *, channels: int = 1
) -> bytes:
    """`pcm16` (interleaved when `channels` > 1) with every channel zero from each span's
    start to its end, in seconds from the first sample; spans may overlap or reach past
    either end."""
    frame = _SAMPLE_BYTES * channels
    frames = len(pcm16) // frame
    cuts = []
    for start, end in spans:
        first, last = max(0, int(start * sample_rate)), min(frames, int(end * sample_rate + 0.5))
        if first < last:
            cuts.append((first, last))
    if not cuts:
        return pcm16
    out = bytearray(pcm16)
    for first, last in cuts:
        out[first * frame : last * frame] = bytes((last - first) * frame)
    return bytes(out)
