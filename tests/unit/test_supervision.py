"""The supervisor: restarts with backoff, says what is failing, stops everything."""

import asyncio
import random

import pytest
from structlog.testing import capture_logs

from callscope.metrics import REGISTRY
from callscope.supervision import Backoff, Supervisor, TaskContext


def test_backoff_doubles_with_jitter_up_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(initial=1.0, cap=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


async def _until(predicate: object, within: float = 5.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def _restarts_counted(task: str) -> float:
    return REGISTRY.get_sample_value("callscope_task_restarts_total", {"task": task}) or 0.0


async def test_a_crashing_task_is_failing_until_it_recovers_and_each_crash_is_logged() -> None:
    supervisor = Supervisor(restart_initial=0.01, restart_cap=0.02)
    crashes = 3
    runs = 0

    async def flaky(context: TaskContext) -> None:
        nonlocal runs
        runs += 1
        if runs <= crashes:
            raise RuntimeError(f"crash {runs}")
        context.healthy()
        await context.stop.wait()

    counted_before = _restarts_counted("flaky")
    with capture_logs() as logs:
        supervisor.start("flaky", flaky)
        await _until(lambda: runs >= 1)
        assert supervisor.failing() == {"flaky": "failing: RuntimeError('crash 1')"}
        await _until(lambda: not supervisor.failing())
        await supervisor.stop()
    assert supervisor.statuses["flaky"].restarts == crashes
    assert _restarts_counted("flaky") - counted_before == crashes
    failures = [entry for entry in logs if entry["event"] == "task_failed"]
    assert [entry["task"] for entry in failures] == ["flaky"] * crashes
    assert any(entry["event"] == "task_recovered" for entry in logs)


async def test_a_task_that_returns_early_is_restarted() -> None:
    supervisor = Supervisor(restart_initial=0.01, restart_cap=0.01)
    runs = 0

    async def quits(context: TaskContext) -> None:
        nonlocal runs
        runs += 1
        context.healthy()

    supervisor.start("quits", quits)
    await _until(lambda: runs >= 3)
    await supervisor.stop()
    assert supervisor.statuses["quits"].restarts >= 2


async def test_a_periodic_task_runs_every_interval_and_retries_after_a_failure() -> None:
    supervisor = Supervisor(restart_initial=0.01, restart_cap=0.01)
    outcomes = iter([None, RuntimeError("database away"), None, None, None])
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        outcome = next(outcomes, None)
        if outcome is not None:
            raise outcome

    supervisor.every("sweep", 0.01, body)
    await _until(lambda: runs >= 5)
    assert supervisor.failing() == {}
    await supervisor.stop()
    assert supervisor.statuses["sweep"].restarts == 1


async def test_stop_waits_for_a_task_that_finishes_its_work_and_cancels_the_rest() -> None:
    supervisor = Supervisor(stop_timeout=5)
    finished = asyncio.Event()

    async def finishes(context: TaskContext) -> None:
        context.healthy()
        await context.stop.wait()
        await asyncio.sleep(0.05)  # drains something
        finished.set()

    async def forever(context: TaskContext) -> None:
        context.healthy()
        await asyncio.Event().wait()

    supervisor.start("drains", finishes)
    supervisor.start("idle", forever, cancel_at_stop=True)
    await asyncio.sleep(0)
    await asyncio.wait_for(supervisor.stop(), 2)
    assert finished.is_set()


async def test_a_task_name_is_supervised_once() -> None:
    supervisor = Supervisor()

    async def task(context: TaskContext) -> None:
        await context.stop.wait()

    supervisor.start("once", task)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("once", task)
    await supervisor.stop()
