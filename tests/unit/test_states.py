"""Every (state, state) pair against the transition table, written out independently here."""

import itertools

import pytest

from callscope.calls.states import (
    CallState,
    IllegalTransition,
    can_transition,
    check_transition,
)

S = CallState
ALLOWED = {
    (S.IN_PROGRESS, S.COMPLETED),
    (S.COMPLETED, S.PROCESSING_AI),
    (S.PROCESSING_AI, S.ARCHIVED),
    (S.PROCESSING_AI, S.FAILED),
    (S.FAILED, S.PROCESSING_AI),
}
ALL_PAIRS = list(itertools.product(CallState, CallState))


def test_every_pair_is_covered() -> None:
    assert len(ALL_PAIRS) == 25


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_transition_allowed_exactly_when_in_table(current: CallState, target: CallState) -> None:
    expected = (current, target) in ALLOWED
    assert can_transition(current, target) is expected
    if expected:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition) as caught:
            check_transition(current, target)
        assert caught.value.current is current
        assert caught.value.target is target


def test_wire_values_equal_member_names() -> None:
    assert [state.value for state in CallState] == [state.name for state in CallState]
