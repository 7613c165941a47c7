"""Quality of the local engines on the evaluation set (benchmarks/eval_set): each recording
goes the way a call's audio goes — 8 kHz μ-law cut into 20 ms packets, 2 % of them lost
(seeded), reassembled with silence for the holes, decoded — and through the configured local
engines (Whisper tiny.en, sentiment). Prints per recording and overall the word error rate
(reference and hypothesis normalised alike, numbers as digits), the sentiment label and the
final mood against the truth, a confusion matrix of the labels, and the real-time factor.

    .venv/bin/python -m benchmarks.eval_ai     # or: make eval-ai

Targets: mean WER <= 0.15, <= 0.30 on the number recordings, real-time factor <= 0.2, the label
right on every recording that keeps one mood, and the final mood right on every turning call.
Exit status 1 if one is missed.
"""

import argparse
import asyncio
import importlib
import time
from collections import Counter
from dataclasses import dataclass
from random import Random

from benchmarks.eval_set import EvalRecording, eval_set
from benchmarks.eval_set.scoring import word_errors
from callscope.ai.factory import local_engines
from callscope.ai.local import LocalProvider
from callscope.ai.ports import CallAudio, Sentiment, Transcript
from callscope.ai.sentiment import final_mood, read_for_mood
from callscope.audio.formats import AudioEncoding, AudioFormat
from callscope.audio.reassembly import reassemble
from callscope.settings import Settings
from callscope.simulate.plan import frames_of, plan_call

LOSS = 0.02
LABELS = ("negative", "neutral", "positive")
TARGET_WER, TARGET_NUMBERS_WER, TARGET_RTF = 0.15, 0.30, 0.2


@dataclass(frozen=True, slots=True)
class Outcome:
    recording: EvalRecording
    seconds: float
    took: float
    errors: int
    words: int
    label: str
    score: float
    final: str
    text: str

    @property
    def wer(self) -> float:
        return self.errors / self.words


def lossy_audio(recording: EvalRecording, seed: int) -> CallAudio:
    """The recording as the pipeline hands it over after `LOSS` of its packets were lost."""
    plan = plan_call(
        frames_of(recording.mulaw()), loss=LOSS, duplicates=0.0, reorder=0.0, rng=Random(seed)
    )
    packets = sorted({send.sequence: send.frame for send in plan.sends}.items())
    pcm16 = reassemble(packets, AudioFormat(AudioEncoding.mulaw, 8000), last=plan.last_sequence)
    return CallAudio(pcm16, 8000)


async def _run(engines: LocalProvider, recording: EvalRecording, seed: int, band: float) -> Outcome:
    audio = lossy_audio(recording, seed)
    # Whisper's temperature fallback samples: seeded, a run is repeatable.
    importlib.import_module("ctranslate2").set_random_seed(seed)
    began = time.perf_counter()
    transcript = await engines.transcribe(recording.call, audio)
    sentiment = await engines.analyze(transcript)
    took = time.perf_counter() - began
    errors, words = word_errors(recording.text, transcript.text)
    return Outcome(
        recording=recording,
        seconds=audio.seconds,
        took=took,
        errors=errors,
        words=words,
        label=sentiment.label,
        score=sentiment.score,
        final=final_mood(_heard_confidently(transcript, sentiment), band),
        text=transcript.text,
    )


def _heard_confidently(transcript: Transcript, sentiment: Sentiment) -> list[float]:
    """The trend without the segments the analyzer did not read (heard with low confidence)."""
    if not sentiment.trend:
        return []
    return [score for _, score in read_for_mood(transcript.segments, sentiment.trend)]


def _mark(ok: bool) -> str:
    return "ok" if ok else "**WRONG**"


def _report(outcomes: list[Outcome], *, show_text: bool) -> bool:
    print("| recording | kind | speaker | RTF | WER | label (truth) | final (truth) |")
    print("|---|---|---|---:|---:|---|---|")
    for o in outcomes:
        r = o.recording
        print(
            f"| {r.path.name} | {r.kind} | {r.speaker} | {o.took / o.seconds:.3f} | {o.wer:.2f} | "
            f"{o.label} {o.score:+.2f} ({r.label}) {_mark(o.label == r.label)} | "
            f"{o.final} ({r.final}) {_mark(o.final == r.final)} |"
        )
        if show_text:
            print(f"|   | heard: {o.text} | | | | | |")
    errors, words = sum(o.errors for o in outcomes), sum(o.words for o in outcomes)
    numbers = [o for o in outcomes if o.recording.kind == "numbers"]
    numbers_wer = sum(o.errors for o in numbers) / max(1, sum(o.words for o in numbers))
    mean_wer = sum(o.wer for o in outcomes) / len(outcomes)
    rtf = sum(o.took for o in outcomes) / sum(o.seconds for o in outcomes)
    steady = [o for o in outcomes if o.recording.kind != "turning"]
    labels_right = sum(o.label == o.recording.label for o in steady)
    turning = [o for o in outcomes if o.recording.kind == "turning"]
    finals_right = sum(o.final == o.recording.final for o in turning)
    by_kind = ", ".join(
        f"{kind} {sum(o.errors for o in group) / sum(o.words for o in group):.2f}"
        for kind in dict.fromkeys(o.recording.kind for o in outcomes)
        for group in [[o for o in outcomes if o.recording.kind == kind]]
    )
    print(
        f"\nmean WER {mean_wer:.3f} (pooled {errors / words:.3f}); number recordings "
        f"{numbers_wer:.3f}; real-time factor {rtf:.3f}\nWER by kind: {by_kind}\n"
        f"labels right {labels_right}/{len(steady)} (all but the turning calls); final mood "
        f"of the turning calls right {finals_right}/{len(turning)}"
    )
    pairs = Counter((o.recording.label, o.label) for o in outcomes)
    print("\nconfusion (rows: truth, columns: label given)\n")
    print("| truth \\ given | " + " | ".join(LABELS) + " |")
    print("|---|" + "---:|" * len(LABELS))
    for truth in LABELS:
        print(f"| {truth} | " + " | ".join(str(pairs[truth, given]) for given in LABELS) + " |")
    met = (
        mean_wer <= TARGET_WER
        and numbers_wer <= TARGET_NUMBERS_WER
        and rtf <= TARGET_RTF
        and labels_right == len(steady)
        and finals_right == len(turning)
    )
    print(
        f"\ntargets (WER <= {TARGET_WER}, numbers <= {TARGET_NUMBERS_WER}, RTF <= {TARGET_RTF}, "
        f"every label and final mood right): {'met' if met else 'NOT met'}"
    )
    return met


async def _evaluate(only: str | None, show_text: bool) -> int:
    settings = Settings(_env_file=None)
    engines = local_engines(settings)
    chosen = [r for r in eval_set() if only is None or only in r.path.name]
    try:
        outcomes = [
            await _run(engines, recording, seed, settings.sentiment_neutral_band)
            for seed, recording in enumerate(chosen, start=1)
        ]
    finally:
        await engines.aclose()
    return 0 if _report(outcomes, show_text=show_text) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="recordings whose file name contains this")
    parser.add_argument("--text", action="store_true", help="print what was heard, too")
    args = parser.parse_args()
    return asyncio.run(_evaluate(args.only, args.text))


if __name__ == "__main__":
    raise SystemExit(main())
