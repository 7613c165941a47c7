"""Redaction of a transcript before it is stored: pure, text in, text out.

What goes: payment card numbers (13 to 19 digits passing the Luhn check), phone numbers
(a leading `+` or `0` and 10 to 15 digits, or written as 3-3-4 digits), other runs of
`ACCOUNT_DIGITS` or more digits (account, customer or reference numbers; a card number
mis-heard so that it fails the Luhn check still goes, as one), and e-mail addresses (written,
or spoken as "name at example dot com"). Spoken digits are written as digits first, so "four
seven two nine one" is caught; digits may be separated by spaces, hyphens or dots, and
a number that runs on from one segment into the next is caught across them.

Each span becomes the marker `[kind]` in its segment's text, and the segment keeps a
`Redaction(kind, start, end)` with the marker's offsets; what was said there is not kept.
Amounts (after a currency sign), years, house numbers and other short numbers stay.
"""

import re
from dataclasses import dataclass, replace
from typing import Final

from callscope.ai.numbers import spoken_digits
from callscope.ai.ports import Redaction, RedactionKind, Segment, Transcript
from callscope.ai.unsure_words import still_in

ACCOUNT_DIGITS: Final = 5
CARD_DIGITS: Final = range(13, 20)  # ISO/IEC 7812 card numbers: 13 to 19 digits
PHONE_DIGITS: Final = range(10, 16)  # a national or international (E.164) number
_DIGITS = re.compile(r"(?<![\w$£€.,])(\+\s?)?\d(?:[ .-]?\d)*(?!\w)")
_PHONE_LAYOUT = re.compile(r"\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}")
_TLD = r"(?:com|net|org|edu|gov|info|biz|io|co|uk|de|fr|eu)"
_EMAIL = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}"
    rf"|\b[a-z0-9]+(?:\s+dot\s+[a-z0-9]+)*\s+at\s+[a-z0-9-]+(?:\s+dot\s+[a-z0-9-]+)*\s+dot\s+{_TLD}\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    kind: RedactionKind


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of card numbers: every second digit from the right doubled."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit *= 2
        total += digit - 9 if digit > 9 else digit  # noqa: PLR2004 - sum of a product's digits
    return total % 10 == 0


def _digit_kind(run: str) -> RedactionKind | None:
    digits = re.sub(r"\D", "", run)
    if len(digits) in CARD_DIGITS and luhn_valid(digits):
        return RedactionKind.card
    if run.startswith(("+", "0")) and len(digits) in PHONE_DIGITS:
        return RedactionKind.phone
    if _PHONE_LAYOUT.fullmatch(run):
        return RedactionKind.phone
    if len(digits) >= ACCOUNT_DIGITS:
        return RedactionKind.account
    return None


def find_spans(text: str) -> list[tuple[int, int, RedactionKind]]:
    """(start, end, kind) of what `text` must not keep, in order, not overlapping."""
    spans = [(m.start(), m.end(), RedactionKind.email) for m in _EMAIL.finditer(text)]
    for match in _DIGITS.finditer(text):
        kind = _digit_kind(match.group())
        inside_email = any(s <= match.start() < e for s, e, _ in spans)
        if kind is not None and not inside_email:
            spans.append((match.start(), match.end(), kind))
    return sorted(spans)


def _marker(kind: RedactionKind) -> str:
    return f"[{kind}]"


def _redacted(text: str, spans: list[_Span]) -> tuple[str, tuple[Redaction, ...]]:
    """`text` with each span (offsets into `text`) replaced by its marker."""
    pieces: list[str] = []
    redactions: list[Redaction] = []
    done = length = 0
    for span in spans:
        kept = text[done : span.start]
        pieces.append(kept)
        length += len(kept)
        marker = _marker(span.kind)
        pieces.append(marker)
        redactions.append(Redaction(kind=span.kind, start=length, end=length + len(marker)))
        length += len(marker)
        done = span.end
    pieces.append(text[done:])
    return "".join(pieces), tuple(redactions)


def redact_text(text: str) -> str:
    """`text` with spoken digits written as digits and every sensitive span replaced."""
    digits = spoken_digits(text)
    spans = [_Span(s, e, kind) for s, e, kind in find_spans(digits)]
    return _redacted(digits, spans)[0]


def redact(transcript: Transcript) -> Transcript:
    """The transcript as it may be stored (see the module's docstring). Its text is the
    redacted segments joined when it was the segments joined (as the engines give it), else
    redacted on its own."""
    texts = [spoken_digits(segment.text) for segment in transcript.segments]
    joined = " ".join(texts)
    found = find_spans(joined)
    segments: list[Segment] = []
    offset = 0
    for segment, text in zip(transcript.segments, texts, strict=True):
        end = offset + len(text)
        mine = [
            _Span(max(s, offset) - offset, min(e, end) - offset, kind)
            for s, e, kind in found
            if s < end and e > offset
        ]
        redacted, spans = _redacted(text, mine)
        segments.append(
            replace(
                segment,
                text=redacted,
                redactions=segment.redactions + spans,
                unsure=still_in(segment.unsure, redacted),  # none of what was redacted
            )
        )
        offset = end + 1
    as_heard = " ".join(s.text for s in transcript.segments)
    if segments and transcript.text == as_heard:
        text = " ".join(s.text for s in segments)
    else:
        text = redact_text(transcript.text)
    return Transcript(text=text, segments=tuple(segments))
