"""The simulator's send plans: loss, duplicates and reordering as asked, repeatable."""

import random

from callscope.simulate.plan import FRAME_BYTES, frames_of, plan_call, tone

FRAMES = [bytes([n]) * FRAME_BYTES for n in range(200)]


def test_a_clean_plan_sends_every_packet_once_in_order() -> None:
    plan = plan_call(FRAMES, loss=0, duplicates=0, reorder=0, rng=random.Random(1))
    assert [s.sequence for s in plan.sends] == list(range(1, 201))
    assert plan.lost == frozenset()
    assert plan.last_sequence == 200


def test_loss_duplicates_and_reordering_happen_and_repeat_with_the_seed() -> None:
    def make() -> list[tuple[int, bytes]]:
        plan = plan_call(FRAMES, loss=0.1, duplicates=0.1, reorder=0.1, rng=random.Random(7))
        return [(s.sequence, s.frame) for s in plan.sends]

    sends = make()
    assert sends == make()
    sequences = [sequence for sequence, _ in sends]
    assert len(set(sequences)) < 200  # some lost
    assert len(sequences) > len(set(sequences))  # some twice
    assert sequences != sorted(sequences)  # some swapped
    assert all(frame == FRAMES[sequence - 1] for sequence, frame in sends)


def test_the_lost_are_exactly_the_packets_never_sent() -> None:
    plan = plan_call(FRAMES, loss=0.3, duplicates=0.2, reorder=0.2, rng=random.Random(3))
    assert plan.lost == frozenset(range(1, 201)) - {s.sequence for s in plan.sends}


def test_a_tone_is_cut_into_20_ms_packets() -> None:
    frames = frames_of(tone(1.0))
    assert len(frames) == 50
    assert {len(f) for f in frames} == {FRAME_BYTES}
