"""A real Prometheus scrapes a real `callscope serve` (behind CALLSCOPE_METRICS_TOKEN) while
packets arrive: the ingest metrics it collects move with the traffic and agree with the
database."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready
from tests.factories import INGEST, INGEST_TOKEN, SUPERVISOR_TOKEN, packet_body
from tests.prometheus import (
    PrometheusServer,
    Sample,
    ScrapeTarget,
    prometheus_server,
    single_value,
)

pytestmark = pytest.mark.usefixtures("db")

METRICS_TOKEN = "metrics-secret-5b1e"
ACCEPTED = 'callscope_ingest_packets_total{path="http",outcome="accepted"}'
DUPLICATE = 'callscope_ingest_packets_total{path="http",outcome="duplicate"}'
STORED = "SELECT count(*) FROM packets"
DUPLICATES_SEEN = "SELECT coalesce(sum(packets_duplicate), 0) FROM call_tracks"


@contextmanager
def _scraped_server(db_url: str, tmp_path: Path) -> Iterator[tuple[str, PrometheusServer]]:
    """`callscope serve` with a metrics token, scraped by Prometheus twice: as job
    `callscope` with the token, and as job `without-token`; yields (base URL, Prometheus)."""
    address = f"127.0.0.1:{free_port()}"
    targets = [
        ScrapeTarget(address, job="callscope", bearer_token=METRICS_TOKEN),
        ScrapeTarget(address, job="without-token"),
    ]
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS=INGEST_TOKEN,
        CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR_TOKEN,
        CALLSCOPE_METRICS_TOKEN=METRICS_TOKEN,
    )
    log = tmp_path / "serve.log"
    # Prometheus first: its first scrape comes ~5 s after it starts, while the server starts.
    with (
        prometheus_server(targets, tmp_path / "prometheus") as prometheus,
        callscope_process(["serve", "--port", address.split(":")[1]], env, tmp_path, log) as serve,
    ):
        wait_ready(f"http://{address}", serve, timeout=60, log=log)
        yield f"http://{address}", prometheus


def _counted(samples: list[Sample]) -> float:
    """A counter's value; a labelled counter not yet incremented has no series: zero."""
    return single_value(samples) or 0.0


async def _send(http: httpx.AsyncClient, packets: dict[str, list[int]]) -> list[str]:
    """POST each call's sequences in order; the acks' statuses."""
    statuses = []
    for call_id, sequences in packets.items():
        for sequence in sequences:
            response = await http.post(
                f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=INGEST
            )
            assert response.status_code == 202, response.text
            statuses.append(response.json()["status"])
    return statuses


async def _scraped_counts_match_db(
    prometheus: PrometheusServer, db: asyncpg.Connection
) -> tuple[int, int]:
    """Wait until Prometheus has scraped what the database holds; (stored, duplicates)."""
    stored = await db.fetchval(STORED)
    duplicates = await db.fetchval(DUPLICATES_SEEN)
    await prometheus.wait_for(ACCEPTED, lambda s: _counted(s) == stored)
    await prometheus.wait_for(DUPLICATE, lambda s: _counted(s) == duplicates)
    queue_depth = await prometheus.query("callscope_ingest_queue_depth")
    assert single_value(queue_depth) == 0  # every answered packet was committed
    return stored, duplicates


async def test_prometheus_scrapes_ingest_metrics_that_match_the_database(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    with _scraped_server(db_url, tmp_path) as (url, prometheus):
        await prometheus.wait_for('up{job="callscope"}', lambda s: single_value(s) == 1)
        await prometheus.wait_for('up{job="without-token"}', lambda s: single_value(s) == 0)
        assert await prometheus.query(ACCEPTED) == []  # scraped, and nothing ingested yet

        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            first = await _send(http, {"scrape-a": [1, 2, 3], "scrape-b": [1, 1]})
            assert first.count("duplicate") == 1
            assert await _scraped_counts_match_db(prometheus, db) == (4, 1)

            second = await _send(http, {"scrape-a": [3, 4, 5], "scrape-c": [1]})
            assert second.count("duplicate") == 1
            assert await _scraped_counts_match_db(prometheus, db) == (7, 2)

        batches = await prometheus.query("callscope_ingest_batch_size_count")
        assert 0 < (single_value(batches) or 0) <= 10  # one batch holds one or more packets
