"""Call use-cases: read a call, list calls, complete one (by request or idle timeout).

Completing a call queues its AI job in the same transaction.

Each use-case is one transaction (`_unit_of_work`); state changes lock the call row first
and append their `call_events` row in the same commit.
"""

import base64
import binascii
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.audio.formats import AudioEncoding, AudioFormat
from callscope.audio.reassembly import AudioTooLong
from callscope.calls.ai_repository import AiRepository
from callscope.calls.audio import stored_audio
from callscope.calls.models import CallEventRow, CallRow
from callscope.calls.repository import CallRepository
from callscope.calls.schemas import (
    CALL_ID_PATTERN,
    AiAttemptOut,
    AiOut,
    AudioFormatOut,
    CallListOut,
    CallOut,
    CallSummaryOut,
    PacketStatsOut,
    SegmentOut,
    SentimentOut,
    SequenceRange,
    TranscriptOut,
    utc_datetime,
)
from callscope.calls.states import CallState
from callscope.calls.transitions import move
from callscope.errors import CallAudioTooLong, CallFormatConflict, CallNotFound, InvalidCursor
from callscope.ingest.packets import expected_last, missing_count, missing_ranges
from callscope.jobs.queue import enqueue_ai_jobs

MAX_LISTED_RANGES: Final = 100
_MAX_RUNS_SCANNED: Final = 10_000


@dataclass(frozen=True, slots=True)
class CallListQuery:
    states: Sequence[CallState] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: str | None = None
    limit: int = 50


class CallService:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[CallRepository]:
        """One transaction: committed when the block ends normally (events written last),
        rolled back otherwise."""
        async with self._session_factory() as session, session.begin():
            calls = CallRepository(session)
            yield calls
            await calls.write_events()

    async def get_call(self, call_id: str) -> CallOut:
        async with self._unit_of_work() as calls:
            row = await calls.get(call_id)
            if row is None:
                raise CallNotFound(f"no call {call_id}")
            runs = await calls.present_runs(call_id, _MAX_RUNS_SCANNED + 1)
            ai = await _ai_out(AiRepository(calls.session), row)
        return _call_out(row, runs, ai)

    async def list_calls(self, query: CallListQuery) -> CallListOut:
        after_key = _decode_cursor(query.cursor) if query.cursor else None
        async with self._unit_of_work() as calls:
            rows = await calls.list_page(
                states=query.states,
                created_after=query.created_after,
                created_before=query.created_before,
                after_key=after_key,
                limit=query.limit + 1,
            )
        page = rows[: query.limit]
        has_more = len(rows) > query.limit
        return CallListOut(
            items=[_summary_out(row) for row in page],
            next_cursor=_encode_cursor(page[-1]) if has_more else None,
        )

    async def events(self, call_id: str, *, after: int, limit: int) -> Sequence[CallEventRow]:
        async with self._unit_of_work() as calls:
            if await calls.get(call_id) is None:
                raise CallNotFound(f"no call {call_id}")
            return await calls.events(call_id, after=after, limit=limit)

    async def create(
        self, call_id: str, audio_format: AudioFormat, metadata: dict[str, Any]
    ) -> tuple[CallOut, bool]:
        """Declare a call before its packets; (the call, whether it was created now).

        Declaring an existing call again is fine when the format matches (metadata may be
        added to a call that has none); another format is 409 `call_format_conflict`."""
        async with self._unit_of_work() as calls:
            row = await calls.insert(
                call_id,
                encoding=audio_format.encoding,
                sample_rate=audio_format.sample_rate,
                metadata=metadata,
            )
            created = row is not None
            if row is not None:
                calls.append_event(
                    call_id,
                    "call.created",
                    from_state=None,
                    to_state=CallState.IN_PROGRESS,
                    data={"encoding": row.encoding, "sample_rate": row.sample_rate},
                )
            else:
                existing = await calls.lock(call_id)
                if existing is None:  # deleted between the two statements
                    raise CallNotFound(f"no call {call_id}")
                _check_same_declaration(existing, audio_format, metadata)
                existing.call_metadata = existing.call_metadata or metadata
        return await self.get_call(call_id), created

    async def audio(self, call_id: str) -> tuple[AudioFormat, bytes]:
        """The call's audio as 16-bit PCM in its sample rate, gaps filled with silence."""
        async with self._unit_of_work() as calls:
            stored = await stored_audio(calls, call_id)
        try:
            return stored.audio_format, await stored.pcm16()
        except AudioTooLong as exc:
            raise CallAudioTooLong(str(exc)) from exc

    async def complete(self, call_id: str, final_sequence: int | None) -> CallOut:
        """IN_PROGRESS → COMPLETED; a call already past IN_PROGRESS is returned unchanged."""
        async with self._unit_of_work() as calls:
            row = await calls.lock(call_id)
            if row is None:
                raise CallNotFound(f"no call {call_id}")
            if row.state == CallState.IN_PROGRESS:
                if final_sequence is not None:
                    row.final_sequence = final_sequence
                move(calls, row, CallState.COMPLETED, {"reason": "complete_request"})
                await enqueue_ai_jobs(calls.session, [(call_id, row.ai_epoch)])
        return await self.get_call(call_id)

    async def complete_idle(self, idle_seconds: float, *, limit: int = 500) -> list[str]:
        """Complete calls without packets for `idle_seconds`; returns their ids."""
        async with self._unit_of_work() as calls:
            rows = await calls.lock_idle(idle_seconds, limit)
            for row in rows:
                move(
                    calls,
                    row,
                    CallState.COMPLETED,
                    {"reason": "idle_timeout", "idle_seconds": idle_seconds},
                )
            await enqueue_ai_jobs(calls.session, [(row.call_id, row.ai_epoch) for row in rows])
            return [row.call_id for row in rows]


