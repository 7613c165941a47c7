"""The one read model of a call, as the API, the live feed and the dashboard show it.

`CallSummary` is a call in a list: `GET /v1/calls` items and the supervisor snapshot's calls.
`CallProgress` is what `call.progress` messages carry. `CallDetail` is `GET /v1/calls/{id}`:
the summary's fields with more of each. Packet counts come per track (`inbound`: the caller,
`outbound`: the agent) and as totals over the tracks. Each is built from rows in exactly one
place here.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from callscope.ai.ports import LOW_CONFIDENCE, RedactionKind, SentimentLabel
from callscope.ai.ports import Segment as HeardSegment
from callscope.audio.formats import AudioEncoding
from callscope.calls.models import (
    AiAttemptRow,
    CallRow,
    CallTrackRow,
    SentimentRow,
    TranscriptRow,
)
from callscope.calls.states import CallState
from callscope.calls.vocabulary import SPEAKER_OF, AiStep, AttemptOutcome, Speaker, Track
from callscope.ingest.packets import CallCounts, missing_ranges

MAX_LISTED_RANGES: Final = 100


class _ReadModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PacketCounts(_ReadModel):
    received: int = Field(description="Distinct packets stored.")
    duplicates: int = Field(description="Repeated packets acknowledged but not stored again.")
    late: int = Field(description="Packets that arrived after a higher sequence of their track.")
    missing: int = Field(description="Holes in 1..max(max_sequence, final_sequence) of each track.")


class TrackCounts(PacketCounts):
    track: Track = Field(description="inbound (the caller) or outbound (the agent).")


class SequenceRange(_ReadModel):
    first: int = Field(description="First missing sequence of the range.")
    last: int = Field(description="Last missing sequence of the range (inclusive).")


class PacketTotals(PacketCounts):
    bytes_received: int = Field(description="Decoded audio bytes stored.")


class TrackStats(TrackCounts):
    missing_ranges: list[SequenceRange] = Field(description="The holes, in order.")
    missing_ranges_truncated: bool = Field(
        description="True when the track has more holes than listed."
    )
    max_sequence: int | None = Field(description="Highest sequence stored.")
    final_sequence: int | None = Field(description="Last sequence declared at completion.")
    bytes_received: int = Field(description="Decoded audio bytes stored.")


class SentimentSummary(_ReadModel):
    label: SentimentLabel = Field(description="positive, neutral or negative.")
    score: float = Field(ge=-1, le=1, description="-1 (negative) to 1 (positive).")


class HeadlineSentiment(SentimentSummary):
    """The call's headline sentiment (the caller's), with its trend: enough to draw it."""

    trend: list[float] = Field(
        description="The score of each of the headline speaker's segments, in order (empty if "
        "the engine scores only the whole text)."
    )


class SpeakerSentiment(SentimentSummary):
    speaker: Speaker = Field(description="caller (inbound track) or agent (outbound track).")
    trend: list[float] = Field(
        description="The score of each of the speaker's segments, in order (empty if the "
        "engine scores only the whole text)."
    )


class Sentiment(HeadlineSentiment):
    """The call's sentiment: the caller's when the call has a caller track (the headline), else
    the agent's; and each speaker's."""

    speakers: list[SpeakerSentiment] = Field(description="Each speaker's sentiment.")


class AiSummary(_ReadModel):
    attempts_used: int = Field(description="Provider calls spent in the current epoch.")
    last_error: str | None = Field(description="The last provider error, if any.")
    sentiment: HeadlineSentiment | None = Field(description="Set once scoring succeeded.")


class AiAttempt(_ReadModel):
    epoch: int = Field(description="Budget epoch: 0, then +1 per operator re-drive.")
    attempt: int = Field(description="Attempt number within the epoch, from 1.")
    step: AiStep = Field(description="Which provider call this was.")
    track: Track = Field(description="Which side of the call it was for.")
    outcome: AttemptOutcome | None = Field(
        description="ok, failed (retryable), rejected (permanent), abandoned (worker died); "
        "null while running."
    )
    error: str | None = Field(description="What went wrong, if anything.")
    duration_s: float | None = Field(description="How long the provider call took.")
    started_at: datetime = Field(description="When the attempt started.")


class Redaction(_ReadModel):
    kind: RedactionKind = Field(
        description="What was redacted: card (a Luhn-valid card number), account (another "
        "long digit run), email or phone."
    )
    start: int = Field(description="Offset of the marker `[kind]` in the segment's text.")
    end: int = Field(description="Offset just past the marker.")


class Segment(_ReadModel):
    start: float = Field(description="Seconds from the start of the call.")
    end: float = Field(description="Seconds from the start of the call.")
    text: str = Field(
        description="What was said, spoken numbers as digits, redacted spans as `[kind]`."
    )
    speaker: Speaker = Field(description="Who said it: caller or agent.")
    confidence: float | None = Field(
        description="How sure the speech engine was of this segment, 0 to 1 (null: the "
        "engine does not say)."
    )
    low_confidence: bool = Field(
        description=f"True when `confidence` is below {LOW_CONFIDENCE}: the text may be "
        "wrong, check the audio."
    )
    redactions: list[Redaction] = Field(
        description="Spans of `text` replaced before storage, with their kind."
    )


class Transcript(_ReadModel):
    text: str = Field(description="The whole transcript, both speakers in time order.")
    segments: list[Segment] = Field(description="Timed segments of both speakers, in time order.")


class AiDetail(AiSummary):
    epoch: int = Field(description="Current budget epoch (re-drives so far).")
    attempts: list[AiAttempt] = Field(description="Every attempt of every epoch, oldest first.")
    transcript: Transcript | None = Field(description="Set once every track is transcribed.")
    sentiment: Sentiment | None = Field(description="Set once every speaker is scored.")


class AudioFormatOut(_ReadModel):
    encoding: AudioEncoding = Field(description="`mulaw` or `pcm_s16le`, mono per track.")
    sample_rate: int = Field(description="Samples per second.")


class CallProgress(_ReadModel):
    """A call's packet counts, as `call.progress` messages carry them."""

    call_id: str = Field(description="The call's id.")
    packets: PacketCounts = Field(description="Packet accounting over all tracks.")
    tracks: Sequence[TrackCounts] = Field(description="Packet accounting per track.")


