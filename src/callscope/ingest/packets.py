"""Packet accounting: late, duplicate and missing packets of one track of a call. Pure.

Each track of a call (inbound: the caller, outbound: the agent) has its own sequences, which
count from 1 (0 is accepted too). The missing packets are the holes in 1..expected_last, where
expected_last is the highest sequence seen or declared final.
"""

from dataclasses import dataclass
from enum import StrEnum

import msgspec

from callscope.calls.vocabulary import Track


# Packets, and what a batch says about them, are made once per frame on the ingest path:
# msgspec Structs cost a fraction of a dataclass to create, and (gc=False: they hold no
# containers) the garbage collector never traverses them.
class Packet(msgspec.Struct, frozen=True, gc=False):
    """One audio packet as the carrier sent it, with the time it reached us."""

    track: Track
    sequence: int
    data: bytes
    sent_at: float
    received_at: float  # epoch seconds (a float costs less to make and to send than a datetime)


class IngestPath(StrEnum):
    """How packets reach callscope: one HTTP request each, a Twilio Media Streams socket, or
    callscope's own acknowledged stream."""

    http = "http"
    twilio = "twilio"
    stream = "stream"


class StreamRefused(ValueError):
    """A media stream broke its protocol; the message is the reason its socket is closed."""


class PacketStatus(StrEnum):
    """What a 202 says about a packet."""

    accepted = "accepted"
    duplicate = "duplicate"


class PacketVerdict(StrEnum):
    """What the ingest batch decided about one packet (computed in SQL, see
    `ingest/repository.py`, whose statement takes these values as parameters)."""

    accepted = "accepted"  # stored now
    duplicate = "duplicate"  # the same bytes were stored before
    conflict = "conflict"  # other bytes were stored under this sequence
    closed = "closed"  # the call no longer takes packets
    misfit = "misfit"  # not whole samples of the call's audio format
    out_of_range = "out_of_range"  # too far ahead of its track's highest sequence


class CallCounts(msgspec.Struct, frozen=True, gc=False):
    """A track's order-independent packet counters, as its `call_tracks` row stores them; the
    one place that knows what "missing" means."""

    received: int
    has_sequence_zero: bool
    max_sequence: int | None
    final_sequence: int | None

    @property
    def expected_last(self) -> int:
        return expected_last(self.max_sequence, self.final_sequence)

    @property
    def missing(self) -> int:
        return missing_count(
            received=self.received,
            has_sequence_zero=self.has_sequence_zero,
            expected_last=self.expected_last,
        )


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
