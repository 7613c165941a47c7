"""Media streams refuse what they must: bad input closes with 4400 and a reason (and nothing of
the bad frame is stored, what came before is), credentials are checked before anything is
stored, and a sender faster than real time meets back-pressure, not unbounded memory."""

import asyncio
import json

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callscope.auth.twilio import twilio_signature
from callscope.calls.vocabulary import Track
from callscope.ingest.native import HEADER, binary_frame
from callscope.settings import Settings
from tests.factories import INGEST_TOKEN, SUPERVISOR_TOKEN, audio
from tests.integration.test_media_streams import BEARER, STOP, closed, media, start
from tests.live import served

LIMIT = 4096  # CALLSCOPE_MEDIA_MAX_MESSAGE_BYTES for these tests

NOT_TWILIO = "not a Twilio Media Streams message"
TWILIO_BAD_INPUT = {
    "malformed JSON": ("{not json", NOT_TWILIO),
    "unknown event": (json.dumps({"event": "dance"}), NOT_TWILIO),
    "second start": (start(), "a second start"),
    "payload not base64": (
        media("inbound", 2).replace('"payload": "', '"payload": "!'),
        "not valid base64",
    ),
    "unknown track": (media("sideways", 2), "unknown track 'sideways'"),
    "chunk not a number": (
        media("inbound", 2).replace('"chunk": "2"', '"chunk": "two"'),
        "chunk 'two' is not a whole number",
    ),
    "oversized message": (media("inbound", 2, b"\x7f" * LIMIT), f"limited to {LIMIT} bytes"),
    # PostgreSQL cannot store a NUL: refused before the event is written, not failed there
    "NUL in a mark's name": (
        json.dumps({"event": "mark", "mark": {"name": "a\x00b"}}),
        "the mark's name contains a NUL character",
    ),
    "NUL in a dtmf digit": (
        json.dumps({"event": "dtmf", "dtmf": {"digit": "\x00", "track": "inbound_track"}}),
        "the dtmf digit contains a NUL character",
    ),
}


@pytest.mark.parametrize(("bad", "reason"), TWILIO_BAD_INPUT.values(), ids=TWILIO_BAD_INPUT.keys())
async def test_bad_twilio_input_closes_with_4400_and_keeps_what_came_before(
    settings: Settings, db: asyncpg.Connection, bad: str, reason: str
) -> None:
    limited = settings.model_copy(update={"media_max_message_bytes": LIMIT})
    async with (
        served(limited) as server,
        connect(server.ws + "/v1/media/twilio", additional_headers=BEARER) as ws,
    ):
        await ws.send(start())
        await ws.send(media("inbound", 1))
        await ws.send(bad)
        code, why = await closed(ws)
    assert code == 4400
    assert reason in (why or ""), why
    assert await db.fetchval("SELECT array_agg(sequence) FROM packets") == [1]
    assert await db.fetchval("SELECT state FROM calls") == "IN_PROGRESS"


async def _fail(*_: object, **__: object) -> None:
    raise RuntimeError("a failure the server did not foresee")


