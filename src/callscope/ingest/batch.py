"""One group-commit batch: every packet of many requests written by a single statement.

The statement (see `repository`) stores the new packets and updates each touched call once;
this module turns its per-packet rows into the answer each request gets.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callscope.calls.states import CallState
from callscope.errors import CallNotAcceptingPackets, PacketConflict, ServiceError
from callscope.ingest import repository
from callscope.ingest.packets import (
    Gap,
    Packet,
    PacketStatus,
    expected_last,
    gap_before,
    is_late,
    missing_count,
)
from callscope.ingest.repository import PacketKey, PacketRow

if TYPE_CHECKING:
    from callscope.ingest.repository import Connection


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What a 202 tells the sender about its packet and its call after the commit."""

    status: PacketStatus
    in_order: bool
    state: CallState
    missing: int


BatchResult = IngestOutcome | ServiceError


@dataclass(frozen=True, slots=True)
class BatchReport:
    results: list[BatchResult]
    gaps: list[tuple[str, Gap]]
    created_calls: set[str]


async def write_batch(conn: "Connection", batch: Sequence[tuple[str, Packet]]) -> BatchReport:
    """Write one batch; results line up with `batch`."""
    rows = await repository.write_packets(conn, batch)
    outcomes = [row.outcome for row in rows]
    unsure = [i for i, row in enumerate(rows) if row.outcome == "unknown"]
    if unsure:
        outcomes = await _settle_unknown(conn, batch, rows, outcomes, unsure)
    results: list[BatchResult] = []
    gaps: list[tuple[str, Gap]] = []
    for (call_id, packet), row, outcome in zip(batch, rows, outcomes, strict=True):
        results.append(_result(call_id, packet, row, outcome))
        if outcome == "accepted" and (gap := gap_before(packet.sequence, row.highest_before)):
            gaps.append((call_id, gap))
    created = {row.call_id for row in rows if row.created}
    return BatchReport(results=results, gaps=gaps, created_calls=created)


async def _settle_unknown(
    conn: "Connection",
    batch: Sequence[tuple[str, Packet]],
    rows: list[PacketRow],
    outcomes: list[str],
    unsure: list[int],
) -> list[str]:
    """Packets whose twin committed after the statement's snapshot: compare bytes now."""
    keys: list[PacketKey] = [(rows[i].call_id, rows[i].sequence) for i in unsure]
    stored = await repository.stored_data(conn, keys)
    settled = outcomes[:]
    duplicates: Counter[str] = Counter()
    for index, key in zip(unsure, keys, strict=True):
        if stored.get(key) == batch[index][1].data:
            settled[index] = "duplicate"
            duplicates[key[0]] += 1
        else:
            settled[index] = "conflict"
    if duplicates:
        await repository.add_duplicates(conn, dict(duplicates))
    return settled


def _result(call_id: str, packet: Packet, row: PacketRow, outcome: str) -> BatchResult:
    state = CallState(row.state)
    if outcome == "closed":
        return CallNotAcceptingPackets(
            f"call {call_id} is {state} and accepts no more packets", state=state
        )
    if outcome == "conflict":
        return PacketConflict(
            f"sequence {packet.sequence} of call {call_id} was already stored with other data",
            sequence=packet.sequence,
        )
    accepted = outcome == "accepted"
    return IngestOutcome(
        status=PacketStatus.accepted if accepted else PacketStatus.duplicate,
        in_order=accepted and not is_late(packet.sequence, row.highest_before),
        state=state,
        missing=missing_count(
            received=row.received,
            has_sequence_zero=row.has_sequence_zero,
            expected_last=expected_last(row.max_sequence, row.final_sequence),
        ),
    )
