"""The README opens with the two commands and carries the current configuration table."""

from pathlib import Path

from callscope.config_table import markdown_table, with_table
from callscope.settings import Settings

README = Path(__file__).parents[2] / "README.md"


def test_readme_opens_with_run_and_test() -> None:
    opening = README.read_text().split("\n## ", 1)[0]
    assert "make run" in opening
    assert "make test" in opening


def test_the_readme_stays_a_front_door() -> None:
    """At most about 200 lines (issue 9): the details belong in docs/."""
    assert len(README.read_text().splitlines()) <= 200


def test_the_configuration_table_is_current() -> None:
    """Fails when a setting was added, removed or redescribed without `make docs`."""
    text = README.read_text()
    assert with_table(text) == text, "the README's configuration table is stale: make docs"


def test_the_table_lists_every_setting_once() -> None:
    table = markdown_table()
    for name in Settings.model_fields:
        assert table.count(f"| `CALLSCOPE_{name.upper()}` |") == 1


def test_every_linked_document_exists() -> None:
    docs = README.parent / "docs"
    for name in (
        "architecture",
        "ingest",
        "ai-orchestration",
        "live-feed",
        "operations",
        "benchmarks",
        "contributing",
    ):
        assert (docs / f"{name}.md").is_file()
        assert f"(docs/{name}.md)" in README.read_text()
