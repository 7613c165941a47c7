"""POST /v1/call/stream/{call_id}: ingest one packet, answered once it is committed."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from callscope.api.deps import IngestAuth
from callscope.calls.schemas import CallIdPath, PacketAck, PacketIn
from callscope.errors import PacketTooLarge
from callscope.ingest.packets import Packet
from callscope.resources import Resources

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
    "`duplicate` and stored once. Requests with `Content-Type: application/json` and a "
    "`Content-Length` are served by a leaner path with the same checks and answers.",
    response_model=PacketAck,
    responses=_ERRORS,
)
async def ingest_packet(call_id: CallIdPath, body: PacketIn, resources: IngestAuth) -> Response:
    ack = await store_packet(resources, call_id, body)
    # Serialised here: FastAPI would validate the model once more before serialising it.
    return Response(ack, status_code=202, media_type="application/json")


async def store_packet(resources: Resources, call_id: str, body: PacketIn) -> bytes:
    """Check the decoded size, store the packet, and return the 202 body (JSON of PacketAck).

    Shared by this route and the raw fast path (`api/ingest_fast_path.py`).
    """
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
    return ack.model_dump_json().encode()
