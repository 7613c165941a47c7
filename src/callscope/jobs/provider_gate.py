"""The worker's gate in front of the AI provider: every provider call passes the circuit
breaker (`jobs/breaker.py`) and reports its outcome back to it. While the breaker is open a
job waits here, holding no database connection and spending no attempt; a worker that is
asked to stop hands such a job back to the queue instead of waiting on."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from random import Random

from callscope.jobs.breaker import CircuitBreaker, Pass

# A held-back job asks again at least this often, so that once the probe succeeds every job
# goes on within about this long (not only when the open period it was told of would end).
ASK_AGAIN_S = 0.5


class WorkerStopping(Exception):
    """The worker is draining while this job waits for the provider to recover."""


class ProviderGate:
    def __init__(self, breaker: CircuitBreaker | None, *, stopping: asyncio.Event, rng: Random):
        """`breaker` None: every call goes (the backoff policy)."""
        self._breaker = breaker
        self._stopping = stopping
        self._rng = rng

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[Callable[[bool], None]]:
        """Wait for a pass, then yield `report(failed)` for the provider call's outcome. A
        pass left unreported (the job stopped before calling) is handed back."""
        breaker = self._breaker
        if breaker is None:
            yield _ignore
            return
        admitted = await self._pass(breaker)
        reported = False

        def report(failed: bool) -> None:
            nonlocal reported
            reported = True
            breaker.record(admitted, failed=failed)

        try:
            yield report
        finally:
            if not reported:
                breaker.withdraw(admitted)

    async def _pass(self, breaker: CircuitBreaker) -> Pass:
        while not isinstance(admitted := breaker.admit(), Pass):
            # Jittered, so the jobs held back do not all ask in the same instant.
            wait = min(admitted, ASK_AGAIN_S) * self._rng.uniform(1.0, 1.5) + 0.01
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
            if self._stopping.is_set():
                raise WorkerStopping
        return admitted


def _ignore(_failed: bool) -> None:
    return
