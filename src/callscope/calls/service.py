"""Call use-cases: declare, read, list, complete (by request or idle timeout).

Each use-case is one transaction (`call_transaction`); state changes lock the call row first
and append their `call_events` row in the same commit. Completing a call queues its AI job in
that same transaction, through the `AiJobQueue` port.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.audio.formats import AudioFormat
from callscope.audio.reassembly import AudioTooLong
from callscope.audio.silence import silenced
from callscope.calls.audio import stored_audio
from callscope.calls.cursor import decode_cursor, encode_cursor
from callscope.calls.models import CallEventRow, CallRow
from callscope.calls.ports import AiJobQueue
from callscope.calls.read_model import (
    MAX_LISTED_RANGES,
    CallDetail,
    CallList,
    detail_from_rows,
    summary_from_row,
    track_stats,
)
from callscope.calls.repository import CallRepository, CallSearch, call_transaction
from callscope.calls.states import CallState
from callscope.calls.transitions import move
from callscope.calls.vocabulary import EventType, Track
from callscope.errors import (
    AudioPruned,
    CallAudioTooLong,
    CallFormatConflict,
    CallNotFound,
    InvalidCursor,
    SequenceOutOfRange,
)
from callscope.ingest.packets import missing_ranges

_MAX_RUNS_SCANNED: Final = 10_000
# Seconds silenced either side of a redacted sentence: the engine's word times are only
# that exact.
REDACTED_AUDIO_MARGIN: Final = 0.25


@dataclass(frozen=True, slots=True)
class CallAudioOut:
    audio_format: AudioFormat
    pcm16: bytes  # interleaved when stereo
    channels: int


@dataclass(frozen=True, slots=True)
class CallListQuery:
    states: Sequence[CallState] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: str | None = None
    limit: int = 50
    search: CallSearch = field(default_factory=CallSearch)


class CallService:
    """`max_jump`: how far ahead of its track's highest sequence a `final_sequence` may be;
    `silence_redacted`: the audio export silences the sentences whose transcript had
    something redacted."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        jobs: AiJobQueue,
        *,
        max_jump: int,
        silence_redacted: bool,
    ) -> None:
        self._session_factory = session_factory
        self._jobs = jobs
        self._max_jump = max_jump
        self._silence_redacted = silence_redacted

    async def get_call(self, call_id: str) -> CallDetail:
        async with call_transaction(self._session_factory) as calls:
            return await _detail(calls, call_id)

    async def list_calls(self, query: CallListQuery) -> CallList:
        after_key = None
        if query.cursor is not None:
            after_key = decode_cursor(query.cursor)
            if after_key is None:
                raise InvalidCursor("the cursor is not one this service issued")
        async with call_transaction(self._session_factory) as calls:
            rows = await calls.list_page(
                states=query.states,
                created_after=query.created_after,
                created_before=query.created_before,
                after_key=after_key,
                limit=query.limit + 1,
                search=query.search,
            )
        page = rows[: query.limit]
        has_more = len(rows) > query.limit
        return CallList(
            items=[summary_from_row(row) for row in page],
            next_cursor=encode_cursor(page[-1]["created_at"], page[-1]["call_id"])
            if has_more
            else None,
        )

    async def events(self, call_id: str, *, after: int, limit: int) -> Sequence[CallEventRow]:
        async with call_transaction(self._session_factory) as calls:
            if await calls.get(call_id) is None:
                raise CallNotFound(f"no call {call_id}")
            return await calls.events(call_id, after=after, limit=limit)

    async def create(
        self, call_id: str, audio_format: AudioFormat, metadata: dict[str, Any]
    ) -> tuple[CallDetail, bool]:
        """Declare a call before its packets; (the call, whether it was created now)."""
        _, created = await self.declare(call_id, audio_format, metadata)
        return await self.get_call(call_id), created

    async def declare(
        self, call_id: str, audio_format: AudioFormat, metadata: dict[str, Any]
    ) -> tuple[CallState, bool]:
        """Create the call unless it exists; (its state, whether it was created now).

        Declaring an existing call again is fine when the format matches (metadata may be
        added to a call that has none); another format is 409 `call_format_conflict`."""
        async with call_transaction(self._session_factory) as calls:
            row = await calls.insert(call_id, audio_format, metadata)
            if row is not None:
                calls.append_event(
                    call_id,
                    EventType.created,
                    to_state=CallState.IN_PROGRESS,
                    data={"encoding": row.encoding, "sample_rate": row.sample_rate},
                )
                return row.state, True
            existing = await calls.lock(call_id)
            if existing is None:  # deleted between the two statements
                raise CallNotFound(f"no call {call_id}")
            _check_same_declaration(existing, audio_format, metadata)
            existing.call_metadata = existing.call_metadata or metadata
            return existing.state, False

    async def stream_position(self, call_id: str) -> dict[Track, tuple[int, list[tuple[int, int]]]]:
        """What each track of the call has stored: (highest sequence, the missing ranges below
        it, up to `MAX_LISTED_RANGES`); empty for a call that does not exist yet."""
        async with call_transaction(self._session_factory) as calls:
            position = {}
            for track in await calls.tracks(call_id):
                runs = await calls.present_runs(call_id, track.track, _MAX_RUNS_SCANNED)
                highest = track.max_sequence or 0
                holes = missing_ranges(runs, highest)[:MAX_LISTED_RANGES]
                position[track.track] = (highest, holes)
            return position

    async def record_event(self, call_id: str, event_type: EventType, data: dict[str, Any]) -> None:
        """A call event that changes no state (a key pressed, a stream's mark)."""
        async with call_transaction(self._session_factory) as calls:
            calls.append_event(call_id, event_type, data=data)

    async def audio(self, call_id: str, track: Track | None) -> CallAudioOut:
        """One track's audio, or with `track` None every track (stereo, the caller on the
        left, when the call has both), as 16-bit PCM in its sample rate, gaps silent; 410
        `audio_pruned` once the audio retention started to drop its packets. With
        `silence_redacted`, every channel is silent through each sentence (of either
        speaker: the other line may carry its echo) whose transcript had something redacted."""
        async with call_transaction(self._session_factory) as calls:
            row = await calls.get(call_id)  # stored_audio reads it again from the session
            if row is not None and row.audio_pruned_at is not None:
                raise AudioPruned(
                    f"the audio of call {call_id} was dropped by the retention policy",
                    pruned_at=row.audio_pruned_at.isoformat(),
                )
            stored = await stored_audio(calls, call_id, only=track)
            redacted = await self._redacted_spans(calls, call_id)
        try:
            if track is None and len(stored.tracks) == 2:  # noqa: PLR2004 - both sides
                pcm16, channels = await stored.stereo_pcm16(), 2
            else:
                only = track or (stored.tracks[0].track if stored.tracks else Track.inbound)
                pcm16, channels = await stored.pcm16(only), 1
        except AudioTooLong as exc:
            raise CallAudioTooLong(str(exc)) from exc
        rate = stored.audio_format.sample_rate
        if redacted:
            pcm16 = await asyncio.to_thread(silenced, pcm16, rate, redacted, channels=channels)
        return CallAudioOut(stored.audio_format, pcm16, channels=channels)

    async def _redacted_spans(
        self, calls: CallRepository, call_id: str
    ) -> list[tuple[float, float]]:
        """The seconds of every transcript sentence that had something redacted, widened by
        REDACTED_AUDIO_MARGIN; none unless `silence_redacted`."""
        if not self._silence_redacted:
            return []
        return [
            (segment["start"] - REDACTED_AUDIO_MARGIN, segment["end"] + REDACTED_AUDIO_MARGIN)
            for transcript in await calls.transcripts(call_id)
            for segment in transcript.segments
            if segment.get("redactions")
        ]

    async def complete(
        self,
        call_id: str,
        final_sequences: Mapping[Track, int] | None = None,
        *,
        reason: str = "complete_request",
    ) -> CallDetail:
        """IN_PROGRESS → COMPLETED, with each given track's last sequence (packets up to it
        that never came count as missing); a call already past IN_PROGRESS is returned
        unchanged. A final sequence more than `max_jump` ahead of its track's highest (0 for a
        track without packets) is SequenceOutOfRange, and nothing changes."""
        async with call_transaction(self._session_factory) as calls:
            row = await calls.lock(call_id)
            if row is None:
                raise CallNotFound(f"no call {call_id}")
            if row.state == CallState.IN_PROGRESS:
                if final_sequences:
                    tracks = {t.track: t for t in await calls.lock_tracks(call_id)}
                    for track, final in final_sequences.items():
                        stored = tracks.get(track)
                        highest = stored.max_sequence if stored else None
                        _check_jump(track, final, highest, self._max_jump)
                        (stored or calls.add_track(call_id, track)).final_sequence = final
                move(calls, row, CallState.COMPLETED, {"reason": reason})
                await self._jobs.enqueue(calls.session, [(call_id, row.ai_epoch)])
        return await self.get_call(call_id)

    async def complete_idle(self, idle_seconds: float, *, limit: int = 500) -> list[str]:
        """Complete calls without packets for `idle_seconds`; returns their ids. Safe with
        many replicas: rows another sweeper holds are skipped."""
        async with call_transaction(self._session_factory) as calls:
            rows = await calls.lock_idle(idle_seconds, limit)
            for row in rows:
                move(
                    calls,
                    row,
                    CallState.COMPLETED,
                    {"reason": "idle_timeout", "idle_seconds": idle_seconds},
                )
            await self._jobs.enqueue(calls.session, [(row.call_id, row.ai_epoch) for row in rows])
            return [row.call_id for row in rows]


