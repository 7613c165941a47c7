"""The call state machine: states, the transition table and the one check. Pure."""

from enum import StrEnum
from typing import Final


class CallState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    PROCESSING_AI = "PROCESSING_AI"
    ARCHIVED = "ARCHIVED"
    FAILED = "FAILED"


_NEXT: Final[dict[CallState, frozenset[CallState]]] = {
    CallState.IN_PROGRESS: frozenset({CallState.COMPLETED}),
    CallState.COMPLETED: frozenset({CallState.PROCESSING_AI}),
    CallState.PROCESSING_AI: frozenset({CallState.ARCHIVED, CallState.FAILED}),
    CallState.FAILED: frozenset({CallState.PROCESSING_AI}),  # operator re-drive
    CallState.ARCHIVED: frozenset(),
}


class IllegalTransition(ValueError):
    """The table does not allow moving from `current` to `target`."""

    def __init__(self, current: CallState, target: CallState) -> None:
        super().__init__(f"a call cannot move from {current} to {target}")
        self.current = current
        self.target = target


def can_transition(current: CallState, target: CallState) -> bool:
    return target in _NEXT[current]


def check_transition(current: CallState, target: CallState) -> None:
    if not can_transition(current, target):
        raise IllegalTransition(current, target)
