"""Media streams: `WS /v1/media/twilio` (Twilio Media Streams as Twilio sends them) and
`WS /v1/calls/{call_id}/media` (callscope's own stream, with acks after commit).

Both hand their frames to a `StreamSink`: queued, written in groups by the group committer,
and only then acknowledged (native) or taken as stored (Twilio). Bad input closes the socket
with 4400 and a reason, after what was valid before it is written. Close codes: `closes`.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec
import structlog
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from callscope.api import closes
from callscope.api.problems import deny_upgrade
from callscope.auth.tokens import Role, TokenChecker
from callscope.auth.twilio import is_valid_twilio_signature
from callscope.calls.ids import is_call_id
from callscope.calls.states import CallState
from callscope.calls.vocabulary import EventType, Track
from callscope.draining import GOING_AWAY_REASON
from callscope.errors import (
    CallFormatConflict,
    CallNotAcceptingPackets,
    CallNotFound,
    Forbidden,
    NotAuthenticated,
    SequenceOutOfRange,
    ServiceError,
    ShuttingDown,
)
from callscope.ingest.batch import BatchResult, IngestOutcome
from callscope.ingest.native import (
    AckTracker,
    EndOfStream,
    NativeEnded,
    NativeError,
    parse_binary,
    parse_text,
)
from callscope.ingest.packets import IngestPath, Packet, StreamRefused
from callscope.ingest.stream_sink import SinkFailed, StreamSink
from callscope.ingest.twilio import (
    KeyPressed,
    MarkReached,
    StreamStart,
    StreamStopped,
    TwilioStream,
)
from callscope.metrics import INGEST_PACKETS
from callscope.process import Process

log = structlog.get_logger(__name__)
router = APIRouter()

_CLOSE_WAIT_S: Final = 5.0
_FAILED_REASON: Final = "the server failed; reconnect and resume"

T = TypeVar("T")


class _Socket:
    """The one place that sends on a media socket and closes it (once)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.closed = False
        self._going_away = False
        self._client_gone = False
        self._gone = asyncio.Event()

    async def go_away(self, write_what_came: Callable[[], Awaitable[None]]) -> None:
        """For a shutdown: read nothing more, write what came (`write_what_came`), then close
        with 1001. A client that sends faster than its frames are written would otherwise
        keep the shutdown waiting for ever; what it sends from now on is not stored (a
        native stream's client resends it elsewhere: it was never acknowledged)."""
        self._going_away = True
        try:
            with contextlib.suppress(SinkFailed):
                await write_what_came()
            await self.close(closes.GOING_AWAY, GOING_AWAY_REASON)
        finally:
            self._gone.set()

    async def send(self, message: msgspec.Struct) -> None:
        """Send unless closed. A client that has gone is not an error: what it sent before
        leaving is still read and written (`receive` ends at its disconnect), only the answers
        are dropped, and a native client resends whatever it saw no ack for."""
        if self.closed or self._client_gone:
            return
        try:
            await self.websocket.send_text(msgspec.json.encode(message).decode())
        except (WebSocketDisconnect, RuntimeError):
            self._client_gone = True

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):  # the client may be gone already
            await asyncio.wait_for(self.websocket.close(code, reason[:120]), _CLOSE_WAIT_S)

    async def receive(self, limit: int) -> str | bytes | None:
        """The next message, or None once the client has gone (or we closed, or are going
        away: then once the socket is closed)."""
        if self.closed or self.websocket.client_state != WebSocketState.CONNECTED:
            return None
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if self._going_away:
            await self._gone.wait()
            return None
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > limit:
            raise StreamRefused(f"a message is limited to {limit} bytes")
        return data


def _authorize(tokens: TokenChecker, websocket: WebSocket) -> None:
    """An ingest token as `Authorization: Bearer` (or `?token=` for the native stream)."""
    token = websocket.query_params.get("token")
    if token is not None:
        tokens.authorize_token(token, Role.ingest)
    else:
        tokens.authorize(websocket.headers.get("authorization"), Role.ingest)


