"""A transcript segment cut into its sentences, with times shared out by length.

Whisper's segments run up to 30 s and often hold a whole short call, calm start and angry end
alike; a sentence is the unit whose mood can be read, and whose confidence and speaker a
supervisor can follow. Without word timings, each sentence is given a share of the segment's
time in proportion to its characters.
"""

import re
from typing import Final

_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentences(start: float, end: float, text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each sentence of a segment; one piece if it has one sentence."""
    pieces = [piece for piece in _SENTENCE_END.split(text.strip()) if piece]
    if len(pieces) <= 1:
        return [(start, end, text.strip())]
    total = sum(len(piece) for piece in pieces)
    cut: list[tuple[float, float, str]] = []
    at, used = start, 0
    for piece in pieces:
        used += len(piece)
        until = round(start + (end - start) * used / total, 2)
        cut.append((at, until, piece))
        at = until
    return cut
