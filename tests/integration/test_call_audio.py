"""Declaring a call's audio format, packets that must fit it, and the call's audio as WAV."""

import base64
import io
import json
import struct
import wave

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect

from callscope.audio.codec import to_mulaw, to_pcm16
from callscope.audio.formats import AudioEncoding
from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from callscope.settings import Settings
from callscope.simulate.speech import recordings
from tests.factories import INGEST, SUPERVISOR, audio, packet_body, pcm16, post_raw
from tests.integration.test_media_streams import STOP, answers, closed, media, start
from tests.live import served

JSON_INGEST = {**INGEST, "content-type": "application/json"}


async def _declare(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await client.post("/v1/calls", json=body, headers=INGEST)


async def test_a_call_declared_with_its_format(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await _declare(
        client, call_id="pcm-1", encoding="pcm_s16le", sample_rate=16000, metadata={"q": "b"}
    )
    assert response.status_code == 201
    call = response.json()
    assert call["state"] == "IN_PROGRESS"
    assert call["audio"] == {"encoding": "pcm_s16le", "sample_rate": 16000}
    assert call["metadata"] == {"q": "b"}
    event = await db.fetchrow("SELECT type, data FROM call_events WHERE call_id = 'pcm-1'")
    assert event is not None
    assert event["type"] == "call.created"
    assert json.loads(event["data"]) == {"encoding": "pcm_s16le", "sample_rate": 16000}

    again = await _declare(client, call_id="pcm-1", encoding="pcm_s16le", sample_rate=16000)
    assert again.status_code == 200  # the same declaration again: nothing changes
    assert await db.fetchval("SELECT count(*) FROM call_events") == 1


async def test_calls_whose_packets_come_first_get_the_default_format(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/call/stream/undeclared", json=packet_body(1), headers=INGEST)
    assert response.status_code == 202
    call = (await client.get("/v1/calls/undeclared", headers=SUPERVISOR)).json()
    assert call["audio"] == {"encoding": "mulaw", "sample_rate": 8000}
    assert call["metadata"] == {}
    # Declaring it afterwards with that format adds the metadata; another format is refused.
    added = await _declare(client, call_id="undeclared", metadata={"agent": "a-1"})
    assert added.status_code == 200
    assert added.json()["metadata"] == {"agent": "a-1"}
    other = await _declare(client, call_id="undeclared", encoding="pcm_s16le")
    assert other.status_code == 409
    assert other.json()["code"] == "call_format_conflict"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"call_id": "x", "encoding": "mulaw", "sample_rate": 16000}, 422, "audio_format_invalid"),
        ({"call_id": "x", "encoding": "pcm_s16le", "sample_rate": 44100}, 422, None),
        ({"call_id": "x", "encoding": "opus"}, 422, "validation_error"),
        ({"call_id": "..", "encoding": "mulaw"}, 422, "validation_error"),
        ({"call_id": "x", "sample_rate": "8000"}, 422, "validation_error"),
        ({"call_id": "x", "extra": 1}, 422, "validation_error"),
    ],
)
async def test_bad_declarations_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: dict[str, object],
    status: int,
    code: str | None,
) -> None:
    response = await client.post("/v1/calls", json=body, headers=INGEST)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    if code is not None:
        assert response.json()["code"] == code
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


async def test_declaring_needs_an_ingest_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/calls", json={"call_id": "x"})).status_code == 401
    forbidden = await client.post("/v1/calls", json={"call_id": "x"}, headers=SUPERVISOR)
    assert forbidden.status_code == 403


@pytest.mark.parametrize("chunked", [False, True], ids=["fast-path", "route"])
async def test_packets_must_hold_whole_samples_of_the_calls_format(
    client: httpx.AsyncClient, db: asyncpg.Connection, chunked: bool
) -> None:
    await _declare(client, call_id="pcm", encoding="pcm_s16le", sample_rate=8000)
    odd = json.dumps(packet_body(1, b"\x01\x02\x03")).encode()
    response = await post_raw(
        client, "/v1/call/stream/pcm", odd, headers=JSON_INGEST, chunked=chunked
    )
    assert response.status_code == 409
    assert response.json()["code"] == "packet_size_invalid", response.text
    assert await db.fetchval("SELECT count(*) FROM packets") == 0
    assert await db.fetchval("SELECT count(*) FROM call_tracks") == 0
    even = json.dumps(packet_body(1, b"\x01\x02\x03\x04")).encode()
    response = await post_raw(
        client, "/v1/call/stream/pcm", even, headers=JSON_INGEST, chunked=chunked
    )
    assert response.status_code == 202
    # μ-law calls take any whole number of bytes.
    mulaw = json.dumps(packet_body(1, b"\x01\x02\x03")).encode()
    response = await post_raw(client, "/v1/call/stream/ulaw", mulaw, headers=JSON_INGEST)
    assert response.status_code == 202


