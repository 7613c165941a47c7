"""One group-commit batch: every packet of many requests written in a single transaction.

The calls of the batch are created if new and locked in call_id order; packets are inserted in
one statement; each request is then resolved (accepted, duplicate, conflict, call closed) and
the counters of each call are updated once.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from callscope.calls.states import CallState, accepts_packets
from callscope.errors import CallNotAcceptingPackets, PacketConflict, ServiceError
from callscope.ingest import repository
from callscope.ingest.packets import CallTally, Gap, Packet, PacketStatus
from callscope.ingest.repository import NewPacket, PacketKey

if TYPE_CHECKING:
    from callscope.ingest.repository import Connection


@dataclass(frozen=True, slots=True)
class IngestRequest:
    call_id: str
    packet: Packet


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


async def write_batch(conn: "Connection", requests: Sequence[IngestRequest]) -> BatchReport:
    """Write one batch in one transaction; results line up with `requests`."""
    call_ids = sorted({request.call_id for request in requests})
    async with conn.transaction():
        created = await repository.create_missing_calls(conn, call_ids)
        locked = await repository.lock_calls(conn, call_ids)
        before = {cid: call.tally for cid, call in locked.items() if accepts_packets(call.state)}
        first_of_key: dict[PacketKey, int] = {}
        for index, request in enumerate(requests):
            if request.call_id in before:
                first_of_key.setdefault((request.call_id, request.packet.sequence), index)
        inserted = await repository.insert_packets(
            conn, [_new_packet(requests[index]) for index in first_of_key.values()]
        )
        reference = await repository.stored_data(
            conn, [key for key in first_of_key if key not in inserted]
        )
        reference.update({key: requests[first_of_key[key]].packet.data for key in inserted})
        after = {cid: replace(tally) for cid, tally in before.items()}
        results, gaps = _resolve(
            requests,
            locked=locked,
            first_of_key=first_of_key,
            inserted=inserted,
            reference=reference,
            tallies=after,
        )
        await repository.add_to_counters(conn, before, after)
    return BatchReport(results=results, gaps=gaps, created_calls=created)


def _new_packet(request: IngestRequest) -> NewPacket:
    packet = request.packet
    return NewPacket(
        call_id=request.call_id,
        sequence=packet.sequence,
        data=packet.data,
        sent_at=packet.sent_at,
        received_at=packet.received_at,
    )


def _resolve(
    requests: Sequence[IngestRequest],
    *,
    locked: dict[str, repository.LockedCall],
    first_of_key: dict[PacketKey, int],
    inserted: set[PacketKey],
    reference: dict[PacketKey, bytes],
    tallies: dict[str, CallTally],
) -> tuple[list[BatchResult], list[tuple[str, Gap]]]:
    """Apply each request to its call's tally in arrival order (mutates `tallies`)."""
    verdicts: list[tuple[PacketStatus, bool] | ServiceError] = []
    gaps: list[tuple[str, Gap]] = []
    for index, request in enumerate(requests):
        call_id, packet = request.call_id, request.packet
        tally = tallies.get(call_id)
        key = (call_id, packet.sequence)
        if tally is None:
            state = locked[call_id].state
            verdicts.append(
                CallNotAcceptingPackets(
                    f"call {call_id} is {state} and accepts no more packets", state=state
                )
            )
        elif key in inserted and first_of_key[key] == index:
            arrival = tally.record_new(packet.sequence, len(packet.data))
            if arrival.gap is not None:
                gaps.append((call_id, arrival.gap))
            verdicts.append((PacketStatus.accepted, not arrival.is_late))
        elif reference.get(key) == packet.data:
            tally.record_duplicate()
            verdicts.append((PacketStatus.duplicate, False))
        else:
            verdicts.append(
                PacketConflict(
                    f"sequence {packet.sequence} of call {call_id} was already stored "
                    "with different data",
                    sequence=packet.sequence,
                )
            )
    results: list[BatchResult] = [
        verdict
        if isinstance(verdict, ServiceError)
        else IngestOutcome(
            status=verdict[0],
            in_order=verdict[1],
            state=CallState.IN_PROGRESS,
            missing=tallies[request.call_id].missing,
        )
        for request, verdict in zip(requests, verdicts, strict=True)
    ]
    return results, gaps
