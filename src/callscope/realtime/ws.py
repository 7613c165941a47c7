"""`WS /ws/supervisor`: a snapshot (or a `since=` replay), then live events, then pings.

Close codes: 4401 no or unknown token, 4403 a token of the wrong kind, 4400 bad query
parameters; all sent before any message. A client that falls behind is resynced with a fresh
snapshot; one that keeps falling behind is closed with 4408 (see `Subscriber`).
"""

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from opentelemetry.util.types import AttributeValue
from starlette.datastructures import QueryParams

from callscope import tracing
from callscope.api import closes
from callscope.api.problems import deny_upgrade
from callscope.auth.tokens import Role, TokenChecker
from callscope.calls.ids import is_call_id
from callscope.draining import GOING_AWAY_REASON
from callscope.errors import Forbidden, NotAuthenticated, ShuttingDown
from callscope.metrics import LIVE_CLOSED, LIVE_DELAY_SECONDS, LIVE_MESSAGES, LIVE_RESYNCS
from callscope.process import Process
from callscope.realtime.asyncapi import asyncapi_document
from callscope.realtime.messages import (
    Outgoing,
    event_message,
    live_message,
    ping_message,
    progress_message,
    snapshot_message,
)
from callscope.realtime.subscriber import Resync, Subscriber

log = structlog.get_logger(__name__)
router = APIRouter()

CLOSE_WAIT_S: Final = 5.0  # a close handshake with a client that does not answer ends here


class FeedParametersInvalid(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class FeedParameters:
    since: int | None
    call_id: str | None

    @classmethod
    def parse(cls, query: QueryParams) -> "FeedParameters":
        since = query.get("since")
        call_id = query.get("call_id")
        if since is not None and not re.fullmatch(r"[0-9]{1,18}", since):
            raise FeedParametersInvalid("since must be an event id (a whole number ≥ 0)")
        if call_id is not None and not is_call_id(call_id):
            raise FeedParametersInvalid("call_id is not a valid call id")
        return cls(since=int(since) if since is not None else None, call_id=call_id)


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3 document of the WebSocket channels."""
    return asyncapi_document()


@router.websocket("/ws/supervisor")
async def supervisor_feed(websocket: WebSocket) -> None:
    process: Process = websocket.app.state.process
    if process.sockets.closing():  # shutting down: a balancer retries the 503 elsewhere
        await deny_upgrade(websocket, ShuttingDown(GOING_AWAY_REASON))
        return
    await websocket.accept()
    refusal = _refusal(websocket)
    if refusal is not None:
        await _close(websocket, *refusal)
        return
    try:
        parameters = FeedParameters.parse(websocket.query_params)
    except FeedParametersInvalid as exc:
        await _close(websocket, closes.BAD_REQUEST, str(exc))
        return
    if process.sockets.closing():
        await _close(websocket, closes.GOING_AWAY, GOING_AWAY_REASON)
        return
    subscriber = process.hub.subscribe(call_id=parameters.call_id)

    async def close_for_shutdown() -> None:
        await _close(websocket, closes.GOING_AWAY, GOING_AWAY_REASON)

    try:
        with process.sockets.registered(close_for_shutdown):
            await _serve(process, websocket, subscriber, parameters.since)
    finally:
        process.hub.unsubscribe(subscriber)


def _refusal(websocket: WebSocket) -> tuple[int, str] | None:
    tokens: TokenChecker = websocket.app.state.tokens
    token = websocket.query_params.get("token")
    try:
        if token is None:
            tokens.authorize(websocket.headers.get("authorization"), Role.supervisor)
        else:
            tokens.authorize_token(token, Role.supervisor)
    except NotAuthenticated as exc:
        return closes.NOT_AUTHENTICATED, str(exc)
    except Forbidden as exc:
        return closes.FORBIDDEN, str(exc)
    return None


async def _serve(
    process: Process, websocket: WebSocket, subscriber: Subscriber, since: int | None
) -> None:
    """Send until the client leaves; reading is only how we notice that it left."""
    sender = asyncio.create_task(_Feed(process, websocket, subscriber).run(since))
    reader = asyncio.create_task(_read_until_closed(websocket))
    try:
        await asyncio.wait([sender, reader], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader):
            task.cancel()
        for task in (sender, reader):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await task


async def _read_until_closed(websocket: WebSocket) -> None:
    while (message := await websocket.receive())["type"] != "websocket.disconnect":
        pass  # client messages carry nothing the feed needs
    LIVE_CLOSED.labels(str(message.get("code", 1005))).inc()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close from our side (once the client has gone, closing fails quietly)."""
    LIVE_CLOSED.labels(str(code)).inc()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_WAIT_S)


