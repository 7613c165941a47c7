"""Media streams against real processes: a Twilio conversation of two speakers transcribed,
a stream that moves to another replica, acks that survive kill -9, and 200 streams at once."""

import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from benchmarks.eval_set.scoring import word_errors
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from callscope.simulate.pbx import SimulationOptions, simulate
from callscope.simulate.speech import recordings
from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready
from tests.factories import audio
from tests.integration.ai_helpers import wait_for_states
from tests.integration.checks import assert_counters_match_packets
from tests.integration.test_media_streams import STOP, closed, media, start

pytestmark = pytest.mark.usefixtures("db")

INGEST = "pbx-token"
SUPERVISOR = "sup-token"
READ = {"Authorization": f"Bearer {SUPERVISOR}"}
BEARER = {"Authorization": f"Bearer {INGEST}"}


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS=INGEST,
        CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR,
        **extra,
    )


@contextmanager
def _servers(
    env: dict[str, str], tmp_path: Path, count: int, command: str = "serve"
) -> Iterator[list[tuple[str, Any]]]:
    """`count` API processes on one database: (base URL, process) each."""
    with ExitStack() as stack:
        running = []
        for n in range(count):
            port = free_port()
            log = tmp_path / f"{command}-{n}.log"
            process = stack.enter_context(
                callscope_process([command, "--port", str(port)], env, tmp_path, log)
            )
            running.append((f"127.0.0.1:{port}", process, log))
        for host, process, log in running:
            wait_ready(f"http://{host}", process, timeout=90, log=log)
        yield [(host, process) for host, process, _ in running]


