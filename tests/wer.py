"""Word error rate, after normalising case, punctuation and small numbers."""

import re

_SMALL = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _number_words(number: int) -> list[str]:
    if number < 20:
        return [_SMALL[number]]
    if number < 100:
        tens, ones = divmod(number, 10)
        return [_TENS[tens - 2]] + ([_SMALL[ones]] if ones else [])
    return list(str(number))  # larger numbers stay digits, one "word" each


def normalise(text: str) -> list[str]:
    words: list[str] = []
    for token in re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("-", " ")).split():
        words.extend(_number_words(int(token)) if token.isdigit() else [token])
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words)."""
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
