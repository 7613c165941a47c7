"""A Whisper segment cut into sentences, its time shared out by length."""

from itertools import pairwise

from callscope.ai.sentences import sentences


def test_one_sentence_stays_whole() -> None:
    assert sentences(1.0, 3.5, " I would like to pay my bill. ") == [
        (1.0, 3.5, "I would like to pay my bill.")
    ]


def test_sentences_share_the_time_by_length() -> None:
    cut = sentences(10.0, 20.0, "Hello there. This is a much longer sentence! Why?")
    assert [text for _, _, text in cut] == [
        "Hello there.",
        "This is a much longer sentence!",
        "Why?",
    ]
    assert cut[0][0] == 10.0
    assert cut[-1][1] == 20.0
    assert all(a[1] == b[0] for a, b in pairwise(cut))  # no gap, no overlap
    durations = [end - start for start, end, _ in cut]
    assert durations[1] > durations[0] > durations[2]


def test_numbers_with_dots_are_not_sentence_ends() -> None:
    assert len(sentences(0.0, 2.0, "It was $4.60 in total.")) == 1
