"""Words the speech engine was unsure of, kept beside a segment's text so that its mood is
not read from them.

Tiny speech models mishear telephone audio as other, real words, and a mis-heard word can
carry a mood the caller never spoke ("the basic package" heard as "amazing package"). The
engine's own word probabilities tell such words apart: on the evaluation set every mood word
that was really said was heard with a probability of at least 0.5, and the mis-heard ones
below (docs/ai-quality.md). Only alphabetic words are kept (numbers carry no mood, and a
number may be redacted), and only while they are still in the segment's text.
"""

import re
from collections.abc import Iterable
from typing import Final

UNSURE_BELOW: Final = 0.45  # a word heard with a lower probability than this is unsure
_WORD: Final = re.compile(r"[a-z]+(?:'[a-z]+)?")


def unsure_words(heard: Iterable[tuple[str, float]]) -> tuple[str, ...]:
    """The alphabetic words of (word, probability) pairs heard below `UNSURE_BELOW`,
    lower case, without punctuation."""
    found: list[str] = []
    for word, probability in heard:
        plain = word.strip().strip('.,!?;:"()').lower()
        if probability < UNSURE_BELOW and _WORD.fullmatch(plain):
            found.append(plain)
    return tuple(found)


def still_in(words: Iterable[str], text: str) -> tuple[str, ...]:
    """Those of `words` that `text` still holds as whole words (one each time listed)."""
    left = _WORD.findall(text.lower())
    kept: list[str] = []
    for word in words:
        if word in left:
            left.remove(word)
            kept.append(word)
    return tuple(kept)


def without(text: str, words: Iterable[str]) -> str:
    """`text` with one whole-word occurrence of each of `words` taken out."""
    for word in words:
        text = re.sub(rf"\b{re.escape(word)}\b", " ", text, count=1, flags=re.IGNORECASE)
    return text
