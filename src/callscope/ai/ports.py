"""What callscope asks of an AI provider, and the typed answers. Know nothing of calls' state."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

LOW_CONFIDENCE: Final = 0.5  # a segment heard with less confidence than this is flagged


class RedactionKind(StrEnum):
    card = "card"  # a payment card number (passes the Luhn check)
    account = "account"  # another run of digits long enough to identify an account
    email = "email"
    phone = "phone"


@dataclass(frozen=True, slots=True)
class Redaction:
    """A span of a segment's text replaced by the marker `[kind]`; `start`/`end` are the
    marker's offsets in the (redacted) text. What stood there is not kept anywhere."""

    kind: RedactionKind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Segment:
    start: float  # seconds from the start of the call
    end: float
    text: str
    confidence: float | None = None  # 0 … 1, how sure the engine is (None: it does not say)
    redactions: tuple[Redaction, ...] = ()  # spans of `text` redacted before storage
    # Words of `text` the engine was unsure of: not read for mood (`ai/unsure_words.py`).
    unsure: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Redactions read back from storage come as mappings: make them Redactions (and
        the lists of storage tuples)."""
        object.__setattr__(self, "unsure", tuple(self.unsure))  # a tuple's tuple is itself
        spans = self.redactions
        if not isinstance(spans, tuple) or any(not isinstance(r, Redaction) for r in spans):
            object.__setattr__(self, "redactions", tuple(_redaction(r) for r in spans))

    @property
    def low_confidence(self) -> bool:
        return self.confidence is not None and self.confidence < LOW_CONFIDENCE


def _redaction(span: Redaction | Mapping[str, Any]) -> Redaction:
    if isinstance(span, Redaction):
        return span
    return Redaction(kind=RedactionKind(span["kind"]), start=span["start"], end=span["end"])


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]


class SentimentLabel(StrEnum):
    positive = "positive"
    neutral = "neutral"
    negative = "negative"


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: SentimentLabel
    score: float  # -1 (negative) … 1 (positive)
    trend: tuple[float, ...] = ()  # the score of each transcript segment, if the engine gives it


@dataclass(frozen=True, slots=True)
class CallAudio:
    """A call's audio: 16-bit little-endian mono samples, missing packets as silence."""

    pcm16: bytes
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm16) / 2 / self.sample_rate


class Transcriber(Protocol):
    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript: ...


class SentimentAnalyzer(Protocol):
    async def analyze(self, transcript: Transcript) -> Sentiment: ...


class AIProvider(Transcriber, SentimentAnalyzer, Protocol):
    """Both steps from one provider."""
