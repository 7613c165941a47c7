"""Call routes: complete (ingest token), list, read and history (supervisor token)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from callscope.api.deps import IngestAuth, SupervisorAuth
from callscope.calls.schemas import (
    CallEventListOut,
    CallEventOut,
    CallIdPath,
    CallListOut,
    CallOut,
    CompleteIn,
    UtcDatetime,
)
from callscope.calls.service import CallListQuery
from callscope.calls.states import CallState

router = APIRouter(tags=["calls"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such call."}}


@router.post(
    "/calls/{call_id}/complete",
    summary="End a call",
    description="IN_PROGRESS → COMPLETED. Idempotent: completing a call that is already past "
    "IN_PROGRESS returns it unchanged.",
    responses=_NOT_FOUND,
)
async def complete_call(
    call_id: CallIdPath,
    resources: IngestAuth,
    body: Annotated[CompleteIn | None, Body()] = None,
) -> CallOut:
    return await resources.calls.complete(call_id, body.final_sequence if body else None)


@router.get(
    "/calls",
    summary="List calls, newest first",
)
async def list_calls(
    resources: SupervisorAuth,
    *,
    state: Annotated[
        list[CallState] | None, Query(description="Only calls in these states (repeatable).")
    ] = None,
    created_after: Annotated[
        UtcDatetime | None, Query(description="Only calls created at or after this time.")
    ] = None,
    created_before: Annotated[
        UtcDatetime | None, Query(description="Only calls created before this time.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
) -> CallListOut:
    query = CallListQuery(
        states=state or (),
        created_after=created_after,
        created_before=created_before,
        cursor=cursor,
        limit=limit,
    )
    return await resources.calls.list_calls(query)


@router.get(
    "/calls/{call_id}",
    summary="One call: state, timestamps and packet statistics",
    responses=_NOT_FOUND,
)
async def get_call(call_id: CallIdPath, resources: SupervisorAuth) -> CallOut:
    return await resources.calls.get_call(call_id)


@router.get(
    "/calls/{call_id}/events",
    summary="The call's history of state changes",
    responses=_NOT_FOUND,
)
async def call_events(
    call_id: CallIdPath,
    resources: SupervisorAuth,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Only events with a larger id.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most events returned.")] = 200,
) -> CallEventListOut:
    rows = await resources.calls.events(call_id, after=after, limit=limit)
    items = [CallEventOut.model_validate(row, from_attributes=True) for row in rows]
    return CallEventListOut(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.post(
    "/calls/{call_id}/retry",
    summary="Re-drive a FAILED call",
    description="FAILED → PROCESSING_AI with a fresh attempt budget; a new AI job is queued in "
    "the same transaction. Any other state is 409 `invalid_state_transition`.",
    responses={
        **_NOT_FOUND,
        409: {"description": "The call is not FAILED."},
    },
)
async def retry_call(call_id: CallIdPath, resources: SupervisorAuth) -> CallOut:
    await resources.processing.redrive(call_id)
    return await resources.calls.get_call(call_id)