class CallSummary(CallProgress):
    """A call in a list."""

    state: CallState = Field(description="Where the call is in its life cycle.")
    created_at: datetime = Field(description="When the call was declared or its first packet came.")
    updated_at: datetime = Field(description="Last change to the call.")
    ai: AiSummary = Field(description="Transcription and sentiment, in short.")


class CallDetail(CallSummary):
    """A call with its packet statistics, audio format and AI processing."""

    last_packet_at: datetime = Field(
        description="When its last packet arrived (when it was created, before any packet)."
    )
    completed_at: datetime | None = Field(description="When it left IN_PROGRESS.")
    packets: PacketTotals = Field(description="Packet accounting over all tracks.")
    tracks: Sequence[TrackStats] = Field(description="Packet accounting per track, with the holes.")
    audio: AudioFormatOut = Field(description="The format of the call's audio packets.")
    metadata: dict[str, Any] = Field(description="What was declared with the call.")
    audio_pruned_at: datetime | None = Field(
        description="When the retention dropped the call's audio (its packets): from then on "
        "its audio is 410 and its tracks list no missing ranges (their counts stay)."
    )
    ai: AiDetail = Field(description="Transcription and sentiment: attempts and results.")


class CallList(_ReadModel):
    items: list[CallSummary] = Field(description="Calls, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


def _track_counts(row: Mapping[str, Any]) -> TrackCounts:
    """One track, from a `call_tracks` row (or its JSON in `summary_select`)."""
    counts = CallCounts(
        received=row["packets_received"],
        has_sequence_zero=row["has_sequence_zero"],
        max_sequence=row["max_sequence"],
        final_sequence=row["final_sequence"],
    )
    return TrackCounts(
        track=row["track"],
        received=counts.received,
        duplicates=row["packets_duplicate"],
        late=row["packets_late"],
        missing=counts.missing,
    )


def _totals(tracks: Iterable[PacketCounts]) -> PacketCounts:
    tracks = list(tracks)
    return PacketCounts(
        received=sum(t.received for t in tracks),
        duplicates=sum(t.duplicates for t in tracks),
        late=sum(t.late for t in tracks),
        missing=sum(t.missing for t in tracks),
    )


def progress_from_row(row: Mapping[Any, Any]) -> CallProgress:
    """A call's packet counts from one row of `calls.repository.summary_select()`."""
    tracks = [_track_counts(track) for track in row["tracks"]]
    return CallProgress(call_id=row["call_id"], packets=_totals(tracks), tracks=tracks)


def summary_from_row(row: Mapping[Any, Any]) -> CallSummary:
    """A call from one row of `calls.repository.summary_select()`."""
    progress = progress_from_row(row)
    sentiment = (
        HeadlineSentiment(
            label=row["sentiment_label"],
            score=row["sentiment_score"],
            trend=row["sentiment_trend"],
        )
        if row["sentiment_label"] is not None
        else None
    )
    return CallSummary(
        call_id=progress.call_id,
        packets=progress.packets,
        tracks=progress.tracks,
        state=row["state"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ai=AiSummary(
            attempts_used=row["ai_attempts_used"],
            last_error=row["ai_last_error"],
            sentiment=sentiment,
        ),
    )


def track_stats(
    row: CallTrackRow, present_runs: Sequence[tuple[int, int]], *, runs_truncated: bool
) -> TrackStats:
    """A track with its holes, from its row and the runs of its stored sequences (as far as
    they were scanned; none, truncated: the holes are not known, its audio was pruned)."""
    counts = row.counts
    if runs_truncated:
        scanned_to = present_runs[-1][1] if present_runs else 0
    else:
        scanned_to = counts.expected_last
    holes = missing_ranges(list(present_runs), scanned_to)
    return TrackStats(
        track=row.track,
        received=counts.received,
        duplicates=row.packets_duplicate,
        late=row.packets_late,
        missing=counts.missing,
        missing_ranges=[
            SequenceRange(first=first, last=last) for first, last in holes[:MAX_LISTED_RANGES]
        ],
        missing_ranges_truncated=runs_truncated or len(holes) > MAX_LISTED_RANGES,
        max_sequence=row.max_sequence,
        final_sequence=row.final_sequence,
        bytes_received=row.bytes_received,
    )


def detail_from_rows(
    row: CallRow,
    *,
    track_rows: Sequence[CallTrackRow],
    tracks: Sequence[TrackStats],
    attempts: Sequence[AiAttemptRow],
    transcripts: Sequence[TranscriptRow],
    sentiments: Sequence[SentimentRow],
) -> CallDetail:
    """A call from its row, its tracks and its AI rows."""
    totals = _totals(tracks)
    return CallDetail(
        call_id=row.call_id,
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_packet_at=max((t.last_packet_at for t in track_rows), default=row.created_at),
        completed_at=row.completed_at,
        packets=PacketTotals(
            **totals.model_dump(), bytes_received=sum(t.bytes_received for t in tracks)
        ),
        tracks=list(tracks),
        audio=AudioFormatOut(encoding=row.encoding, sample_rate=row.sample_rate),
        metadata=row.call_metadata,
        audio_pruned_at=row.audio_pruned_at,
        ai=AiDetail(
            epoch=row.ai_epoch,
            attempts_used=sum(1 for a in attempts if a.epoch == row.ai_epoch),
            last_error=row.ai_last_error,
            attempts=[AiAttempt.model_validate(a, from_attributes=True) for a in attempts],
            transcript=merged_transcript(transcripts, tracks=[t.track for t in tracks]),
            sentiment=call_sentiment(sentiments, tracks=[t.track for t in tracks]),
        ),
    )


def merged_transcript(
    transcripts: Sequence[TranscriptRow], *, tracks: Sequence[Track]
) -> Transcript | None:
    """Both speakers' segments in time order, once every track with audio is transcribed."""
    by_track = {t.track: t for t in transcripts}
    if not by_track or any(track not in by_track for track in tracks):
        return None
    segments = sorted(
        (
            _segment(segment, SPEAKER_OF[track])
            for track, transcript in by_track.items()
            for segment in transcript.segments
        ),
        key=lambda s: (s.start, s.speaker != Speaker.caller),
    )
    text = " ".join(s.text for s in segments) if segments else _joined(by_track)
    return Transcript(text=text, segments=segments)


def _segment(stored: Mapping[str, Any], speaker: Speaker) -> Segment:
    """A stored segment (the provider's Segment as JSON; older rows lack the later fields)."""
    heard = HeardSegment(**stored)
    return Segment(
        start=heard.start,
        end=heard.end,
        text=heard.text,
        speaker=speaker,
        confidence=heard.confidence,
        low_confidence=heard.low_confidence,
        redactions=[Redaction(kind=r.kind, start=r.start, end=r.end) for r in heard.redactions],
    )


def _joined(by_track: Mapping[Track, TranscriptRow]) -> str:
    return " ".join(by_track[track].text for track in sorted(by_track) if by_track[track].text)


def call_sentiment(
    sentiments: Sequence[SentimentRow], *, tracks: Sequence[Track]
) -> Sentiment | None:
    """Each speaker's sentiment, and the headline: the caller's if the call has a caller
    track, else the agent's; once every track with audio is scored."""
    by_track = {s.track: s for s in sentiments}
    if not by_track or any(track not in by_track for track in tracks):
        return None
    speakers = [
        SpeakerSentiment(
            speaker=SPEAKER_OF[track], label=row.label, score=row.score, trend=row.trend
        )
        for track, row in sorted(by_track.items())
    ]
    headline = speakers[0]
    return Sentiment(
        label=headline.label, score=headline.score, trend=headline.trend, speakers=speakers
    )
