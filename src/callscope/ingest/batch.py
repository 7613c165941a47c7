"""One group-commit batch: every packet of many requests written in one transaction.

`repository` stores the new packets and updates each touched call once; this module turns
its per-packet verdicts into the answer each request gets.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from callscope.audio.formats import AudioFormat
from callscope.calls.states import CallState
from callscope.errors import (
    CallNotAcceptingPackets,
    PacketConflict,
    PacketSizeInvalid,
    SequenceOutOfRange,
    ServiceError,
)
from callscope.ingest import repository
from callscope.ingest.packets import (
    CallCounts,
    Gap,
    Packet,
    PacketStatus,
    PacketVerdict,
    gap_before,
    is_late,
)
from callscope.ingest.repository import PacketRecord

if TYPE_CHECKING:
    from callscope.ingest.repository import Connection


class IngestOutcome(msgspec.Struct, frozen=True, gc=False):
    """What a 202 (or an ack) tells the sender about its packet and its track after the
    commit."""

    status: PacketStatus
    in_order: bool
    state: CallState
    counts: CallCounts  # the packet's track, after the batch

    @property
    def missing(self) -> int:
        return self.counts.missing


BatchResult = IngestOutcome | ServiceError


@dataclass(frozen=True, slots=True)
class BatchReport:
    results: list[BatchResult]
    gaps: list[tuple[str, Packet, Gap]]


async def write_batch(
    conn: "Connection",
    batch: Sequence[tuple[str, Packet]],
    *,
    max_jump: int,
    default_format: AudioFormat,
) -> BatchReport:
    """Write one batch; results line up with `batch`. A packet may be up to `max_jump` ahead
    of its track's highest sequence."""
    records = await repository.write_batch(
        conn, batch, max_jump=max_jump, default_format=default_format
    )
    results: list[BatchResult] = []
    gaps: list[tuple[str, Packet, Gap]] = []
    for (call_id, packet), record in zip(batch, records, strict=True):
        results.append(_result(call_id, packet, record, max_jump))
        if record.verdict == PacketVerdict.accepted and (
            gap := gap_before(packet.sequence, record.highest_before)
        ):
            gaps.append((call_id, packet, gap))
    return BatchReport(results=results, gaps=gaps)


def _result(call_id: str, packet: Packet, record: PacketRecord, max_jump: int) -> BatchResult:
    verdict = record.verdict
    if verdict == PacketVerdict.out_of_range:
        highest = record.highest_before or 0
        return SequenceOutOfRange(
            f"sequence {packet.sequence} of call {call_id} ({packet.track}) is more than "
            f"{max_jump} ahead of the track's highest sequence ({highest}); nothing was stored",
            sequence=packet.sequence,
            track=packet.track,
            highest=highest,
            max_jump=max_jump,
        )
    if verdict == PacketVerdict.closed:
        return CallNotAcceptingPackets(
            f"call {call_id} is {record.state} and accepts no more packets", state=record.state
        )
    if verdict == PacketVerdict.misfit:
        return PacketSizeInvalid(
            f"{len(packet.data)} bytes are not whole samples of call {call_id}'s audio format"
        )
    if verdict == PacketVerdict.conflict:
        return PacketConflict(
            f"sequence {packet.sequence} of call {call_id} ({packet.track}) was already stored "
            "with other data",
            sequence=packet.sequence,
            track=packet.track,
        )
    accepted = verdict == PacketVerdict.accepted
    counts = CallCounts(
        received=record.received,
        has_sequence_zero=record.has_sequence_zero,
        max_sequence=record.max_sequence,
        final_sequence=record.final_sequence,
    )
    return IngestOutcome(
        status=PacketStatus.accepted if accepted else PacketStatus.duplicate,
        in_order=accepted and not is_late(packet.sequence, record.highest_before),
        state=record.state,
        counts=counts,
    )
