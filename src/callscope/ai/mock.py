"""A deterministic stand-in for a real AI API: instant, never fails (wrap it in `Flaky`)."""

import hashlib

from callscope.ai.errors import ProviderRejected
from callscope.ai.ports import CallAudio, Segment, Sentiment, SentimentLabel, Transcript

NEUTRAL_BAND = 0.05


class MockProvider:
    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        if not audio.pcm16:
            raise ProviderRejected("no audio to transcribe")
        seconds = audio.seconds
        segments = tuple(
            Segment(
                start=float(second),
                end=min(float(second + 1), seconds),
                text=f"second {second + 1} of call {call_id}",
            )
            for second in range(int(-(-seconds // 1)))
        )
        return Transcript(text=" ".join(s.text for s in segments), segments=segments)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        digest = hashlib.sha256(transcript.text.encode()).digest()
        score = round(int.from_bytes(digest[:4], "big") / 2**31 - 1.0, 4)
        if score > NEUTRAL_BAND:
            label = SentimentLabel.positive
        elif score < -NEUTRAL_BAND:
            label = SentimentLabel.negative
        else:
            label = SentimentLabel.neutral
        return Sentiment(label=label, score=score)