def _refusal_code(exc: ServiceError) -> int:
    return closes.FORBIDDEN if isinstance(exc, Forbidden) else closes.NOT_AUTHENTICATED


async def _opened(
    websocket: WebSocket, process: Process, check: Callable[[], T]
) -> tuple[_Socket, T] | None:
    """Accept the upgrade, then close it again while the process is stopping (1001) or when
    `check` refuses its credentials (4401, 4403). Otherwise the socket and what `check`
    returned. Once the process has closed its sockets for a shutdown, the upgrade is refused
    with HTTP 503 instead (1001 only for one that raced the shutdown)."""
    if process.sockets.closing():
        await deny_upgrade(websocket, ShuttingDown(GOING_AWAY_REASON))
        return None
    await websocket.accept()
    socket = _Socket(websocket)
    if process.sockets.closing():
        await socket.close(closes.GOING_AWAY, GOING_AWAY_REASON)
        return None
    try:
        checked = check()
    except (NotAuthenticated, Forbidden) as exc:
        await socket.close(_refusal_code(exc), exc.detail)
        return None
    return socket, checked


@router.websocket("/v1/media/twilio")
async def twilio_media(websocket: WebSocket) -> None:
    process: Process = websocket.app.state.process
    tokens: TokenChecker = websocket.app.state.tokens
    opened = await _opened(
        websocket, process, lambda: _twilio_credentials(process, tokens, websocket)
    )
    if opened is None:
        return
    socket, authorized = opened
    session = _TwilioSession(process, tokens, socket, authorized=authorized)
    with process.sockets.registered(session.close_for_shutdown):
        await session.run()


def _twilio_credentials(process: Process, tokens: TokenChecker, websocket: WebSocket) -> bool:
    """True when the upgrade request carries valid credentials; False when the stream must
    bring a `token` custom parameter instead. Raises for credentials that are wrong."""
    if websocket.headers.get("authorization") is not None:
        tokens.authorize(websocket.headers["authorization"], Role.ingest)
        return True
    signature = websocket.headers.get("x-twilio-signature")
    auth_token = process.settings.twilio_auth_token
    if signature is not None and auth_token is not None:
        url = _public_url(process, websocket)
        if not is_valid_twilio_signature(auth_token.get_secret_value(), url, signature):
            raise NotAuthenticated("the X-Twilio-Signature does not match this URL")
        return True
    return tokens.disabled


def _public_url(process: Process, websocket: WebSocket) -> str:
    """The URL Twilio requested: the configured public origin (else wss:// and the Host
    header), the path and the query."""
    origin = process.settings.public_url or f"wss://{websocket.headers.get('host', '')}"
    query = websocket.url.query
    return origin.rstrip("/") + websocket.url.path + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class _Started:
    call_id: str
    sink: StreamSink


