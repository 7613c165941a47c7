"""Spoken numbers as digits: "four seven two nine one" → "47291", "one hundred and twenty
five" → "125", "twenty twenty six" → "2026", "the fourth of March" → "the 4th of March".

Pure text in, text out. A run of number words (with spaces, commas or hyphens between them,
and "and" after "hundred" or "thousand") becomes one number; numbers said one after another
(digit by digit, or a year in two halves) are written together, as a listener would note them.
Single digits written by the engine one by one ("4, 7, 2") join the same way. A lone "one",
"first", "second" or "third" stays a word unless a month is next to it ("the one I ordered",
"the first time").
"""

import re
from dataclasses import dataclass
from typing import Final

_UNIT_WORDS: Final = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
_TEEN_WORDS: Final = (
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
)
_TENS_WORDS: Final = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
TEN, TWENTY, THOUSAND = 10, 20, 1000
UNITS: Final = {**{w: n for n, w in enumerate(_UNIT_WORDS)}, "oh": 0}
TEENS: Final = {w: n + TEN for n, w in enumerate(_TEEN_WORDS)}
TENS: Final = {w: (n + 2) * TEN for n, w in enumerate(_TENS_WORDS)}
ORDINALS: Final = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
SCALES: Final = {"hundred": 100, "thousand": 1000}
MONTHS: Final = frozenset(
    (
        *("january", "february", "march", "april", "may", "june", "july", "august", "september"),
        *("october", "november", "december"),
    )
)
_AMBIGUOUS: Final = frozenset({"one", "oh", "first", "second", "third"})
_WORD = re.compile(r"[A-Za-z]+|\d+")
_JOINER = re.compile(r"\s*-?\s*")  # what may stand between two words of one number
_DIGIT_JOINER = re.compile(r"\s*[,-]?\s*")  # and between two digits said one by one


@dataclass(frozen=True, slots=True)
class _Word:
    start: int
    end: int
    text: str  # lower case

    @property
    def numeric(self) -> bool:
        word = self.text
        single_digit = word.isdigit() and len(word) == 1
        return single_digit or word in UNITS or word in TEENS or word in TENS or word in SCALES

    @property
    def digit(self) -> bool:
        return self.text in UNITS or (self.text.isdigit() and len(self.text) == 1)

    @property
    def ordinal(self) -> bool:
        return self.text in ORDINALS


class _Number:
    """Builds one spoken number; `groups` are the numbers said one after another."""

    def __init__(self) -> None:
        self.groups: list[str] = []
        self._value: int | None = None
        self._room = 0  # the current number still takes an addend below this (0: closed)
        self._thousands = 0

    def add(self, value: int) -> None:
        if self._value is not None and 0 < value < self._room:
            self._value += value  # twenty + five, one hundred + twenty (+ five)
            whole_tens = value % TEN == 0 and value >= TWENTY
            self._room = TEN if whole_tens and self._room > TEN else 0
        elif self._value is None and self._thousands and value < THOUSAND:
            self._value, self._room = value, _room_after(value)  # two thousand + five
        else:
            self._close()
            self._value, self._room = value, _room_after(value)

    def scale(self, factor: int) -> None:
        value = 1 if self._value is None else self._value
        if factor == THOUSAND:
            self._thousands, self._value, self._room = value * THOUSAND, None, THOUSAND
        else:
            self._value, self._room = value * factor, 100

    def _close(self) -> None:
        if self._value is not None or self._thousands:
            self.groups.append(str(self._thousands + (self._value or 0)))
        self._value, self._room, self._thousands = None, 0, 0

    def text(self, ordinal: bool) -> str:
        self._close()
        joined = "".join(self.groups)
        return joined + _suffix(int(joined)) if ordinal else joined


def _room_after(value: int) -> int:
    """What a number just said still takes: units after whole tens ("twenty" + "five")."""
    return TEN if value >= TWENTY and value % TEN == 0 else 0


def _suffix(number: int) -> str:
    if number % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _value(word: str) -> int:
    if word.isdigit():
        return int(word)
    return UNITS.get(word) or TEENS.get(word) or TENS.get(word) or 0


def _spoken(words: list[_Word]) -> str:
    """The digits of one run of number words (the last may be an ordinal)."""
    number = _Number()
    ordinal = words[-1].ordinal
    for word in words:
        if word.text in SCALES:
            number.scale(SCALES[word.text])
        elif word.text == "and":
            continue
        elif word.ordinal:
            number.add(ORDINALS[word.text])
        else:
            number.add(_value(word.text))
    return number.text(ordinal)


def _runs(text: str) -> list[list[_Word]]:
    """Maximal runs of number words, joined by spaces or hyphens (or commas, see `_joined`)."""
    words = [_Word(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
    runs: list[list[_Word]] = []
    current: list[_Word] = []
    for index, word in enumerate(words):
        if current and not _joined(text, current, word):
            runs.append(current)
            current = []
        after_ordinal = bool(current) and current[-1].ordinal  # an ordinal ends a number
        and_within = (
            word.text == "and"
            and bool(current)
            and current[-1].text in SCALES
            and index + 1 < len(words)
            and words[index + 1].numeric
        )
        if ((word.numeric or word.ordinal) and not after_ordinal) or and_within:
            current.append(word)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [run for run in (_trimmed(run) for run in runs) if run]


def _joined(text: str, run: list[_Word], after: _Word) -> bool:
    """Whether `after` continues `run`: commas join only digits said one by one."""
    between = text[run[-1].end : after.start]
    one_by_one = after.digit and all(word.digit for word in run)
    return (_DIGIT_JOINER if one_by_one else _JOINER).fullmatch(between) is not None


def _trimmed(run: list[_Word]) -> list[_Word]:
    while run and run[-1].text == "and":
        run = run[:-1]
    return run


def _near_month(text: str, run: list[_Word]) -> bool:
    before = text[: run[0].start].split()[-1:]
    after = text[run[-1].end :].split()[:2]
    near = [w.strip(",.").lower() for w in (*before, *after)]
    return any(w in MONTHS for w in near)


def spoken_digits(text: str) -> str:
    """`text` with its spoken numbers written as digits (see the module's docstring)."""
    pieces: list[str] = []
    done = 0
    for run in _runs(text):
        alone = len(run) == 1 and run[0].text in _AMBIGUOUS
        if alone and not _near_month(text, run):
            continue
        if len(run) == 1 and run[0].text.isdigit():
            continue
        pieces.append(text[done : run[0].start])
        pieces.append(_spoken(run))
        done = run[-1].end
    pieces.append(text[done:])
    return "".join(pieces)
