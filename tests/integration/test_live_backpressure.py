"""A supervisor that never reads: bounded memory, no slower ingestion, everyone else served."""

import asyncio
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
from websockets.asyncio.client import connect

from callscope.realtime.subscriber import Subscriber
from callscope.settings import Settings
from tests.factories import INGEST, packet_body
from tests.live import FeedClient, Message, feed, feed_url, has_type, latest_progress, served

CALLS = 1000
PACKETS_PER_CALL = 5  # 5,000 packets per phase; with each call completed, 2,000 events
SENDERS = 32
QUEUE_BOUND = 600  # stuck: its socket buffers hold ~400 events, then it overflows


async def _ingest(http: httpx.AsyncClient, prefix: str) -> list[float]:
    """CALLS short calls through SENDERS concurrent senders; seconds per packet request."""
    latencies: list[float] = []

    async def sender(call_ids: list[str]) -> None:
        for call_id in call_ids:
            for sequence in range(1, PACKETS_PER_CALL + 1):
                started = time.perf_counter()
                response = await http.post(
                    f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=INGEST
                )
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text
            response = await http.post(f"/v1/calls/{call_id}/complete", headers=INGEST)
            assert response.status_code == 200

    call_ids = [f"{prefix}-{n:04d}" for n in range(CALLS)]
    await asyncio.gather(*(sender(call_ids[n::SENDERS]) for n in range(SENDERS)))
    return latencies


@asynccontextmanager
async def _never_reading(url: str) -> AsyncIterator[None]:
    """A supervisor that connects and then reads nothing, with a tiny receive buffer (and no
    compression) so the server's writes back up after a few hundred messages."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    async with connect(url, sock=sock, max_queue=1, ping_interval=None, compression=None):
        yield


def _stuck(subscribers: frozenset[Subscriber], reader: Subscriber) -> Subscriber:
    (stuck,) = subscribers - {reader}
    return stuck


async def test_a_supervisor_that_never_reads(settings: Settings, db: asyncpg.Connection) -> None:
    live = settings.model_copy(update={"live_queue_size": QUEUE_BOUND, "live_send_timeout": 120})
    limits = httpx.Limits(max_connections=SENDERS)
    async with (
        served(live, send_buffer=4096) as server,
        httpx.AsyncClient(base_url=server.http, limits=limits, timeout=30) as http,
        feed(feed_url(server.ws)) as watcher,
    ):
        hub = server.app.state.resources.hub
        await watcher.read_until(has_type("snapshot"), within=10)
        (reader,) = hub.subscribers
        baseline = await _ingest(http, "alone")

        async with _never_reading(feed_url(server.ws)):
            await _until(lambda: len(hub.subscribers) == 2)
            stuck = _stuck(hub.subscribers, reader)
            queued: list[tuple[int, int]] = []

            async def sample() -> None:
                while True:
                    queued.append(stuck.queued)
                    await asyncio.sleep(0.005)

            sampler = asyncio.create_task(sample())
            loaded = await _ingest(http, "stuck")
            await asyncio.sleep(3 * live.live_progress_interval)
            sampler.cancel()
            await _everything_arrives(watcher, db)

    # Its memory is bounded: the event queue never outgrew its bound (it was resynced instead).
    assert max(events for events, _ in queued) <= QUEUE_BOUND
    assert stuck.overflows >= 1, (max(queued), len(queued))
    # Ingestion did not slow down (generous margins: a shared 2-core machine).
    base_p50, loaded_p50 = statistics.median(baseline), statistics.median(loaded)
    base_p95 = statistics.quantiles(baseline, n=20)[-1]
    loaded_p95 = statistics.quantiles(loaded, n=20)[-1]
    figures = (
        f"ingest p50 {base_p50 * 1e3:.1f} → {loaded_p50 * 1e3:.1f} ms, "
        f"p95 {base_p95 * 1e3:.1f} → {loaded_p95 * 1e3:.1f} ms"
    )
    assert loaded_p50 <= 2 * base_p50 + 0.005, figures
    assert loaded_p95 <= 2 * base_p95 + 0.010, figures


async def _until(condition: Callable[[], bool], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _everything_arrives(watcher: FeedClient, db: asyncpg.Connection) -> None:
    """The reading supervisor got every event row and every call's final packet count."""
    stored = [row["id"] for row in await db.fetch("SELECT id FROM call_events ORDER BY id")]
    last_id = stored[-1]

    def caught_up(messages: list[Message]) -> bool:
        progress = latest_progress(messages)
        return (
            any(m.get("event_id") == last_id for m in messages)
            and len(progress) == 2 * CALLS
            and set(progress.values()) == {PACKETS_PER_CALL}
        )

    await watcher.read_until(caught_up, within=30)
    assert len(watcher.events("snapshot")) == 1  # never resynced: it kept up
    received = [m["event_id"] for m in watcher.messages if m.get("event_id") is not None]
    assert received == stored


async def test_a_supervisor_that_stops_reading_is_let_go_after_the_send_timeout(
    settings: Settings,
) -> None:
    live = settings.model_copy(update={"live_send_timeout": 1.0})
    async with (
        served(live, send_buffer=4096) as server,
        httpx.AsyncClient(base_url=server.http) as http,
        _never_reading(feed_url(server.ws)),
    ):
        hub = server.app.state.resources.hub
        await _until(lambda: len(hub.subscribers) == 1)
        (stuck,) = hub.subscribers
        # call.created events, far more than the socket buffers hold, until its feed gives up.
        for batch in range(60):
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"/v1/call/stream/flood-{batch}-{n}", json=packet_body(1), headers=INGEST
                    )
                    for n in range(50)
                )
            )
            assert {r.status_code for r in responses} == {202}
            if stuck not in hub.subscribers:
                break
        await _until(lambda: stuck not in hub.subscribers, within=10)
