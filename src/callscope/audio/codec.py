"""G.711 μ-law ↔ 16-bit PCM with the standard library's audioop (audioop-lts on 3.13+)."""

import sys
import warnings

from callscope.audio.formats import AudioEncoding

if sys.version_info >= (3, 13):  # pragma: no cover - audioop left the standard library
    import audioop  # the audioop-lts package
else:
    with warnings.catch_warnings():  # deprecated since 3.11, still there until 3.13
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop


def to_pcm16(data: bytes, encoding: AudioEncoding) -> bytes:
    """Audio of this encoding as signed 16-bit little-endian samples."""
    if encoding == AudioEncoding.mulaw:
        return audioop.ulaw2lin(data, 2)
    return data


def to_mulaw(pcm16: bytes) -> bytes:
    """Signed 16-bit little-endian samples as G.711 μ-law, one byte a sample."""
    return audioop.lin2ulaw(pcm16, 2)


def from_big_endian_pcm16(data: bytes) -> bytes:
    """16-bit samples in network byte order (RTP's L16) as little-endian ones; `data` holds
    whole samples."""
    return audioop.byteswap(data, 2)


def stereo(left: bytes, right: bytes) -> bytes:
    """Two mono 16-bit tracks as one interleaved stereo track; the shorter one ends in
    silence."""
    length = max(len(left), len(right))
    left, right = left.ljust(length, b"\0"), right.ljust(length, b"\0")
    return audioop.add(audioop.tostereo(left, 2, 1, 0), audioop.tostereo(right, 2, 0, 1), 2)
