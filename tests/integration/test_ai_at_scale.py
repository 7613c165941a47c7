"""AI work at scale: a fixed connection budget whatever the concurrency, and a circuit breaker
that holds calls back while the provider is down, tells supervisors, and lets everything
through once it is back."""

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from callscope import metrics
from callscope.ai.errors import ProviderUnavailable
from callscope.ai.factory import flaky_mock
from callscope.ai.ports import AIProvider, CallAudio, Sentiment, Transcript
from callscope.realtime.messages import SUPERVISOR_MESSAGES
from callscope.settings import Settings, asyncpg_dsn
from tests.integration.ai_helpers import (
    FAST_AI,
    make_completed_calls,
    wait_for_states,
    worker_running,
)
from tests.live import feed, feed_url, has_type, served

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _role_limited_to(db: asyncpg.Connection, connections: int) -> AsyncIterator[str]:
    """A login role PostgreSQL lets open at most `connections` connections, with the rights a
    worker needs on this database."""
    role = f"callscope_budget_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {connections}")
    try:
        await db.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        await db.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        await db.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        yield role
    finally:
        await db.execute(f"DROP OWNED BY {role}")
        await db.execute(f"DROP ROLE {role}")


async def _peak_connections(url: str, role: str, peaks: list[int]) -> None:
    """Sample the role's connections on a connection of its own until cancelled."""
    watcher = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while True:
            count = "SELECT count(*) FROM pg_stat_activity WHERE usename = $1"
            peaks.append(await watcher.fetchval(count, role))
            await asyncio.sleep(0.005)
    finally:
        await watcher.close()


@pytest.mark.slow  # 200+ calls through one worker at concurrency 256
async def test_a_worker_at_high_concurrency_stays_within_its_connection_budget(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    calls, pool = 200, 3
    await make_completed_calls(client, [f"budget-{n:03d}" for n in range(calls)])
    budget = pool + 2  # the jobs' pool, the queue's connection, one spare (a listener)
    async with _role_limited_to(db, budget) as role:
        url = make_url(settings.require_database_url()).set(username=role)
        ai = settings.model_copy(
            update={
                **FAST_AI,
                "database_url": url.render_as_string(hide_password=False),
                "worker_concurrency": 256,
                "worker_db_pool_size": pool,
                "ai_failure_rate": 0.25,
                "ai_latency_min": 0.05,
                "ai_latency_max": 0.15,
                "ai_seed": 14,
            }
        )
        peaks: list[int] = []
        # More provider calls at once than the worker has connections: each call is held
        # until that many are in flight, so the figure does not hinge on the machine's speed.
        provider = _InFlight(flaky_mock(ai), hold_until=2 * budget + 1)
        sampler = asyncio.create_task(
            _peak_connections(settings.require_database_url(), role, peaks)
        )
        try:
            async with worker_running(ai, provider):
                await wait_for_states(db, {"ARCHIVED"}, count=calls, within=120)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    # PostgreSQL would have refused a connection over the limit, and a job would have failed.
    assert await db.fetchval("SELECT count(*) FROM calls WHERE state = 'ARCHIVED'") == calls
    assert pool <= max(peaks) <= pool + 1, max(peaks)  # the pool was used, and never outgrown
    assert provider.most > 2 * budget  # more provider calls at once than connections


class _InFlight:
    """A provider, counting the most calls it had in flight at once. Its first calls are held
    until `hold_until` are in flight together (or for 20 s at most), then every call goes."""

    def __init__(self, inner: AIProvider, *, hold_until: int) -> None:
        self._inner = inner
        self._hold_until = hold_until
        self._enough = asyncio.Event()
        self._now = 0
        self.most = 0

    @contextlib.asynccontextmanager
    async def _counted(self) -> AsyncIterator[None]:
        self._now += 1
        self.most = max(self.most, self._now)
        if self._now >= self._hold_until:
            self._enough.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough.wait(), timeout=20)
            self._enough.set()  # the most calls in flight were reached, or never will be
            yield
        finally:
            self._now -= 1

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        async with self._counted():
            return await self._inner.transcribe(call_id, audio)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        async with self._counted():
            return await self._inner.analyze(transcript)


