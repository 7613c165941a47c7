"""POST /v1/call/stream/{call_id}: ingest one packet, answered once it is committed."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from callscope.api.deps import IngestAuth
from callscope.calls.schemas import CallIdPath, PacketAck, PacketIn
from callscope.errors import PacketTooLarge
from callscope.ingest.packets import Packet

router = APIRouter(tags=["ingest"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON."},
    401: {"description": "No or an unknown bearer token."},
    403: {"description": "The token is not an ingest token."},
    409: {"description": "Same sequence with other data, or the call no longer takes packets."},
    413: {"description": "The body or the decoded audio is too large."},
    422: {"description": "The packet or call id is not valid; nothing was stored."},
    503: {"description": "Overloaded or storage unavailable; retry after `Retry-After`."},
}


@router.post(
    "/call/stream/{call_id}",
    status_code=202,
    summary="Ingest one audio packet",
    description="Stores the packet durably and answers 202 once it is committed. The first "
    "packet creates the call. A repeated packet with the same data is acknowledged as "
    "`duplicate` and stored once.",
    response_model=PacketAck,
    responses=_ERRORS,
)
async def ingest_packet(call_id: CallIdPath, body: PacketIn, resources: IngestAuth) -> Response:
    limit = resources.settings.max_packet_bytes
    if len(body.data) > limit:
        raise PacketTooLarge(f"data decodes to {len(body.data)} bytes; the limit is {limit}")
    packet = Packet(
        sequence=body.sequence,
        data=body.data,
        sent_at=body.timestamp,
        received_at=datetime.now(UTC),
    )
    outcome = await resources.committer.submit(call_id, packet)
    ack = PacketAck(
        call_id=call_id,
        sequence=body.sequence,
        status=outcome.status,
        in_order=outcome.in_order,
        state=outcome.state,
        missing=outcome.missing,
    )
    # Serialised here: FastAPI would validate the model once more before serialising it.
    return Response(ack.model_dump_json(), status_code=202, media_type="application/json")
