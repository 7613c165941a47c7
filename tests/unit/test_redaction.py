"""Redaction before storage: what goes, what stays, where the spans are kept."""

import json
from dataclasses import asdict

import pytest

from callscope.ai.ports import Redaction, RedactionKind, Segment, Transcript
from callscope.ai.redaction import luhn_valid, redact, redact_text


def _heard(*texts: str) -> Transcript:
    segments = tuple(Segment(float(n), float(n + 1), text, 0.9) for n, text in enumerate(texts))
    return Transcript(text=" ".join(texts), segments=segments)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4532015112830366", True),
        ("4532015112830367", False),
        ("79927398713", True),
        ("1234567812345678", False),
    ],
)
def test_luhn_check(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("heard", "stored"),
    [
        ("The card number is 4111 1111 1111 1111.", "The card number is [card]."),
        ("card 4532-0151-1283-0366 please", "card [card] please"),
        (
            "My card number is four five three two zero one five one one two eight three zero "
            "three six six.",
            "My card number is [card].",
        ),
        ("My account number is four seven two nine one.", "My account number is [account]."),
        ("reference 8-3-1-5-6-2 please", "reference [account] please"),
        ("a card 1234 5678 1234 5678 misheard", "a card [account] misheard"),  # fails Luhn
        ("call me on 0 7 7 0 0 9 0 0 1 2 3.", "call me on [phone]."),
        ("or +44 7700 900123, or 555-123-4567", "or [phone], or [phone]"),
        ("write to john.smith@example.com today", "write to [email] today"),
        ("it is jane dot doe at example dot co dot uk", "it is [email]"),
    ],
)
def test_sensitive_spans_are_replaced_by_their_kind(heard: str, stored: str) -> None:
    assert redact_text(heard) == stored


@pytest.mark.parametrize(
    "text",
    [
        "The last bill was $125,000 or 1,250 dollars.",
        "The payment was made on the 4th of March, 2026, for 60 dollars.",
        "Send it to 42 Oak Road, flat 7, before 9:30.",
        "I looked at it twice.",
    ],
)
def test_amounts_dates_and_addresses_stay(text: str) -> None:
    assert redact_text(text) == text


def test_spans_keep_their_kind_and_the_markers_offsets() -> None:
    stored = redact(_heard("Card 4111 1111 1111 1111 and mail me at a@b.com please."))
    (segment,) = stored.segments
    assert segment.text == "Card [card] and mail me at [email] please."
    assert segment.redactions == (
        Redaction(RedactionKind.card, 5, 11),
        Redaction(RedactionKind.email, 27, 34),
    )
    for span in segment.redactions:
        assert segment.text[span.start : span.end] == f"[{span.kind}]"
    assert segment.confidence == 0.9  # the rest of the segment is kept
    assert stored.text == segment.text


def test_a_number_running_across_segments_is_caught_in_both() -> None:
    stored = redact(_heard("My card number is 4 5 3 2 0 1 5 1", "1 2 8 3 0 3 6 6. Thanks."))
    assert [s.text for s in stored.segments] == ["My card number is [card]", "[card]. Thanks."]
    assert [s.redactions[0].kind for s in stored.segments] == ["card", "card"]
    assert "4" not in stored.text


def test_a_text_not_made_of_its_segments_is_redacted_on_its_own() -> None:
    stored = redact(Transcript(text="account 98765432 closed", segments=()))
    assert stored == Transcript(text="account [account] closed", segments=())


def test_nothing_to_redact_changes_nothing() -> None:
    heard = _heard("I would like to change my address.", "Thank you.")
    assert redact(heard) == heard


def test_redactions_survive_storage_as_json() -> None:
    stored = redact(_heard("It is 4111 1111 1111 1111."))
    as_json = json.loads(json.dumps([asdict(s) for s in stored.segments]))
    assert tuple(Segment(**s) for s in as_json) == stored.segments
