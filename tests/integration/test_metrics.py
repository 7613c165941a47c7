"""`GET /metrics`: ingest metrics move with traffic on every path and agree with the
database; the metrics token, when set, is required."""

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from websockets.asyncio.client import connect

from callscope import gauges, metrics
from callscope.ai.factory import flaky_mock
from callscope.calls.vocabulary import Track
from callscope.db.engine import create_engine
from callscope.ingest.native import binary_frame
from callscope.settings import Settings
from tests.e2e.processes import free_port
from tests.factories import INGEST, audio, post_packet
from tests.integration.ai_helpers import (
    FAST_AI,
    make_completed_calls,
    wait_for_states,
    worker_running,
)
from tests.integration.test_media_streams import BEARER, STOP, answers, closed, media, start
from tests.live import feed_url, served


def _samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _packets(samples: dict[Any, float], path: str, outcome: str) -> float:
    labels = (("outcome", outcome), ("path", path))
    return samples.get(("callscope_ingest_packets_total", labels), 0.0)


async def test_ingest_metrics_count_every_path_and_agree_with_the_database(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        before = _samples((await http.get("/metrics")).text)
        for sequence in (1, 2, 2):
            assert (await post_packet(http, "m-http", sequence)).status_code == 202
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start("m-twilio"))
            for chunk in (1, 2, 3):
                await ws.send(media("inbound", chunk))
            await ws.send(media("outbound", 1))
            await ws.send(STOP)
            assert (await closed(ws))[0] == 1000
        url = running.ws + "/v1/calls/m-stream/media"
        async with connect(url, additional_headers=BEARER) as ws:
            await ws.send(binary_frame(Track.inbound, 1, 0.0, audio(1)))
            await ws.send(binary_frame(Track.inbound, 2, 0.0, audio(2)))
            await ws.send(binary_frame(Track.inbound, 2, 0.0, audio(9)))  # a conflict
            await ws.send(json.dumps({"type": "end"}))
            assert (await answers(ws, until="ended"))[-1]["type"] == "ended"
        assert (await post_packet(http, "m-twilio", 9)).status_code == 409  # completed: closed
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    def moved(path: str, outcome: str) -> float:
        return _packets(after, path, outcome) - _packets(before, path, outcome)

    assert (moved("http", "accepted"), moved("http", "duplicate")) == (2, 1)
    assert (moved("twilio", "accepted"), moved("stream", "accepted")) == (4, 2)
    assert (moved("stream", "conflict"), moved("http", "closed")) == (1, 1)
    stored = await db.fetchval("SELECT count(*) FROM packets")
    accepted = sum(moved(path, "accepted") for path in ("http", "twilio", "stream"))
    assert stored == accepted
    committed = after[("callscope_ingest_commit_seconds_count", ())] - before.get(
        ("callscope_ingest_commit_seconds_count", ()), 0.0
    )
    assert committed == 11  # every packet that reached a batch, whatever its verdict
    assert (
        after[("callscope_ingest_batch_size_sum", ())]
        - before.get(("callscope_ingest_batch_size_sum", ()), 0.0)
        == committed
    )
    assert after[("callscope_ingest_queue_depth", ())] == 0


async def test_the_api_serves_its_metrics_on_its_own_port(settings: Settings) -> None:
    port = free_port()
    apart = settings.model_copy(
        update={"metrics_port": port, "metrics_token": SecretStr("scrape-me")}
    )
    async with served(apart) as running, httpx.AsyncClient(base_url=running.http) as http:
        assert (await post_packet(http, "m-port", 1)).status_code == 202
        scraper = f"http://127.0.0.1:{port}/metrics"
        token = {"Authorization": "Bearer scrape-me"}
        scraped = await http.get(scraper, headers=token)
        unauthorized = await http.get(scraper)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert _packets(_samples(scraped.text), "http", "accepted") >= 1
    assert unauthorized.status_code == 401


async def test_the_metrics_token_is_required_once_set(settings: Settings) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    async with served(guarded) as running, httpx.AsyncClient(base_url=running.http) as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.headers["content-type"] == "application/problem+json"
    assert "callscope_ingest_packets_total" in right.text


def _delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_invalid_input_is_counted_per_path(settings: Settings) -> None:
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        before = _samples((await http.get("/metrics")).text)
        bad = await http.post(
            "/v1/call/stream/m-bad", json={"sequence": -1, "data": "QQ=="}, headers=INGEST
        )
        not_json = await http.post(
            "/v1/call/stream/m-bad",
            content=b"{",
            headers={**INGEST, "Content-Type": "application/json"},
        )
        async with connect(running.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start("m-twilio-bad"))
            await ws.send(media("sideways", 1))
            assert (await closed(ws))[0] == 4400
        after = _samples((await http.get("/metrics")).text)
    assert (bad.status_code, not_json.status_code) == (422, 400)
    invalid = "callscope_ingest_packets_total"
    assert _delta(before, after, invalid, path="http", outcome="invalid") == 2
    assert _delta(before, after, invalid, path="twilio", outcome="invalid") == 1


