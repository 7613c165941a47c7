"""Supervised background tasks: one backoff, one "every interval until stopped" loop, and a
supervisor that restarts whatever crashes and says which task is failing (for `/readyz`).

A long-running task (`Supervisor.start`) gets a `TaskContext`: `stop` is set when the process
shuts down, and `healthy()` says the task is doing its job (the LISTEN connection is up, the
queue manager is running). When the task raises, the supervisor logs it, reports the task as
failing, and starts it again after a jittered, doubling delay; the delay starts over once the
task was healthy again. A periodic task (`Supervisor.every`) is healthy after every run that
returned, and failing from a run that raised until one returns.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import structlog

from callscope.metrics import TASK_RESTARTS

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S: Final = 30.0  # a task still running this long after `stop` is cancelled


class Backoff:
    """Jittered exponential delays: the n-th consecutive failure waits uniform(c/2, c), where
    c = min(cap, initial * 2**(n-1)). `reset()` after a success starts over."""

    def __init__(self, *, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.initial * 2 ** (self.failures - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class TaskStatus:
    """What `/readyz` and the logs say about one supervised task."""

    name: str
    healthy: bool = False
    restarts: int = 0
    last_error: str | None = None
    failing_since: float | None = None  # monotonic time of the first failure in a row

    def describe(self) -> str:
        if self.healthy:
            return "ok"
        if self.last_error is None:
            return "starting"
        return f"failing: {self.last_error}"


@dataclass(slots=True)
class TaskContext:
    """Handed to a long-running task: when to stop, and how to say it is healthy."""

    stop: asyncio.Event
    status: TaskStatus
    backoff: Backoff
    on_healthy: Callable[[TaskStatus], None] = field(repr=False)

    def healthy(self) -> None:
        """The task is doing its job: report it, and let its next failure wait briefly."""
        self.backoff.reset()
        self.on_healthy(self.status)


LongTask = Callable[[TaskContext], Awaitable[None]]
PeriodicBody = Callable[[], Awaitable[None]]


class Supervisor:
    """Owns a process's background tasks; `stop()` ends them all."""

    def __init__(
        self,
        *,
        restart_initial: float = 0.5,
        restart_cap: float = 30.0,
        stop_timeout: float = STOP_TIMEOUT_S,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.stopping = asyncio.Event()
        self._restart_initial = restart_initial
        self._restart_cap = restart_cap
        self._stop_timeout = stop_timeout
        self._on_restart = on_restart
        self._statuses: dict[str, TaskStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._cancel_at_stop: list[asyncio.Task[None]] = []

    @property
    def statuses(self) -> dict[str, TaskStatus]:
        return dict(self._statuses)

    def failing(self) -> dict[str, str]:
        """Every task that is not healthy, with what is wrong."""
        return {s.name: s.describe() for s in self._statuses.values() if not s.healthy}

    def start(self, name: str, run: LongTask, *, cancel_at_stop: bool = False) -> None:
        """Run `run(context)` until `stop()`, restarting it whenever it raises (or returns
        before the process stops). A task that watches `context.stop` is waited for; one that
        holds nothing worth finishing (`cancel_at_stop`) is cancelled instead."""
        if name in self._statuses:
            raise ValueError(f"a task named {name!r} is already supervised")
        status = TaskStatus(name)
        self._statuses[name] = status
        task = asyncio.create_task(self._keep_running(status, run), name=name)
        self._tasks.append(task)
        if cancel_at_stop:
            self._cancel_at_stop.append(task)

    def every(self, name: str, interval: float, body: PeriodicBody) -> None:
        """Run `body()` every `interval` seconds until `stop()`. A run in progress is finished,
        never cancelled mid-query; a run that raised is retried after the backoff instead."""

        async def periodically(context: TaskContext) -> None:
            while not context.stop.is_set():
                await body()
                context.healthy()
                await sleep_unless_stopped(context.stop, interval)

        self.start(name, periodically)

    async def stop(self) -> None:
        """Ask every task to stop and wait for it; cancel what is still running after
        `stop_timeout` seconds."""
        self.stopping.set()
        for task in self._cancel_at_stop:
            task.cancel()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self._stop_timeout)
        for task in pending:
            log.warning("task_cancelled_at_stop", task=task.get_name())
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks, self._cancel_at_stop = [], []

    async def _keep_running(self, status: TaskStatus, run: LongTask) -> None:
        backoff = Backoff(initial=self._restart_initial, cap=self._restart_cap)
        context = TaskContext(
            stop=self.stopping, status=status, backoff=backoff, on_healthy=_mark_healthy
        )
        while not self.stopping.is_set():
            try:
                await run(context)
            except Exception as exc:  # supervision boundary: log, report, restart
                self._failed(status, repr(exc))
                log.exception("task_failed", task=status.name, restarts=status.restarts)
            else:
                if self.stopping.is_set():
                    break
                self._failed(status, "returned before the process stopped")
                log.error("task_returned", task=status.name)
            await sleep_unless_stopped(self.stopping, backoff.next_delay())
            if not self.stopping.is_set():
                status.restarts += 1
                TASK_RESTARTS.labels(status.name).inc()
                if self._on_restart is not None:
                    self._on_restart(status.name)
        status.healthy = False

    @staticmethod
    def _failed(status: TaskStatus, error: str) -> None:
        status.healthy = False
        status.last_error = error
        if status.failing_since is None:
            status.failing_since = time.monotonic()


def _mark_healthy(status: TaskStatus) -> None:
    if not status.healthy and status.last_error is not None:
        log.info("task_recovered", task=status.name, restarts=status.restarts)
    status.healthy = True
    status.last_error = None
    status.failing_since = None


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