async def _ai_out(ai: AiRepository, row: CallRow) -> AiOut:
    attempts = await ai.attempts(row.call_id)
    transcript = await ai.transcript(row.call_id)
    sentiment = await ai.sentiment(row.call_id)
    return AiOut(
        epoch=row.ai_epoch,
        attempts_used=sum(1 for a in attempts if a.epoch == row.ai_epoch),
        last_error=row.ai_last_error,
        attempts=[AiAttemptOut.model_validate(a, from_attributes=True) for a in attempts],
        transcript=TranscriptOut(
            text=transcript.text, segments=[SegmentOut(**s) for s in transcript.segments]
        )
        if transcript
        else None,
        sentiment=SentimentOut(label=sentiment.label, score=sentiment.score, trend=sentiment.trend)
        if sentiment
        else None,
    )


def _call_out(row: CallRow, runs: list[tuple[int, int]], ai: AiOut) -> CallOut:
    last = expected_last(row.max_sequence, row.final_sequence)
    truncated = len(runs) > _MAX_RUNS_SCANNED
    scanned_to = runs[_MAX_RUNS_SCANNED - 1][1] if truncated else last
    holes = missing_ranges(runs[:_MAX_RUNS_SCANNED], scanned_to)
    return CallOut(
        call_id=row.call_id,
        state=CallState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_packet_at=row.last_packet_at,
        completed_at=row.completed_at,
        packets=PacketStatsOut(
            received=row.packets_received,
            duplicates=row.packets_duplicate,
            late=row.packets_late,
            missing=missing_count(
                received=row.packets_received,
                has_sequence_zero=row.has_sequence_zero,
                expected_last=last,
            ),
            missing_ranges=[
                SequenceRange(first=first, last=last) for first, last in holes[:MAX_LISTED_RANGES]
            ],
            missing_ranges_truncated=truncated or len(holes) > MAX_LISTED_RANGES,
            max_sequence=row.max_sequence,
            final_sequence=row.final_sequence,
            bytes_received=row.bytes_received,
        ),
        audio=AudioFormatOut(encoding=AudioEncoding(row.encoding), sample_rate=row.sample_rate),
        metadata=row.call_metadata,
        ai=ai,
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


def _summary_out(row: CallRow) -> CallSummaryOut:
    return CallSummaryOut(
        call_id=row.call_id,
        state=CallState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        packets_received=row.packets_received,
        packets_missing=missing_count(
            received=row.packets_received,
            has_sequence_zero=row.has_sequence_zero,
            expected_last=expected_last(row.max_sequence, row.final_sequence),
        ),
    )


def _encode_cursor(row: CallRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, call_id = base64.urlsafe_b64decode(cursor).decode().split("|", 1)
        after = utc_datetime(datetime.fromisoformat(created_at))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this service issued") from exc
    if not re.fullmatch(CALL_ID_PATTERN, call_id):
        raise InvalidCursor("the cursor is not one this service issued")
    return after, call_id
