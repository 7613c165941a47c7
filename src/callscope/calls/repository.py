"""Every SQL statement of the call use-cases (reads, locked state changes, events)."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callscope.ai.ports import SentimentLabel
from callscope.audio.formats import AudioFormat
from callscope.calls.models import (
    AiAttemptRow,
    CallEventRow,
    CallRow,
    CallTrackRow,
    PacketRow,
    SentimentRow,
    TranscriptRow,
)
from callscope.calls.states import CallState
from callscope.calls.vocabulary import EventType, Track
from callscope.metrics import CALL_TRANSITIONS

SEARCH_CONFIG: Final[ColumnElement[Any]] = literal_column("'english'::regconfig")
TRANSCRIPT_DOCUMENT: Final = func.to_tsvector(SEARCH_CONFIG, TranscriptRow.text)
"""What `q` searches: a track's transcript as English lexemes. The very expression that
`ix_transcripts_text_search` indexes (migration 0008), or the planner cannot use the index."""


@dataclass(frozen=True, slots=True)
class CallSearch:
    """The search filters of the call list; each one left None does not filter."""

    text: str | None = None  # websearch syntax: words, "a phrase", or, -word
    sentiment: SentimentLabel | None = None  # the headline (caller's) label
    min_score: float | None = None  # the headline score, inclusive
    max_score: float | None = None

    @property
    def is_empty(self) -> bool:
        return (self.text, self.sentiment, self.min_score, self.max_score) == (None,) * 4


def summary_select() -> Select[*tuple[Any, ...]]:
    """The columns of `read_model.summary_from_row`: the call row, its tracks' counters (as a
    JSON array), the attempts of its current epoch and its headline sentiment (the caller's
    when there is one, with its trend), if any."""
    attempts_used = (
        select(func.count())
        .where(AiAttemptRow.call_id == CallRow.call_id, AiAttemptRow.epoch == CallRow.ai_epoch)
        .correlate(CallRow)
        .scalar_subquery()
    )
    pairs: list[ColumnElement[Any]] = []
    for column in _TRACK_COLUMNS:
        pairs += [literal_column(f"'{column.key}'"), column.expression]
    track_json = func.jsonb_build_object(*pairs)
    tracks = (
        select(
            func.coalesce(
                func.jsonb_agg(aggregate_order_by(track_json, CallTrackRow.track)),
                literal_column("'[]'::jsonb"),
            )
        )
        .where(CallTrackRow.call_id == CallRow.call_id)
        .correlate(CallRow)
        .scalar_subquery()
    )
    headline = (
        select(SentimentRow.label, SentimentRow.score, SentimentRow.trend)
        .where(SentimentRow.call_id == CallRow.call_id)
        .order_by(SentimentRow.track)  # inbound (the caller) before outbound
        .limit(1)
        .correlate(CallRow)
        .lateral("headline")
    )
    return (
        select(
            CallRow.call_id,
            CallRow.state,
            CallRow.created_at,
            CallRow.updated_at,
            CallRow.ai_last_error,
            tracks.label("tracks"),
            attempts_used.label("ai_attempts_used"),
            headline.c.label.label("sentiment_label"),
            headline.c.score.label("sentiment_score"),
            headline.c.trend.label("sentiment_trend"),
        )
        .select_from(CallRow)
        .outerjoin(headline, literal_column("true"))
    )


_TRACK_COLUMNS: Final = (
    CallTrackRow.track,
    CallTrackRow.packets_received,
    CallTrackRow.packets_duplicate,
    CallTrackRow.packets_late,
    CallTrackRow.max_sequence,
    CallTrackRow.has_sequence_zero,
    CallTrackRow.final_sequence,
)


def _last_packet_at() -> ColumnElement[Any]:
    """When the call's last packet came (any track); its creation when none has yet."""
    latest = (
        select(func.max(CallTrackRow.last_packet_at))
        .where(CallTrackRow.call_id == CallRow.call_id)
        .correlate(CallRow)
        .scalar_subquery()
    )
    return func.coalesce(latest, CallRow.created_at)


