"""Packet accounting: late, duplicate and missing packets of one call. Pure, no I/O.

Sequences count from 1 (0 is accepted too). The missing packets are the holes in
1..expected_last, where expected_last is the highest sequence seen or declared final.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Packet:
    """One audio packet as the carrier sent it, with the time it reached us."""

    sequence: int
    data: bytes
    sent_at: float
    received_at: datetime


class PacketStatus(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequences first..last were skipped when a packet arrived ahead of them."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Arrival:
    """What one newly stored packet meant for its call."""

    is_late: bool
    gap: Gap | None


def missing_count(*, received: int, has_sequence_zero: bool, expected_last: int) -> int:
    """Holes in 1..expected_last, given how many distinct sequences were stored."""
    return max(0, expected_last - (received - int(has_sequence_zero)))


@dataclass(slots=True)
class CallTally:
    """A call's packet counters; `record_*` apply one packet in arrival order."""

    received: int = 0
    duplicates: int = 0
    late: int = 0
    max_sequence: int | None = None
    has_sequence_zero: bool = False
    bytes_received: int = 0
    final_sequence: int | None = None

    @property
    def expected_last(self) -> int:
        return max(self.max_sequence or 0, self.final_sequence or 0)

    @property
    def missing(self) -> int:
        return missing_count(
            received=self.received,
            has_sequence_zero=self.has_sequence_zero,
            expected_last=self.expected_last,
        )

    def record_new(self, sequence: int, size: int) -> Arrival:
        """Count a packet stored for the first time."""
        highest = self.max_sequence
        is_late = highest is not None and sequence < highest
        next_expected = 1 if highest is None else highest + 1
        gap = Gap(next_expected, sequence - 1) if sequence > next_expected else None
        self.received += 1
        self.bytes_received += size
        self.late += int(is_late)
        self.has_sequence_zero |= sequence == 0
        self.max_sequence = sequence if highest is None else max(highest, sequence)
        return Arrival(is_late=is_late, gap=gap)

    def record_duplicate(self) -> None:
        self.duplicates += 1


def missing_ranges(
    present_runs: list[tuple[int, int]], expected_last: int
) -> list[tuple[int, int]]:
    """Holes in 1..expected_last, given the sorted runs of stored sequences (first, last).

    Runs may include sequence 0, which is outside the counted range.
    """
    holes: list[tuple[int, int]] = []
    next_expected = 1
    for first, last in present_runs:
        if first > next_expected:
            holes.append((next_expected, min(first - 1, expected_last)))
        next_expected = max(next_expected, last + 1)
        if next_expected > expected_last:
            break
    if next_expected <= expected_last:
        holes.append((next_expected, expected_last))
    return [(first, last) for first, last in holes if first <= last]
