"""One group-commit batch: every packet of many requests written in one transaction.

`repository` stores the new packets and updates each touched call once; this module turns
its per-packet verdicts into the answer each request gets.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callscope.audio.formats import AudioFormat
from callscope.calls.states import CallState
from callscope.errors import (
    CallNotAcceptingPackets,
    PacketConflict,
    PacketSizeInvalid,
    ServiceError,
)
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
from callscope.ingest.repository import PacketVerdict

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


async def write_batch(
    conn: "Connection", batch: Sequence[tuple[str, Packet]], *, default_format: AudioFormat
) -> BatchReport:
    """Write one batch; results line up with `batch`."""
    verdicts = await repository.write_batch(conn, batch, default_format=default_format)
    results: list[BatchResult] = []
    gaps: list[tuple[str, Gap]] = []
    for (call_id, packet), verdict in zip(batch, verdicts, strict=True):
        results.append(_result(call_id, packet, verdict))
        if verdict.outcome == "accepted" and (
            gap := gap_before(packet.sequence, verdict.highest_before)
        ):
            gaps.append((call_id, gap))
    return BatchReport(results=results, gaps=gaps)


def _result(call_id: str, packet: Packet, verdict: PacketVerdict) -> BatchResult:
    outcome = verdict.outcome
    state = CallState(verdict.state)
    if outcome == "closed":
        return CallNotAcceptingPackets(
            f"call {call_id} is {state} and accepts no more packets", state=state
        )
    if outcome == "misfit":
        return PacketSizeInvalid(
            f"{len(packet.data)} bytes are not whole samples of call {call_id}'s audio format"
        )
    if outcome == "conflict":
        return PacketConflict(
            f"sequence {packet.sequence} of call {call_id} was already stored with other data",
            sequence=packet.sequence,
        )
    accepted = outcome == "accepted"
    return IngestOutcome(
        status=PacketStatus.accepted if accepted else PacketStatus.duplicate,
        in_order=accepted and not is_late(packet.sequence, verdict.highest_before),
        state=state,
        missing=missing_count(
            received=verdict.received,
            has_sequence_zero=verdict.has_sequence_zero,
            expected_last=expected_last(verdict.max_sequence, verdict.final_sequence),
        ),
    )
