"""The README documents every setting and starts with the two commands."""

from pathlib import Path

from callscope.settings import Settings

README = Path(__file__).parents[2] / "README.md"


def test_readme_lists_every_setting() -> None:
    text = README.read_text()
    missing = [n for n in Settings.model_fields if f"`CALLSCOPE_{n.upper()}`" not in text]
    assert missing == []


def test_readme_opens_with_run_and_test() -> None:
    opening = README.read_text().split("\n## ", 1)[0]
    assert "make run" in opening
    assert "make test" in opening