async def _detail(calls: CallRepository, call_id: str) -> CallDetail:
    row = await calls.get(call_id)
    if row is None:
        raise CallNotFound(f"no call {call_id}")
    track_rows = await calls.tracks(call_id)
    tracks = []
    for track in track_rows:
        if row.audio_pruned_at is not None:  # the holes went with the audio; counts stay
            tracks.append(track_stats(track, (), runs_truncated=True))
            continue
        runs = await calls.present_runs(call_id, track.track, _MAX_RUNS_SCANNED + 1)
        truncated = len(runs) > _MAX_RUNS_SCANNED
        tracks.append(track_stats(track, runs[:_MAX_RUNS_SCANNED], runs_truncated=truncated))
    return detail_from_rows(
        row,
        track_rows=track_rows,
        tracks=tracks,
        attempts=await calls.attempts(call_id),
        transcripts=await calls.transcripts(call_id),
        sentiments=await calls.sentiments(call_id),
    )


def _check_jump(track: Track, final: int, highest: int | None, max_jump: int) -> None:
    if final - (highest or 0) > max_jump:
        raise SequenceOutOfRange(
            f"final sequence {final} of {track} is more than {max_jump} ahead of its highest "
            f"sequence ({highest or 0}); nothing changed",
            sequence=final,
            track=track,
            highest=highest or 0,
            max_jump=max_jump,
        )


def _check_same_declaration(
    row: CallRow, audio_format: AudioFormat, metadata: dict[str, Any]
) -> None:
    if (row.encoding, row.sample_rate) != (audio_format.encoding, audio_format.sample_rate):
        raise CallFormatConflict(
            f"call {row.call_id} already has {row.encoding} audio at {row.sample_rate} Hz"
        )
    if row.call_metadata and metadata and metadata != row.call_metadata:
        raise CallFormatConflict(f"call {row.call_id} was declared with other metadata")