async def test_a_server_failure_mid_stream_closes_with_1011_and_keeps_what_came(
    settings: Settings, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(settings) as server:
        monkeypatch.setattr(server.app.state.process.calls, "record_event", _fail)
        async with connect(server.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
            await ws.send(start())
            for chunk in range(1, 51):
                await ws.send(media("inbound", chunk))
            await ws.send(json.dumps({"event": "mark", "mark": {"name": "greeting"}}))
            code, why = await closed(ws)
        native = "/v1/calls/n/media?token=" + INGEST_TOKEN
        monkeypatch.setattr(server.app.state.process.calls, "complete", _fail)
        async with connect(server.ws + native) as ws:
            for sequence in range(1, 51):
                await ws.send(binary_frame(Track.inbound, sequence, 1.0, audio(sequence)))
            await ws.send(json.dumps({"type": "end", "final_sequences": {"inbound": 50}}))
            native_code, native_why = await closed(ws)
    assert (code, why) == (1011, "the server failed; reconnect and resume")
    assert (native_code, native_why) == (1011, "the server failed; reconnect and resume")
    stored = "SELECT count(*) FROM packets WHERE call_id = $1"
    assert await db.fetchval(stored, "tw-1") == 50
    assert await db.fetchval(stored, "n") == 50


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (media("inbound", 1), "media before start"),
        (STOP, "stop before start"),
        (
            start(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": 16000}),
            "unsupported media",
        ),
        (start(call_id=".."), "the call id"),
        (start(callSid="CA\x00cafe"), "callSid cannot be stored: a string contains a NUL"),
    ],
    ids=["media before start", "stop before start", "unsupported format", "bad call id", "NUL"],
)
async def test_a_twilio_stream_that_starts_wrong_stores_nothing(
    settings: Settings, db: asyncpg.Connection, first: str, reason: str
) -> None:
    async with (
        served(settings) as server,
        connect(server.ws + "/v1/media/twilio", additional_headers=BEARER) as ws,
    ):
        await ws.send(first)
        code, why = await closed(ws)
    assert code == 4400
    assert reason in (why or ""), why
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


def _json_frame(**fields: object) -> str:
    body = {"track": "inbound", "sequence": 2, "data": "f39/f39/", "timestamp": 1.0, **fields}
    return json.dumps(body)


NATIVE_BAD_INPUT = {
    "short binary frame": (b"\x01\x00", "18-byte header"),
    "unknown frame kind": (HEADER.pack(9, 0, 2, 1.0) + b"x", "unknown frame kind 9"),
    "unknown binary track": (HEADER.pack(1, 7, 2, 1.0) + b"x", "unknown track 7"),
    "malformed JSON": ("{nope", "not JSON"),
    "unknown JSON track": (_json_frame(track="sideways"), "unknown track 'sideways'"),
    "JSON data not base64": (_json_frame(data="AA=C"), "not valid base64"),
    "unknown JSON field": (_json_frame(codec="pcmu"), "not an audio frame"),
    "end with an unknown field": ('{"type": "end", "x": 1}', "not an end message"),
    "oversized message": (binary_frame(Track.inbound, 2, 1.0, b"x" * LIMIT), "limited to"),
}


@pytest.mark.parametrize(("bad", "reason"), NATIVE_BAD_INPUT.values(), ids=NATIVE_BAD_INPUT.keys())
async def test_bad_native_input_closes_with_4400_and_keeps_what_came_before(
    settings: Settings, db: asyncpg.Connection, bad: str | bytes, reason: str
) -> None:
    limited = settings.model_copy(update={"media_max_message_bytes": LIMIT})
    url = "/v1/calls/n/media?token=" + INGEST_TOKEN
    async with served(limited) as server, connect(server.ws + url) as ws:
        await ws.send(binary_frame(Track.inbound, 1, 1.0, audio(1)))
        await ws.send(bad)
        code, why = await closed(ws)
    assert code == 4400
    assert reason in (why or ""), why
    assert await db.fetchval("SELECT array_agg(sequence) FROM packets") == [1]


async def test_frames_that_are_not_whole_samples_are_refused_one_by_one(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as server:
        async with httpx.AsyncClient(base_url=server.http) as http:
            declared = {"call_id": "pcm", "encoding": "pcm_s16le", "sample_rate": 16000}
            await http.post("/v1/calls", json=declared, headers=BEARER)
        async with connect(server.ws + "/v1/calls/pcm/media?token=" + INGEST_TOKEN) as ws:
            await ws.send(binary_frame(Track.inbound, 1, 1.0, b"odd"))
            await ws.send(binary_frame(Track.inbound, 2, 1.0, b"even"))
            errors_and_acks = [json.loads(await ws.recv()) for _ in range(2)]
    assert errors_and_acks[0]["code"] == "packet_size_invalid"
    assert (errors_and_acks[1]["type"], errors_and_acks[1]["through"]) == ("ack", 2)
    assert await db.fetchval("SELECT array_agg(sequence) FROM packets") == [2]


TWILIO_REFUSALS = {
    "no credentials at all": ({}, start(), 4401),
    "a supervisor token": ({"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}, start(), 4403),
    "an unknown token": ({"Authorization": "Bearer nope"}, start(), 4401),
    "a wrong Twilio signature": ({"X-Twilio-Signature": "c2lnbmF0dXJl"}, start(), 4401),
    "a supervisor token parameter": (
        {},
        start(customParameters={"call_id": "tw-1", "token": SUPERVISOR_TOKEN}),
        4403,
    ),
}


@pytest.mark.parametrize(
    ("headers", "first", "code"), TWILIO_REFUSALS.values(), ids=TWILIO_REFUSALS.keys()
)
async def test_twilio_credentials_are_checked_before_anything_is_stored(
    settings: Settings, db: asyncpg.Connection, headers: dict[str, str], first: str, code: int
) -> None:
    signed = settings.model_copy(update={"twilio_auth_token": SecretStr("twilio-secret")})
    async with (
        served(signed) as server,
        connect(server.ws + "/v1/media/twilio", additional_headers=headers) as ws,
    ):
        await asyncio.gather(ws.send(first), return_exceptions=True)  # may be closed already
        got, _ = await closed(ws)
    assert got == code
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


@pytest.mark.parametrize("how", ["signature", "token parameter"])
async def test_twilio_may_sign_its_request_or_carry_a_token_parameter(
    settings: Settings, db: asyncpg.Connection, how: str
) -> None:
    public = "wss://calls.example.com"
    signed = settings.model_copy(
        update={"twilio_auth_token": SecretStr("twilio-secret"), "public_url": public}
    )
    async with served(signed) as server:
        path = "/v1/media/twilio"
        headers = {"X-Twilio-Signature": twilio_signature("twilio-secret", public + path)}
        first = start()
        if how == "token parameter":
            headers = {}
            first = start(customParameters={"call_id": "tw-1", "token": INGEST_TOKEN})
        async with connect(server.ws + path, additional_headers=headers) as ws:
            await ws.send(first)
            await ws.send(media("inbound", 1))
            await ws.send(STOP)
            assert (await closed(ws))[0] == 1000
    assert await db.fetchval("SELECT count(*) FROM packets") == 1


@pytest.mark.parametrize(
    ("query", "code"),
    [("", 4401), (f"?token={SUPERVISOR_TOKEN}", 4403), ("?token=nope", 4401)],
    ids=["no token", "supervisor token", "unknown token"],
)
async def test_the_native_stream_needs_an_ingest_token(
    settings: Settings, db: asyncpg.Connection, query: str, code: int
) -> None:
    async with served(settings) as server, connect(server.ws + "/v1/calls/n/media" + query) as ws:
        await asyncio.gather(
            ws.send(binary_frame(Track.inbound, 1, 1.0, b"x")), return_exceptions=True
        )
        assert (await closed(ws))[0] == code
    assert await db.fetchval("SELECT count(*) FROM calls") == 0


@pytest.mark.slow  # seconds of frames sent faster than real time
async def test_a_sender_faster_than_real_time_meets_back_pressure(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """With room for 4 frames, a stream of 600 sent at once is read no faster than it is
    written: the process never holds more than a few groups of it."""
    tight = settings.model_copy(update={"media_max_pending_frames": 4})
    async with served(tight) as server:
        committer = server.app.state.process.committer
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, committer.pending)
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        try:
            async with connect(server.ws + "/v1/media/twilio", additional_headers=BEARER) as ws:
                await ws.send(start())
                for chunk in range(1, 601):
                    await ws.send(media("inbound", chunk))
                await ws.send(STOP)
                assert (await closed(ws, within=60))[0] == 1000
        finally:
            sampler.cancel()
    assert await db.fetchval("SELECT count(*) FROM packets") == 600
    assert 0 < peak <= 8, peak  # the group being written and the one queued behind it


@pytest.mark.parametrize(
    "path",
    [
        "/v1/media/twilio",
        f"/v1/calls/late/media?token={INGEST_TOKEN}",
        f"/ws/supervisor?token={SUPERVISOR_TOKEN}",
    ],
    ids=["twilio", "native", "supervisor feed"],
)
async def test_an_upgrade_after_the_sockets_closed_for_shutdown_is_a_503_a_balancer_retries(
    settings: Settings, db: asyncpg.Connection, path: str
) -> None:
    """Accepted and closed with 1001, a reconnect that a least-connections balancer sent
    straight back to the stopping replica (it has the fewest sockets) came back again and
    again until it stopped listening; a 503 is one nginx retries on another replica."""
    async with served(settings) as running:
        await running.app.state.process.sockets.close_all()
        with pytest.raises(InvalidStatus) as refused:
            async with connect(running.ws + path, additional_headers=BEARER):
                pass
    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(response.body)["code"] == "shutting_down"
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
