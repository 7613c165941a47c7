"""Searching calls: `q` over the stored transcripts (through their GIN index), the headline
sentiment's label and score range, combined with each other and with the cursor."""

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from callscope.calls.repository import CallSearch, list_select
from tests.factories import SUPERVISOR

pytestmark = pytest.mark.integration

_START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _call(
    db: asyncpg.Connection,
    call_id: str,
    *,
    minute: int,
    caller: str | None = None,
    agent: str | None = None,
    sentiment: tuple[str, float] | None = None,
    agent_sentiment: tuple[str, float] | None = None,
) -> None:
    """An ARCHIVED call created `minute` minutes after _START, with what each side said and
    how each side scored (as the AI pipeline stores them)."""
    await db.execute(
        "INSERT INTO calls (call_id, state, created_at, updated_at) "
        "VALUES ($1, 'ARCHIVED', $2, $2)",
        call_id,
        _START + timedelta(minutes=minute),
    )
    for track, text in (("inbound", caller), ("outbound", agent)):
        if text is not None:
            segments = [{"start": 0.0, "end": 2.0, "text": text}]
            await db.execute(
                "INSERT INTO transcripts (call_id, track, text, segments) VALUES ($1, $2, $3, $4)",
                call_id,
                track,
                text,
                json.dumps(segments),
            )
    for track, scored in (("inbound", sentiment), ("outbound", agent_sentiment)):
        if scored is not None:
            label, score = scored
            await db.execute(
                "INSERT INTO sentiments (call_id, track, label, score, trend) "
                "VALUES ($1, $2, $3, $4, $5)",
                call_id,
                track,
                label,
                score,
                json.dumps([score / 2, score]),
            )


async def _ids(client: httpx.AsyncClient, params: dict[str, str | float]) -> list[str]:
    response = await client.get("/v1/calls", params=params, headers=SUPERVISOR)
    assert response.status_code == 200, response.text
    return [item["call_id"] for item in response.json()["items"]]


@pytest.fixture
async def calls(db: asyncpg.Connection) -> None:
    await _call(
        db,
        "angry",
        minute=1,
        caller="You charged me twice again. I hate this and I will cancel my account.",
        agent="I am sorry, let me refund the second charge.",
        sentiment=("negative", -0.7),
        agent_sentiment=("positive", 0.4),
    )
    await _call(
        db,
        "address",
        minute=2,
        caller="I would like to change the address on my account please.",
        agent="Of course, what is the new address?",
        sentiment=("neutral", 0.05),
        agent_sentiment=("neutral", 0.0),
    )
    await _call(
        db,
        "happy",
        minute=3,
        caller="Thank you so much, the new phone works wonderfully.",
        sentiment=("positive", 0.8),
    )
    await _call(
        db,
        "card",
        minute=4,
        caller="My card number is [card] and I want to cancel the old one.",
        sentiment=("neutral", -0.1),
    )
    await _call(db, "unscored", minute=5)  # still waiting for its AI job


@pytest.mark.usefixtures("calls")
async def test_q_finds_the_calls_whose_transcript_matches(client: httpx.AsyncClient) -> None:
    assert await _ids(client, {"q": "cancel"}) == ["card", "angry"]  # newest first
    assert await _ids(client, {"q": "charges"}) == ["angry"]  # stems: charge(d|s)
    assert await _ids(client, {"q": "refund"}) == ["angry"]  # said by the agent
    assert await _ids(client, {"q": '"new address"'}) == ["address"]
    assert await _ids(client, {"q": '"address new"'}) == []
    assert await _ids(client, {"q": "cancel -card"}) == ["angry"]
    assert await _ids(client, {"q": "wonderful or refund"}) == ["happy", "angry"]
    assert await _ids(client, {"q": "card"}) == ["card"]  # the redaction marker, not digits
    assert await _ids(client, {"q": "the"}) == []  # a stop word alone matches nothing
    assert await _ids(client, {"q": "dinosaur"}) == []


@pytest.mark.usefixtures("calls")
async def test_sentiment_filters_on_the_caller_s_headline(client: httpx.AsyncClient) -> None:
    assert await _ids(client, {"sentiment": "negative"}) == ["angry"]  # its agent is positive
    assert await _ids(client, {"sentiment": "positive"}) == ["happy"]
    assert await _ids(client, {"sentiment": "neutral"}) == ["card", "address"]


