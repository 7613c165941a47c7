"""POST /v1/call/stream/{call_id}: ingest one packet, answered once it is committed."""

import time
from typing import Final

from fastapi import APIRouter
from fastapi.responses import Response

from callscope.api.deps import IngestAuth
from callscope.api.problems import AUTH_ERRORS, BODY_ERRORS, problem_responses
from callscope.calls.schemas import CallIdPath, PacketAck, PacketIn
from callscope.calls.vocabulary import Track
from callscope.errors import PacketTooLarge
from callscope.ingest.packets import IngestPath, Packet
from callscope.process import Process

router = APIRouter(tags=["ingest"])

_RESPONSES: Final = problem_responses(
    {
        **AUTH_ERRORS,
        **BODY_ERRORS,
        404: "No such route (a call id cannot hold `/`).",
        409: "`packet_conflict`: this sequence was stored with other data; "
        "`call_not_accepting_packets`: the call is no longer IN_PROGRESS; "
        "`packet_size_invalid`: the audio is not whole samples of the call's format.",
        413: "The body, or the decoded audio (`packet_too_large`), is too large.",
        422: "The packet or call id is invalid, or `sequence_out_of_range`: the sequence is "
        "more than CALLSCOPE_MAX_SEQUENCE_JUMP ahead of its track's highest sequence (counted "
        "from 0 for a new call); nothing was stored.",
        503: "`ingest_overloaded` or `storage_unavailable`: retry after `Retry-After` seconds.",
    }
)


@router.post(
    "/call/stream/{call_id}",
    status_code=202,
    summary="Ingest one audio packet",
    description="Stores the packet durably and answers 202 once it is committed. The first "
    "packet creates the call. A repeated packet with the same data is acknowledged as "
    "`duplicate` and stored once. Requests with `Content-Type: application/json` and a "
    "`Content-Length` are served by a leaner path with the same checks and answers.",
    response_model=PacketAck,
    responses=_RESPONSES,
)
async def ingest_packet(call_id: CallIdPath, body: PacketIn, process: IngestAuth) -> Response:
    ack = await store_packet(process, call_id, body)
    # Serialised here: FastAPI would validate the model once more before serialising it.
    return Response(ack, status_code=202, media_type="application/json")


async def store_packet(process: Process, call_id: str, body: PacketIn) -> bytes:
    """Check the decoded size, store the packet, and return the 202 body (JSON of PacketAck).

    Shared by this route and the raw fast path (`api/ingest_fast_path.py`).
    """
    limit = process.settings.max_packet_bytes
    if len(body.data) > limit:
        raise PacketTooLarge(f"data decodes to {len(body.data)} bytes; the limit is {limit}")
    packet = Packet(
        track=Track.inbound,
        sequence=body.sequence,
        data=body.data,
        sent_at=body.timestamp,
        received_at=time.time(),
    )
    outcome = await process.committer.submit(call_id, packet, path=IngestPath.http)
    ack = PacketAck(
        call_id=call_id,
        sequence=body.sequence,
        status=outcome.status,
        in_order=outcome.in_order,
        state=outcome.state,
        missing=outcome.missing,
    )
    return ack.model_dump_json().encode()
