"""Call routes: declare and complete (ingest token); list, read, audio and history
(supervisor token)."""

from typing import Annotated, Final

import structlog
from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.exceptions import RequestValidationError

from callscope.ai.ports import SentimentLabel
from callscope.api.byte_ranges import ranged_response
from callscope.api.deps import IngestAuth, SupervisorAuth
from callscope.api.problems import (
    AUTH_ERRORS,
    BODY_ERRORS,
    INVALID,
    NOT_FOUND,
    UNAVAILABLE,
    problem_responses,
)
from callscope.audio.formats import SAMPLE_RATES, AudioFormat, UnsupportedFormat
from callscope.audio.reassembly import wav_bytes
from callscope.calls.cursor import CURSOR_PATTERN
from callscope.calls.read_model import CallDetail, CallList
from callscope.calls.repository import CallSearch
from callscope.calls.schemas import (
    CallCreateIn,
    CallEventListOut,
    CallEventOut,
    CallIdPath,
    CompleteIn,
    UtcDatetime,
)
from callscope.calls.service import CallListQuery
from callscope.calls.states import CallState
from callscope.calls.vocabulary import Track
from callscope.errors import AudioFormatInvalid

log = structlog.get_logger(__name__)
router = APIRouter(tags=["calls"])

_READ: Final = problem_responses({**AUTH_ERRORS, **NOT_FOUND, **INVALID, **UNAVAILABLE})


@router.post(
    "/calls",
    summary="Declare a call and its audio format before its packets",
    description="Creates the call IN_PROGRESS with its audio format and metadata (201). "
    "Declaring it again with the same format answers 200; another format is 409 "
    "`call_format_conflict`. Calls whose packets come first get the server's default format.",
    status_code=201,
    responses={
        200: {"description": "The call already existed with this format.", "model": CallDetail},
        **problem_responses(
            {
                **AUTH_ERRORS,
                **BODY_ERRORS,
                404: "No such route.",
                409: "`call_format_conflict`: the call exists with another format or other "
                "metadata.",
                422: "Invalid fields, or a sample rate its encoding does not have "
                "(`audio_format_invalid`); nothing changed.",
                **UNAVAILABLE,
            }
        ),
    },
)
async def create_call(body: CallCreateIn, process: IngestAuth, response: Response) -> CallDetail:
    audio_format = _declared_format(body, process.settings.default_audio_format)
    call, created = await process.calls.create(body.call_id, audio_format, body.metadata)
    if not created:
        response.status_code = 200
    return call


def _declared_format(body: CallCreateIn, default: AudioFormat) -> AudioFormat:
    encoding = body.encoding or default.encoding
    sample_rate: int
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


_WAV: Final = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}
_ACCEPT_RANGES: Final = {
    "Accept-Ranges": {
        "description": "`bytes`: single byte ranges are served.",
        "schema": {"type": "string"},
    }
}


@router.get(
    "/calls/{call_id}/audio",
    summary="The call's audio as a WAV file",
    description="16-bit PCM at the call's sample rate; packets in sequence order, each "
    "missing packet replaced by silence as long as the track's usual packet. With `track`, "
    "that side of the call, mono; without, the call's only track, or both as stereo with the "
    "caller on the left and the agent on the right. Every sentence whose transcript had "
    "something redacted is silent, on every channel, 0.25 s either side "
    "(CALLSCOPE_REDACT_AUDIO). A single byte range (`Range: bytes=a-b`, "
    "`bytes=a-`, `bytes=-n`) is answered 206 with that part, so players can seek; several "
    "ranges, or a header that is not a byte range, get the whole file.",
    response_class=Response,
    responses={
        200: {"description": "The whole file.", "content": _WAV, "headers": _ACCEPT_RANGES},
        206: {
            "description": "The requested byte range of the file.",
            "content": _WAV,
            "headers": {
                **_ACCEPT_RANGES,
                "Content-Range": {
                    "description": "`bytes <first>-<last>/<size>`.",
                    "schema": {"type": "string"},
                },
            },
        },
        **problem_responses(
            {
                **AUTH_ERRORS,
                404: "No such call, or no audio on that track (`track_not_found`).",
                409: "`call_audio_too_long`: the call's sequences claim over an hour of audio.",
                410: "`audio_pruned`: the retention dropped the call's audio "
                "(CALLSCOPE_RETAIN_AUDIO_DAYS); its counts and transcript stay.",
                416: "`range_not_satisfiable`: the range starts past the end of the file; "
                "`Content-Range: bytes */<size>` gives its size.",
                **INVALID,
                **UNAVAILABLE,
            }
        ),
    },
)
async def call_audio(
    call_id: CallIdPath,
    process: SupervisorAuth,
    track: Annotated[
        Track | None, Query(description="inbound (the caller) or outbound (the agent).")
    ] = None,
    byte_range: Annotated[
        str | None,
        Header(
            alias="Range",
            description="One byte range of the file, e.g. `bytes=44-` (RFC 9110).",
        ),
    ] = None,
) -> Response:
    audio = await process.calls.audio(call_id, track)
    return ranged_response(
        wav_bytes(audio.pcm16, audio.audio_format.sample_rate, channels=audio.channels),
        byte_range,
        media_type="audio/wav",
        headers={"Content-Disposition": f'attachment; filename="{call_id}.wav"'},
    )


