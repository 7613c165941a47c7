"""Spoken numbers written as digits, as the stored transcript and the redaction see them."""

import pytest

from callscope.ai.numbers import spoken_digits


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        ("My account number is four seven two nine one.", "My account number is 47291."),
        ("one hundred and twenty five dollars", "125 dollars"),
        ("twelve Baker Street", "12 Baker Street"),
        ("forty two Oak Road, flat seven", "42 Oak Road, flat 7"),
        ("twenty-five dollars", "25 dollars"),
        ("the fourth of March, twenty twenty six", "the 4th of March, 2026"),
        ("the fifteenth of each month", "the 15th of each month"),
        ("March first", "March 1st"),
        ("two thousand and five", "2005"),
        ("zero seven seven zero zero nine", "077009"),
        ("4, 7, 2, 9, 1", "47291"),  # the engine's digits said one by one
        ("four, seven, two", "472"),
    ],
)
def test_spoken_numbers_become_digits(heard: str, written: str) -> None:
    assert spoken_digits(heard) == written


@pytest.mark.parametrize(
    "text",
    [
        "The new one is better.",  # a lone "one" is a word
        "It is the first time this happened.",  # so is a lone first, second or third
        "Oh, I see.",
        "I paid 60 dollars in 2026.",  # written numbers stay as they are
        "",
    ],
)
def test_words_that_are_not_numbers_stay(text: str) -> None:
    assert spoken_digits(text) == text


def test_separate_numbers_stay_separate() -> None:
    assert spoken_digits("twenty five, forty two and nineteen ninety nine, four seven") == (
        "25, 42 and 1999, 47"
    )