class _Feed:
    """The sending side of one supervisor's connection."""

    def __init__(self, process: Process, websocket: WebSocket, subscriber: Subscriber):
        self._live = process.live
        self._hub = process.hub
        self._settings = process.settings
        self._websocket = websocket
        self._subscriber = subscriber

    async def run(self, since: int | None) -> None:
        """The feed; if it fails (say the database is away for a snapshot), the client is told
        with 1011 and reconnects (the dashboard does so by itself, with `since=`)."""
        try:
            await self._feed(since)
        except WebSocketDisconnect:
            raise
        except Exception:
            log.exception("live_feed_failed")
            await self._close(closes.INTERNAL_ERROR, "the feed failed; reconnect")

    async def _feed(self, since: int | None) -> None:
        subscriber = self._subscriber
        if since is None:
            subscriber.resync("connect")
        else:
            await self._replay(since)
        while True:
            try:
                item = await asyncio.wait_for(subscriber.next(), self._settings.live_ping_interval)
            except TimeoutError:
                await self._send(ping_message(datetime.now(UTC)), "ping")
                continue
            if isinstance(item, Resync):
                if subscriber.cannot_keep_up:
                    await self._close(closes.TOO_SLOW, "the client cannot keep up with the feed")
                    return
                await self._snapshot(item.reason)
            elif item.event_id is None or item.event_id > subscriber.watermark:
                await self._send_item(item)

    async def _send_item(self, item: Outgoing) -> None:
        """An event (its span and delay run from when it was written) or progress."""
        if item.written_at is None:
            await self._send(item.text, item.type)
            return
        attributes: dict[str, AttributeValue] = {
            "callscope.event_id": item.event_id or 0,
            "callscope.event": item.type,
        }
        with tracing.span("live.send", attributes=attributes, started_at=item.written_at):
            await self._send(item.text, item.type)
        LIVE_DELAY_SECONDS.observe(max(0.0, time.time() - item.written_at))

    async def _send(self, text: str, kind: str) -> None:
        """One message. A connection that is gone, or a client that has not taken a message
        for `live_send_timeout` seconds (it stopped reading), ends the feed like a disconnect:
        the subscriber and its queue are released, whatever the socket still holds."""
        try:
            await asyncio.wait_for(
                self._websocket.send_text(text), self._settings.live_send_timeout
            )
        except (TimeoutError, RuntimeError, OSError) as exc:
            raise WebSocketDisconnect(code=1006) from exc
        LIVE_MESSAGES.labels(kind).inc()

    async def _close(self, code: int, reason: str) -> None:
        await _close(self._websocket, code, reason)

    async def _snapshot(self, reason: str) -> None:
        snapshot = await self._live.snapshot(
            active_limit=self._settings.live_active_limit,
            recent_limit=self._settings.live_recent_limit,
            call_id=self._subscriber.call_id,
        )
        self._subscriber.watermark = snapshot.last_event_id
        await self._send(
            snapshot_message(
                snapshot.calls,
                last_event_id=snapshot.last_event_id,
                reason=reason,
                truncated=snapshot.truncated,
            ),
            "snapshot",
        )
        if reason != "connect":
            LIVE_RESYNCS.labels(reason).inc()
        await self._send_provider_health()

    async def _replay(self, since: int) -> None:
        """The events after `since`, or a snapshot when they cannot be replayed exactly."""
        replay = await self._live.replay(
            since,
            limit=self._settings.live_replay_limit,
            active_limit=self._settings.live_active_limit,
            call_id=self._subscriber.call_id,
        )
        if since > replay.last_event_id:
            self._subscriber.resync("since_unknown")  # e.g. the database was replaced
            return
        if not replay.complete:
            self._subscriber.resync("too_far_behind")
            return
        for row in replay.events:
            message = event_message(row)
            await self._send(message.text, message.type)
        if replay.calls:  # counts changed while away carry no event: bring them up to date
            progress = progress_message(replay.calls, datetime.now(UTC))
            await self._send(progress.text, progress.type)
        self._subscriber.watermark = replay.last_event_id
        await self._send(live_message(replay.last_event_id), "live")
        await self._send_provider_health()

    async def _send_provider_health(self) -> None:
        """After a snapshot or a replay: each worker that finds the AI provider degraded."""
        for message in self._hub.degraded_providers():
            await self._send(message.text, message.type)
