"""`callscope mock-ai`: the flaky mock as a real HTTP API (503 on an injected failure)."""

import base64
import binascii
from dataclasses import asdict
from typing import Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from callscope.ai.errors import ProviderRejected, ProviderUnavailable
from callscope.ai.factory import flaky_mock
from callscope.ai.ports import CallAudio, Transcript
from callscope.settings import Settings


class TranscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Field(description="The call the audio belongs to.")
    audio: str = Field(description="The call's audio, 16-bit little-endian PCM, base64.")
    sample_rate: Literal[8000, 16000] = Field(8000, description="Samples per second.")


class SentimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="Text to score.")


def create_mock_ai_app(settings: Settings) -> FastAPI:
    provider = flaky_mock(settings)
    app = FastAPI(title="callscope mock AI", description="Transcription and sentiment, flaky.")

    @app.post("/v1/transcribe")
    async def transcribe(body: TranscribeIn) -> dict[str, object]:
        try:
            audio = base64.b64decode(body.audio, validate=True)
        except binascii.Error as exc:
            raise HTTPException(422, "audio is not base64") from exc
        if not audio:  # input is checked before any (possibly failing) processing
            raise HTTPException(422, "no audio to transcribe")
        try:
            transcript = await provider.transcribe(body.call_id, CallAudio(audio, body.sample_rate))
        except ProviderUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        except ProviderRejected as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"text": transcript.text, "segments": [asdict(s) for s in transcript.segments]}

    @app.post("/v1/sentiment")
    async def sentiment(body: SentimentIn) -> dict[str, object]:
        try:
            result = await provider.analyze(Transcript(text=body.text, segments=()))
        except ProviderUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        return {"label": result.label.value, "score": result.score}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