@router.post(
    "/calls/{call_id}/complete",
    summary="End a call",
    description="IN_PROGRESS → COMPLETED. Idempotent: completing a call that is already past "
    "IN_PROGRESS returns it unchanged. A `final_sequence` more than CALLSCOPE_MAX_SEQUENCE_JUMP "
    "ahead of the highest sequence stored (0 for a call without packets) is refused 422 "
    "`sequence_out_of_range`, and the call stays IN_PROGRESS.",
    responses=problem_responses(
        {
            **AUTH_ERRORS,
            **BODY_ERRORS,
            **NOT_FOUND,
            422: "A field is invalid (`errors` says which), or `sequence_out_of_range`: "
            "`final_sequence` is more than CALLSCOPE_MAX_SEQUENCE_JUMP ahead of its track's "
            "highest sequence (0 without packets); nothing changed.",
            **UNAVAILABLE,
        }
    ),
)
async def complete_call(
    call_id: CallIdPath,
    process: IngestAuth,
    body: Annotated[CompleteIn | None, Body()] = None,
) -> CallDetail:
    finals = (
        {Track.inbound: body.final_sequence} if body and body.final_sequence is not None else {}
    )
    call = await process.calls.complete(call_id, finals)
    log.info("call_complete_requested", state=call.state)  # call_id: bound for the request
    return call


# Some character that is not white space, and no control characters (PostgreSQL's text
# cannot hold NUL).
_SEARCH_TEXT: Final = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_SCORE: Final = {"ge": -1.0, "le": 1.0, "allow_inf_nan": False}


@router.get(
    "/calls",
    summary="List calls, newest first",
    description="Filters combine (all must hold); pagination is by `next_cursor` whatever the "
    "filters, which the next page must repeat. `q` searches the stored transcripts (redacted: "
    "a card number is found as the word `card`, never by its digits) in English: words match "
    'their forms (`charged` finds `charge`), `"a phrase"` matches words in order, `or` '
    "between words matches either, `-word` excludes; a call matches when the caller's or the "
    "agent's transcript does. `sentiment`, `min_score` and `max_score` filter on the headline "
    "sentiment (the caller's): calls not scored yet match none of them. A `min_score` above "
    "`max_score` is 422.",
    responses=problem_responses({**AUTH_ERRORS, 404: "No such route.", **INVALID, **UNAVAILABLE}),
)
async def list_calls(
    process: SupervisorAuth,
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
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=_SEARCH_TEXT,
            description="Full-text search over the transcripts (web-search syntax: words, "
            '`"a phrase"`, `or`, `-word`), e.g. `cancel account`.',
        ),
    ] = None,
    sentiment: Annotated[
        SentimentLabel | None,
        Query(description="Only calls whose headline sentiment (the caller's) has this label."),
    ] = None,
    min_score: Annotated[
        float | None,
        Query(**_SCORE, description="Only calls whose headline score is at least this (-1…1)."),
    ] = None,
    max_score: Annotated[
        float | None,
        Query(**_SCORE, description="Only calls whose headline score is at most this (-1…1)."),
    ] = None,
) -> CallList:
    if min_score is not None and max_score is not None and min_score > max_score:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "min_score"),
                    "msg": "min_score is above max_score: no score is in that range",
                    "type": "value_error",
                }
            ]
        )
    search = CallSearch(text=q, sentiment=sentiment, min_score=min_score, max_score=max_score)
    query = CallListQuery(
        states=state or (),
        created_after=created_after,
        created_before=created_before,
        cursor=cursor,
        limit=limit,
        search=search,
    )
    return await process.calls.list_calls(query)


@router.get(
    "/calls/{call_id}",
    summary="One call: state, timestamps and packet statistics",
    responses=_READ,
)
async def get_call(call_id: CallIdPath, process: SupervisorAuth) -> CallDetail:
    return await process.calls.get_call(call_id)


@router.get(
    "/calls/{call_id}/events",
    summary="The call's history of state changes",
    responses=_READ,
)
async def call_events(
    call_id: CallIdPath,
    process: SupervisorAuth,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Only events with a larger id.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most events returned.")] = 200,
) -> CallEventListOut:
    rows = await process.calls.events(call_id, after=after, limit=limit)
    items = [CallEventOut.model_validate(row, from_attributes=True) for row in rows]
    return CallEventListOut(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.post(
    "/calls/{call_id}/retry",
    summary="Re-drive a FAILED call",
    description="FAILED → PROCESSING_AI with a fresh attempt budget; a new AI job is queued in "
    "the same transaction. Any other state is 409 `invalid_state_transition`.",
    responses=problem_responses(
        {
            **AUTH_ERRORS,
            **NOT_FOUND,
            409: "`invalid_state_transition`: the call is not FAILED.",
            410: "`audio_pruned`: the retention dropped the call's audio; nothing to re-drive.",
            **INVALID,
            **UNAVAILABLE,
        }
    ),
)
async def retry_call(call_id: CallIdPath, process: SupervisorAuth) -> CallDetail:
    await process.pipeline.redrive(call_id)
    return await process.calls.get_call(call_id)
