"""Every SQL statement of the live feed: snapshots, `since=` replays, progress counts."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callscope.calls.models import CallEventRow, CallRow, CallTrackRow
from callscope.calls.read_model import (
    CallProgress,
    CallSummary,
    progress_from_row,
    summary_from_row,
)
from callscope.calls.repository import summary_select
from callscope.calls.states import CallState

ACTIVE_STATES: Final = (CallState.IN_PROGRESS, CallState.COMPLETED, CallState.PROCESSING_AI)
FINISHED_STATES: Final = (CallState.ARCHIVED, CallState.FAILED)


@dataclass(frozen=True, slots=True)
class Snapshot:
    calls: list[CallSummary]
    last_event_id: int
    truncated: bool  # more active calls exist than the snapshot holds


@dataclass(frozen=True, slots=True)
class Replay:
    events: Sequence[RowMapping]  # call_events rows after `since`, in id order
    calls: list[CallProgress]  # active calls and those the events name, as they are now
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
                stmt = summary_select().where(CallRow.call_id == call_id)
                rows, truncated = list((await conn.execute(stmt)).mappings()), False
            else:
                active_stmt = (
                    summary_select()
                    .where(CallRow.state.in_(ACTIVE_STATES))
                    .order_by(CallRow.created_at.desc())
                    .limit(active_limit + 1)
                )
                finished_stmt = (
                    summary_select()
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
            calls=[summary_from_row(row) for row in rows],
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
                calls_stmt = summary_select().where(CallRow.call_id == call_id)
            else:
                active = (
                    select(CallRow.call_id)
                    .where(CallRow.state.in_(ACTIVE_STATES))
                    .order_by(CallRow.created_at.desc())
                    .limit(active_limit)
                )
                calls_stmt = summary_select().where(
                    CallRow.call_id.in_(active.scalar_subquery()) | CallRow.call_id.in_(named)
                )
            calls = [progress_from_row(r) for r in (await conn.execute(calls_stmt)).mappings()]
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

    async def progress(
        self, call_ids: Sequence[str], *, touched_since: float | None = None
    ) -> list[CallProgress]:
        """The packet counts of these calls, and with `touched_since` (epoch seconds) also of
        every active call that stored a packet since then."""
        named = CallRow.call_id.in_(call_ids)
        if touched_since is None:
            stmt = summary_select().where(named)
        else:
            recently = (
                select(CallTrackRow.call_id)
                .where(CallTrackRow.last_packet_at >= func.to_timestamp(touched_since))
                .scalar_subquery()
            )
            touched = CallRow.state.in_(ACTIVE_STATES) & CallRow.call_id.in_(recently)
            stmt = summary_select().where(named | touched)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(CallRow.call_id))).mappings()
            return [progress_from_row(row) for row in rows]

    @asynccontextmanager
    async def _consistent(self) -> AsyncIterator[AsyncConnection]:
        """A REPEATABLE READ, read-only transaction: several queries, one view of the data."""
        async with self._engine.connect() as conn:
            consistent = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with consistent.begin():
                yield consistent


async def _last_event_id(conn: AsyncConnection) -> int:
    last: int | None = (await conn.execute(select(func.max(CallEventRow.id)))).scalar_one()
    return last or 0
