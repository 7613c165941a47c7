"""Transcripts are redacted before they are stored: the database, the archive event and the API
never hold the card number a caller spoke; with CALLSCOPE_REDACTION=off they hold it as heard."""

import json

import asyncpg
import httpx
import pytest

from callscope.ai.ports import CallAudio, Segment, Sentiment, SentimentLabel, Transcript
from callscope.settings import Settings
from tests.factories import SUPERVISOR
from tests.integration.ai_helpers import (
    FAST_AI,
    make_completed_calls,
    wait_for_states,
    worker_running,
)

pytestmark = pytest.mark.integration

CARD = "4111 1111 1111 1111"  # passes the Luhn check
SPOKEN = "my card is four one one one one one one one one one one one one one one one thanks"


class _Caller:
    """A provider that hears the caller read out a card number, once in words, once in digits."""

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        segments = (Segment(0.0, 3.0, SPOKEN), Segment(3.0, 5.0, f"again {CARD} bye"))
        return Transcript(text=" ".join(s.text for s in segments), segments=segments)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return Sentiment(label=SentimentLabel.neutral, score=0.0, trend=(0.0, 0.0))


async def _stored(db: asyncpg.Connection, client: httpx.AsyncClient) -> str:
    """Everything the service kept about the call, as one text."""
    transcript = await db.fetchrow("SELECT text, segments FROM transcripts")
    assert transcript is not None
    events = await db.fetch("SELECT data FROM call_events WHERE data IS NOT NULL")
    detail = await client.get("/v1/calls/card", headers=SUPERVISOR)
    assert detail.status_code == 200
    return "\n".join(
        [transcript["text"], transcript["segments"], *(e["data"] for e in events), detail.text]
    )


async def test_a_spoken_card_number_is_never_stored(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    await make_completed_calls(client, ["card"])
    async with worker_running(settings.model_copy(update=FAST_AI), _Caller()):
        await wait_for_states(db, {"ARCHIVED"}, count=1)
    kept = await _stored(db, client)
    assert "[card]" in kept
    assert "1111" not in kept
    assert "one one one" not in kept
    segments = json.loads(await db.fetchval("SELECT segments FROM transcripts"))
    kinds = {r["kind"] for s in segments for r in s["redactions"]}
    assert kinds == {"card"}


async def test_with_redaction_off_the_transcript_is_stored_as_heard(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    await make_completed_calls(client, ["card"])
    heard = settings.model_copy(update={**FAST_AI, "redaction": "off"})
    async with worker_running(heard, _Caller()):
        await wait_for_states(db, {"ARCHIVED"}, count=1)
    kept = await _stored(db, client)
    assert CARD in kept
    assert "[card]" not in kept
