"""Failure across replicas, through nginx (`callscope.cluster`): one API replica is killed
with SIGKILL, or stopped with SIGTERM, while packets, a native media stream and supervisors
go through the load balancer; the database says what was kept."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from callscope.calls.vocabulary import Track
from callscope.cluster import Cluster, Member
from tests.cluster import (
    BEARER,
    SUPERVISOR,
    NativeStream,
    RetryingPoster,
    cluster_on,
    landing,
)
from tests.factories import packet_body
from tests.integration.checks import assert_counters_match_packets
from tests.live import FeedClient, feed, feed_url, has_type

pytestmark = pytest.mark.usefixtures("db")
log = logging.getLogger(__name__)

FRAMES = 250  # per track of the native stream


def _ws(cluster: Cluster) -> str:
    return cluster.url.replace("http://", "ws://", 1)


@asynccontextmanager
async def _supervisors(cluster: Cluster) -> AsyncIterator[dict[str, FeedClient]]:
    """A supervisor feed through nginx on every replica, by replica name."""
    async with AsyncExitStack() as stack:
        feeds: dict[str, FeedClient] = {}
        for _ in range(3 * len(cluster.replicas)):
            async with landing(cluster) as where:
                client = await stack.enter_async_context(
                    feed(feed_url(_ws(cluster), token=SUPERVISOR))
                )
                await client.read_until(has_type("snapshot"), within=10)
            feeds.setdefault(where[0].name, client)
            if len(feeds) == len(cluster.replicas):
                break
        assert len(feeds) == len(cluster.replicas), "nginx did not spread the feeds"
        yield feeds


async def _stream_on_a_replica(cluster: Cluster, call_id: str) -> tuple[NativeStream, Member]:
    stream = NativeStream(_ws(cluster), call_id)
    async with landing(cluster) as where:
        await stream.open()
    return stream, where[0]


async def _assert_feed_missed_nothing(watcher: FeedClient, db: asyncpg.Connection) -> int:
    """Every call_events row reached the supervisor, once, in order; returns how many."""
    stored = [r["id"] for r in await db.fetch("SELECT id FROM call_events ORDER BY id")]
    await watcher.read_until(lambda ms: any(m.get("event_id") == stored[-1] for m in ms), within=15)
    received = [m["event_id"] for m in watcher.messages if m.get("event_id") is not None]
    assert received == stored
    return len(stored)


async def _assert_stream_stored(db: asyncpg.Connection, call_id: str) -> None:
    rows = await db.fetch(
        "SELECT track, count(*) AS n, count(DISTINCT sequence) AS d, min(sequence) AS lo, "
        "max(sequence) AS hi FROM packets WHERE call_id = $1 GROUP BY track",
        call_id,
    )
    assert len(rows) == len(Track)
    for row in rows:
        assert (row["n"], row["d"], row["lo"], row["hi"]) == (FRAMES, FRAMES, 1, FRAMES)


@pytest.mark.slow  # nginx and 2-3 callscope processes: 6-9 s on an idle 2-core machine
async def test_killing_a_replica_loses_no_acknowledged_packet_frame_or_event(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    with cluster_on(db_url, tmp_path) as cluster:
        async with (
            _supervisors(cluster) as feeds,
            httpx.AsyncClient(base_url=cluster.url, timeout=10) as http,
        ):
            stream, victim = await _stream_on_a_replica(cluster, "failover-native")
            survivor = next(r for r in cluster.replicas if r is not victim)
            poster = RetryingPoster(http)
            calls = [f"failover-http-{n}" for n in range(4)]
            streaming = asyncio.create_task(stream.run(FRAMES, pace=0.004))
            posting = asyncio.gather(*(poster.call(c, packets=40, pace=0.01) for c in calls))
            await stream.until_acked(60)
            victim.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.process.wait, 10)
            await asyncio.wait_for(posting, 60)
            await asyncio.wait_for(streaming, 60)
            events = await _assert_feed_missed_nothing(feeds[survivor.name], db)

    assert victim.process.returncode == -signal.SIGKILL
    nginx_saw = (tmp_path / "nginx-error.log").read_text()
    assert f'upstream: "http://127.0.0.1:{victim.port}/' in nginx_saw  # traffic hit the dead one
    stored = {
        (r["call_id"], r["sequence"])
        for r in await db.fetch("SELECT call_id, sequence FROM packets WHERE track = 'inbound'")
    }
    assert poster.acked <= stored  # every 202 is in the database
    assert len(poster.acked) == len(calls) * 40
    await _assert_stream_stored(db, "failover-native")
    assert stream.reconnects >= 1  # its replica died under it; nginx sent it to the survivor
    assert stream.closes[-1] == 1000
    states = await db.fetch("SELECT DISTINCT state FROM calls")
    assert [r["state"] for r in states] == ["COMPLETED"]
    await assert_counters_match_packets(db)
    log.info(
        "kill-one-replica: %d packets acknowledged over HTTP (%d client retries), native "
        "stream %d frames x 2 tracks with %d reconnect(s), %d events seen by the survivor's "
        "supervisor, none lost",
        len(poster.acked), poster.retries, FRAMES, stream.reconnects, events,
    )  # fmt: skip


async def _post_until(
    http: httpx.AsyncClient, call_id: str, stop: asyncio.Event
) -> list[int | str]:
    """A client that does not retry: one packet every 10 ms, each status (or error)."""
    outcomes: list[int | str] = []
    sequence = 0
    while not stop.is_set():
        sequence += 1
        try:
            response = await http.post(
                f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=BEARER
            )
            outcomes.append(response.status_code)
        except httpx.TransportError as exc:
            outcomes.append(type(exc).__name__)
        await asyncio.sleep(0.01)
    return outcomes


@pytest.mark.slow  # nginx and 2-3 callscope processes: 6-9 s on an idle 2-core machine
async def test_a_replica_stopped_with_sigterm_drains_and_no_request_fails(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    with cluster_on(
        db_url, tmp_path, CALLSCOPE_DRAIN_SECONDS="1", CALLSCOPE_SHUTDOWN_GRACE="20"
    ) as cluster:
        async with (
            _supervisors(cluster) as feeds,
            httpx.AsyncClient(base_url=cluster.url, timeout=10) as http,
        ):
            stream, stopped = await _stream_on_a_replica(cluster, "drain-native")
            survivor = next(r for r in cluster.replicas if r is not stopped)
            stop_posting = asyncio.Event()
            posting = asyncio.gather(
                *(_post_until(http, f"drain-http-{n}", stop_posting) for n in range(4))
            )
            streaming = asyncio.create_task(stream.run(FRAMES, pace=0.008))
            await stream.until_acked(40)
            stopped.process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(stopped.process.wait, 20)
            await asyncio.sleep(0.5)  # and a while on the survivor alone
            stop_posting.set()
            outcomes = [o for per_call in await posting for o in per_call]
            await asyncio.wait_for(streaming, 60)
            await _assert_feed_missed_nothing(feeds[survivor.name], db)

    assert exit_code == 0
    assert len(outcomes) > 100
    assert set(outcomes) == {202}, [o for o in outcomes if o != 202]
    # The stopping replica closes it with 1001 after its final acks (tests/e2e/test_drain.py
    # checks that code without nginx). Through nginx on a loaded 2-core run the client once saw
    # 1006 instead (the socket ended without the close frame; cause not found): what must hold
    # either way is that the stream reconnects, resends and loses nothing, checked below.
    # One reconnect: the stopping replica answers its upgrade 503, which nginx retries on the
    # survivor (before, least_conn sent it back to the stopping one up to 13 times in a row).
    assert stream.closes in ([1001, 1000], [1006, 1000]), stream.closes
    await _assert_stream_stored(db, "drain-native")
    await assert_counters_match_packets(db)
    log.info(
        "sigterm-one-replica: %d requests through nginx, all 202; the stream closed %s",
        len(outcomes), stream.closes,
    )  # fmt: skip