async def test_the_calls_audio_as_wav_with_silence_for_missing_packets(
    client: httpx.AsyncClient,
) -> None:
    await _declare(client, call_id="wav", encoding="pcm_s16le", sample_rate=16000)
    frames = {1: pcm16(1, 2), 2: pcm16(3, 4), 4: pcm16(5, 6)}  # 3 never comes
    for sequence, data in frames.items():
        body = {"sequence": sequence, "data": base64.b64encode(data).decode(), "timestamp": 1.0}
        response = await client.post("/v1/call/stream/wav", json=body, headers=INGEST)
        assert response.status_code == 202
    await client.post("/v1/calls/wav/complete", json={"final_sequence": 5}, headers=INGEST)

    response = await client.get("/v1/calls/wav/audio", headers=SUPERVISOR)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert wav.getframerate() == 16000
        samples = wav.readframes(wav.getnframes())
    assert samples == frames[1] + frames[2] + bytes(4) + frames[4] + bytes(4)  # 3 and 5 silent


async def test_audio_of_an_unknown_call_is_404_and_needs_a_supervisor_token(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/v1/calls/none/audio", headers=SUPERVISOR)).status_code == 404
    assert (await client.get("/v1/calls/none/audio", headers=INGEST)).status_code == 403


async def test_a_recording_streamed_as_mulaw_comes_back_with_its_gap_silent(
    client: httpx.AsyncClient,
) -> None:
    recording = recordings()[0]
    pcm, rate = recording.pcm16()
    mulaw = to_mulaw(pcm)
    frames = [mulaw[n : n + 160] for n in range(0, len(mulaw), 160)]  # 20 ms packets
    await _declare(client, call_id="speech", encoding="mulaw", sample_rate=8000)
    dropped = 10  # lost on the way
    for sequence, frame in enumerate(frames, start=1):
        if sequence == dropped:
            continue
        body = {"sequence": sequence, "data": base64.b64encode(frame).decode(), "timestamp": 1.0}
        response = await client.post("/v1/call/stream/speech", json=body, headers=INGEST)
        assert response.status_code == 202
    response = await client.get("/v1/calls/speech/audio", headers=SUPERVISOR)
    with wave.open(io.BytesIO(response.content)) as wav:
        assert wav.getframerate() == rate
        back = wav.readframes(wav.getnframes())

    # Every sample where it was sent, the lost packet (160 μ-law bytes, 320 PCM bytes) silent.
    expected = to_pcm16(mulaw, AudioEncoding.mulaw)
    gap = slice((dropped - 1) * 320, dropped * 320)
    assert len(back) == len(expected)
    assert back[gap] == bytes(320)
    assert back[: gap.start] == expected[: gap.start]
    assert back[gap.stop :] == expected[gap.stop :]


async def test_audio_too_long_to_reassemble_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/call/stream/huge", json=packet_body(1), headers=INGEST)
    assert response.status_code == 202
    completed = await client.post(
        "/v1/calls/huge/complete",
        json={"final_sequence": 10**6},
        headers=INGEST,  # 5.5 h
    )
    assert completed.status_code == 200
    response = await client.get("/v1/calls/huge/audio", headers=SUPERVISOR)
    assert response.status_code == 409
    assert response.json()["code"] == "call_audio_too_long"


async def test_metadata_with_a_nul_character_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await _declare(client, call_id="nul", metadata={"note": "a\u0000b"})
    assert response.status_code == 422
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


async def _wav_of_a_call(client: httpx.AsyncClient, call_id: str) -> bytes:
    for sequence in (1, 2, 4):  # 3 lost: silence
        body = packet_body(sequence, bytes(range(sequence, sequence + 160)))
        await client.post(f"/v1/call/stream/{call_id}", json=body, headers=INGEST)
    whole = await client.get(f"/v1/calls/{call_id}/audio", headers=SUPERVISOR)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    return whole.content


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=44-99", 44, 99), ("bytes=1000-", 1000, None), ("bytes=-16", -16, None)],
)
async def test_a_byte_range_of_the_wav_is_served_206(
    client: httpx.AsyncClient, header: str, first: int, last: int | None
) -> None:
    whole = await _wav_of_a_call(client, "ranged")
    part = await client.get("/v1/calls/ranged/audio", headers={**SUPERVISOR, "Range": header})
    assert part.status_code == 206
    expected = whole[first : None if last is None else last + 1]
    assert part.content == expected
    start = first % len(whole)
    assert (
        part.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{len(whole)}"
    )
    assert part.headers["content-length"] == str(len(expected))
    assert (part.headers["accept-ranges"], part.headers["content-type"]) == ("bytes", "audio/wav")


