"""The AI path with real processes: `callscope mock-ai` over HTTP, workers killed and drained."""

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from callscope.ai.errors import ProviderRejected, ProviderUnavailable
from callscope.ai.http import HttpProvider
from callscope.ai.ports import CallAudio, Transcript
from callscope.settings import Settings
from tests.e2e.processes import callscope_process, clean_env, free_port
from tests.integration.ai_helpers import (
    FAST_AI,
    make_completed_calls,
    wait_for_states,
    worker_running,
)

pytestmark = pytest.mark.usefixtures("db")


def _worker_env(db_url: str, **extra: str) -> dict[str, str]:
    defaults = {
        "CALLSCOPE_DATABASE_URL": db_url,
        "CALLSCOPE_AI_FAILURE_RATE": "0",
        "CALLSCOPE_WORKER_HEARTBEAT_TIMEOUT": "2",
        "CALLSCOPE_AI_RETRY_BASE": "0.05",
        "CALLSCOPE_AI_RETRY_CAP": "0.2",
        "CALLSCOPE_AI_INLINE_WAIT": "0.01",
    }
    return clean_env(**{**defaults, **extra})


async def _wait_running_attempt(db: asyncpg.Connection, number: int = 1) -> None:
    """Until attempt `number` has started and not finished (a worker is inside it)."""
    for _ in range(600):
        if await db.fetchval(
            "SELECT count(*) FROM ai_attempts WHERE outcome IS NULL AND attempt = $1", number
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"attempt {number} never started")


async def _attempts_once_settled(db: asyncpg.Connection) -> int:
    """The attempt count once no attempt is open and the count held still for 0.3 s."""
    last = -1
    for _ in range(100):
        row = await db.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE outcome IS NULL) AS open FROM ai_attempts"
        )
        assert row is not None
        count, open_attempts = row["n"], row["open"]
        if count == last and not open_attempts:
            return int(count)
        last = count
        await asyncio.sleep(0.3)
    raise AssertionError("the attempts never settled")


async def test_worker_calls_mock_ai_over_http_and_retries_its_503s(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        CALLSCOPE_AI_FAILURE_RATE="0.3",
        CALLSCOPE_AI_SEED="5",
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.01",
    )
    with callscope_process(
        ["mock-ai", "--port", str(port)], env, tmp_path, tmp_path / "mock-ai.log"
    ):
        await _mock_ai_answering(port)
        base = f"http://127.0.0.1:{port}"
        over_http = settings.model_copy(
            update={**FAST_AI, "ai_provider": "http", "ai_http_url": base}
        )
        await make_completed_calls(client, [f"http-{n}" for n in range(10)])
        async with worker_running(over_http):
            await wait_for_states(db, {"ARCHIVED"}, count=10)
        async with httpx.AsyncClient(base_url=base, timeout=5) as raw:
            with pytest.raises(ProviderRejected):
                await HttpProvider(raw).transcribe("empty", CallAudio(b"", 8000))
    errors = await db.fetch("SELECT error FROM ai_attempts WHERE outcome = 'failed'")
    assert errors
    assert all(row["error"].startswith("503 from /v1/") for row in errors)


async def test_unreachable_ai_api_is_retryable() -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}", timeout=2) as raw:
        with pytest.raises(ProviderUnavailable):
            await HttpProvider(raw).analyze(Transcript(text="hello", segments=()))


