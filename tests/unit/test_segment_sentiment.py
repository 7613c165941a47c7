"""Sentiment from the segments: the weighting, the final mood, courtesy formulas, and the
VADER analyzer that puts them together."""

from callscope.ai.local import VaderAnalyzer
from callscope.ai.ports import Segment, SentimentLabel, Transcript
from callscope.ai.sentiment import (
    Scored,
    final_mood,
    label_of,
    overall,
    plain_words,
    read_for_mood,
)

BAND = 0.25


def _spoken(*sentences: str) -> Transcript:
    segments = tuple(Segment(2.0 * n, 2.0 * n + 2, text) for n, text in enumerate(sentences))
    return Transcript(text=" ".join(sentences), segments=segments)


def test_labels_from_the_band() -> None:
    assert label_of(0.3, BAND) == SentimentLabel.positive
    assert label_of(-0.3, BAND) == SentimentLabel.negative
    assert label_of(0.25, BAND) == SentimentLabel.neutral
    assert label_of(-0.1, BAND) == SentimentLabel.neutral


def test_longer_segments_weigh_more() -> None:
    mostly_happy = [Scored(0.8, 0, 8), Scored(-0.2, 8, 9)]
    mostly_plain = [Scored(0.8, 0, 1), Scored(-0.2, 1, 9)]
    assert overall(mostly_happy, BAND) > 0 > overall(mostly_plain, BAND)


def test_a_negative_stretch_dominates_an_equally_long_positive_one() -> None:
    assert overall([Scored(0.5, 0, 4), Scored(-0.5, 4, 8)], BAND) < 0
    assert overall([Scored(-0.5, 0, 4), Scored(0.5, 4, 8)], BAND) < 0


def test_the_end_of_a_call_weighs_more_than_its_start() -> None:
    calm_then_angry = [Scored(0.0, 0, 4), Scored(-0.6, 4, 8)]
    angry_then_calm = [Scored(-0.6, 0, 4), Scored(0.0, 4, 8)]
    assert overall(calm_then_angry, BAND) < overall(angry_then_calm, BAND) < 0


def test_no_segments_is_neutral() -> None:
    assert overall([], BAND) == 0.0
    assert final_mood((), BAND) == SentimentLabel.neutral


def test_the_final_mood_is_the_last_third() -> None:
    assert final_mood((0.0, 0.0, 0.0, 0.0, -0.6, -0.5), BAND) == SentimentLabel.negative
    assert final_mood((-0.8, -0.7, 0.6), BAND) == SentimentLabel.positive
    assert final_mood((0.9,), BAND) == SentimentLabel.positive


def test_courtesy_formulas_are_not_scored_and_complaint_idioms_are() -> None:
    assert plain_words("I would like to change my address, please.").strip(" ,.") == (
        "change my address"
    )
    assert "help" not in plain_words("Good morning, how can I help you today?")
    assert plain_words("I am fed up.") == "I am angry."
    assert "so much" in plain_words("Thank you so much!")  # thanks that mean it stay


async def test_polite_requests_are_neutral() -> None:
    vader = VaderAnalyzer(neutral_band=BAND)
    for request in (
        _spoken("I would like to change the address on my account.", "Thank you."),
        _spoken("Please change my plan.", "Could you also send me the contract?"),
        _spoken("Customer support, may I have your account number please?"),
    ):
        sentiment = await vader.analyze(request)
        assert sentiment.label == SentimentLabel.neutral, request.text
        assert abs(sentiment.score) < 0.1  # nothing left that reads as mood


async def test_a_call_that_turns_angry_is_negative_with_a_trend_per_segment() -> None:
    vader = VaderAnalyzer(neutral_band=BAND)
    call = _spoken(
        "Hello, I am calling about my bill for this month.",
        "I see a charge for a movie I did not order.",
        "This is the third time this has happened.",
        "You charged me twice again. I hate this and I will cancel my account.",
    )
    sentiment = await vader.analyze(call)
    assert len(sentiment.trend) == len(call.segments)
    assert sentiment.trend[0] == 0.0
    assert sentiment.trend[-1] < -BAND
    assert sentiment.label == SentimentLabel.negative
    assert final_mood(sentiment.trend, BAND) == SentimentLabel.negative


async def test_a_transcript_without_segments_is_scored_as_a_whole() -> None:
    vader = VaderAnalyzer(neutral_band=BAND)
    sentiment = await vader.analyze(Transcript("This is wonderful, I love it.", ()))
    assert sentiment.label == SentimentLabel.positive
    assert sentiment.trend == ()


def test_the_mood_is_not_read_from_segments_heard_with_low_confidence() -> None:
    sure, doubtful = Segment(0.0, 1.0, "great", confidence=0.9), Segment(1.0, 2.0, "bad", 0.2)
    plain = Segment(2.0, 3.0, "fine")  # an engine that gives no confidence
    assert read_for_mood([sure, doubtful, plain], [0.6, 0.0, 0.1]) == [(sure, 0.6), (plain, 0.1)]
