"""The published WebSocket schemas (`/asyncapi.json`) hold for real messages of every type."""

import json
from typing import Any

import asyncpg
import httpx
from jsonschema import Draft202012Validator
from websockets.asyncio.client import connect

from callscope.ai.factory import flaky_mock
from callscope.calls.vocabulary import Track
from callscope.db.engine import create_engine
from callscope.ingest.native import binary_frame
from callscope.jobs.breaker import BreakerChange, BreakerState
from callscope.jobs.provider_health import HealthAnnouncer
from callscope.settings import Settings
from tests.factories import INGEST, INGEST_TOKEN, SUPERVISOR, post_packet
from tests.integration.ai_helpers import FAST_AI, wait_for_states, worker_running
from tests.integration.test_media_streams import BEARER, closed, media, start
from tests.live import FeedClient, Message, feed, feed_url, has_type, served


def _validator(document: dict[str, Any], message_name: str) -> Draft202012Validator:
    """Validates a payload against one message of the document (its refs resolve in it)."""
    return Draft202012Validator(
        {**document, "$ref": f"#/components/messages/{message_name}/payload"}
    )


def _message_names(document: dict[str, Any]) -> dict[str, str]:
    """Each supervisor message's `type` value → its name in the document."""
    names = {}
    for name in document["channels"]["supervisor"]["messages"]:
        schema = document["components"]["schemas"][name]
        names[schema["properties"]["type"]["const"]] = name
    return names


def _check_all(document: dict[str, Any], messages: list[Message]) -> set[str]:
    names = _message_names(document)
    for message in messages:
        _validator(document, names[message["type"]]).validate(message)
    return {message["type"] for message in messages}


async def _fail_one_and_archive_another(
    settings: Settings, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for call_id in ("fails", "archives"):
        assert (await post_packet(http, call_id, 1)).status_code == 202
    down = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 1.0, "ai_max_attempts": 1})
    await http.post("/v1/calls/fails/complete", headers=INGEST)
    async with worker_running(down, flaky_mock(down)):
        await wait_for_states(db, {"FAILED"}, count=1)
    healthy = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.0})
    await http.post("/v1/calls/archives/complete", headers=INGEST)
    async with worker_running(healthy, flaky_mock(healthy)):
        await wait_for_states(db, {"ARCHIVED"}, count=1)


async def _press_a_key_and_reach_a_mark(ws_base: str, watcher: FeedClient) -> None:
    """A Twilio stream that sends a key press and a mark, then stays open (the call with it:
    the AI steps below settle the other calls)."""
    async with connect(ws_base + "/v1/media/twilio", additional_headers=BEARER) as socket:
        await socket.send(start("keys"))
        await socket.send(media("inbound", 1))
        dtmf = {"track": "inbound_track", "digit": "5"}
        await socket.send(json.dumps({"event": "dtmf", "sequenceNumber": "3", "dtmf": dtmf}))
        mark = {"name": "greeting"}
        await socket.send(json.dumps({"event": "mark", "sequenceNumber": "4", "mark": mark}))
        await watcher.read_until(has_type("call.mark", "keys"), within=10)


async def _open_and_close_a_breaker(settings: Settings, watcher: FeedClient) -> None:
    """What a worker's breaker announces when it opens and when it closes again."""
    engine = create_engine(settings.require_database_url(), pool_size=1)
    try:
        announce = HealthAnnouncer(engine, worker="worker-a:1")
        announce(BreakerChange(BreakerState.open, BreakerState.closed, 0.75, 16, 2.0))
        announce(BreakerChange(BreakerState.closed, BreakerState.open, 0.0, 1, 0.0))
        await watcher.read_until(has_type("ai.provider", state="closed"), within=10)
    finally:
        await engine.dispose()


