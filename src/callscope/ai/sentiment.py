"""A speaker's sentiment from the scores of their segments: pure arithmetic, no engine.

Contact-centre analytics read a call as a course, not as one bag of words: each segment
(a sentence) is scored on its own, and the speaker's overall score is a weighted mean of the
segment scores where a segment weighs
- its duration,
- `NEGATIVE_WEIGHT` times more if it is negative (below the neutral band): a sustained angry
  stretch dominates the polite words around it,
- and more the later it comes, up to 1 + `RECENCY` times at the end: how a call ends counts
  more than how it began.
The final mood is the mean of the last third of the segments. The weights were chosen on the
evaluation set (docs/ai-quality.md).

Before a lexicon scores a segment, `plain_words` takes out the courtesy formulas of a service
call ("I would like to…", "please", "how can I help", a bare "thank you"), which carry no mood
but which a general lexicon reads as positive; and writes a few idioms of complaint that it
does not know ("fed up", "charged me twice") as words it does.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from callscope.ai.ports import Segment, SentimentLabel

NEGATIVE_WEIGHT: Final = 4.0
RECENCY: Final = 1.0
MIN_DURATION: Final = 0.5  # seconds a segment counts at least (engines give some as 0)

COURTESY: Final = re.compile(
    r"\b(?:"
    r"(?:i|we)(?:'d| would) like to|would you like to|like to know"
    r"|please|kindly|could you|would you|can you"
    r"|(?:how )?(?:can|may) i (?:help(?: you)?|have)|happy to help"
    r"|good (?:morning|afternoon|evening)|hello|hi"
    r"|customer (?:support|service)|support team"
    r"|thank(?:s| you)(?! (?:so|very) much)(?: for (?:calling|holding|waiting))?"
    r"|fair enough|no problem|of course|sure"
    r")\b",
    re.IGNORECASE,
)
COMPLAINTS: Final = {
    r"\bfed up\b": "angry",
    r"\bcharged? me twice\b": "cheated",
    r"\b(?:still|again) (?:broken|not working|down)\b": "broken",
    r"\bcancel my (?:account|contract|subscription)\b": "quit",
    r"\bwant (?:a|my) refund\b|\bwant my money back\b": "dissatisfied",
}


def plain_words(text: str) -> str:
    """`text` without courtesy formulas, with complaint idioms as plain words (see above)."""
    for idiom, word in COMPLAINTS.items():
        text = re.sub(idiom, word, text, flags=re.IGNORECASE)
    return COURTESY.sub(" ", text)


@dataclass(frozen=True, slots=True)
class Scored:
    """One segment's score (-1 … 1) and when it was said (seconds)."""

    score: float
    start: float
    end: float


def label_of(score: float, band: float) -> SentimentLabel:
    """positive above `band`, negative below `-band`, else neutral."""
    if score > band:
        return SentimentLabel.positive
    if score < -band:
        return SentimentLabel.negative
    return SentimentLabel.neutral


def overall(scored: Sequence[Scored], band: float) -> float:
    """The weighted mean score of the segments (see the module's docstring); 0 if none."""
    if not scored:
        return 0.0
    first, last = min(s.start for s in scored), max(s.end for s in scored)
    span = max(last - first, MIN_DURATION)
    weights = [
        max(s.end - s.start, MIN_DURATION)
        * (NEGATIVE_WEIGHT if s.score < -band else 1.0)
        * (1.0 + RECENCY * ((s.start + s.end) / 2 - first) / span)
        for s in scored
    ]
    mean = sum(w * s.score for w, s in zip(weights, scored, strict=True)) / sum(weights)
    return round(mean, 4)


def read_for_mood(
    segments: Sequence[Segment], trend: Sequence[float]
) -> list[tuple[Segment, float]]:
    """The segments a mood is read from, each with its score from `trend`: not those heard
    with low confidence (their trend entry is a placeholder 0)."""
    return [(s, score) for s, score in zip(segments, trend, strict=True) if not s.low_confidence]


def final_mood(trend: Sequence[float], band: float) -> SentimentLabel:
    """The mood at the end: the mean score of the last third of the segments (at least one)."""
    if not trend:
        return SentimentLabel.neutral
    tail = trend[-max(1, len(trend) // 3) :]
    return label_of(sum(tail) / len(tail), band)
