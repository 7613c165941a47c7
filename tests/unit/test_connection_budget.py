"""The most connections each kind of process opens, as docs/operations.md states them."""

import re
from pathlib import Path

import pytest

from callscope.process import connections_at_most
from callscope.settings import Settings

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


def _documented(process: str) -> int:
    """The total in the "default" column of the docs' connection table for `process`."""
    row = re.search(rf"^\| {re.escape(process)} .*= (\d+) \|$", OPERATIONS.read_text(), re.M)
    assert row is not None, f"no row for {process} in docs/operations.md"
    return int(row[1])


@pytest.mark.parametrize(
    ("process", "api", "worker"),
    [
        ("API (`callscope serve`)", True, False),
        ("worker (`callscope worker`)", False, True),
        ("both in one (`callscope run`)", True, True),
    ],
)
def test_the_defaults_open_what_the_docs_say(process: str, *, api: bool, worker: bool) -> None:
    defaults = Settings(_env_file=None)
    assert connections_at_most(defaults, api=api, worker=worker) == _documented(process)


def test_the_pool_settings_move_the_budget() -> None:
    settings = Settings(_env_file=None, db_pool_size=5, ingest_flushers=1, worker_db_pool_size=2)
    assert connections_at_most(settings, api=True, worker=False) == 5 + 5 + 1 + 1
    assert connections_at_most(settings, api=False, worker=True) == 2 + 1