class _Outage:
    """The brief's flaky mock, or (while `down`) one that fails every call. Counts calls."""

    def __init__(self, up: AIProvider, down: AIProvider) -> None:
        self._up, self._down = up, down
        self.down = True
        self.calls_while_down = 0

    def _now(self) -> AIProvider:
        if self.down:
            self.calls_while_down += 1
            return self._down
        return self._up

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        return await self._now().transcribe(call_id, audio)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return await self._now().analyze(transcript)


@pytest.mark.slow  # an outage, the breaker's open time, then recovery
async def test_while_the_provider_is_down_calls_are_held_back_then_all_archived(
    settings: Settings, db: asyncpg.Connection
) -> None:
    calls, concurrency, budget = 40, 20, 12
    ai = settings.model_copy(
        update={
            **FAST_AI,
            "ai_latency_min": 0.005,
            "ai_latency_max": 0.02,
            "ai_max_attempts": budget,
            "worker_concurrency": concurrency,
            "ai_breaker_window": 5.0,
            "ai_breaker_min_calls": 8,
            "ai_breaker_open": 0.2,
            "ai_seed": 7,
        }
    )
    up = flaky_mock(ai.model_copy(update={"ai_failure_rate": 0.25}))
    provider = _Outage(up, flaky_mock(ai.model_copy(update={"ai_failure_rate": 1.0})))
    async with (
        served(ai) as server,
        httpx.AsyncClient(base_url=server.http, timeout=30) as client,
        feed(feed_url(server.ws)) as supervisor,
    ):
        await supervisor.read_until(has_type("snapshot"), within=10)
        await make_completed_calls(client, [f"outage-{n:02d}" for n in range(calls)])
        async with worker_running(ai, provider):
            await supervisor.read_until(has_type("ai.provider", state="open"), within=10)
            assert _breaker_gauge("closed") == 0  # open or half-open: the worker says which
            assert _breaker_gauge("open") + _breaker_gauge("half_open") == 1
            await asyncio.sleep(2.0)  # ten open periods' worth of outage
            assert await db.fetchval("SELECT count(*) FROM calls WHERE state = 'FAILED'") == 0
            provider.down = False
            await wait_for_states(db, {"ARCHIVED"}, count=calls, within=15)
            await supervisor.read_until(has_type("ai.provider", state="closed"), within=5)
            assert [_breaker_gauge(state) for state in ("closed", "open", "half_open")] == [1, 0, 0]
    # Without the breaker every call would have spent its whole budget and FAILED. With it,
    # the calls in flight when it opened failed once each, then only the probes went.
    probes = 6  # open for 0.2 s, then 0.4 s after each failed probe: at most 6 in 2 s
    assert provider.calls_while_down <= 8 + 2 * concurrency + probes, provider.calls_while_down
    assert provider.calls_while_down < calls * budget / 4
    degraded = supervisor.events("ai.provider")
    for message in degraded:
        SUPERVISOR_MESSAGES.validate_python(message)  # as published in /asyncapi.json
    assert degraded[0]["data"]["degraded"] is True
    assert degraded[0]["data"]["failure_rate"] >= ai.ai_breaker_failure_rate
    assert {m["data"]["state"] for m in degraded} == {"open", "half_open", "closed"}


def _breaker_gauge(state: str) -> float:
    """`callscope_ai_breaker_state` of the in-process worker."""
    value = metrics.REGISTRY.get_sample_value("callscope_ai_breaker_state", {"state": state})
    assert value is not None, f"no callscope_ai_breaker_state sample for {state}"
    return value


