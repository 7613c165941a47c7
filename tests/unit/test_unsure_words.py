"""Words the engine was unsure of: picked from its word probabilities, kept only while still
in the text (redaction included), stored with the segment, and not read for mood; and
segments heard with low confidence, not read for mood at all."""

import json
from dataclasses import asdict

from callscope.ai.local import VaderAnalyzer
from callscope.ai.ports import Segment, SentimentLabel, Transcript
from callscope.ai.redaction import redact
from callscope.ai.unsure_words import UNSURE_BELOW, still_in, unsure_words, without

BAND = 0.25


def test_unsure_words_are_the_alphabetic_words_heard_below_the_bound() -> None:
    heard = [
        (" Please", 0.68),
        (" amazing", 0.19),
        (" package.", UNSURE_BELOW - 0.01),
        (" Treat!", 0.42),
        (" 4", 0.1),  # numbers carry no mood (and may be redacted)
        (" next", UNSURE_BELOW),
    ]
    assert unsure_words(heard) == ("amazing", "package", "treat")


def test_only_the_words_still_in_the_text_are_kept_once_each() -> None:
    assert still_in(["amazing", "four", "my", "my", "my"], "My plan, my amazing plan") == (
        "amazing",
        "my",
        "my",
    )


def test_without_takes_out_one_whole_word_occurrence_each() -> None:
    text = without("Great news, a great plan; greatest.", ["great"])
    assert text.split() == ["news,", "a", "great", "plan;", "greatest."]


async def test_a_mood_word_the_engine_was_unsure_of_is_not_read() -> None:
    vader = VaderAnalyzer(neutral_band=BAND)
    text = "Please change my plan to amazing package."
    misheard = Transcript(text, (Segment(0.0, 3.0, text, 0.8, unsure=("amazing",)),))
    taken_at_its_word = Transcript(text, (Segment(0.0, 3.0, text, 0.8),))
    assert (await vader.analyze(misheard)).label == SentimentLabel.neutral
    assert (await vader.analyze(taken_at_its_word)).label == SentimentLabel.positive


async def test_an_unsure_word_inside_a_courtesy_formula_leaves_the_formula_out() -> None:
    vader = VaderAnalyzer(neutral_band=BAND)
    text = "I would like to move my payment date."
    heard = Transcript(text, (Segment(0.0, 3.0, text, 0.8, unsure=("i",)),))
    assert (await vader.analyze(heard)).score == 0.0  # no "like" left over to read


async def test_a_segment_heard_with_low_confidence_is_not_read_for_mood() -> None:
    vader = VaderAnalyzer(neutral_band=BAND)
    segments = (
        Segment(0.0, 4.0, "I am furious and I hate this.", 0.8),
        Segment(4.0, 4.5, "Thank you so much, wonderful!", 0.07),
    )
    sentiment = await vader.analyze(Transcript(" ".join(s.text for s in segments), segments))
    assert sentiment.trend[1] == 0.0
    assert sentiment.score == sentiment.trend[0] < -BAND  # the first segment alone


def test_redaction_drops_unsure_words_that_were_redacted() -> None:
    text = "Mail me at john at example dot com, it is great."
    heard = Transcript(text, (Segment(0.0, 3.0, text, 0.6, unsure=("john", "great")),))
    (stored,) = redact(heard).segments
    assert "john" not in stored.text
    assert stored.unsure == ("great",)


def test_unsure_words_survive_storage_as_json() -> None:
    segment = Segment(0.0, 1.0, "an amazing plan", 0.7, unsure=("amazing",))
    (as_json,) = json.loads(json.dumps([asdict(segment)]))
    assert Segment(**as_json) == segment