@pytest.mark.usefixtures("calls")
async def test_score_bounds_are_inclusive_and_skip_unscored_calls(
    client: httpx.AsyncClient,
) -> None:
    assert await _ids(client, {"min_score": 0.05}) == ["happy", "address"]
    assert await _ids(client, {"max_score": -0.1}) == ["card", "angry"]
    assert await _ids(client, {"min_score": -0.1, "max_score": 0.05}) == ["card", "address"]
    assert await _ids(client, {"min_score": -1, "max_score": 1}) == [
        "card",
        "happy",
        "address",
        "angry",
    ]
    assert await _ids(client, {"min_score": 0.5, "max_score": 0.5}) == []


@pytest.mark.usefixtures("calls")
async def test_filters_combine(client: httpx.AsyncClient) -> None:
    assert await _ids(client, {"q": "cancel", "sentiment": "neutral"}) == ["card"]
    assert await _ids(client, {"q": "account", "max_score": 0.0}) == ["angry"]
    assert await _ids(client, {"q": "account", "min_score": 0.0, "state": "ARCHIVED"}) == [
        "address"
    ]
    assert await _ids(client, {"q": "account", "state": "FAILED"}) == []
    cutoff = (_START + timedelta(minutes=2)).isoformat()
    assert await _ids(client, {"q": "account", "created_before": cutoff}) == ["angry"]


async def test_list_items_carry_the_headline_trend(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _call(
        db,
        "two-sided",
        minute=1,
        caller="hello",
        sentiment=("negative", -0.6),
        agent="hi",
        agent_sentiment=("positive", 0.6),
    )
    response = await client.get("/v1/calls", params={"q": "hello"}, headers=SUPERVISOR)
    assert response.json()["items"][0]["ai"]["sentiment"] == {
        "label": "negative",
        "score": -0.6,
        "trend": [-0.3, -0.6],
    }


async def test_pages_of_a_search_walk_every_match_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for n in range(12):
        said = "please cancel my plan" if n % 2 else "what a lovely day"
        await _call(db, f"c{n:02d}", minute=n, caller=said, sentiment=("neutral", n / 20))
    seen: list[str] = []
    params: dict[str, str | float] = {"q": "cancel", "min_score": 0.1, "limit": 2}
    pages = 0
    while True:
        page = (await client.get("/v1/calls", params=params, headers=SUPERVISOR)).json()
        seen += [item["call_id"] for item in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ["c11", "c09", "c07", "c05", "c03"]  # c01 scores 0.05
    assert pages == 3


@pytest.mark.usefixtures("calls")
async def test_bad_search_parameters_are_422_and_change_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    before = await db.fetch("SELECT call_id, state, updated_at FROM calls ORDER BY call_id")
    for params in (
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "nul\x00here"},
        {"q": "tab\there"},
        {"sentiment": "angry"},
        {"sentiment": "NEGATIVE"},
        {"min_score": "-1.01"},
        {"max_score": "1.5"},
        {"min_score": "nan"},
        {"max_score": "inf"},
        {"min_score": "low"},
        {"min_score": "0.5", "max_score": "0.2"},
    ):
        response = await client.get("/v1/calls", params=params, headers=SUPERVISOR)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "validation_error", params
    inverted = await client.get(
        "/v1/calls", params={"min_score": 0.5, "max_score": 0.2}, headers=SUPERVISOR
    )
    assert inverted.json()["errors"][0]["loc"] == ["query", "min_score"]
    assert await db.fetch("SELECT call_id, state, updated_at FROM calls ORDER BY call_id") == before


async def test_the_text_search_uses_its_gin_index(db: asyncpg.Connection) -> None:
    """5,000 calls, 2 of them saying the word: the planner goes through the index."""
    statement = list_select(search=CallSearch(text="chargeback")).limit(51)
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it bare
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    bulk = db.transaction()  # rolled back: the rows and their statistics go away
    await bulk.start()
    try:
        await db.execute(
            "INSERT INTO calls (call_id, state) "
            "SELECT 'bulk-' || n, 'ARCHIVED' FROM generate_series(1, 5000) n"
        )
        await db.execute(
            "INSERT INTO transcripts (call_id, track, text, segments) "
            "SELECT 'bulk-' || n, 'inbound', "
            "CASE WHEN n % 2000 = 0 THEN 'I want a chargeback now' "
            "ELSE 'I would like to change my address, number ' || n END, '[]' "
            "FROM generate_series(1, 5000) n"
        )
        await db.execute("ANALYZE calls; ANALYZE transcripts")
        plan = "\n".join(row[0] for row in await db.fetch(f"EXPLAIN {sql}"))
        found = await db.fetch(sql)
    finally:
        await bulk.rollback()
    assert "ix_transcripts_text_search" in plan, plan
    assert sorted(row["call_id"] for row in found) == ["bulk-2000", "bulk-4000"]
