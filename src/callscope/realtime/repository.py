"""Every SQL statement of the live feed: snapshots, `since=` replays, progress counts."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callscope.calls.models import AiAttemptRow, CallEventRow, CallRow, SentimentRow
from callscope.calls.states import CallState
from callscope.ingest.packets import expected_last, missing_count

ACTIVE_STATES: Final = (CallState.IN_PROGRESS, CallState.COMPLETED, CallState.PROCESSING_AI)
FINISHED_STATES: Final = (CallState.ARCHIVED, CallState.FAILED)


@dataclass(frozen=True, slots=True)
class Snapshot:
    calls: list[dict[str, Any]]
    last_event_id: int
    truncated: bool  # more active calls exist than the snapshot holds


@dataclass(frozen=True, slots=True)
class Replay:
    events: Sequence[RowMapping]  # call_events rows after `since`, in id order
    calls: list[dict[str, Any]]  # active calls and those the events name, as they are now
    last_event_id: int
    complete: bool  # False: more than the replay limit were missed


class LiveRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def snapshot(
        self, *, active_limit: int, recent_limit: int, call_id: str | None
    ) -> Snapshot:
        """Active calls (newest first) and the most recently finished ones, with the last
        event id, all read in one database snapshot."""
        async with self._consistent() as conn:
            if call_id is not None:
                stmt = _live_calls().where(CallRow.call_id == call_id)
                rows, truncated = list((await conn.execute(stmt)).mappings()), False
            else:
                active_stmt = (
                    _live_calls()
                    .where(CallRow.state.in_(ACTIVE_STATES))
                    .order_by(CallRow.created_at.desc())
                    .limit(active_limit + 1)
                )
                finished_stmt = (
                    _live_calls()
                    .where(CallRow.state.in_(FINISHED_STATES))
                    .order_by(CallRow.updated_at.desc())
                    .limit(recent_limit)
                )
                active = list((await conn.execute(active_stmt)).mappings())
                finished = list((await conn.execute(finished_stmt)).mappings())
                truncated = len(active) > active_limit
                rows = active[:active_limit] + finished
            last_event_id = await _last_event_id(conn)
        return Snapshot(
            calls=[live_call(row) for row in rows],
            last_event_id=last_event_id,
            truncated=truncated,
        )

    async def replay(
        self, since: int, *, limit: int, active_limit: int, call_id: str | None
    ) -> Replay:
        """The events after `since` (of one call, or all), and the packet counts that no event
        carries: of the active calls and of every call the events name; one database snapshot."""
        stmt = select(CallEventRow.__table__).where(CallEventRow.id > since)
        if call_id is not None:
            stmt = stmt.where(CallEventRow.call_id == call_id)
        async with self._consistent() as conn:
            ordered = stmt.order_by(CallEventRow.id).limit(limit + 1)
            rows = (await conn.execute(ordered)).mappings().all()
            named = {row["call_id"] for row in rows[:limit]}
            if call_id is not None:
                calls_stmt = _live_calls().where(CallRow.call_id == call_id)
            else:
                active = (
                    select(CallRow.call_id)
                    .where(CallRow.state.in_(ACTIVE_STATES))
                    .order_by(CallRow.created_at.desc())
                    .limit(active_limit)
                )
                calls_stmt = _live_calls().where(
                    CallRow.call_id.in_(active.scalar_subquery()) | CallRow.call_id.in_(named)
                )
            calls = [live_call(row) for row in (await conn.execute(calls_stmt)).mappings()]
            last_event_id = await _last_event_id(conn)
        return Replay(
            events=rows[:limit],
            calls=calls,
            last_event_id=last_event_id,
            complete=len(rows) <= limit,
        )

    async def event(self, event_id: int) -> RowMapping | None:
        """One `call_events` row (for notifications too big to carry it)."""
        stmt = select(CallEventRow.__table__).where(CallEventRow.id == event_id)
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt)).mappings().first()

    async def live_calls(
        self, call_ids: Sequence[str], *, touched_since: float | None = None
    ) -> list[dict[str, Any]]:
        """These calls, and with `touched_since` (epoch seconds) also every active call that
        stored a packet since then."""
        named = CallRow.call_id.in_(call_ids)
        if touched_since is None:
            stmt = _live_calls().where(named)
        else:
            touched = CallRow.state.in_(ACTIVE_STATES) & (
                CallRow.last_packet_at >= func.to_timestamp(touched_since)
            )
            stmt = _live_calls().where(named | touched)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(CallRow.call_id))).mappings()
            return [live_call(row) for row in rows]

    @asynccontextmanager
    async def _consistent(self) -> AsyncIterator[AsyncConnection]:
        """A REPEATABLE READ, read-only transaction: several queries, one view of the data."""
        async with self._engine.connect() as conn:
            consistent = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with consistent.begin():
                yield consistent


def live_call(row: RowMapping) -> dict[str, Any]:
    """What the dashboard shows of a call (snapshot entries and `call.progress` data)."""
    last = expected_last(row["max_sequence"], row["final_sequence"])
    missing = missing_count(
        received=row["packets_received"],
        has_sequence_zero=row["has_sequence_zero"],
        expected_last=last,
    )
    return {
        "call_id": row["call_id"],
        "state": row["state"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "packets": {
            "received": row["packets_received"],
            "missing": missing,
            "late": row["packets_late"],
            "duplicates": row["packets_duplicate"],
        },
        "ai": {"attempts": row["ai_attempts"], "last_error": row["ai_last_error"]},
        "sentiment": {"label": row["sentiment_label"], "score": row["sentiment_score"]}
        if row["sentiment_label"] is not None
        else None,
    }


def _live_calls() -> Select[*tuple[Any, ...]]:
    attempts = (
        select(func.count())
        .where(AiAttemptRow.call_id == CallRow.call_id, AiAttemptRow.epoch == CallRow.ai_epoch)
        .correlate(CallRow)
        .scalar_subquery()
    )
    return select(
        CallRow.call_id,
        CallRow.state,
        CallRow.created_at,
        CallRow.updated_at,
        CallRow.packets_received,
        CallRow.packets_duplicate,
        CallRow.packets_late,
        CallRow.has_sequence_zero,
        CallRow.max_sequence,
        CallRow.final_sequence,
        CallRow.ai_last_error,
        attempts.label("ai_attempts"),
        SentimentRow.label.label("sentiment_label"),
        SentimentRow.score.label("sentiment_score"),
    ).outerjoin(SentimentRow, SentimentRow.call_id == CallRow.call_id)


async def _last_event_id(conn: AsyncConnection) -> int:
    last: int | None = (await conn.execute(select(func.max(CallEventRow.id)))).scalar_one()
    return last or 0
