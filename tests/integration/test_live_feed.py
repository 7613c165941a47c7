"""The supervisor feed against a real server, database and worker: snapshot, a call's whole
life in order, exact `since=` replays, filters, auth close codes, listener reconnection."""

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect

from callscope import metrics
from callscope.ai.factory import flaky_mock
from callscope.calls.vocabulary import Track
from callscope.ingest.native import binary_frame
from callscope.realtime.bridge import APPLICATION_NAME
from callscope.settings import Settings, asyncpg_dsn
from tests.factories import INGEST, INGEST_TOKEN, SUPERVISOR_TOKEN, audio, packet_body
from tests.integration.ai_helpers import FAST_AI, worker_running
from tests.live import Message, feed, feed_url, has_type, latest_progress, served


async def _post_packets(http: httpx.AsyncClient, call_id: str, sequences: range) -> None:
    for sequence in sequences:
        response = await http.post(
            f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=INGEST
        )
        assert response.status_code == 202


async def _complete(http: httpx.AsyncClient, call_id: str) -> None:
    response = await http.post(f"/v1/calls/{call_id}/complete", headers=INGEST)
    assert response.status_code == 200


async def _event_ids(db: asyncpg.Connection, call_id: str | None = None) -> list[int]:
    rows = await db.fetch(
        "SELECT id FROM call_events WHERE $1::text IS NULL OR call_id = $1 ORDER BY id", call_id
    )
    return [row["id"] for row in rows]


def _ids(messages: list[Message]) -> list[int]:
    return [m["event_id"] for m in messages if m.get("event_id") is not None]


async def test_snapshot_then_a_calls_whole_life_in_order(
    settings: Settings, db: asyncpg.Connection
) -> None:
    ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.5, "ai_seed": 3})
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        await _post_packets(http, "earlier", range(1, 3))
        async with feed(feed_url(server.ws)) as client:
            await client.read_until(has_type("snapshot"), within=10)
            snapshot = client.messages[0]
            assert snapshot["type"] == "snapshot"
            assert [c["call_id"] for c in snapshot["calls"]] == ["earlier"]
            assert snapshot["calls"][0]["packets"]["received"] == 2
            assert snapshot["last_event_id"] == max(await _event_ids(db))

            await _post_packets(http, "life", range(1, 6))
            await _complete(http, "life")
            async with worker_running(ai, flaky_mock(ai)):
                await client.read_until(has_type("call.archived", "life"), within=30)
            await client.read_until(lambda ms: latest_progress(ms).get("life") == 5, within=10)

    life = [m for m in client.messages if m.get("call_id") == "life"]
    stored = await _event_ids(db, "life")
    assert _ids(life) == stored  # every event of the call, none twice, in id order
    assert stored == sorted(stored)
    changes = [
        (m["data"]["from"], m["data"]["to"]) for m in life if m["type"] == "call.state_changed"
    ]
    assert changes == [
        ("IN_PROGRESS", "COMPLETED"),
        ("COMPLETED", "PROCESSING_AI"),
        ("PROCESSING_AI", "ARCHIVED"),
    ]
    types = [m["type"] for m in life if m["event_id"] is not None]
    assert types[0] == "call.created"
    assert types[-1] == "call.archived"
    attempts = [m["data"] for m in life if m["type"] == "call.ai_attempt"]
    assert {a["step"] for a in attempts} == {"transcribe", "sentiment"}
    assert all(set(a) >= {"attempt", "step", "outcome", "error"} for a in attempts)
    archived = life[[m["type"] for m in life].index("call.archived")]["data"]
    stored_sentiment = await db.fetchrow("SELECT label, score, trend FROM sentiments")
    assert stored_sentiment is not None
    label, score, trend = stored_sentiment
    assert archived["sentiment"] == {"label": label, "score": score, "trend": json.loads(trend)}
    assert archived["transcript"] == await db.fetchval("SELECT text FROM transcripts")
    assert all(m["event_id"] is None for m in client.events("call.progress"))


