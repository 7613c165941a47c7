"""Call routes: declare and complete (ingest token); list, read, audio and history
(supervisor token)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from callscope.api.deps import IngestAuth, SupervisorAuth
from callscope.audio.formats import SAMPLE_RATES, AudioEncoding, AudioFormat, UnsupportedFormat
from callscope.audio.reassembly import wav_bytes
from callscope.calls.schemas import (
    CallCreateIn,
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
from callscope.errors import AudioFormatInvalid

router = APIRouter(tags=["calls"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such call."}}


@router.post(
    "/calls",
    summary="Declare a call and its audio format before its packets",
    description="Creates the call IN_PROGRESS with its audio format and metadata (201). "
    "Declaring it again with the same format answers 200; another format is 409 "
    "`call_format_conflict`. Calls whose packets come first get the server's default format.",
    status_code=201,
    responses={
        200: {"description": "The call already existed with this format."},
        409: {"description": "The call exists with another format or other metadata."},
        422: {"description": "Not a supported format."},
    },
)
async def create_call(body: CallCreateIn, resources: IngestAuth, response: Response) -> CallOut:
    audio_format = _declared_format(body, resources.settings.default_audio_format)
    call, created = await resources.calls.create(body.call_id, audio_format, body.metadata)
    if not created:
        response.status_code = 200
    return call


def _declared_format(body: CallCreateIn, default: AudioFormat) -> AudioFormat:
    encoding = AudioEncoding(body.encoding) if body.encoding else default.encoding
    if body.sample_rate is not None:
        sample_rate = body.sample_rate
    elif encoding == default.encoding:
        sample_rate = default.sample_rate
    else:
        sample_rate = SAMPLE_RATES[encoding][0]
    try:
        return AudioFormat(encoding, sample_rate)
    except UnsupportedFormat as exc:
        raise AudioFormatInvalid(str(exc)) from exc


@router.get(
    "/calls/{call_id}/audio",
    summary="The call's audio as a WAV file",
    description="16-bit PCM, mono, at the call's sample rate; packets in sequence order, "
    "each missing packet replaced by silence as long as the call's usual packet.",
    response_class=Response,
    responses={**_NOT_FOUND, 200: {"content": {"audio/wav": {}}}},
)
async def call_audio(call_id: CallIdPath, resources: SupervisorAuth) -> Response:
    audio_format, pcm16 = await resources.calls.audio(call_id)
    return Response(
        wav_bytes(pcm16, audio_format.sample_rate),
        media_type="audio/wav",
        headers={"Content-Disposition": f'attachment; filename="{call_id}.wav"'},
    )


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
