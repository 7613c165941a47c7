"""The transcript and sentiment of the read model: speakers, confidence flags, redactions,
and the caller as the headline."""

from dataclasses import asdict

from callscope.ai.ports import Segment, SentimentLabel
from callscope.ai.ports import Transcript as Heard
from callscope.ai.redaction import redact
from callscope.calls.models import SentimentRow, TranscriptRow
from callscope.calls.read_model import call_sentiment, merged_transcript
from callscope.calls.vocabulary import Speaker, Track


def _row(track: Track, *segments: Segment) -> TranscriptRow:
    heard = redact(Heard(" ".join(s.text for s in segments), segments))
    return TranscriptRow(
        call_id="c", track=track, text=heard.text, segments=[asdict(s) for s in heard.segments]
    )


def test_segments_carry_their_speaker_confidence_and_redactions() -> None:
    rows = [
        _row(Track.outbound, Segment(0.0, 2.0, "May I have your card number?", 0.92)),
        _row(Track.inbound, Segment(2.5, 6.0, "It is 4111 1111 1111 1111.", 0.31)),
    ]
    transcript = merged_transcript(rows, tracks=[Track.inbound, Track.outbound])
    assert transcript is not None
    agent, caller = transcript.segments
    assert (agent.speaker, agent.confidence, agent.low_confidence) == (Speaker.agent, 0.92, False)
    assert (caller.speaker, caller.confidence, caller.low_confidence) == (
        Speaker.caller,
        0.31,
        True,
    )
    assert caller.text == "It is [card]."
    assert [(r.kind, r.start, r.end) for r in caller.redactions] == [("card", 6, 12)]
    assert transcript.text == "May I have your card number? It is [card]."


def test_segments_stored_before_confidence_existed_still_read() -> None:
    row = TranscriptRow(
        call_id="c",
        track=Track.inbound,
        text="hello",
        segments=[{"start": 0.0, "end": 1.0, "text": "hello"}],
    )
    transcript = merged_transcript([row], tracks=[Track.inbound])
    assert transcript is not None
    (segment,) = transcript.segments
    assert (segment.confidence, segment.low_confidence, segment.redactions) == (None, False, [])


def test_the_callers_sentiment_is_the_headline_each_speaker_has_its_own() -> None:
    rows = [
        SentimentRow(
            call_id="c",
            track=Track.outbound,
            label=SentimentLabel.neutral,
            score=0.0,
            trend=[0.0, 0.1],
        ),
        SentimentRow(
            call_id="c",
            track=Track.inbound,
            label=SentimentLabel.negative,
            score=-0.6,
            trend=[0.0, -0.8],
        ),
    ]
    sentiment = call_sentiment(rows, tracks=[Track.inbound, Track.outbound])
    assert sentiment is not None
    assert (sentiment.label, sentiment.score, sentiment.trend) == ("negative", -0.6, [0.0, -0.8])
    assert [(s.speaker, s.label, s.trend) for s in sentiment.speakers] == [
        (Speaker.caller, "negative", [0.0, -0.8]),
        (Speaker.agent, "neutral", [0.0, 0.1]),
    ]
