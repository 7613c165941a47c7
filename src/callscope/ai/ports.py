"""What callscope asks of an AI provider, and the typed answers. Know nothing of calls' state."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Segment:
    start: float  # seconds from the start of the call
    end: float
    text: str


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


class Transcriber(Protocol):
    async def transcribe(self, call_id: str, audio: bytes) -> Transcript: ...


class SentimentAnalyzer(Protocol):
    async def analyze(self, text: str) -> Sentiment: ...


class AIProvider(Transcriber, SentimentAnalyzer, Protocol):
    """Both steps from one provider."""