class _TwilioSession:
    def __init__(
        self, process: Process, tokens: TokenChecker, socket: _Socket, *, authorized: bool
    ) -> None:
        self._process = process
        self._tokens = tokens
        self._socket = socket
        self._authorized = authorized
        self._stream = TwilioStream(max_packet_bytes=process.settings.max_packet_bytes)
        self._started: _Started | None = None
        self._sink: StreamSink | None = None

    async def run(self) -> None:
        limit = self._process.settings.media_max_message_bytes
        try:
            while (message := await self._socket.receive(limit)) is not None:
                if await self._handle(self._stream.feed(message)):
                    return
            await self._drain()  # closed without `stop`: the call stays IN_PROGRESS
        except StreamRefused as exc:
            INGEST_PACKETS.add(IngestPath.twilio, "invalid")
            await self._drain()
            await self._socket.close(closes.BAD_REQUEST, str(exc))
        except (NotAuthenticated, Forbidden) as exc:
            await self._socket.close(_refusal_code(exc), exc.detail)
        except (CallFormatConflict, CallNotAcceptingPackets) as exc:
            await self._drain()
            await self._socket.close(closes.CONFLICT, exc.detail)
        except SequenceOutOfRange as exc:  # a final sequence at `stop` past the bound
            await self._socket.close(closes.BAD_REQUEST, f"{exc.code}: {exc.detail}")
        except SinkFailed as exc:
            await self._socket.close(closes.TRY_AGAIN_LATER, str(exc))
        except Exception:  # the socket's boundary: keep what came, then say the server failed
            log.exception("media_stream_failed", transport="twilio")
            with contextlib.suppress(Exception):
                await self._drain()
            await self._socket.close(closes.INTERNAL_ERROR, _FAILED_REASON)
        finally:
            if self._sink is not None:
                await self._sink.abandon()

    async def close_for_shutdown(self) -> None:
        """Write what the stream sent, then close with 1001; the call stays IN_PROGRESS for
        the stream's reconnect (to another replica)."""
        await self._socket.go_away(self._drain)

    async def _handle(self, meaning: object) -> bool:
        """Act on one message; True when the stream is over."""
        if isinstance(meaning, Packet):
            started = self._after_start()
            await started.sink.put(started.call_id, meaning)
        elif isinstance(meaning, StreamStart):
            await self._start(meaning)
        elif isinstance(meaning, KeyPressed | MarkReached):
            await self._record(meaning)
        elif isinstance(meaning, StreamStopped):
            await self._stop(meaning)
            return True
        return False

    async def _start(self, start: StreamStart) -> None:
        if not self._authorized:
            self._tokens.authorize_token(start.token, Role.ingest)
        structlog.contextvars.bind_contextvars(call_id=start.call_id)  # this socket's lines
        calls = self._process.calls
        state, _ = await calls.declare(start.call_id, start.audio_format, start.metadata)
        if state != CallState.IN_PROGRESS:
            raise CallNotAcceptingPackets(f"call {start.call_id} is {state}")
        self._sink = StreamSink(
            self._process.committer,
            path=IngestPath.twilio,
            max_pending=self._process.settings.media_max_pending_frames,
            on_written=self._written,
        )
        self._started = _Started(start.call_id, self._sink)
        log.info("media_stream_started", call_id=start.call_id, transport="twilio")

    def _after_start(self) -> "_Started":
        if self._started is None:  # TwilioStream refuses these already; never past here
            raise StreamRefused("media before start")
        return self._started

    async def _record(self, meaning: KeyPressed | MarkReached) -> None:
        call_id = self._after_start().call_id
        if isinstance(meaning, KeyPressed):
            data: dict[str, Any] = {"track": meaning.track.value, "digit": meaning.digit}
            await self._process.calls.record_event(call_id, EventType.dtmf, data)
        else:
            await self._process.calls.record_event(call_id, EventType.mark, {"name": meaning.name})

    async def _stop(self, stopped: StreamStopped) -> None:
        call_id = self._after_start().call_id
        await self._drain()
        if self._socket.closed:
            return  # a frame was refused while draining
        await self._process.calls.complete(
            call_id,
            stopped.final_sequences,
            reason="stream_stopped",
        )
        log.info("media_stream_stopped", call_id=call_id, transport="twilio")
        await self._socket.close(closes.NORMAL, "stream stopped; call completed")

    async def _drain(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            await sink.drain()

    async def _written(
        self, frames: Sequence[tuple[str, Packet]], results: Sequence[BatchResult]
    ) -> None:
        """Twilio reads nothing back: a frame that could not be stored ends the stream."""
        for (_, packet), result in zip(frames, results, strict=True):
            if isinstance(result, ServiceError):
                code = closes.CONFLICT if result.status == 409 else closes.BAD_REQUEST  # noqa: PLR2004
                reason = f"{result.code}: chunk {packet.sequence} of {packet.track}"
                await self._socket.close(code, reason)
                raise SinkFailed(reason)


@router.websocket("/v1/calls/{call_id}/media")
async def native_media(websocket: WebSocket, call_id: str) -> None:
    process: Process = websocket.app.state.process
    tokens: TokenChecker = websocket.app.state.tokens
    opened = await _opened(websocket, process, lambda: _authorize(tokens, websocket))
    if opened is None:
        return
    socket, _ = opened
    if not is_call_id(call_id):
        await socket.close(closes.BAD_REQUEST, "the call id is not valid")
        return
    session = _NativeSession(process, socket, call_id)
    with process.sockets.registered(session.close_for_shutdown):
        await session.run()


class _NativeSession:
    def __init__(self, process: Process, socket: _Socket, call_id: str) -> None:
        self._process = process
        self._socket = socket
        self._call_id = call_id
        self._trackers: dict[Track, AckTracker] = {}
        self._sink = StreamSink(
            process.committer,
            path=IngestPath.stream,
            max_pending=process.settings.media_max_pending_frames,
            on_written=self._written,
        )

    async def run(self) -> None:
        settings = self._process.settings
        try:
            for track, (through, missing) in (
                await self._process.calls.stream_position(self._call_id)
            ).items():
                self._trackers[track] = AckTracker(through, missing)
                await self._socket.send(self._trackers[track].message(track))
            while (
                message := await self._socket.receive(settings.media_max_message_bytes)
            ) is not None:
                if isinstance(message, bytes):
                    frame: Packet | EndOfStream = parse_binary(
                        message, max_packet_bytes=settings.max_packet_bytes
                    )
                else:
                    frame = parse_text(message, max_packet_bytes=settings.max_packet_bytes)
                if isinstance(frame, EndOfStream):
                    await self._end(frame)
                    return
                await self._sink.put(self._call_id, frame)
            await self._sink.drain()  # the client left: keep what it sent
        except StreamRefused as exc:
            INGEST_PACKETS.add(IngestPath.stream, "invalid")
            await self._sink.drain()
            await self._socket.close(closes.BAD_REQUEST, str(exc))
        except SinkFailed as exc:
            await self._socket.close(closes.TRY_AGAIN_LATER, str(exc))
        except Exception:  # the socket's boundary: keep (and ack) what came, then say so
            log.exception("media_stream_failed", transport="stream")
            with contextlib.suppress(Exception):
                await self._sink.drain()
            await self._socket.close(closes.INTERNAL_ERROR, _FAILED_REASON)
        finally:
            await self._sink.abandon()

    async def close_for_shutdown(self) -> None:
        """Write every frame received so far and ack it, then close with 1001: the client
        resumes on another replica from its last ack."""
        await self._socket.go_away(self._sink.drain)

    async def _end(self, end: EndOfStream) -> None:
        await self._sink.drain()
        try:
            call = await self._process.calls.complete(
                self._call_id,
                end.final_sequences,
                reason="stream_ended",
            )
        except SequenceOutOfRange as exc:  # the frames are stored; the call stays open
            await self._socket.send(
                NativeError(
                    code=exc.code,
                    detail=exc.detail,
                    track=str(exc.extra["track"]),
                    sequence=int(exc.extra["sequence"]),
                )
            )
            await self._socket.close(closes.BAD_REQUEST, f"{exc.code}: a final sequence")
            return
        except CallNotFound as exc:  # no frame of it was stored (all refused, or none sent)
            await self._socket.close(closes.BAD_REQUEST, f"{exc.code}: no frame was stored")
            return
        await self._socket.send(NativeEnded(call_id=self._call_id, state=call.state))
        await self._socket.close(closes.NORMAL, "stream ended; call completed")

    async def _written(
        self, frames: Sequence[tuple[str, Packet]], results: Sequence[BatchResult]
    ) -> None:
        """Ack each track that stored something; say what was refused, and why."""
        touched: set[Track] = set()
        for (_, packet), result in zip(frames, results, strict=True):
            if isinstance(result, IngestOutcome):
                tracker = self._trackers.setdefault(packet.track, AckTracker(0))
                tracker.record((packet.sequence,))
                touched.add(packet.track)
                continue
            await self._socket.send(
                NativeError(
                    code=result.code,
                    detail=result.detail,
                    track=packet.track.value,
                    sequence=packet.sequence,
                )
            )
            if isinstance(result, CallNotAcceptingPackets):
                await self._socket.close(closes.CONFLICT, result.detail)
                raise SinkFailed(result.detail)
        for track in sorted(touched):
            await self._socket.send(self._trackers[track].message(track))
