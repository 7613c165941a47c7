"""`WS /ws/supervisor`: a snapshot (or a `since=` replay), then live events, then pings.

Close codes: 4401 no or unknown token, 4403 a token of the wrong kind, 4400 bad query
parameters; all sent before any message. A client that falls behind is resynced with a fresh
snapshot; one that keeps falling behind is closed with 4408 (see `Subscriber`).
"""

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import QueryParams

from callscope.auth.tokens import Role
from callscope.calls.schemas import CALL_ID_PATTERN, MAX_CALL_ID_LENGTH
from callscope.errors import Forbidden, NotAuthenticated
from callscope.realtime.events import (
    event_message,
    live_message,
    ping_message,
    progress_entry,
    progress_message,
    snapshot_message,
)
from callscope.realtime.subscriber import Resync, Subscriber
from callscope.resources import Resources

log = structlog.get_logger(__name__)
router = APIRouter()

CLOSE_BAD_REQUEST: Final = 4400
CLOSE_NOT_AUTHENTICATED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_TOO_SLOW: Final = 4408
CLOSE_INTERNAL_ERROR: Final = 1011
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
        if call_id is not None and (
            len(call_id) > MAX_CALL_ID_LENGTH or not re.fullmatch(CALL_ID_PATTERN, call_id)
        ):
            raise FeedParametersInvalid("call_id is not a valid call id")
        return cls(since=int(since) if since is not None else None, call_id=call_id)


@router.websocket("/ws/supervisor")
async def supervisor_feed(websocket: WebSocket) -> None:
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    refusal = _refusal(resources, websocket)
    if refusal is not None:
        await websocket.close(*refusal)
        return
    try:
        parameters = FeedParameters.parse(websocket.query_params)
    except FeedParametersInvalid as exc:
        await websocket.close(CLOSE_BAD_REQUEST, str(exc))
        return
    subscriber = resources.hub.subscribe(call_id=parameters.call_id)
    try:
        await _serve(resources, websocket, subscriber, parameters.since)
    finally:
        resources.hub.unsubscribe(subscriber)


def _refusal(resources: Resources, websocket: WebSocket) -> tuple[int, str] | None:
    token = websocket.query_params.get("token")
    try:
        if token is None:
            resources.tokens.authorize(websocket.headers.get("authorization"), Role.supervisor)
        else:
            resources.tokens.authorize_token(token, Role.supervisor)
    except NotAuthenticated as exc:
        return CLOSE_NOT_AUTHENTICATED, str(exc)
    except Forbidden as exc:
        return CLOSE_FORBIDDEN, str(exc)
    return None


async def _serve(
    resources: Resources, websocket: WebSocket, subscriber: Subscriber, since: int | None
) -> None:
    """Send until the client leaves; reading is only how we notice that it left."""
    sender = asyncio.create_task(_Feed(resources, websocket, subscriber).run(since))
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
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass  # client messages carry nothing the feed needs


class _Feed:
    """The sending side of one supervisor's connection."""

    def __init__(self, resources: Resources, websocket: WebSocket, subscriber: Subscriber):
        self._live = resources.live
        self._settings = resources.settings
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
            await self._close(CLOSE_INTERNAL_ERROR, "the feed failed; reconnect")

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
                await self._send(ping_message(datetime.now(UTC)))
                continue
            if isinstance(item, Resync):
                if subscriber.cannot_keep_up:
                    await self._close(CLOSE_TOO_SLOW, "the client cannot keep up with the feed")
                    return
                await self._snapshot(item.reason)
            elif item.event_id is None or item.event_id > subscriber.watermark:
                await self._send(item.text)

    async def _send(self, text: str) -> None:
        """One message. A connection that is gone, or a client that has not taken a message
        for `live_send_timeout` seconds (it stopped reading), ends the feed like a disconnect:
        the subscriber and its queue are released, whatever the socket still holds."""
        try:
            await asyncio.wait_for(
                self._websocket.send_text(text), self._settings.live_send_timeout
            )
        except (TimeoutError, RuntimeError, OSError) as exc:
            raise WebSocketDisconnect(code=1006) from exc

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._websocket.close(code, reason), CLOSE_WAIT_S)

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
            )
        )

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
            await self._send(event_message(row).text)
        if replay.calls:  # counts changed while away carry no event: bring them up to date
            entries = [progress_entry(call) for call in replay.calls]
            await self._send(progress_message(entries, datetime.now(UTC)).text)
        self._subscriber.watermark = replay.last_event_id
        await self._send(live_message(replay.last_event_id))
