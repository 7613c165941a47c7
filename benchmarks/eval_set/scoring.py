"""Word error rate with numbers compared as digits: the reference and the hypothesis go
through the same normalisation (spoken numbers to digits, then one digit a word), so "four
seven two", "472" and "4, 7, 2" are the same three words."""

import re

from callscope.ai.numbers import spoken_digits


def normalise(text: str) -> list[str]:
    text = re.sub(r"\$\s?(\d[\d,]*)", r"\1 dollars", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,250 → 1250
    text = spoken_digits(text.replace("%", " percent")).lower()
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)  # 4th → 4
    words: list[str] = []
    for token in re.sub(r"[^a-z0-9' ]", " ", text).replace("'", "").split():
        words.extend(list(token) if token.isdigit() else [token])
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), both texts normalised."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1], len(ref)