async def test_while_the_provider_is_healthy_an_unlucky_call_is_retried_at_once(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """One call's provider calls fail four times in a row while every other call's succeed:
    it is retried within its job after short waits, not re-queued for a backoff that would
    be up to CALLSCOPE_AI_RETRY_CAP (here 60 s) long."""
    unlucky, failures = "unlucky", 4
    ai = settings.model_copy(
        update={
            **FAST_AI,
            "ai_failure_rate": 0.0,
            "ai_inline_wait": 0.05,
            "ai_retry_base": 30.0,
            "ai_retry_cap": 60.0,
            "ai_seed": 3,
        }
    )
    lucky = [f"lucky-{n:02d}" for n in range(15)]
    await make_completed_calls(client, [*lucky, unlucky])
    provider = _FailsFirst(flaky_mock(ai), failures={unlucky: failures}, otherwise=0)
    async with worker_running(ai, provider):
        await wait_for_states(db, {"ARCHIVED"}, count=len(lucky) + 1, within=30)
    spent = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE outcome = 'failed') AS failed, "
        "extract(epoch FROM max(started_at) - min(started_at)) AS seconds "
        "FROM ai_attempts WHERE call_id = $1",
        unlucky,
    )
    assert spent is not None
    assert spent["failed"] == failures
    # Four waits of 0.05 s doubling: under a second. Re-queued with backoff instead, it
    # would wait uniform(0, 30 s) and then uniform(0, 60 s) before its last attempts.
    assert spent["seconds"] < 5, spent["seconds"]
    assert await db.fetchval("SELECT count(*) FROM ai_attempts WHERE outcome = 'failed'") == 4


async def test_a_supervisor_who_connects_during_an_outage_is_told_at_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    ai = settings.model_copy(update={**FAST_AI, "ai_breaker_min_calls": 3, "ai_breaker_open": 60.0})
    provider = flaky_mock(ai.model_copy(update={"ai_failure_rate": 1.0}))
    async with (
        served(ai) as server,
        httpx.AsyncClient(base_url=server.http, timeout=30) as client,
    ):
        await make_completed_calls(client, [f"late-{n}" for n in range(3)])
        async with (
            feed(feed_url(server.ws)) as early,
            worker_running(ai, provider),
        ):
            await early.read_until(has_type("ai.provider", state="open"), within=10)
            async with feed(feed_url(server.ws)) as late:
                await late.read_until(has_type("ai.provider", state="open"), within=5)
                kinds = [m["type"] for m in late.messages]
                assert kinds.index("snapshot") < kinds.index("ai.provider")


class _FailsFirst:
    """Each call's first transcriptions fail: as many as `failures` names for it, else
    `otherwise`; everything after succeeds at once."""

    def __init__(
        self, inner: AIProvider, *, failures: dict[str, int] | None = None, otherwise: int = 1
    ) -> None:
        self._inner = inner
        self._failures = failures or {}
        self._otherwise = otherwise
        self._failed: Counter[str] = Counter()

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        if self._failed[call_id] < self._failures.get(call_id, self._otherwise):
            self._failed[call_id] += 1
            raise ProviderUnavailable("503 (scripted)")
        return await self._inner.transcribe(call_id, audio)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return await self._inner.analyze(transcript)


async def test_a_job_waiting_to_retry_does_not_hold_up_the_others(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    # Each call waits 1-2 s before its retry. Waits that blocked the event loop (a
    # synchronous sleep) would stall every other job and any server in the process with it.
    await make_completed_calls(client, [f"wait-{n}" for n in range(4)])
    shortest_wait = 1.0
    ai = settings.model_copy(
        update={**FAST_AI, "ai_inline_wait": shortest_wait, "ai_failure_rate": 0.0}
    )
    stalls: list[float] = []

    async def ticking() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            stalls.append(time.monotonic() - before - 0.01)

    ticker = asyncio.create_task(ticking())
    try:
        async with worker_running(ai, _FailsFirst(flaky_mock(ai))):
            await wait_for_states(db, {"ARCHIVED"}, count=4)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    retried = "SELECT count(*) FROM ai_attempts WHERE outcome = 'failed'"
    assert await db.fetchval(retried) == 4
    # A blocking wait would have stalled the loop for a whole wait; a loaded machine's own
    # stalls (0.27 s seen) stay well short of one.
    assert max(stalls) < shortest_wait / 2, max(stalls)
