"""`callscope simulate` against a real service: speech, loss, duplicates, reordering."""

import asyncio
import os
import sys
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from callscope import metrics
from callscope.settings import Settings
from callscope.simulate.pbx import SimulationOptions, simulate
from callscope.simulate.speech import recordings
from tests.factories import INGEST_TOKEN, post_packet
from tests.live import served


@pytest.mark.slow  # six recorded calls, packet by packet
async def test_speech_calls_arrive_with_what_was_lost_counted_missing(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as server:
        options = SimulationOptions(
            url=server.http,
            token=INGEST_TOKEN,
            calls=3,  # the first three recordings
            loss=0.05,
            duplicates=0.05,
            reorder=0.1,
            speed=0,
            speech=True,
            seed=11,
        )
        report = await simulate(options)
    assert report.calls == 3
    assert report.missing_as_planned == 3
    assert set(report.statuses) == {"202"}  # duplicates are acknowledged too
    rows = await db.fetch(
        "SELECT c.call_id, c.encoding, c.metadata->>'recording' AS recording, "
        "(SELECT sum(packets_duplicate) FROM call_tracks t WHERE t.call_id = c.call_id) "
        "AS packets_duplicate, c.state, count(p.sequence) AS stored "
        "FROM calls c JOIN packets p USING (call_id) GROUP BY c.call_id ORDER BY c.call_id"
    )
    assert {r["encoding"] for r in rows} == {"mulaw"}
    assert {r["state"] for r in rows} == {"COMPLETED"}
    assert [r["recording"] for r in rows] == [r.path.name for r in recordings()[:3]]
    assert sum(r["packets_duplicate"] for r in rows) > 0
    sent = report.packets_sent - sum(r["packets_duplicate"] for r in rows)
    assert sum(r["stored"] for r in rows) == sent


async def test_the_command_streams_tone_calls(settings: Settings, db: asyncpg.Connection) -> None:
    async with served(settings) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callscope",
            "simulate",
            "--url",
            server.http,
            "--calls",
            "3",
            "--seconds",
            "1",
            "--speed",
            "0",
            env={**os.environ, "CALLSCOPE_INGEST_TOKENS": INGEST_TOKEN},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
    assert process.returncode == 0, out
    assert b"simulated 3 calls over http, 150 packets sent" in out
    assert await db.fetchval("SELECT count(*) FROM packets") == 150


async def test_packets_shed_with_503_are_sent_again_after_retry_after(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """While commits wait and the ingest queue is full, the service sheds the simulated
    calls' packets with 503 and Retry-After: 1; the simulator sends each again after it, so
    every packet is stored and every call's missing count is as planned."""
    held = db.transaction()
    await held.start()
    await db.execute("LOCK TABLE packets IN EXCLUSIVE MODE")  # batches wait for the lock
    async with (
        served(settings.model_copy(update={"ingest_queue_limit": 4})) as server,
        httpx.AsyncClient(base_url=server.http, timeout=30) as client,
    ):
        committer = server.app.state.process.committer
        filling = [asyncio.create_task(post_packet(client, "filler", s)) for s in range(1, 5)]
        # The queue is full: the next packet is shed.
        await _until(lambda: committer.pending == 4, "the queue never filled", within=5.0)
        options = SimulationOptions(
            url=server.http, token=INGEST_TOKEN, calls=3, seconds=1, speed=0, seed=5
        )
        shed_before = _shed_http_packets()
        simulating = asyncio.create_task(simulate(options))
        await _until(  # each call's first packet, at least
            lambda: _shed_http_packets() >= shed_before + 3,
            "the simulated calls' packets were never shed",
        )
        await held.rollback()
        report = await simulating
        assert {(await each).status_code for each in filling} == {202}
    assert report.statuses["retried 503"] >= 3  # one per call at least
    assert set(report.statuses) == {"202", "retried 503"}
    assert report.missing_as_planned == report.calls == 3
    stored = await db.fetchval("SELECT count(*) FROM packets WHERE call_id <> 'filler'")
    assert stored == report.packets_sent


def _shed_http_packets() -> float:
    """`callscope_ingest_packets_total{path="http",outcome="shed"}` in this process."""
    labels = {"path": "http", "outcome": "shed"}
    return metrics.REGISTRY.get_sample_value("callscope_ingest_packets_total", labels) or 0.0


async def _until(reached: Callable[[], bool], failure: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.01)):
        if reached():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(failure)
