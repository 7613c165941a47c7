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
