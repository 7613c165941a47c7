"""Local engines benchmark: Whisper tiny.en (int8, CPU) and VADER on the committed recordings,
as the worker sees them (8 kHz μ-law decoded, resampled to 16 kHz). Prints the model load time,
the real-time factor (processing seconds / audio seconds) per recording and overall, the word
error rate, and the process's peak memory. Target: real-time factor <= 0.5.

    .venv/bin/python -m benchmarks.local_ai     # or: make bench-local
"""

import asyncio
import resource
import time

from benchmarks.eval_set.scoring import word_errors
from callscope.ai.factory import local_engines
from callscope.ai.ports import CallAudio
from callscope.audio.codec import to_pcm16
from callscope.audio.formats import AudioEncoding
from callscope.settings import Settings
from callscope.simulate.speech import recordings


async def _bench() -> int:
    started = time.perf_counter()
    engines = local_engines(Settings(_env_file=None))
    load_s = time.perf_counter() - started
    print(f"model load (sha256 check included): {load_s:.2f} s")
    audio_total = processing_total = 0.0
    errors = words = 0
    print(f"\n{'recording':<22} {'audio s':>7} {'proc s':>7} {'RTF':>6} {'WER':>5}  sentiment")
    try:
        for recording in recordings():
            pcm16 = to_pcm16(recording.mulaw(), AudioEncoding.mulaw)
            audio = CallAudio(pcm16, 8000)
            began = time.perf_counter()
            transcript = await engines.transcribe(recording.path.stem, audio)
            sentiment = await engines.analyze(transcript)
            took = time.perf_counter() - began
            wrong, total = word_errors(recording.text, transcript.text)
            errors, words = errors + wrong, words + total
            audio_total += audio.seconds
            processing_total += took
            print(
                f"{recording.path.name:<22} {audio.seconds:>7.2f} {took:>7.2f} "
                f"{took / audio.seconds:>6.3f} {wrong / total:>5.2f}  "
                f"{sentiment.label} {sentiment.score:+.2f} (expected {recording.sentiment})"
            )
    finally:
        await engines.aclose()
    rtf = processing_total / audio_total
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\noverall: {audio_total:.1f} s of audio in {processing_total:.1f} s, real-time factor "
        f"{rtf:.3f}; word error rate {errors / words:.2f}; peak memory {peak_mb:.0f} MB"
    )
    print(f"target (real-time factor <= 0.5): {'met' if rtf <= 0.5 else 'NOT met'}")
    return 0 if rtf <= 0.5 else 1


def main() -> int:
    return asyncio.run(_bench())


if __name__ == "__main__":
    raise SystemExit(main())
