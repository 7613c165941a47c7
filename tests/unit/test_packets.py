"""Packet accounting: late, duplicates, gaps, missing counts and ranges."""

import random

import pytest

from callscope.ingest.packets import CallTally, Gap, missing_count, missing_ranges


def test_in_order_packets_are_neither_late_nor_gapped() -> None:
    tally = CallTally()
    arrivals = [tally.record_new(seq, 10) for seq in (1, 2, 3)]
    assert [a.is_late for a in arrivals] == [False, False, False]
    assert [a.gap for a in arrivals] == [None, None, None]
    assert (tally.received, tally.max_sequence, tally.bytes_received, tally.missing) == (
        3,
        3,
        30,
        0,
    )


def test_skip_ahead_reports_the_gap_and_the_late_packet_fills_it() -> None:
    tally = CallTally()
    tally.record_new(1, 1)
    ahead = tally.record_new(5, 1)
    assert ahead.gap == Gap(2, 4)
    assert tally.missing == 3
    late = tally.record_new(3, 1)
    assert late.is_late
    assert late.gap is None
    assert (tally.late, tally.missing, tally.max_sequence) == (1, 2, 5)


def test_first_packet_above_one_counts_the_leading_hole() -> None:
    tally = CallTally()
    assert tally.record_new(4, 1).gap == Gap(1, 3)
    assert tally.missing == 3


def test_sequence_zero_is_stored_but_outside_the_counted_range() -> None:
    tally = CallTally()
    tally.record_new(0, 1)
    tally.record_new(2, 1)
    assert tally.has_sequence_zero
    assert tally.missing == 1  # sequence 1


def test_duplicates_change_only_the_duplicate_counter() -> None:
    tally = CallTally()
    tally.record_new(1, 1)
    tally.record_duplicate()
    tally.record_duplicate()
    assert (tally.received, tally.duplicates, tally.missing) == (1, 2, 0)


def test_final_sequence_counts_trailing_missing_packets() -> None:
    tally = CallTally(final_sequence=10)
    for seq in (1, 2, 3):
        tally.record_new(seq, 1)
    assert tally.missing == 7


def test_missing_count_never_negative() -> None:
    assert missing_count(received=5, has_sequence_zero=False, expected_last=3) == 0


def test_counts_are_order_independent() -> None:
    sequences = [s for s in range(1, 201) if s % 7 != 0]
    shuffled = sequences[:]
    random.Random(4).shuffle(shuffled)
    in_order, scrambled = CallTally(), CallTally()
    for seq in sequences:
        in_order.record_new(seq, 1)
    for seq in shuffled:
        scrambled.record_new(seq, 1)
    assert in_order.missing == scrambled.missing == 28
    assert in_order.max_sequence == scrambled.max_sequence == 200
    assert in_order.late == 0
    assert scrambled.late > 0


@pytest.mark.parametrize(
    ("runs", "expected_last", "holes"),
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
    runs: list[tuple[int, int]], expected_last: int, holes: list[tuple[int, int]]
) -> None:
    assert missing_ranges(runs, expected_last) == holes


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
