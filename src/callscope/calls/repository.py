"""Every SQL statement of the call use-cases (reads, locked state changes, events)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callscope.calls.models import CallEventRow, CallRow, PacketRow
from callscope.calls.states import CallState


class CallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._pending_events: list[CallEventRow] = []

    async def get(self, call_id: str) -> CallRow | None:
        return await self.session.get(CallRow, call_id)

    async def lock(self, call_id: str) -> CallRow | None:
        """SELECT … FOR UPDATE: the row stays ours until the transaction ends."""
        stmt = select(CallRow).where(CallRow.call_id == call_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def insert(
        self, call_id: str, *, encoding: str, sample_rate: int, metadata: dict[str, Any]
    ) -> CallRow | None:
        """A new IN_PROGRESS call, locked; None when the call already exists."""
        stmt = (
            pg_insert(CallRow)
            .values(
                call_id=call_id,
                state=CallState.IN_PROGRESS,
                encoding=encoding,
                sample_rate=sample_rate,
                call_metadata=metadata,
            )
            .on_conflict_do_nothing(index_elements=[CallRow.call_id])
            .returning(CallRow)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def packets(self, call_id: str) -> Sequence[tuple[int, bytes]]:
        """The call's stored (sequence, audio) pairs, in sequence order."""
        stmt = (
            select(PacketRow.sequence, PacketRow.data)
            .where(PacketRow.call_id == call_id)
            .order_by(PacketRow.sequence)
        )
        return [(sequence, data) for sequence, data in (await self.session.execute(stmt)).all()]

    async def lock_idle(self, idle_seconds: float, limit: int) -> Sequence[CallRow]:
        """IN_PROGRESS calls quiet for `idle_seconds`; rows other sweepers hold are skipped."""
        cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, idle_seconds)
        stmt = (
            select(CallRow)
            .where(CallRow.state == CallState.IN_PROGRESS, CallRow.last_packet_at < cutoff)
            .order_by(CallRow.call_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def present_runs(self, call_id: str, limit: int) -> list[tuple[int, int]]:
        """Runs of consecutive stored sequences (first, last), lowest first."""
        island = (PacketRow.sequence - func.row_number().over(order_by=PacketRow.sequence)).label(
            "island"
        )
        numbered = select(PacketRow.sequence, island).where(PacketRow.call_id == call_id).subquery()
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
    ) -> Sequence[CallRow]:
        """Newest first, keyset-paginated on (created_at, call_id)."""
        stmt = select(CallRow).order_by(CallRow.created_at.desc(), CallRow.call_id.desc())
        if states:
            stmt = stmt.where(CallRow.state.in_(list(states)))
        if created_after is not None:
            stmt = stmt.where(CallRow.created_at >= created_after)
        if created_before is not None:
            stmt = stmt.where(CallRow.created_at < created_before)
        if after_key is not None:
            stmt = stmt.where(tuple_(CallRow.created_at, CallRow.call_id) < tuple_(*after_key))
        return (await self.session.execute(stmt.limit(limit))).scalars().all()

    async def events(self, call_id: str, *, after: int, limit: int) -> Sequence[CallEventRow]:
        stmt = (
            select(CallEventRow)
            .where(CallEventRow.call_id == call_id, CallEventRow.id > after)
            .order_by(CallEventRow.id)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    def append_event(
        self,
        call_id: str,
        event_type: str,
        *,
        from_state: CallState | None,
        to_state: CallState | None,
        data: dict[str, Any],
    ) -> None:
        """Note an event; `write_events` inserts it at the end of the transaction."""
        self._pending_events.append(
            CallEventRow(
                call_id=call_id,
                type=event_type,
                from_state=from_state,
                to_state=to_state,
                data=data,
            )
        )

    async def write_events(self) -> None:
        """Insert the events noted so far, as the transaction's last statement: inserting events
        takes the lock that keeps event ids in commit order (migration 0003), held to the commit."""
        if self._pending_events:
            await self.session.flush()  # every other change first: the ORM orders by table
            self.session.add_all(self._pending_events)
            self._pending_events = []
            await self.session.flush()
