"""The most connections each kind of process opens, as docs/operations.md states them."""

import pytest

from callscope.process import connections_at_most
from callscope.settings import Settings


@pytest.mark.parametrize(
    ("api", "worker", "connections"),
    [(True, False, 10 + 10 + 2 + 1), (False, True, 4 + 1), (True, True, 10 + 4 + 10 + 2 + 1 + 1)],
    ids=["API replica", "worker", "callscope run"],
)
def test_the_defaults_open_what_the_docs_say(*, api: bool, worker: bool, connections: int) -> None:
    assert connections_at_most(Settings(), api=api, worker=worker) == connections


def test_the_pool_settings_move_the_budget() -> None:
    settings = Settings(db_pool_size=5, ingest_flushers=1, worker_db_pool_size=2)
    assert connections_at_most(settings, api=True, worker=False) == 5 + 5 + 1 + 1
    assert connections_at_most(settings, api=False, worker=True) == 2 + 1
