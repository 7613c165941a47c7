"""AI orchestration against a real queue and database: retries, budgets, re-drive."""

import asyncio
import json

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from callscope.ai.errors import ProviderUnavailable
from callscope.ai.factory import flaky_mock
from callscope.ai.ports import CallAudio, Segment, Sentiment, Transcript
from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR
from tests.integration.ai_helpers import (
    FAST_AI,
    make_completed_calls,
    wait_for_states,
    worker_running,
)


async def test_flaky_provider_eventually_archives_every_call(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    # A budget no call can spend at this failure rate: the point here is eventual success.
    ai = settings.model_copy(
        update={**FAST_AI, "ai_failure_rate": 0.25, "ai_seed": 7, "ai_max_attempts": 30}
    )
    provider = flaky_mock(ai)
    calls = 50
    call_ids = [f"ai-{n:03d}" for n in range(calls)]
    await make_completed_calls(client, call_ids)
    async with worker_running(ai, provider):
        await wait_for_states(db, {"ARCHIVED", "FAILED"}, count=calls)
    assert await db.fetchval("SELECT count(*) FROM calls WHERE state = 'ARCHIVED'") == calls
    assert await db.fetchval("SELECT count(*) FROM transcripts") == calls
    assert await db.fetchval("SELECT count(*) FROM sentiments") == calls
    failed = await db.fetchval("SELECT count(*) FROM ai_attempts WHERE outcome = 'failed'")
    assert provider.failures_injected > 0
    assert failed == provider.failures_injected
    per_call = await db.fetch(
        "SELECT call_id, count(*) FILTER (WHERE outcome = 'ok') AS ok, count(*) AS total "
        "FROM ai_attempts GROUP BY call_id"
    )
    assert len(per_call) == calls
    assert all(row["ok"] == 2 for row in per_call)
    assert sum(row["total"] for row in per_call) == 2 * calls + provider.failures_injected
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


@pytest.mark.slow  # every failure goes back to the queue: dozens of real re-queues
async def test_a_transcript_survives_a_failed_sentiment_step(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    # The backoff policy with no quick retries: every failure sends the job back to the queue,
    # so a later run must find the transcript of an earlier one and not transcribe again.
    ai = settings.model_copy(
        update={
            **FAST_AI,
            "ai_retry_policy": "backoff",
            "ai_failure_rate": 0.5,
            "ai_seed": 3,
            "ai_inline_retries": 0,
            "ai_max_attempts": 40,
        }
    )
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
    requeued = await db.fetchval("SELECT count(*) FROM pgqueuer_log WHERE status = 'queued'")
    assert requeued > 20  # more queue entries than the 20 first ones: runs were re-queued


class _SentimentAlwaysDown:
    """Transcribes (after one failure), never scores: spends a budget to the last attempt."""

    def __init__(self) -> None:
        self.transcribe_failures_left = 1

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        if self.transcribe_failures_left:
            self.transcribe_failures_left -= 1
            raise ProviderUnavailable("503 (scripted)")
        return Transcript(text="hello", segments=(Segment(0.0, 1.0, "hello"),))

    async def analyze(self, transcript: Transcript) -> Sentiment:
        raise ProviderUnavailable("503 (scripted)")


async def test_budget_is_never_exceeded_even_when_a_step_starts_with_none_left(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    ai = settings.model_copy(update={**FAST_AI, "ai_max_attempts": 2})
    await make_completed_calls(client, ["edge"])
    async with worker_running(ai, _SentimentAlwaysDown()):
        await wait_for_states(db, {"FAILED"}, count=1)
    call = (await client.get("/v1/calls/edge", headers=SUPERVISOR)).json()
    assert call["ai"]["attempts_used"] == 2
    assert [(a["step"], a["outcome"]) for a in call["ai"]["attempts"]] == [
        ("transcribe", "failed"),
        ("transcribe", "ok"),
    ]


async def test_retry_right_after_failing_queues_a_job_that_runs(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """The failed run's job row may still exist when the operator re-drives: the new job
    must still be queued (one job per call and epoch), not skipped as a duplicate."""
    broken = settings.model_copy(
        update={**FAST_AI, "ai_failure_rate": 1.0, "ai_max_attempts": 1, "ai_seed": 4}
    )
    await make_completed_calls(client, ["again"])
    async with worker_running(broken):
        await wait_for_states(db, {"FAILED"}, count=1)
        redriven = await client.post("/v1/calls/again/retry", headers=SUPERVISOR)
        assert redriven.status_code == 200
        for _ in range(300):
            epoch_one = await db.fetchval(
                "SELECT count(*) FROM ai_attempts WHERE call_id = 'again' AND epoch = 1"
            )
            state = await db.fetchval("SELECT state FROM calls WHERE call_id = 'again'")
            if epoch_one and state == "FAILED":
                break
            await asyncio.sleep(0.05)
    assert epoch_one == 1
    assert state == "FAILED"


async def test_a_call_whose_job_was_lost_is_requeued_by_the_worker(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    await make_completed_calls(client, ["orphan", "queued"])
    await db.execute("DELETE FROM pgqueuer WHERE payload = 'orphan'::bytea")
    await db.execute("UPDATE calls SET updated_at = now() - interval '1 minute'")
    healthy = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.0})
    with capture_logs() as logs:
        async with worker_running(healthy):
            await wait_for_states(db, {"ARCHIVED"}, count=2)
    requeued = [e["call_id"] for e in logs if e["event"] == "ai_job_requeued"]
    assert requeued == ["orphan"]


async def test_concurrent_retries_re_drive_a_failed_call_once(
    client: httpx.AsyncClient,
    replica_b: httpx.AsyncClient,
    settings: Settings,
    db: asyncpg.Connection,
) -> None:
    broken = settings.model_copy(
        update={**FAST_AI, "ai_failure_rate": 1.0, "ai_max_attempts": 2, "ai_seed": 1}
    )
    await make_completed_calls(client, ["twice"])
    async with worker_running(broken):
        await wait_for_states(db, {"FAILED"}, count=1)
    answers = await asyncio.gather(
        *(
            (client if n % 2 else replica_b).post("/v1/calls/twice/retry", headers=SUPERVISOR)
            for n in range(30)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 29
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {
        "invalid_state_transition"
    }
    jobs = await db.fetch("SELECT convert_from(payload, 'UTF8') AS call_id FROM pgqueuer")
    assert [job["call_id"] for job in jobs] == ["twice"]
    redriven = await db.fetchval(
        "SELECT count(*) FROM call_events WHERE call_id = 'twice' AND from_state = 'FAILED'"
    )
    assert redriven == 1
    call = await db.fetchrow("SELECT state, ai_epoch FROM calls")
    assert call is not None
    assert (call["state"], call["ai_epoch"]) == ("PROCESSING_AI", 1)
