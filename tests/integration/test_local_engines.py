"""The real offline engines on the committed recordings, streamed as 8 kHz μ-law packets
through the real API and transcribed by a real worker; and the event loop stays free."""

import asyncio
import base64
import statistics
import time

import asyncpg
import httpx

from callscope.settings import Settings
from callscope.simulate.pbx import SimulationOptions, simulate
from callscope.simulate.plan import frames_of
from callscope.simulate.speech import recordings
from tests.factories import INGEST, INGEST_TOKEN, packet_body
from tests.integration.ai_helpers import FAST_AI, wait_for_states, worker_running
from tests.live import served
from tests.wer import word_errors


def _local(settings: Settings) -> Settings:
    return settings.model_copy(update={**FAST_AI, "ai_provider": "local", "ai_failure_rate": 0.0})


async def test_recordings_are_transcribed_and_scored(
    settings: Settings, db: asyncpg.Connection
) -> None:
    local = _local(settings)
    async with served(local) as server:
        options = SimulationOptions(
            url=server.http, token=INGEST_TOKEN, calls=6, speed=0, speech=True, seed=1
        )
        report = await simulate(options)
        async with worker_running(local):
            await wait_for_states(db, {"ARCHIVED", "FAILED"}, count=report.calls, within=120)
    rows = await db.fetch(
        "SELECT c.state, c.metadata->>'recording' AS recording, t.text, "
        "jsonb_array_length(t.segments) AS segments, s.label, jsonb_array_length(s.trend) AS trend "
        "FROM calls c JOIN transcripts t USING (call_id) JOIN sentiments s USING (call_id)"
    )
    assert len(rows) == report.calls
    assert {r["state"] for r in rows} == {"ARCHIVED"}
    truth = {r.path.name: r for r in recordings()}
    errors = words = 0
    for row in rows:
        recording = truth[row["recording"]]
        wrong, total = word_errors(recording.text, row["text"])
        errors, words = errors + wrong, words + total
        assert row["segments"] > 0
        assert row["trend"] == row["segments"]  # one score per segment
        if recording.sentiment in {"negative", "positive"}:  # clearly angry or happy
            assert row["label"] == recording.sentiment, (recording.path.name, row["text"])
    assert errors / words <= 0.35, f"word error rate {errors / words:.2f}"


async def test_ingestion_answers_while_a_call_is_transcribed_in_process(
    settings: Settings, db: asyncpg.Connection
) -> None:
    local = _local(settings)
    speech = b"".join(r.mulaw() for r in recordings()) * 2  # ~92 s of speech in one call
    async with (
        served(local) as server,
        httpx.AsyncClient(base_url=server.http, headers=INGEST) as http,
        worker_running(local),  # in this process and event loop, as `callscope run` does
    ):
        bodies = [
            {"sequence": n, "data": base64.b64encode(frame).decode(), "timestamp": 1.0}
            for n, frame in enumerate(frames_of(speech), start=1)
        ]
        for first in range(0, len(bodies), 100):  # 100 at a time: the order does not matter
            batch = bodies[first : first + 100]
            answers = await asyncio.gather(
                *(http.post("/v1/call/stream/long", json=body) for body in batch)
            )
            assert {answer.status_code for answer in answers} == {202}
        assert (await http.post("/v1/calls/long/complete")).status_code == 200
        running = "SELECT count(*) FROM ai_attempts WHERE step = 'transcribe' AND outcome IS NULL"
        for _ in range(200):
            if await db.fetchval(running):
                break
            await asyncio.sleep(0.05)
        latencies: list[float] = []
        sequence = 0
        while await db.fetchval(running):
            sequence += 1
            started = time.perf_counter()
            response = await http.post("/v1/call/stream/other", json=packet_body(sequence))
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 202
        await wait_for_states(db, {"ARCHIVED"}, count=1, within=60)
    assert len(latencies) >= 50  # really measured during the transcription
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.25, f"ingest p99 {p99 * 1000:.0f} ms while transcribing"
