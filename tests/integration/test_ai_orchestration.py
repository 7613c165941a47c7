"""AI orchestration against a real queue and database: retries, budgets, re-drive."""

import json

import asyncpg
import httpx

from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR
from tests.integration.ai_helpers import (
    FAST_AI,
    flaky_mock,
    make_completed_calls,
    wait_for_states,
    worker_running,
)


async def test_flaky_provider_eventually_archives_every_call(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.25, "ai_seed": 7})
    provider = flaky_mock(ai)
    call_ids = [f"ai-{n:03d}" for n in range(100)]
    await make_completed_calls(client, call_ids)
    async with worker_running(ai, provider):
        await wait_for_states(db, {"ARCHIVED", "FAILED"}, count=100)
    assert await db.fetchval("SELECT count(*) FROM calls WHERE state = 'ARCHIVED'") == 100
    assert await db.fetchval("SELECT count(*) FROM transcripts") == 100
    assert await db.fetchval("SELECT count(*) FROM sentiments") == 100
    failed = await db.fetchval("SELECT count(*) FROM ai_attempts WHERE outcome = 'failed'")
    assert provider.failures_injected > 0
    assert failed == provider.failures_injected
    per_call = await db.fetch(
        "SELECT call_id, count(*) FILTER (WHERE outcome = 'ok') AS ok, count(*) AS total "
        "FROM ai_attempts GROUP BY call_id"
    )
    assert len(per_call) == 100
    assert all(row["ok"] == 2 for row in per_call)
    assert sum(row["total"] for row in per_call) == 200 + provider.failures_injected
    transitions = await db.fetch(
        "SELECT call_id, count(*) AS n FROM call_events WHERE type = 'call.state_changed' "
        "GROUP BY call_id"
    )
    assert {row["n"] for row in transitions} == {3}  # COMPLETED, PROCESSING_AI, ARCHIVED
    call = (await client.get("/v1/calls/ai-000", headers=SUPERVISOR)).json()
    assert call["ai"]["transcript"]["segments"]
    assert call["ai"]["sentiment"]["label"] in {"positive", "neutral", "negative"}


async def test_spent_budget_fails_the_call_and_retry_re_drives_it(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    broken = settings.model_copy(
        update={**FAST_AI, "ai_failure_rate": 1.0, "ai_max_attempts": 4, "ai_seed": 1}
    )
    await make_completed_calls(client, ["doomed"])
    async with worker_running(broken):
        await wait_for_states(db, {"FAILED"}, count=1)
    call = (await client.get("/v1/calls/doomed", headers=SUPERVISOR)).json()
    assert call["state"] == "FAILED"
    assert call["ai"]["attempts_used"] == 4
    assert [a["outcome"] for a in call["ai"]["attempts"]] == ["failed"] * 4
    assert "503" in call["ai"]["last_error"]
    failed_event = await db.fetchval(
        "SELECT data FROM call_events WHERE to_state = 'FAILED' AND call_id = 'doomed'"
    )
    assert json.loads(failed_event)["attempts"] == 4

    assert (await client.post("/v1/calls/doomed/retry", headers=INGEST)).status_code == 403
    redriven = await client.post("/v1/calls/doomed/retry", headers=SUPERVISOR)
    assert redriven.status_code == 200
    assert redriven.json()["state"] == "PROCESSING_AI"
    assert redriven.json()["ai"]["epoch"] == 1
    healthy = broken.model_copy(update={"ai_failure_rate": 0.0})
    async with worker_running(healthy):
        await wait_for_states(db, {"ARCHIVED"}, count=1)
    call = (await client.get("/v1/calls/doomed", headers=SUPERVISOR)).json()
    assert call["ai"]["attempts_used"] == 2
    assert call["ai"]["transcript"] is not None


async def test_retry_of_a_call_that_is_not_failed_is_409(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await make_completed_calls(client, ["fine"])
    response = await client.post("/v1/calls/fine/retry", headers=SUPERVISOR)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state_transition"
    assert (await client.post("/v1/calls/nobody/retry", headers=SUPERVISOR)).status_code == 404


async def test_a_transcript_survives_a_failed_sentiment_step(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.5, "ai_seed": 3})
    provider = flaky_mock(ai)
    await make_completed_calls(client, [f"step-{n}" for n in range(20)])
    async with worker_running(ai, provider):
        await wait_for_states(db, {"ARCHIVED"}, count=20)
    # no call was transcribed successfully twice, whatever failed after it
    twice = await db.fetchval(
        "SELECT count(*) FROM (SELECT call_id FROM ai_attempts "
        "WHERE step = 'transcribe' AND outcome = 'ok' GROUP BY call_id HAVING count(*) > 1) t"
    )
    assert twice == 0
    retried_sentiment = await db.fetchval(
        "SELECT count(DISTINCT call_id) FROM ai_attempts WHERE step = 'sentiment' "
        "AND outcome = 'failed'"
    )
    assert retried_sentiment > 0
