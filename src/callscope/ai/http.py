"""An AI provider over HTTP (e.g. `callscope mock-ai`): timeouts, errors mapped to the taxonomy."""

import base64
from typing import Any

import httpx

from callscope.ai.errors import ProviderRejected, ProviderUnavailable
from callscope.ai.ports import CallAudio, Segment, Sentiment, SentimentLabel, Transcript

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class HttpProvider:
    def __init__(self, client: httpx.AsyncClient) -> None:
        """`client` carries the base URL and the timeout; its owner closes it."""
        self._client = client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"timeout calling {path}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"cannot reach the AI API: {type(exc).__name__}") from exc
        if response.status_code in _RETRYABLE_STATUS:
            raise ProviderUnavailable(f"{response.status_code} from {path}")
        if response.is_error:
            raise ProviderRejected(f"{response.status_code} from {path}: {response.text[:200]}")
        answer: dict[str, Any] = response.json()
        return answer

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        body = {
            "call_id": call_id,
            "audio": base64.b64encode(audio.pcm16).decode(),
            "sample_rate": audio.sample_rate,
        }
        answer = await self._post("/v1/transcribe", body)
        segments = tuple(Segment(s["start"], s["end"], s["text"]) for s in answer["segments"])
        return Transcript(text=answer["text"], segments=segments)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        answer = await self._post("/v1/sentiment", {"text": transcript.text})
        score = float(answer["score"])
        if not -1.0 <= score <= 1.0:  # also false for NaN
            raise ProviderRejected(f"sentiment score {score} is outside -1..1")
        return Sentiment(label=SentimentLabel(answer["label"]), score=score)