async def test_call_and_ai_metrics_agree_with_the_database(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.3, "ai_seed": 11})
    provider = flaky_mock(ai)
    before = _samples(metrics.render().decode())
    await make_completed_calls(client, [f"m-ai-{n}" for n in range(6)])
    async with worker_running(ai, provider):
        await wait_for_states(db, {"ARCHIVED", "FAILED"}, count=6)
    engine = create_engine(settings.require_database_url(), pool_size=1)
    try:
        await gauges.count_calls(engine)
    finally:
        await engine.dispose()
    after = _samples(metrics.render().decode())

    transitions = await db.fetch(
        "SELECT from_state, to_state, count(*) AS n FROM call_events "
        "WHERE type = 'call.state_changed' GROUP BY from_state, to_state"
    )
    assert transitions
    for row in transitions:
        moved = _delta(
            before,
            after,
            "callscope_call_transitions_total",
            **{"from": row["from_state"], "to": row["to_state"]},
        )
        assert moved == row["n"], (row["from_state"], row["to_state"])
    attempts = await db.fetch(
        "SELECT step, outcome, count(*) AS n FROM ai_attempts GROUP BY step, outcome"
    )
    outcome_names = {"ok": "succeeded", "failed": "failed", "rejected": "rejected"}
    for row in attempts:
        moved = _delta(
            before,
            after,
            "callscope_ai_attempts_total",
            step=row["step"],
            outcome=outcome_names[row["outcome"]],
        )
        assert moved == row["n"], (row["step"], row["outcome"])
    assert provider.failures_injected > 0
    timed = _delta(before, after, "callscope_ai_provider_seconds_count", step="transcribe")
    assert timed == sum(r["n"] for r in attempts if r["step"] == "transcribe")
    assert _delta(before, after, "callscope_ai_job_wait_seconds_count") == 6
    by_state = await db.fetch("SELECT state, count(*) AS n FROM calls GROUP BY state")
    for row in by_state:
        assert after[("callscope_calls", (("state", row["state"]),))] == row["n"]
    assert after[("callscope_calls", (("state", "IN_PROGRESS"),))] == 0


async def test_live_feed_metrics_follow_a_supervisor(settings: Settings) -> None:
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        before = _samples((await http.get("/metrics")).text)
        async with connect(feed_url(running.ws)) as feed:
            assert json.loads(await feed.recv())["type"] == "snapshot"
            during = _samples((await http.get("/metrics")).text)
            assert (await post_packet(http, "m-live", 1)).status_code == 202
            while json.loads(await feed.recv())["type"] != "call.created":
                pass
        async with connect(feed_url(running.ws, token="wrong")) as refused:
            assert (await closed(refused))[0] == 4401
        await asyncio.sleep(0.1)  # the server notices the first client left
        after = _samples((await http.get("/metrics")).text)
    assert (
        during[("callscope_live_clients", ())] == before.get(("callscope_live_clients", ()), 0) + 1
    )
    assert after[("callscope_live_clients", ())] == before.get(("callscope_live_clients", ()), 0)
    messages = "callscope_live_messages_total"
    assert _delta(before, after, messages, type="snapshot") == 1
    assert _delta(before, after, messages, type="call.created") == 1
    assert _delta(before, after, "callscope_live_delay_seconds_count") == 1
    assert _delta(before, after, "callscope_live_closed_total", code="4401") == 1
    assert _delta(before, after, "callscope_live_closed_total", code="1000") == 1


async def test_a_worker_serves_its_metrics_on_its_own_port(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    port = free_port()
    stalled = settings.model_copy(
        update={
            **FAST_AI,
            "worker_metrics_port": port,
            "metrics_token": SecretStr("scrape-me"),
            "ai_latency_min": 0.3,  # a job stays running while we look
            "ai_latency_max": 0.3,
            "ai_failure_rate": 0.0,
            "worker_concurrency": 1,
            "gauge_interval": 0.05,
        }
    )
    await make_completed_calls(client, ["m-w-1", "m-w-2", "m-w-3"])
    url = f"http://127.0.0.1:{port}"
    async with worker_running(stalled), httpx.AsyncClient(base_url=url) as scraper:
        token = {"Authorization": "Bearer scrape-me"}
        while True:  # until the port is open and the gauge has seen a job running
            await asyncio.sleep(0.05)
            try:
                samples = _samples((await scraper.get("/metrics", headers=token)).text)
            except httpx.ConnectError:
                continue
            if samples.get(("callscope_ai_jobs", (("status", "running"),))):
                break
        unauthorized = await scraper.get("/metrics")
        elsewhere = await scraper.get("/v1/calls", headers=token)
    queued = await db.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
    running = samples[("callscope_ai_jobs", (("status", "running"),))]
    assert running + samples[("callscope_ai_jobs", (("status", "queued"),))] == 3
    assert queued >= samples[("callscope_ai_jobs", (("status", "queued"),))] - running
    assert (unauthorized.status_code, elsewhere.status_code) == (401, 404)
    assert unauthorized.headers["content-type"] == "application/problem+json"


async def test_metrics_switched_off_are_neither_recorded_nor_served(
    settings: Settings, db: asyncpg.Connection
) -> None:
    port = free_port()
    off = settings.model_copy(update={"metrics_enabled": False, "metrics_port": port})
    before = _samples(metrics.render().decode())
    try:
        async with served(off) as running, httpx.AsyncClient(base_url=running.http) as http:
            assert (await post_packet(http, "m-off", 1)).status_code == 202
            scrape = await http.get("/metrics")
            tasks = set(running.app.state.process.supervisor.statuses)
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        metrics.set_enabled(True)
    after = _samples(metrics.render().decode())
    assert scrape.status_code == 404
    assert "calls-gauge" not in tasks
    assert f"metrics-server-{port}" not in tasks
    assert scrape.headers["content-type"] == "application/problem+json"
    assert (
        _delta(before, after, "callscope_ingest_packets_total", path="http", outcome="accepted")
        == 0
    )
    assert await db.fetchval("SELECT count(*) FROM packets") == 1