def list_select(
    *,
    states: Sequence[CallState] = (),
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after_key: tuple[datetime, str] | None = None,
    search: CallSearch = CallSearch(),
) -> Select[*tuple[Any, ...]]:
    """The call list's statement, without its limit: `summary_select` newest first, from
    `after_key` on, narrowed by the filters."""
    stmt = summary_select().order_by(CallRow.created_at.desc(), CallRow.call_id.desc())
    if states:
        stmt = stmt.where(CallRow.state.in_(list(states)))
    if created_after is not None:
        stmt = stmt.where(CallRow.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(CallRow.created_at < created_before)
    if after_key is not None:
        stmt = stmt.where(tuple_(CallRow.created_at, CallRow.call_id) < tuple_(*after_key))
    return _searched(stmt, search)


def _searched(stmt: Select[*tuple[Any, ...]], search: CallSearch) -> Select[*tuple[Any, ...]]:
    """`stmt` narrowed by the search filters. The text matches when one of the call's tracks
    matches; the sentiment filters read the headline, so a call that is not scored yet
    matches none of them."""
    if search.text is not None:
        query = func.websearch_to_tsquery(SEARCH_CONFIG, search.text)
        stmt = stmt.where(
            exists()
            .where(TranscriptRow.call_id == CallRow.call_id, TRANSCRIPT_DOCUMENT.op("@@")(query))
            .correlate(CallRow)
        )
    columns = stmt.selected_columns
    if search.sentiment is not None:
        stmt = stmt.where(columns.sentiment_label == search.sentiment)
    if search.min_score is not None:
        stmt = stmt.where(columns.sentiment_score >= search.min_score)
    if search.max_score is not None:
        stmt = stmt.where(columns.sentiment_score <= search.max_score)
    return stmt


@asynccontextmanager
async def call_transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator["CallRepository"]:
    """One transaction: committed when the block ends normally (events written last),
    rolled back otherwise. State changes are counted (`callscope_call_transitions_total`)
    once committed."""
    async with session_factory() as session, session.begin():
        calls = CallRepository(session)
        yield calls
        await calls.write_events()
    calls.count_transitions()


class CallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._pending_events: list[CallEventRow] = []
        self._transitions: list[tuple[CallState | None, CallState | None]] = []

    async def get(self, call_id: str) -> CallRow | None:
        return await self.session.get(CallRow, call_id)

    async def lock(self, call_id: str) -> CallRow | None:
        """SELECT … FOR UPDATE: the row stays ours until the transaction ends."""
        stmt = select(CallRow).where(CallRow.call_id == call_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def insert(
        self, call_id: str, audio_format: AudioFormat, metadata: dict[str, Any]
    ) -> CallRow | None:
        """A new IN_PROGRESS call, locked; None when the call already exists."""
        stmt = (
            pg_insert(CallRow)
            .values(
                call_id=call_id,
                state=CallState.IN_PROGRESS,
                encoding=audio_format.encoding,
                sample_rate=audio_format.sample_rate,
                call_metadata=metadata,
            )
            .on_conflict_do_nothing(index_elements=[CallRow.call_id])
            .returning(CallRow)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def tracks(self, call_id: str) -> Sequence[CallTrackRow]:
        """The call's tracks that stored a packet (or were declared final), inbound first."""
        stmt = (
            select(CallTrackRow).where(CallTrackRow.call_id == call_id).order_by(CallTrackRow.track)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def lock_tracks(self, call_id: str) -> Sequence[CallTrackRow]:
        """The call's tracks, locked (the call row must be locked first)."""
        stmt = select(CallTrackRow).where(CallTrackRow.call_id == call_id).with_for_update()
        return (await self.session.execute(stmt)).scalars().all()

    def add_track(self, call_id: str, track: Track) -> CallTrackRow:
        """A track that has no row yet (declared final before any packet came)."""
        row = CallTrackRow(
            call_id=call_id,
            track=track,
            packets_received=0,
            packets_duplicate=0,
            packets_late=0,
            bytes_received=0,
            has_sequence_zero=False,
        )
        self.session.add(row)
        return row

    async def packets(self, call_id: str, track: Track) -> Sequence[tuple[int, bytes]]:
        """One track's stored (sequence, audio) pairs, in sequence order."""
        stmt = (
            select(PacketRow.sequence, PacketRow.data)
            .where(PacketRow.call_id == call_id, PacketRow.track == track)
            .order_by(PacketRow.sequence)
        )
        return [(sequence, data) for sequence, data in (await self.session.execute(stmt)).all()]

    async def lock_idle(self, idle_seconds: float, limit: int) -> Sequence[CallRow]:
        """IN_PROGRESS calls quiet for `idle_seconds`; rows other sweepers hold are skipped."""
        cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, idle_seconds)
        stmt = (
            select(CallRow)
            .where(CallRow.state == CallState.IN_PROGRESS, _last_packet_at() < cutoff)
            .order_by(CallRow.call_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def present_runs(self, call_id: str, track: Track, limit: int) -> list[tuple[int, int]]:
        """Runs of consecutive stored sequences of a track (first, last), lowest first."""
        island = (PacketRow.sequence - func.row_number().over(order_by=PacketRow.sequence)).label(
            "island"
        )
        numbered = (
            select(PacketRow.sequence, island)
            .where(PacketRow.call_id == call_id, PacketRow.track == track)
            .subquery()
        )
        stmt = (
            select(func.min(numbered.c.sequence), func.max(numbered.c.sequence))
            .group_by(numbered.c.island)
            .order_by(func.min(numbered.c.sequence))
            .limit(limit)
        )
        return [(first, last) for first, last in (await self.session.execute(stmt)).all()]

    async def list_page(
        self,
        *,
        states: Sequence[CallState],
        created_after: datetime | None,
        created_before: datetime | None,
        after_key: tuple[datetime, str] | None,
        limit: int,
        search: CallSearch = CallSearch(),
    ) -> Sequence[RowMapping]:
        """Summary rows (`summary_select`), newest first, keyset-paginated on
        (created_at, call_id), filtered by `search`."""
        stmt = list_select(
            states=states,
            created_after=created_after,
            created_before=created_before,
            after_key=after_key,
            search=search,
        )
        rows: Sequence[RowMapping] = (
            (await self.session.execute(stmt.limit(limit))).mappings().all()
        )
        return rows

    async def events(self, call_id: str, *, after: int, limit: int) -> Sequence[CallEventRow]:
        stmt = (
            select(CallEventRow)
            .where(CallEventRow.call_id == call_id, CallEventRow.id > after)
            .order_by(CallEventRow.id)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def attempts(self, call_id: str) -> Sequence[AiAttemptRow]:
        """Every AI attempt of the call, of every epoch, oldest first."""
        stmt = select(AiAttemptRow).where(AiAttemptRow.call_id == call_id)
        return (await self.session.execute(stmt.order_by(AiAttemptRow.id))).scalars().all()

    async def transcripts(self, call_id: str) -> Sequence[TranscriptRow]:
        """Each track's transcript, inbound first."""
        stmt = (
            select(TranscriptRow)
            .where(TranscriptRow.call_id == call_id)
            .order_by(TranscriptRow.track)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def sentiments(self, call_id: str) -> Sequence[SentimentRow]:
        """Each track's sentiment, inbound first."""
        stmt = (
            select(SentimentRow).where(SentimentRow.call_id == call_id).order_by(SentimentRow.track)
        )
        return (await self.session.execute(stmt)).scalars().all()

    def append_event(
        self,
        call_id: str,
        event_type: EventType,
        *,
        from_state: CallState | None = None,
        to_state: CallState | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Note an event; `write_events` inserts it at the end of the transaction."""
        if event_type == EventType.state_changed:
            self._transitions.append((from_state, to_state))
        self._pending_events.append(
            CallEventRow(
                call_id=call_id,
                type=event_type,
                from_state=from_state,
                to_state=to_state,
                data=data or {},
            )
        )

    def count_transitions(self) -> None:
        """Count this transaction's state changes; call it once they are committed."""
        for from_state, to_state in self._transitions:
            CALL_TRANSITIONS.labels(from_state, to_state).inc()

    async def write_events(self) -> None:
        """Insert the events noted so far, as the transaction's last statement: inserting events
        takes the lock that keeps event ids in commit order (migration 0003), held to the commit."""
        if self._pending_events:
            await self.session.flush()  # every other change first: the ORM orders by table
            self.session.add_all(self._pending_events)
            self._pending_events = []
            await self.session.flush()
