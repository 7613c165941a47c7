"""Graceful drain of a real `callscope serve` on SIGTERM: readiness goes 503 at once while a
client that keeps sending is served without a single failure for the drain window; then
every WebSocket closes with 1001 (a native stream after its final ack, every acked frame
stored), and the process exits by itself well within its grace period."""

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready
from tests.factories import audio, packet_body
from tests.integration.test_media_streams import closed, media, start

pytestmark = pytest.mark.usefixtures("db")

INGEST = "pbx-token"
SUPERVISOR = "sup-token"
BEARER = {"Authorization": f"Bearer {INGEST}"}
DRAIN_SECONDS = 2.0


async def _keep_sending(http: httpx.AsyncClient, until: asyncio.Event) -> list[tuple[float, Any]]:
    """POST a packet every 20 ms until told to stop; (time, status or error) of each."""
    outcomes: list[tuple[float, Any]] = []
    sequence = 0
    while not until.is_set():
        sequence += 1
        try:
            response = await http.post("/v1/call/stream/drain-http", json=packet_body(sequence))
            outcomes.append((time.monotonic(), response.status_code))
        except httpx.TransportError as exc:
            outcomes.append((time.monotonic(), type(exc).__name__))
        await asyncio.sleep(0.02)
    return outcomes


async def _native_until_closed(
    socket: ClientConnection, acked: dict[str, int], *, every: int = 1, pause: float = 0.02
) -> int | None:
    """Send frames until the server closes, pausing `pause` seconds after every `every`
    frames (by default one frame every 20 ms, real time); note its acks."""

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in socket:
                message = json.loads(raw)
                if message["type"] == "ack":
                    acked[message["track"]] = message["through"]

    reader = asyncio.create_task(read())
    sequence = 0
    with contextlib.suppress(ConnectionClosed):
        while not reader.done():
            sequence += 1
            await socket.send(binary_frame(Track.inbound, sequence, time.time(), audio(sequence)))
            if sequence % every == 0:
                await asyncio.sleep(pause)
    await reader
    return socket.close_code


async def test_sigterm_drains_without_failing_a_request(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS=INGEST,
        CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR,
        CALLSCOPE_DRAIN_SECONDS=str(DRAIN_SECONDS),
        CALLSCOPE_SHUTDOWN_GRACE="20",
    )
    base = f"127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with callscope_process(["serve", "--port", str(port)], env, tmp_path, log) as process:
        wait_ready(f"http://{base}", process, timeout=60, log=log)
        async with (
            httpx.AsyncClient(base_url=f"http://{base}", headers=BEARER) as http,
            httpx.AsyncClient(base_url=f"http://{base}") as probe,
            connect(f"ws://{base}/v1/calls/drain-native/media?token={INGEST}") as native,
            connect(f"ws://{base}/v1/media/twilio", additional_headers=BEARER) as twilio,
            connect(f"ws://{base}/ws/supervisor?token={SUPERVISOR}") as feed,
        ):
            await twilio.send(start("drain-twilio"))
            await twilio.send(media("inbound", 1))
            stop_sending = asyncio.Event()
            sending = asyncio.create_task(_keep_sending(http, stop_sending))
            acked: dict[str, int] = {}
            streaming = asyncio.create_task(_native_until_closed(native, acked))
            await asyncio.sleep(0.5)

            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            readiness = []
            while time.monotonic() - signalled < DRAIN_SECONDS - 0.3:
                answer = await probe.get("/readyz")
                readiness.append(
                    (time.monotonic() - signalled, answer.status_code, answer.json().get("checks"))
                )
                await asyncio.sleep(0.1)
            window_ends = signalled + DRAIN_SECONDS

            native_code = await asyncio.wait_for(streaming, 15)
            twilio_code, _ = await closed(twilio, within=15)
            feed_code, _ = await closed(feed, within=15)
            stop_sending.set()
            outcomes = await sending
        exit_code = await asyncio.to_thread(process.wait, 20)
        stopped_after = time.monotonic() - signalled

    in_window = [outcome for at, outcome in outcomes if at < window_ends]
    assert in_window
    assert set(in_window) == {202}, in_window
    draining = [at for at, status, checks in readiness if status == 503]
    assert draining, readiness
    assert draining[0] < 0.5  # at once (the signal reaches the process within a moment)
    after = [(status, checks) for at, status, checks in readiness if at >= draining[0]]
    assert all(status == 503 and checks["draining"] == "yes" for status, checks in after)
    assert (native_code, twilio_code, feed_code) == (1001, 1001, 1001)
    assert exit_code == 0
    assert stopped_after < 20
    for track, through in acked.items():
        stored = await db.fetchval(
            "SELECT count(*) FROM packets WHERE call_id = 'drain-native' AND track = $1 "
            "AND sequence <= $2",
            track,
            through,
        )
        assert stored == through
        # The final ack: nothing was stored that the client was not told of before 1001.
        last_stored = await db.fetchval(
            "SELECT max(sequence) FROM packets WHERE call_id = 'drain-native' AND track = $1",
            track,
        )
        assert last_stored == through
    assert acked[Track.inbound.value] > 0
    text = log.read_text()
    assert "drain_started" in text
    assert "drain_closing_sockets" in text


async def _flood_twilio(socket: ClientConnection) -> int | None:
    await socket.send(start("flood-twilio"))
    chunk = 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            chunk += 1
            await socket.send(media("inbound", chunk))
            if chunk % 10 == 0:
                await asyncio.sleep(0)
    return socket.close_code


async def test_streams_sending_faster_than_real_time_do_not_hold_the_drain(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Frames that keep coming faster than they are written must not keep a drain waiting
    for the stream's queue to empty (it never would: the shutdown would run into its grace
    period and the clients see 1006). The replica stops reading, writes and acks what came,
    and closes with 1001; every acked frame is stored."""
    port = free_port()
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS=INGEST,
        CALLSCOPE_DRAIN_SECONDS="0.2",
        CALLSCOPE_SHUTDOWN_GRACE="20",
    )
    base = f"127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    acked: dict[str, int] = {}
    with callscope_process(["serve", "--port", str(port)], env, tmp_path, log) as process:
        wait_ready(f"http://{base}", process, timeout=60, log=log)
        async with (
            connect(f"ws://{base}/v1/calls/flood-native/media?token={INGEST}") as native,
            connect(f"ws://{base}/v1/media/twilio", additional_headers=BEARER) as twilio,
        ):
            flooding = asyncio.gather(
                # far faster than real time: a pause for other tasks every 10 frames
                _native_until_closed(native, acked, every=10, pause=0),
                _flood_twilio(twilio),
            )
            await asyncio.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            codes = await asyncio.wait_for(flooding, 15)
        exit_code = await asyncio.to_thread(process.wait, 20)
        stopped_after = time.monotonic() - signalled

    assert list(codes) == [1001, 1001]
    assert exit_code == 0
    assert stopped_after < 10
    through = acked[Track.inbound.value]
    assert through > 0
    stored = await db.fetchval(
        "SELECT count(*) FROM packets WHERE call_id = 'flood-native' AND sequence <= $1", through
    )
    assert stored == through
