"""The audio export silences what the transcript redacted: a sentence in which the caller
read out a card number is silent in GET /v1/calls/{id}/audio (0.25 s either side), the rest
plays as it came; with CALLSCOPE_REDACT_AUDIO=false the export is the audio as stored."""

from __future__ import annotations

import io
import wave
from array import array

import asyncpg
import httpx
import pytest

from callscope.ai.ports import CallAudio, Segment, Sentiment, SentimentLabel, Transcript
from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR, packet_body, running_app
from tests.integration.ai_helpers import FAST_AI, wait_for_states, worker_running

pytestmark = pytest.mark.integration

RATE = 8000
PACKETS = 150  # 3 s of 20 ms μ-law packets
SENTENCES = (
    Segment(0.0, 0.8, "hello there"),
    Segment(1.0, 2.0, "my card is 4111 1111 1111 1111"),
    Segment(2.2, 3.0, "thank you"),
)


class _ReadsOutACard:
    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        return Transcript(text=" ".join(s.text for s in SENTENCES), segments=SENTENCES)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return Sentiment(label=SentimentLabel.neutral, score=0.0, trend=(0.0, 0.0, 0.0))


async def _samples(client: httpx.AsyncClient, call_id: str) -> array[int]:
    response = await client.get(f"/v1/calls/{call_id}/audio", headers=SUPERVISOR)
    assert response.status_code == 200
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (RATE, 1)
        return array("h", wav.readframes(wav.getnframes()))


def _sounding(samples: array[int], start: float, end: float) -> float:
    """The share of samples between `start` and `end` seconds that are not silent."""
    window = samples[int(start * RATE) : int(end * RATE)]
    return sum(1 for s in window if s) / len(window)


async def test_the_sentence_with_a_card_number_is_silent_in_the_export(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    for sequence in range(1, PACKETS + 1):
        response = await client.post(
            "/v1/call/stream/rd", json=packet_body(sequence), headers=INGEST
        )
        assert response.status_code == 202
    assert (await client.post("/v1/calls/rd/complete", headers=INGEST)).status_code == 200
    before = await _samples(client, "rd")  # nothing redacted yet: all of it plays
    assert _sounding(before, 0.75, 2.25) > 0.9
    async with worker_running(settings.model_copy(update=FAST_AI), _ReadsOutACard()):
        await wait_for_states(db, {"ARCHIVED"}, count=1)

    exported = await _samples(client, "rd")
    assert len(exported) == len(before) == PACKETS * 160
    assert _sounding(exported, 0.75, 2.25) == 0.0  # the card sentence, 0.25 s either side
    assert exported[: int(0.75 * RATE)] == before[: int(0.75 * RATE)]
    assert exported[int(2.25 * RATE) :] == before[int(2.25 * RATE) :]

    async with running_app(settings.model_copy(update={"redact_audio": False})) as unredacted:
        assert await _samples(unredacted, "rd") == before