async def test_every_message_type_matches_the_published_schema(
    settings: Settings, db: asyncpg.Connection
) -> None:
    quick = settings.model_copy(update={"live_ping_interval": 0.3})
    async with served(quick) as server, httpx.AsyncClient(base_url=server.http) as http:
        document = (await http.get("/asyncapi.json")).json()
        assert document["asyncapi"].startswith("3.")
        async with feed(feed_url(server.ws)) as watcher:
            await watcher.read_until(has_type("snapshot"), within=10)
            declared = await http.post(
                "/v1/calls", json={"call_id": "declared", "encoding": "mulaw"}, headers=INGEST
            )
            assert declared.status_code == 201
            await _press_a_key_and_reach_a_mark(server.ws, watcher)
            await _open_and_close_a_breaker(settings, watcher)
            await _fail_one_and_archive_another(settings, http, db)
            await watcher.read_until(has_type("call.archived"), within=10)
            await watcher.read_until(has_type("ping"), within=10)
            last = max(m.get("event_id") or 0 for m in watcher.messages)
        async with feed(feed_url(server.ws, since=last - 3)) as resumed:
            await resumed.read_until(has_type("live"), within=10)
        listed = (await http.get("/v1/calls", headers=SUPERVISOR)).json()
    seen = _check_all(document, watcher.messages) | _check_all(document, resumed.messages)
    assert seen >= {
        "snapshot",
        "call.created",
        "call.state_changed",
        "call.progress",
        "call.ai_attempt",
        "call.archived",
        "call.failed",
        "ping",
        "live",
        "call.dtmf",
        "call.mark",
        "ai.provider",
    }
    # The API's list items are the snapshot's calls: one read model.
    summary = Draft202012Validator({**document, "$ref": "#/components/schemas/CallSummary"})
    assert len(listed["items"]) == 4
    for item in listed["items"]:
        summary.validate(item)


# Twilio's messages as its documentation shows them (shared/carriers.md).
TWILIO_EXAMPLES = {
    "TwilioConnected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    "TwilioStart": {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
        "start": {
            "accountSid": "AC123",
            "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
            "callSid": "CA0123456789abcdef0123456789abcdef",
            "tracks": ["inbound", "outbound"],
            "customParameters": {"call_id": "pbx-7-42", "queue": "billing"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    },
    "TwilioMedia": {
        "event": "media",
        "sequenceNumber": "3",
        "streamSid": "MZ18ad",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "fn5+fn5+"},
    },
    "TwilioDtmf": {
        "event": "dtmf",
        "sequenceNumber": "57",
        "streamSid": "MZ18ad",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    },
    "TwilioMark": {
        "event": "mark",
        "sequenceNumber": "60",
        "streamSid": "MZ18ad",
        "mark": {"name": "greeting-done"},
    },
    "TwilioStop": {
        "event": "stop",
        "sequenceNumber": "812",
        "streamSid": "MZ18ad",
        "stop": {"accountSid": "AC123", "callSid": "CA0123456789abcdef0123456789abcdef"},
    },
}


async def test_media_stream_messages_match_the_published_schema(
    settings: Settings, db: asyncpg.Connection
) -> None:
    bearer = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        document = (await http.get("/asyncapi.json")).json()
        twilio = set(document["channels"]["twilioMedia"]["messages"])
        assert twilio == set(TWILIO_EXAMPLES)
        for name, example in TWILIO_EXAMPLES.items():
            _validator(document, name).validate(example)
        async with connect(server.ws + "/v1/media/twilio", additional_headers=bearer) as ws:
            for example in TWILIO_EXAMPLES.values():  # and a real stream takes them as they are
                await ws.send(json.dumps(example))
            assert (await closed(ws))[0] == 1000
        received = []
        async with connect(server.ws + f"/v1/calls/pbx-7-42/media?token={INGEST_TOKEN}") as ws:
            received.append(json.loads(await ws.recv()))  # where the inbound track stands
            await ws.send(binary_frame(Track.inbound, 9, 1.0, b"\x7f"))
            received.append(json.loads(await ws.recv()))  # refused: the call is completed
    by_type = {"ack": "NativeAck", "error": "NativeError", "ended": "NativeEnded"}
    assert [m["type"] for m in received] == ["ack", "error"]
    for message in received:
        _validator(document, by_type[message["type"]]).validate(message)
    audio_frame = {"track": "inbound", "sequence": 1, "data": "fn5+", "timestamp": 1.0}
    _validator(document, "NativeAudio").validate(audio_frame)
    _validator(document, "NativeEnd").validate({"type": "end", "final_sequences": {"inbound": 9}})
    assert await db.fetchval("SELECT count(*) FROM packets") == 1
