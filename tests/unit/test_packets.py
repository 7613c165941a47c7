"""Packet accounting: late packets, gaps, missing counts and ranges."""

import random

import pytest

from callscope.ingest.packets import (
    Gap,
    expected_last,
    gap_before,
    is_late,
    missing_count,
    missing_ranges,
)


@pytest.mark.parametrize(
    ("sequence", "highest_before", "late"),
    [(1, None, False), (2, 1, False), (5, 2, False), (3, 5, True), (0, 1, True), (5, 5, False)],
)
def test_late_means_a_higher_sequence_came_first(
    sequence: int, highest_before: int | None, late: bool
) -> None:
    assert is_late(sequence, highest_before) is late


@pytest.mark.parametrize(
    ("sequence", "highest_before", "gap"),
    [
        (1, None, None),
        (4, None, Gap(1, 3)),
        (2, 1, None),
        (6, 2, Gap(3, 5)),
        (3, 5, None),  # a late packet fills a hole, it opens none
        (0, None, None),
    ],
)
def test_gap_is_what_a_packet_skipped(
    sequence: int, highest_before: int | None, gap: Gap | None
) -> None:
    assert gap_before(sequence, highest_before) == gap


def test_missing_counts_holes_from_one_to_the_expected_last() -> None:
    assert missing_count(received=3, has_sequence_zero=False, expected_last=5) == 2
    assert missing_count(received=0, has_sequence_zero=False, expected_last=0) == 0


def test_sequence_zero_is_stored_but_outside_the_counted_range() -> None:
    # stored: 0 and 2 -> sequence 1 is missing
    assert missing_count(received=2, has_sequence_zero=True, expected_last=2) == 1


def test_missing_count_never_negative() -> None:
    assert missing_count(received=5, has_sequence_zero=False, expected_last=3) == 0


@pytest.mark.parametrize(
    ("max_sequence", "final_sequence", "last"),
    [(None, None, 0), (7, None, 7), (None, 4, 4), (7, 10, 10), (12, 10, 12)],
)
def test_expected_last_is_the_highest_seen_or_declared(
    max_sequence: int | None, final_sequence: int | None, last: int
) -> None:
    assert expected_last(max_sequence, final_sequence) == last


def _late_count(arrivals: list[int]) -> int:
    """Apply is_late in arrival order, as the ingest statement does per call."""
    highest: int | None = None
    late = 0
    for sequence in arrivals:
        late += is_late(sequence, highest)
        highest = sequence if highest is None else max(highest, sequence)
    return late


def test_in_order_stream_has_no_late_packets_and_a_shuffled_one_has() -> None:
    sequences = list(range(1, 201))
    shuffled = sequences[:]
    random.Random(4).shuffle(shuffled)
    assert _late_count(sequences) == 0
    assert 0 < _late_count(shuffled) < 200


@pytest.mark.parametrize(
    ("runs", "last", "holes"),
    [
        ([], 0, []),
        ([], 3, [(1, 3)]),
        ([(1, 5)], 5, []),
        ([(1, 5)], 8, [(6, 8)]),
        ([(3, 5)], 5, [(1, 2)]),
        ([(1, 2), (5, 6), (9, 9)], 12, [(3, 4), (7, 8), (10, 12)]),
        ([(0, 0), (2, 3)], 3, [(1, 1)]),
        ([(0, 4)], 4, []),
        ([(1, 2), (5, 9)], 6, [(3, 4)]),
    ],
)
def test_missing_ranges(
    runs: list[tuple[int, int]], last: int, holes: list[tuple[int, int]]
) -> None:
    assert missing_ranges(runs, last) == holes


def test_missing_ranges_agree_with_missing_count() -> None:
    rng = random.Random(11)
    present = sorted(s for s in range(1, 501) if rng.random() > 0.1)
    runs: list[tuple[int, int]] = []
    for seq in present:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    holes = missing_ranges(runs, 520)
    assert sum(last - first + 1 for first, last in holes) == missing_count(
        received=len(present), has_sequence_zero=False, expected_last=520
    )
