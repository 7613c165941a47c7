"""The AI path with real processes: `callscope mock-ai` over HTTP, workers killed and drained."""

import asyncio
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
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=1) as probe:
            for _ in range(100):
                try:
                    await probe.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
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
    # The default heartbeat timeout (10 s): the call must still be finished within 30 s.
    slow = _worker_env(
        db_url,
        CALLSCOPE_AI_LATENCY_MIN="30",
        CALLSCOPE_AI_LATENCY_MAX="30",
        CALLSCOPE_WORKER_HEARTBEAT_TIMEOUT="10",
    )
    with callscope_process(["worker"], slow, tmp_path, tmp_path / "slow.log") as first:
        await _wait_running_attempt(db)
        first.send_signal(signal.SIGKILL)
    fast = _worker_env(
        db_url,
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.01",
        CALLSCOPE_WORKER_HEARTBEAT_TIMEOUT="10",
    )
    killed_at = time.monotonic()
    with callscope_process(["worker"], fast, tmp_path, tmp_path / "fast.log"):
        await wait_for_states(db, {"ARCHIVED"}, count=1, within=30)
    assert time.monotonic() - killed_at < 30
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
    await make_completed_calls(client, [f"pair-{n:03d}" for n in range(200)])
    env = _worker_env(
        db_url,
        CALLSCOPE_AI_FAILURE_RATE="0.25",
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.02",
    )
    with (
        callscope_process(
            ["worker"], {**env, "CALLSCOPE_AI_SEED": "1"}, tmp_path, tmp_path / "a.log"
        ),
        callscope_process(
            ["worker"], {**env, "CALLSCOPE_AI_SEED": "2"}, tmp_path, tmp_path / "b.log"
        ),
    ):
        await wait_for_states(db, {"ARCHIVED"}, count=200, within=120)
    for log in ("a.log", "b.log"):
        assert "call_archived" in (tmp_path / log).read_text(), f"worker {log} did no work"
    per_call = await db.fetch(
        "SELECT call_id, to_state, count(*) AS n FROM call_events "
        "WHERE type = 'call.state_changed' GROUP BY call_id, to_state"
    )
    assert {row["n"] for row in per_call} == {1}
    assert len(per_call) == 600  # COMPLETED, PROCESSING_AI, ARCHIVED for each call
    ok = await db.fetchval("SELECT count(*) FROM ai_attempts WHERE outcome = 'ok'")
    assert ok == 400


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
