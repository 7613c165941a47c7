"""One call's path through the logs: each line that concerns a request carries its
`request_id` and `call_id`, each line of its AI job `job_id` and `call_id`; the request id
is the client's X-Request-ID (or a new one) and comes back in the response; no line holds a
token or audio."""

import base64
import json
from collections.abc import MutableMapping, Sequence
from typing import Any

import asyncpg
import httpx
import structlog
from structlog.testing import capture_logs

from callscope.settings import Settings
from tests.factories import INGEST, INGEST_TOKEN, SUPERVISOR_TOKEN, audio, packet_body
from tests.integration.ai_helpers import FAST_AI, wait_for_states, worker_running

MERGED = [structlog.contextvars.merge_contextvars]


def _lines(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == event]


async def test_one_call_through_the_logs(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    traced = {**INGEST, "X-Request-ID": "pbx-req-42"}
    with capture_logs(processors=MERGED) as logs:
        first = await client.post("/v1/call/stream/lc-1", json=packet_body(1), headers=traced)
        gap = await client.post("/v1/call/stream/lc-1", json=packet_body(4), headers=INGEST)
        completed = await client.post("/v1/calls/lc-1/complete", headers=traced)
        ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.0})
        async with worker_running(ai):
            await wait_for_states(db, {"ARCHIVED"}, count=1)
    assert first.headers["x-request-id"] == "pbx-req-42"
    generated = gap.headers["x-request-id"]
    assert len(generated) == 16
    assert generated != "pbx-req-42"
    assert completed.headers["x-request-id"] == "pbx-req-42"

    (complete_line,) = _lines(logs, "call_complete_requested")
    assert (complete_line["request_id"], complete_line["call_id"]) == ("pbx-req-42", "lc-1")
    (gap_line,) = _lines(logs, "packet_gap_detected")
    assert gap_line["call_id"] == "lc-1"
    (archived,) = _lines(logs, "call_archived")
    assert archived["call_id"] == "lc-1"
    assert archived["job_id"].isdigit()
    assert "request_id" not in archived  # the worker's line is about the job, not a request

    text = "\n".join(json.dumps(line, default=str) for line in logs)
    assert INGEST_TOKEN not in text
    assert SUPERVISOR_TOKEN not in text
    assert base64.b64encode(audio(1)).decode() not in text


async def test_an_unusable_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    headers = {**INGEST, "X-Request-ID": "two words; and more"}
    response = await client.post("/v1/call/stream/lc-2", json=packet_body(1), headers=headers)
    assert response.status_code == 202
    assert len(response.headers["x-request-id"]) == 16


async def test_each_failed_attempt_is_one_line_of_its_job(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    for sequence in (1, 2):
        posted = await client.post(
            "/v1/call/stream/lc-2", json=packet_body(sequence), headers=INGEST
        )
        assert posted.status_code == 202
    assert (await client.post("/v1/calls/lc-2/complete", headers=INGEST)).status_code == 200
    down = settings.model_copy(
        update={**FAST_AI, "ai_failure_rate": 1.0, "ai_max_attempts": 2, "ai_seed": 3}
    )
    with capture_logs(processors=MERGED) as logs:
        async with worker_running(down):
            await wait_for_states(db, {"FAILED"}, count=1)

    failed = _lines(logs, "ai_attempt_failed")
    assert [line["attempt"] for line in failed] == [1, 2]
    for line in failed:
        assert line["call_id"] == "lc-2"
        assert line["job_id"].isdigit()
        assert (line["step"], line["track"], line["permanent"]) == ("transcribe", "inbound", False)
        assert "injected" in line["error"]
    assert not [line for line in logs if str(line["event"]).startswith("stamina")]