async def test_since_replays_exactly_the_missed_events(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        async with feed(feed_url(server.ws)) as first:
            await first.read_until(has_type("snapshot"), within=10)
            await _post_packets(http, "seen", range(1, 3))
            await first.read_until(has_type("call.created", "seen"), within=10)
        seen_up_to = _ids(first.messages)[-1]

        # Missed while away: another call's life so far, and this call's completion.
        await _post_packets(http, "missed", range(1, 4))
        await _complete(http, "missed")
        await _complete(http, "seen")
        missed = [i for i in await _event_ids(db) if i > seen_up_to]
        assert len(missed) == 3

        async with feed(feed_url(server.ws, since=seen_up_to)) as again:
            await again.read_until(has_type("live"), within=10)
            replayed = again.events()
            assert _ids(replayed) == missed
            # Packet counts carry no event: they come up to date before going live.
            assert [m["type"] for m in replayed[-2:]] == ["call.progress", "live"]
            assert latest_progress(replayed) == {"seen": 2, "missed": 3}
            assert replayed[-1] == {"v": 1, "type": "live", "last_event_id": missed[-1]}
            await _post_packets(http, "after", range(1, 2))
            await again.read_until(has_type("call.created", "after"), within=10)
        assert _ids(again.messages) == [*missed, *(await _event_ids(db, "after"))]


async def test_since_ahead_of_the_log_gets_a_snapshot(settings: Settings) -> None:
    async with served(settings) as server, feed(feed_url(server.ws, since=999)) as client:
        await client.read_until(has_type("snapshot"), within=10)
        assert client.messages[0]["reason"] == "since_unknown"


async def test_call_id_filters_snapshot_and_events(settings: Settings) -> None:
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        await _post_packets(http, "watched", range(1, 2))
        await _post_packets(http, "other", range(1, 2))
        async with feed(feed_url(server.ws, call_id="watched")) as client:
            await client.read_until(has_type("snapshot"), within=10)
            assert [c["call_id"] for c in client.messages[0]["calls"]] == ["watched"]
            await _post_packets(http, "other", range(2, 3))
            await _post_packets(http, "watched", range(2, 3))
            await client.read_until(lambda ms: latest_progress(ms) == {"watched": 2}, within=10)
            await _complete(http, "other")
            await _complete(http, "watched")
            await client.read_until(has_type("call.state_changed", "watched"), within=10)
    assert {m["call_id"] for m in client.events("call.state_changed")} == {"watched"}
    assert set(latest_progress(client.messages)) == {"watched"}


@pytest.mark.parametrize(
    ("token", "headers", "code"),
    [
        (None, {}, 4401),
        ("not-a-token", {}, 4401),
        (INGEST_TOKEN, {}, 4403),
        (None, {"Authorization": f"Bearer {INGEST_TOKEN}"}, 4403),
        (None, {"Authorization": "Basic abc"}, 4401),
    ],
)
async def test_bad_tokens_close_before_anything_is_sent(
    settings: Settings, token: str | None, headers: dict[str, str], code: int
) -> None:
    async with served(settings) as server:
        url = feed_url(server.ws, token=token)
        async with feed(url, additional_headers=headers) as client:
            await client.connection.wait_closed()
        assert client.connection.close_code == code
        assert client.messages == []
        assert server.app.state.process.hub.subscribers == frozenset()


async def test_a_supervisor_token_in_the_header_is_accepted(settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
    async with (
        served(settings) as server,
        feed(feed_url(server.ws, token=None), additional_headers=headers) as client,
    ):
        await client.read_until(has_type("snapshot"), within=10)


@pytest.mark.parametrize("query", ["since=-1", "since=abc", "call_id=..", "call_id=a%20b"])
async def test_bad_parameters_close_with_4400(settings: Settings, query: str) -> None:
    async with served(settings) as server:
        url = f"{feed_url(server.ws)}&{query}"
        async with feed(url) as client:
            await client.connection.wait_closed()
        assert client.connection.close_code == 4400
        assert client.messages == []


async def test_a_lost_listen_connection_reconnects_and_resyncs_clients(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with (
        served(settings) as server,
        httpx.AsyncClient(base_url=server.http) as http,
        feed(feed_url(server.ws)) as client,
    ):
        await client.read_until(has_type("snapshot"), within=10)
        counted_before = _reconnects_and_resyncs()
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
        assert killed == 1
        await _post_packets(http, "during", range(1, 2))  # may be missed: the resync has it
        await client.read_until(
            lambda ms: any(m.get("reason") == "reconnect" for m in ms), within=15
        )
        resync = next(m for m in client.messages if m.get("reason") == "reconnect")
        assert "during" in {c["call_id"] for c in resync["calls"]}
        await _post_packets(http, "after", range(1, 2))
        await client.read_until(has_type("call.created", "after"), within=10)
    reconnects, resyncs = (
        after - before
        for before, after in zip(counted_before, _reconnects_and_resyncs(), strict=True)
    )
    assert (reconnects, resyncs) == (1, 1)  # one listener, one client


def _reconnects_and_resyncs() -> tuple[float, float]:
    """`callscope_live_listener_reconnects_total` and the reconnect resyncs, as counted so far
    in this process (where the served app runs)."""
    reconnects = metrics.REGISTRY.get_sample_value("callscope_live_listener_reconnects_total")
    resyncs = metrics.REGISTRY.get_sample_value(
        "callscope_live_resyncs_total", {"reason": "reconnect"}
    )
    return reconnects or 0.0, resyncs or 0.0


async def test_an_event_too_big_for_notify_is_read_from_the_table(
    settings: Settings, db: asyncpg.Connection
) -> None:
    transcript = "word " * 4000  # 20 kB: beyond the 8,000-byte NOTIFY payload limit
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        await _post_packets(http, "long", range(1, 2))
        async with feed(feed_url(server.ws)) as client:
            await client.read_until(has_type("snapshot"), within=10)
            await db.execute(
                "INSERT INTO call_events (call_id, type, data) "
                "VALUES ('long', 'call.archived', $1)",
                json.dumps({"transcript": transcript, "sentiment": None}),
            )
            await client.read_until(has_type("call.archived", "long"), within=10)
    (archived,) = client.events("call.archived")
    assert archived["data"]["transcript"] == transcript


async def test_progress_is_coalesced_per_call(settings: Settings) -> None:
    async with (
        served(settings) as server,
        httpx.AsyncClient(base_url=server.http) as http,
        feed(feed_url(server.ws)) as client,
    ):
        await client.read_until(has_type("snapshot"), within=10)
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(_post_packets(http, "busy", range(n, 200, 4)) for n in range(1, 5)))
        await client.read_until(lambda ms: latest_progress(ms).get("busy") == 199, within=10)
        elapsed = asyncio.get_running_loop().time() - started
    progress = client.events("call.progress")
    # At most one per 0.5 s flush (plus the flush in progress when posting started).
    assert len(progress) <= elapsed / settings.live_progress_interval + 2
    counts = [entry["packets"]["received"] for m in progress for entry in m["data"]["calls"]]
    assert counts == sorted(counts)


async def test_progress_and_snapshots_count_each_track(settings: Settings) -> None:
    def counts(received: int, duplicates: int, missing: int) -> dict[str, int]:
        return {"received": received, "duplicates": duplicates, "late": 0, "missing": missing}

    expected = [
        {"track": "inbound", **counts(received=3, duplicates=0, missing=1)},
        {"track": "outbound", **counts(received=2, duplicates=1, missing=0)},
    ]

    def tracks_of(entry: Message) -> Any:
        return entry["tracks"] if entry["call_id"] == "duo" else None

    async with served(settings) as server, feed(feed_url(server.ws)) as client:
        await client.read_until(has_type("snapshot"), within=10)
        url = f"{server.ws}/v1/calls/duo/media?token={INGEST_TOKEN}"
        async with connect(url) as socket:
            for track, sequence in [(Track.inbound, n) for n in (1, 2, 4)] + [
                (Track.outbound, n) for n in (1, 2, 2)
            ]:
                await socket.send(binary_frame(track, sequence, 0.0, audio(sequence)))
            await client.read_until(
                lambda ms: any(
                    tracks_of(entry) == expected
                    for m in ms
                    if m["type"] == "call.progress"
                    for entry in m["data"]["calls"]
                ),
                within=10,
            )
        async with feed(feed_url(server.ws)) as later:
            await later.read_until(has_type("snapshot"), within=10)
    (snapshot,) = later.events("snapshot")
    assert [tracks_of(call) for call in snapshot["calls"]] == [expected]


async def test_a_quiet_feed_sends_pings(settings: Settings) -> None:
    quiet = settings.model_copy(update={"live_ping_interval": 0.1})
    async with served(quiet) as server, feed(feed_url(server.ws)) as client:
        await client.read_until(lambda ms: len([m for m in ms if m["type"] == "ping"]) >= 2, 5)
    assert [m["type"] for m in client.messages[:3]] == ["snapshot", "ping", "ping"]


async def test_progress_of_a_batch_too_big_to_name_its_calls(
    settings: Settings, db_url: str
) -> None:
    call_ids = [f"{n:03d}-" + "x" * 120 for n in range(200)]  # 25 kB of names
    notified: list[str] = []
    listener = await asyncpg.connect(asyncpg_dsn(db_url))
    await listener.add_listener(
        "callscope_progress", lambda _c, _p, _ch, payload: notified.append(str(payload))
    )
    try:
        async with (
            served(settings) as server,
            httpx.AsyncClient(base_url=server.http, timeout=30) as http,
            feed(feed_url(server.ws)) as client,
        ):
            await client.read_until(has_type("snapshot"), within=10)
            await asyncio.gather(*(_post_packets(http, c, range(1, 2)) for c in call_ids))
            await client.read_until(
                lambda ms: latest_progress(ms) == dict.fromkeys(call_ids, 1), within=10
            )
    finally:
        await listener.close()
    # Some batch touched more calls than a notification can name.
    assert any(payload.startswith("*") for payload in notified)


async def test_a_failing_snapshot_closes_with_1011_so_the_client_reconnects(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with served(settings) as server:
        await db.execute("ALTER TABLE sentiments RENAME TO sentiments_away")
        try:
            async with feed(feed_url(server.ws)) as client:
                await client.connection.wait_closed()
        finally:
            await db.execute("ALTER TABLE sentiments_away RENAME TO sentiments")
        assert client.connection.close_code == 1011
        assert client.messages == []
        async with feed(feed_url(server.ws)) as again:  # the database is back: so is the feed
            await again.read_until(has_type("snapshot"), within=10)


async def test_a_snapshot_lists_the_newest_active_calls_up_to_the_limit(
    settings: Settings, db: asyncpg.Connection
) -> None:
    limited = settings.model_copy(update={"live_active_limit": 2, "live_recent_limit": 1})
    async with served(limited) as server, httpx.AsyncClient(base_url=server.http) as http:
        for call_id in ("first", "second", "third", "done-1", "done-2"):
            await _post_packets(http, call_id, range(1, 2))
        # Finished calls (set directly: only the snapshot's reading is under test here).
        await db.execute(
            "UPDATE calls SET state = 'ARCHIVED', updated_at = now() - "
            "CASE call_id WHEN 'done-1' THEN interval '1 minute' ELSE interval '0' END "
            "WHERE call_id LIKE 'done-%'"
        )
        async with feed(feed_url(server.ws)) as client:
            await client.read_until(has_type("snapshot"), within=10)
    snapshot = client.messages[0]
    # The 2 newest active calls, then the 1 most recently finished.
    assert [c["call_id"] for c in snapshot["calls"]] == ["third", "second", "done-2"]
    assert snapshot["truncated"] is True
