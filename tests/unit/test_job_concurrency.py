"""How many jobs a worker runs at once, by provider."""

import pytest

from callscope.jobs.worker import job_concurrency
from callscope.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("provider", "bound"), [("mock", None), ("http", None), ("local", 2)])
def test_the_local_engines_bound_the_jobs_a_worker_runs(provider: str, bound: int | None) -> None:
    settings = Settings(_env_file=None, ai_provider=provider, ai_local_concurrency=2)
    assert job_concurrency(settings) == (bound or settings.worker_concurrency)


def test_a_lower_worker_concurrency_still_wins() -> None:
    settings = Settings(
        _env_file=None, ai_provider="local", ai_local_concurrency=4, worker_concurrency=3
    )
    assert job_concurrency(settings) == 3
