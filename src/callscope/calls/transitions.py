"""The one way a call changes state: checked against the table, recorded in the same commit."""

from typing import Any

from sqlalchemy import func

from callscope.calls.models import CallRow
from callscope.calls.repository import CallRepository
from callscope.calls.states import CallState, IllegalTransition, check_transition
from callscope.calls.vocabulary import EventType
from callscope.errors import InvalidTransition


def move(calls: CallRepository, row: CallRow, target: CallState, data: dict[str, Any]) -> None:
    """Apply one checked transition to a locked row and record it."""
    current = row.state
    try:
        check_transition(current, target)
    except IllegalTransition as exc:
        raise InvalidTransition(str(exc), from_state=current, to_state=target) from exc
    row.state = target
    row.updated_at = func.now()  # SQL, evaluated at flush
    if current == CallState.IN_PROGRESS:
        row.completed_at = func.now()
    calls.append_event(
        row.call_id, EventType.state_changed, from_state=current, to_state=target, data=data
    )
