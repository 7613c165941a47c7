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


def is_late(sequence: int, highest_before: int | None) -> bool:
    """A packet is late when a higher sequence of its call was stored before it."""
    return highest_before is not None and sequence < highest_before


def gap_before(sequence: int, highest_before: int | None) -> Gap | None:
    """The sequences this packet skipped past, if it arrived ahead of the next expected one."""
    next_expected = 1 if highest_before is None else highest_before + 1
    return Gap(next_expected, sequence - 1) if sequence > next_expected else None


def missing_count(*, received: int, has_sequence_zero: bool, expected_last: int) -> int:
    """Holes in 1..expected_last, given how many distinct sequences were stored."""
    return max(0, expected_last - (received - int(has_sequence_zero)))


def expected_last(max_sequence: int | None, final_sequence: int | None) -> int:
    """The last sequence a call should have: the highest seen or declared, whichever is more."""
    return max(max_sequence or 0, final_sequence or 0)


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