async def test_a_range_past_the_end_of_the_wav_is_416_with_its_size(
    client: httpx.AsyncClient,
) -> None:
    whole = await _wav_of_a_call(client, "short")
    refused = await client.get(
        "/v1/calls/short/audio", headers={**SUPERVISOR, "Range": f"bytes={len(whole)}-"}
    )
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{len(whole)}"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "range_not_satisfiable"


async def test_each_track_has_its_own_ranged_wav(client: httpx.AsyncClient) -> None:
    await _wav_of_a_call(client, "one-side")
    whole = await client.get("/v1/calls/one-side/audio?track=inbound", headers=SUPERVISOR)
    part = await client.get(
        "/v1/calls/one-side/audio?track=inbound", headers={**SUPERVISOR, "Range": "bytes=0-43"}
    )
    assert (part.status_code, part.content) == (206, whole.content[:44])
    assert part.content.startswith(b"RIFF")
    missing = await client.get(
        "/v1/calls/one-side/audio?track=outbound", headers={**SUPERVISOR, "Range": "bytes=0-43"}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "track_not_found")


async def test_a_call_with_both_tracks_is_a_stereo_wav_with_the_caller_on_the_left(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        url = f"{server.ws}/v1/calls/stereo/media"
        async with connect(url, additional_headers=INGEST) as socket:
            for sequence in range(1, 6):
                await socket.send(binary_frame(Track.inbound, sequence, 0.0, audio(sequence)))
                agent_audio = audio(sequence + 100)
                await socket.send(binary_frame(Track.outbound, sequence, 0.0, agent_audio))
            await socket.send(json.dumps({"type": "end"}))
            assert (await answers(socket, until="ended"))[-1]["type"] == "ended"
        both, caller, agent = [
            await http.get(f"/v1/calls/stereo/audio{query}", headers=SUPERVISOR)
            for query in ("", "?track=inbound", "?track=outbound")
        ]
    (channels, rate, frames), left, right = (_read_wav(r.content) for r in (both, caller, agent))
    assert (channels, left[0], right[0]) == (2, 1, 1)
    assert rate == left[1] == 8000
    left_samples, right_samples = left[2], right[2]
    assert left_samples == to_pcm16(b"".join(audio(n) for n in range(1, 6)), AudioEncoding.mulaw)
    assert left_samples != right_samples
    interleaved = b"".join(
        left_samples[i : i + 2] + right_samples[i : i + 2] for i in range(0, len(left_samples), 2)
    )
    assert frames == interleaved  # each frame: the caller's sample, then the agent's


def _read_wav(content: bytes) -> tuple[int, int, bytes]:
    """Channels, sample rate and frames of a WAV file."""
    with wave.open(io.BytesIO(content)) as wav:
        return wav.getnchannels(), wav.getframerate(), wav.readframes(wav.getnframes())


async def test_a_twilio_stream_of_l16_audio_is_a_16_bit_call(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """`mediaFormat` declares the call's format; L16's big-endian samples are stored (and
    played back) little-endian, as `pcm_s16le`."""
    samples = [[n * 100 + i for i in range(160)] for n in range(1, 4)]  # 10 ms at 16 kHz each
    l16 = {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        twilio = f"{server.ws}/v1/media/twilio"
        async with connect(twilio, additional_headers=INGEST) as socket:
            await socket.send(start("l16", mediaFormat=l16))
            for chunk, frame in enumerate(samples, start=1):
                big_endian = struct.pack(f">{len(frame)}h", *frame)
                await socket.send(media("inbound", chunk, big_endian))
            await socket.send(STOP)
            assert (await closed(socket))[0] == 1000
        call = (await http.get("/v1/calls/l16", headers=SUPERVISOR)).json()
        wav = await http.get("/v1/calls/l16/audio", headers=SUPERVISOR)
    assert call["audio"] == {"encoding": "pcm_s16le", "sample_rate": 16000}
    channels, rate, frames = _read_wav(wav.content)
    assert (channels, rate) == (1, 16000)
    assert frames == b"".join(struct.pack(f"<{len(frame)}h", *frame) for frame in samples)
