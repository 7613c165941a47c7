"""The baseline: a bare FastAPI endpoint that validates the same packet JSON and answers 202.

No database, no auth, no batching: what Python + FastAPI + uvicorn cost per request here.
"""

import argparse

from fastapi import FastAPI

from callscope.calls.schemas import CallIdPath, PacketAck, PacketIn
from callscope.calls.states import CallState
from callscope.ingest.packets import PacketStatus
from callscope.server import serve

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the bare baseline endpoint")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(app, host="127.0.0.1", port=args.port, log_level="WARNING", access_log=False)