@pytest.mark.slow  # Whisper transcribes both sides
async def test_a_twilio_conversation_is_archived_with_both_speakers(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    env = _env(db_url, CALLSCOPE_AI_FAILURE_RATE="0")  # `run`: the local engines
    with _servers(env, tmp_path, 1, command="run") as [(host, _)]:
        options = SimulationOptions(
            url=f"http://{host}",
            token=INGEST,
            supervisor_token=SUPERVISOR,
            calls=1,
            speech=True,
            speed=0,
            transport="twilio",
            agent=True,
        )
        report = await simulate(options)
        assert report.missing_as_planned == 1
        await wait_for_states(db, {"ARCHIVED"}, count=1, within=60)
        async with httpx.AsyncClient(base_url=f"http://{host}", headers=READ) as http:
            call = (await http.get(f"/v1/calls/{report.call_ids[0]}")).json()
    transcript = call["ai"]["transcript"]
    by_speaker = {
        speaker: " ".join(s["text"] for s in transcript["segments"] if s["speaker"] == speaker)
        for speaker in ("caller", "agent")
    }
    caller, agent = recordings()[0], recordings()[1]  # the agent speaks the next recording
    for speaker, recording in (("caller", caller), ("agent", agent)):
        wrong, total = word_errors(recording.text, by_speaker[speaker])
        assert wrong / total <= 0.4, (speaker, by_speaker[speaker])
    starts = [segment["start"] for segment in transcript["segments"]]
    assert starts == sorted(starts)  # merged in time order
    sentiment = call["ai"]["sentiment"]
    assert {s["speaker"] for s in sentiment["speakers"]} == {"caller", "agent"}
    assert sentiment["label"] == sentiment["speakers"][0]["label"]  # the caller's is the headline
    assert caller.sentiment == "negative"
    assert sentiment["label"] == "negative"


async def test_a_twilio_stream_continues_on_another_replica_after_its_socket_drops(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    with _servers(_env(db_url), tmp_path, 2) as [(host_a, _), (host_b, _)]:
        async with connect(f"ws://{host_a}/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start())
            for chunk in range(1, 51):
                await ws.send(media("inbound", chunk))
                await ws.send(media("outbound", chunk))
        # The socket dropped without `stop`: Twilio reconnects, here to the other replica.
        async with connect(f"ws://{host_b}/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start())
            for chunk in range(48, 101):  # overlapping: the last frames may have been lost
                await ws.send(media("inbound", chunk))
                if chunk != 70:
                    await ws.send(media("outbound", chunk))
            await ws.send(STOP)
            assert (await closed(ws))[0] == 1000
        async with httpx.AsyncClient(base_url=f"http://{host_b}", headers=READ) as http:
            call = (await http.get("/v1/calls/tw-1")).json()
    assert call["state"] == "COMPLETED"
    tracks = {t["track"]: t for t in call["tracks"]}
    assert (tracks["inbound"]["received"], tracks["inbound"]["missing"]) == (100, 0)
    assert tracks["outbound"]["missing_ranges"] == [{"first": 70, "last": 70}]
    assert tracks["inbound"]["duplicates"] == 3
    await assert_counters_match_packets(db)


async def test_every_acked_frame_survives_kill_9_and_a_resend_stores_nothing_twice(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    frames = 400
    acked: dict[Track, int] = {}
    with _servers(_env(db_url), tmp_path, 2) as [(host_a, process_a), (host_b, _)]:
        socket = await connect(f"ws://{host_a}/v1/calls/kill-9/media?token={INGEST}")
        reader = asyncio.create_task(_record_acks(socket, acked))
        for sequence in range(1, frames + 1):
            for track in Track:
                await socket.send(binary_frame(track, sequence, time.time(), audio(sequence)))
            if sequence == frames // 2:
                await asyncio.sleep(0.3)  # let some acks come back
                process_a.send_signal(signal.SIGKILL)
                break
        await asyncio.gather(reader, return_exceptions=True)
        assert acked, "no ack before the kill"
        stored_before = {
            Track(row["track"]): row["n"]
            for row in await db.fetch("SELECT track, count(*) AS n FROM packets GROUP BY track")
        }
        for track, through in acked.items():
            assert stored_before[track] >= through  # every acked frame is there
        # The bridge reconnects to the other replica and resends everything after the acks.
        async with connect(f"ws://{host_b}/v1/calls/kill-9/media?token={INGEST}") as ws:
            position = await _initial_acks(ws)
            for track in Track:
                resume_from = min(acked.get(track, 0), position[track]["through"]) + 1
                for sequence in range(resume_from, frames + 1):
                    await ws.send(binary_frame(track, sequence, time.time(), audio(sequence)))
            await ws.send(json.dumps({"type": "end"}))
            assert (await closed(ws, within=30))[0] == 1000
    rows = await db.fetch(
        "SELECT track, count(*) AS n, count(DISTINCT sequence) AS distinct_n, min(sequence) AS lo, "
        "max(sequence) AS hi FROM packets GROUP BY track"
    )
    for row in rows:
        assert (row["n"], row["distinct_n"], row["lo"], row["hi"]) == (frames, frames, 1, frames)
    await assert_counters_match_packets(db)


async def _record_acks(socket: ClientConnection, acked: dict[Track, int]) -> None:
    try:
        async for raw in socket:
            message = json.loads(raw)
            if message["type"] == "ack" and not message["missing"]:
                acked[Track(message["track"])] = message["through"]
    except ConnectionClosed:
        pass


async def _initial_acks(ws: ClientConnection) -> dict[Track, dict[str, Any]]:
    position: dict[Track, dict[str, Any]] = {}
    async with asyncio.timeout(10):
        while len(position) < len(Track):
            message = json.loads(await ws.recv())
            position[Track(message["track"])] = message
    return position


@pytest.mark.slow  # 10 s of real time, 10,000 frames a second
async def test_two_hundred_twilio_streams_in_real_time_are_counted_exactly(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # Server and client outside coverage, as in production: this is about load, not lines
    # (traced, the client alone took longer than the 10 s of audio it sends).
    env = {k: v for k, v in _env(db_url).items() if not k.startswith("COVERAGE_")}
    with _servers(env, tmp_path, 1) as [(host, _)]:
        simulation = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callscope", "simulate", "--url", f"http://{host}",
            "--token", INGEST, "--supervisor-token", SUPERVISOR, "--transport", "twilio",
            "--calls", "200", "--concurrency", "200", "--seconds", "10", "--loss", "0.01",
            "--duplicates", "0.01", "--reorder", "0.02", "--speed", "1", "--seed", "8",
            env=env, stdout=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        output, _ = await simulation.communicate()
    said = output.decode()
    assert simulation.returncode == 0, said
    summary = re.search(
        r"simulated (\d+) calls over twilio, (\d+) packets sent, answers (.*);", said
    )
    assert summary is not None, said
    assert summary.group(1) == "200"
    assert summary.group(3) == "{'closed 1000': 200}"
    assert "matched the packets lost on 200 of 200 calls checked" in said
    stored = await db.fetchval("SELECT count(*) FROM packets")
    duplicates = await db.fetchval("SELECT sum(packets_duplicate) FROM call_tracks")
    assert stored + duplicates == int(summary.group(2))
    await assert_counters_match_packets(db)
