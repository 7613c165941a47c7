"""The baseline: a bare FastAPI endpoint that validates the same packet JSON and answers 202.

No database, no auth, no batching: what Python + FastAPI + uvicorn cost per request here.
"""

from fastapi import FastAPI

from callscope.calls.schemas import CallIdPath, PacketAck, PacketIn
from callscope.calls.states import CallState
from callscope.ingest.packets import PacketStatus

app = FastAPI()


@app.post("/v1/call/stream/{call_id}", status_code=202)
async def ingest_packet(call_id: CallIdPath, body: PacketIn) -> PacketAck:
    return PacketAck(
        call_id=call_id,
        sequence=body.sequence,
        status=PacketStatus.accepted,
        in_order=True,
        state=CallState.IN_PROGRESS,
        missing=0,
    )