async def test_killed_worker_s_call_is_finished_by_another_worker(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await make_completed_calls(client, ["crash"])
    heartbeat = 2  # seconds without a heartbeat before the killed worker's job is re-picked
    slow = _worker_env(
        db_url,
        CALLSCOPE_AI_LATENCY_MIN="30",
        CALLSCOPE_AI_LATENCY_MAX="30",
        CALLSCOPE_WORKER_HEARTBEAT_TIMEOUT=str(heartbeat),
    )
    with callscope_process(["worker"], slow, tmp_path, tmp_path / "slow.log") as first:
        await _wait_running_attempt(db)
        first.send_signal(signal.SIGKILL)
    fast = _worker_env(
        db_url,
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.01",
        CALLSCOPE_WORKER_HEARTBEAT_TIMEOUT=str(heartbeat),
    )
    killed_at = time.monotonic()
    with callscope_process(["worker"], fast, tmp_path, tmp_path / "fast.log"):
        await wait_for_states(db, {"ARCHIVED"}, count=1, within=30)
    # Re-picked once the heartbeat is stale, not at some later sweep (start-up included).
    assert time.monotonic() - killed_at < 5 * heartbeat + 10
    outcomes = [r["outcome"] for r in await db.fetch("SELECT outcome FROM ai_attempts ORDER BY id")]
    assert outcomes == ["abandoned", "ok", "ok"]
    assert await db.fetchval("SELECT count(*) FROM transcripts") == 1
    assert await db.fetchval("SELECT count(*) FROM sentiments") == 1


async def test_a_job_that_keeps_killing_its_worker_ends_failed(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await make_completed_calls(client, ["poison"])
    slow = _worker_env(
        db_url,
        CALLSCOPE_AI_LATENCY_MIN="30",
        CALLSCOPE_AI_LATENCY_MAX="30",
        CALLSCOPE_AI_MAX_ATTEMPTS="2",
    )
    for round_ in range(2):
        with callscope_process(
            ["worker"], slow, tmp_path, tmp_path / f"kill-{round_}.log"
        ) as worker:
            await _wait_running_attempt(db, number=round_ + 1)
            worker.send_signal(signal.SIGKILL)
    with callscope_process(["worker"], slow, tmp_path, tmp_path / "last.log"):
        await wait_for_states(db, {"FAILED"}, count=1, within=30)
    outcomes = [r["outcome"] for r in await db.fetch("SELECT outcome FROM ai_attempts ORDER BY id")]
    assert outcomes == ["abandoned", "abandoned"]


async def test_two_workers_process_each_call_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    calls = 30
    await make_completed_calls(client, [f"pair-{n:03d}" for n in range(calls)])
    env = _worker_env(
        db_url,
        CALLSCOPE_AI_FAILURE_RATE="0.25",
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.02",
        CALLSCOPE_WORKER_CONCURRENCY="4",  # so that the first worker up cannot take every job
    )
    with (
        callscope_process(
            ["worker"], {**env, "CALLSCOPE_AI_SEED": "1"}, tmp_path, tmp_path / "a.log"
        ),
        callscope_process(
            ["worker"], {**env, "CALLSCOPE_AI_SEED": "2"}, tmp_path, tmp_path / "b.log"
        ),
    ):
        await wait_for_states(db, {"ARCHIVED"}, count=calls, within=120)
    for log in ("a.log", "b.log"):
        assert "call_archived" in (tmp_path / log).read_text(), f"worker {log} did no work"
    per_call = await db.fetch(
        "SELECT call_id, to_state, count(*) AS n FROM call_events "
        "WHERE type = 'call.state_changed' GROUP BY call_id, to_state"
    )
    assert {row["n"] for row in per_call} == {1}
    assert len(per_call) == 3 * calls  # COMPLETED, PROCESSING_AI, ARCHIVED for each call
    ok = await db.fetchval("SELECT count(*) FROM ai_attempts WHERE outcome = 'ok'")
    assert ok == 2 * calls


async def test_sigterm_drains_the_job_in_flight(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await make_completed_calls(client, ["drain"])
    env = _worker_env(db_url, CALLSCOPE_AI_LATENCY_MIN="1", CALLSCOPE_AI_LATENCY_MAX="1")
    with callscope_process(["worker"], env, tmp_path, tmp_path / "drain.log") as worker:
        await _wait_running_attempt(db)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
    assert await db.fetchval("SELECT state FROM calls WHERE call_id = 'drain'") == "ARCHIVED"
    assert "worker_draining" in (tmp_path / "drain.log").read_text()


async def _mock_ai_answering(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1) as probe:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                await probe.get("/healthz")
                return
            await asyncio.sleep(0.1)
    raise AssertionError("mock-ai did not answer")


async def test_a_worker_killed_while_its_breaker_is_open_leaves_no_call_stuck_or_doubled(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    calls = 10
    await make_completed_calls(client, [f"open-{n}" for n in range(calls)])
    down_port, up_port = free_port(), free_port()
    mock = {"CALLSCOPE_AI_LATENCY_MIN": "0", "CALLSCOPE_AI_LATENCY_MAX": "0.01"}
    worker = {
        "CALLSCOPE_AI_PROVIDER": "http",
        "CALLSCOPE_AI_BREAKER_MIN_CALLS": "3",
        "CALLSCOPE_AI_BREAKER_OPEN": "600",  # stays open until the worker dies
    }
    with callscope_process(
        ["mock-ai", "--port", str(down_port)],
        clean_env(**mock, CALLSCOPE_AI_FAILURE_RATE="1"),
        tmp_path,
        tmp_path / "mock-down.log",
    ):
        await _mock_ai_answering(down_port)
        down = f"http://127.0.0.1:{down_port}"
        log = tmp_path / "open.log"
        with callscope_process(
            ["worker"], _worker_env(db_url, **worker, CALLSCOPE_AI_HTTP_URL=down), tmp_path, log
        ) as doomed:
            for _ in range(200):
                if "ai_breaker_opened" in log.read_text():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the breaker never opened")
            # Passes granted before the breaker opened still record their attempts.
            failed_before = await _attempts_once_settled(db)
            await asyncio.sleep(0.5)  # held back: no more provider calls while open
            assert await db.fetchval("SELECT count(*) FROM ai_attempts") == failed_before
            doomed.send_signal(signal.SIGKILL)
    up = f"http://127.0.0.1:{up_port}"
    with callscope_process(
        ["mock-ai", "--port", str(up_port)],
        clean_env(**mock, CALLSCOPE_AI_FAILURE_RATE="0"),
        tmp_path,
        tmp_path / "mock-up.log",
    ):
        await _mock_ai_answering(up_port)
        env = _worker_env(db_url, **worker, CALLSCOPE_AI_HTTP_URL=up)
        with callscope_process(["worker"], env, tmp_path, tmp_path / "after.log"):
            await wait_for_states(db, {"ARCHIVED"}, count=calls, within=30)
    archived = await db.fetch(
        "SELECT call_id, count(*) AS n FROM call_events "
        "WHERE type = 'call.state_changed' AND to_state = 'ARCHIVED' GROUP BY call_id"
    )
    assert len(archived) == calls
    assert {row["n"] for row in archived} == {1}
    # The jobs held back had started no attempt: none was left open to be abandoned.
    assert await db.fetchval("SELECT count(*) FROM ai_attempts WHERE outcome = 'abandoned'") == 0
