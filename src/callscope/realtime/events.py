"""The supervisor feed's messages (envelope version 1), each encoded once for every client.

Event messages carry the `call_events` row they announce:
`{"v": 1, "type", "event_id", "call_id", "time", "data"}`. `call.progress` is the one event
without a row (packet counts change too often for that): one message per flush carries the
counts of every call that changed, `data.calls = [{"call_id", "packets"}, …]`, with
`event_id` and `call_id` null. It is not replayed by `since=`; a snapshot has the same counts.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

ENVELOPE_VERSION: Final = 1
PROGRESS: Final = "call.progress"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the feed: `text` is what goes on the wire."""

    event_id: int | None
    call_id: str | None
    text: str


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=_json_default)


def event_message(row: Mapping[Any, Any]) -> Outgoing:
    """The message for one `call_events` row (a database row or its NOTIFY payload)."""
    data = dict(row["data"] or {})
    if row["type"] == "call.state_changed":
        data["from"] = row["from_state"]
        data["to"] = row["to_state"]
    message = {
        "v": ENVELOPE_VERSION,
        "type": row["type"],
        "event_id": row["id"],
        "call_id": row["call_id"],
        "time": utc_iso(row["created_at"]),
        "data": data,
    }
    return Outgoing(event_id=row["id"], call_id=row["call_id"], text=encode(message))


def progress_entry(call: Mapping[str, Any]) -> dict[str, Any]:
    """One call's part of a `call.progress` message (from a live call summary)."""
    return {"call_id": call["call_id"], "packets": call["packets"]}


def progress_message(entries: list[dict[str, Any]], at: datetime) -> Outgoing:
    """Packet counts of calls that changed (see `progress_entry`), in one message."""
    message = {
        "v": ENVELOPE_VERSION,
        "type": PROGRESS,
        "event_id": None,
        "call_id": None,
        "time": utc_iso(at),
        "data": {"calls": entries},
    }
    return Outgoing(event_id=None, call_id=None, text=encode(message))


def snapshot_message(
    calls: list[dict[str, Any]], *, last_event_id: int, reason: str, truncated: bool
) -> str:
    """Every call a supervisor should see now; events after `last_event_id` follow it."""
    return encode(
        {
            "v": ENVELOPE_VERSION,
            "type": "snapshot",
            "reason": reason,
            "last_event_id": last_event_id,
            "calls": calls,
            "truncated": truncated,
        }
    )


def live_message(last_event_id: int) -> str:
    """After a `since=` replay: everything up to `last_event_id` was sent; live from here."""
    return encode({"v": ENVELOPE_VERSION, "type": "live", "last_event_id": last_event_id})


def ping_message(at: datetime) -> str:
    return encode({"v": ENVELOPE_VERSION, "type": "ping", "time": utc_iso(at)})


def utc_iso(value: datetime | str) -> str:
    """ISO 8601 in UTC with a `Z`; NOTIFY payloads carry the writer's time zone."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return utc_iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
