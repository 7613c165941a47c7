"""The ceiling of `benchmarks.streams`: a bare WebSocket endpoint that parses Twilio Media
Streams messages (with callscope's own parser) and stores nothing.

Same FastAPI, uvicorn and process settings as callscope (`callscope.server.serve`); no
database, no auth. `GET /bare/frames` says how many media frames it has parsed.
"""

import argparse

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from callscope.ingest.packets import Packet
from callscope.ingest.twilio import StreamStopped, TwilioStream
from callscope.server import serve

app = FastAPI()
parsed = [0]


@app.websocket("/bare/twilio")
async def twilio(websocket: WebSocket) -> None:
    await websocket.accept()
    stream = TwilioStream(max_packet_bytes=4096)
    try:
        while True:
            meaning = stream.feed(await websocket.receive_text())
            if isinstance(meaning, Packet):
                parsed[0] += 1
            elif isinstance(meaning, StreamStopped):
                await websocket.close(1000)
                return
    except WebSocketDisconnect:
        return


@app.get("/bare/frames")
async def frames() -> dict[str, int]:
    return {"frames": parsed[0]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the bare media endpoint")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(app, host="127.0.0.1", port=args.port, log_level="WARNING", access_log=False)
