"""The supervisor feed's messages (envelope version 1): their published schemas and encoders.

Event messages carry the `call_events` row they announce:
`{"v": 1, "type", "event_id", "call_id", "time", "data"}`. `call.progress` is the one event
without a row (packet counts change too often for that): one message per flush carries the
counts of every call that changed, `data.calls = [CallProgress, …]`, with `event_id` and
`call_id` null. It is not replayed by `since=`; a snapshot has the same counts.

The models below are the schema (served in `/asyncapi.json`); an event is encoded once for all
clients straight from its row, and a test checks real messages against the schema.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from callscope.audio.formats import AudioEncoding
from callscope.calls.read_model import CallProgress, CallSummary, HeadlineSentiment
from callscope.calls.states import CallState
from callscope.calls.vocabulary import AiStep, AttemptOutcome, EventType, Track

ENVELOPE_VERSION: Final = 1
PROGRESS: Final = "call.progress"
AI_PROVIDER: Final = "ai.provider"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = Field(description="Envelope version.")


class _Event(_Message):
    event_id: int = Field(description="The `call_events` id; resume with `?since=` it.")
    call_id: str = Field(description="The call it happened to.")
    time: datetime = Field(description="When the change committed (UTC).")


class CreatedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoding: AudioEncoding | None = Field(None, description="Declared audio encoding.")
    sample_rate: int | None = Field(None, description="Declared sample rate (Hz).")


class StateChangedData(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    from_: CallState = Field(alias="from", description="State before the change.")
    to: CallState = Field(description="State after the change.")
    reason: str = Field(
        description="complete_request, stream_stopped (Twilio), stream_ended (native stream), "
        "idle_timeout, job_started, ai_done, ai_failed or redrive; other fields say more "
        "(idle_seconds, epoch, attempts, last_error)."
    )


class AttemptData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(description="Budget epoch of the attempt.")
    attempt: int = Field(description="Attempt number within the epoch, from 1.")
    step: AiStep = Field(description="Which provider call this was.")
    track: Track = Field(description="Which side of the call it was for.")
    outcome: AttemptOutcome | None = Field(description="null while it runs.")
    error: str | None = Field(description="What went wrong, if anything.")
    duration_s: float | None = Field(description="How long the provider call took.")


class ArchivedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transcript: str | None = Field(description="The whole transcript.")
    sentiment: HeadlineSentiment | None = Field(
        description="The call's headline sentiment (the caller's), with its trend."
    )


class FailedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(description="Provider calls spent in the last epoch.")
    last_error: str | None = Field(description="The last error.")


class CallCreated(_Event):
    type: Literal[EventType.created]
    data: CreatedData


class CallStateChanged(_Event):
    type: Literal[EventType.state_changed]
    data: StateChangedData


class CallAiAttempt(_Event):
    type: Literal[EventType.ai_attempt]
    data: AttemptData


class CallArchived(_Event):
    type: Literal[EventType.archived]
    data: ArchivedData


class CallFailed(_Event):
    type: Literal[EventType.failed]
    data: FailedData


class DtmfData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track: Track = Field(description="The side that pressed it (the caller, usually).")
    digit: str = Field(description="0-9, *, #, or A-D.")


class MarkData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The mark's name, as the carrier reported it.")


class ProgressData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: list[CallProgress] = Field(description="Latest counts of every call that changed.")


class CallDtmf(_Event):
    type: Literal[EventType.dtmf]
    data: DtmfData


class CallMark(_Event):
    type: Literal[EventType.mark]
    data: MarkData


class CallProgressMessage(_Message):
    type: Literal["call.progress"]
    event_id: None = Field(description="Always null: progress has no event row.")
    call_id: None = Field(description="Always null: see data.calls.")
    time: datetime = Field(description="When the counts were read (UTC).")
    data: ProgressData


class AiProviderData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker: str = Field(description="The worker whose circuit breaker changed (host:pid).")
    state: Literal["closed", "open", "half_open"] = Field(
        description="open: no provider calls for now; half_open: one probe call is let "
        "through; closed: calls go again."
    )
    degraded: bool = Field(description="The AI provider is failing: state is not closed.")
    previous: Literal["closed", "open", "half_open"] = Field(description="The state before.")
    failure_rate: float = Field(description="Share of failed calls in the breaker's window.")
    calls_in_window: int = Field(description="Provider calls the window held.")
    retry_in_s: float = Field(description="Seconds until the next probe (0 unless open).")
    time: datetime = Field(description="When the breaker changed (UTC).")


class AiProvider(_Message):
    """The AI provider's health as a worker sees it: sent on every change of a worker's
    circuit breaker, and after each snapshot (or `live`) for every worker that is degraded."""

    type: Literal["ai.provider"]
    event_id: None = Field(description="Always null: provider health has no event row.")
    call_id: None = Field(description="Always null: it concerns every call.")
    time: datetime = Field(description="When the breaker changed (UTC).")
    data: AiProviderData


class Snapshot(_Message):
    """Every call a supervisor should see now; events after `last_event_id` follow it."""

    type: Literal["snapshot"]
    reason: str = Field(
        description="connect, listener_ready, reconnect, overflow, event_lost, since_unknown "
        "or too_far_behind."
    )
    last_event_id: int = Field(description="Events after this id follow the snapshot.")
    calls: list[CallSummary] = Field(description="Active calls newest first, then finished ones.")
    truncated: bool = Field(description="More active calls exist than the snapshot holds.")


class Live(_Message):
    """After a `since=` replay: everything up to `last_event_id` was sent; live from here."""

    type: Literal["live"]
    last_event_id: int = Field(description="The last event the replay covered.")


class Ping(_Message):
    """Sent after `CALLSCOPE_LIVE_PING_INTERVAL` seconds of silence."""

    type: Literal["ping"]
    time: datetime = Field(description="Server time (UTC).")


SupervisorMessage = Annotated[
    CallCreated
    | CallStateChanged
    | CallAiAttempt
    | CallArchived
    | CallFailed
    | CallDtmf
    | CallMark
    | CallProgressMessage
    | AiProvider
    | Snapshot
    | Live
    | Ping,
    Field(discriminator="type"),
]
SUPERVISOR_MESSAGES: Final = TypeAdapter[Any](SupervisorMessage)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the feed: `text` is what goes on the wire."""

    event_id: int | None
    call_id: str | None
    text: str
    type: str
    # Events: when their transaction wrote them (its start: the delay to the send measured
    # from it is an upper bound of commit to send), seconds since the epoch.
    written_at: float | None = None


def event_message(row: Mapping[Any, Any]) -> Outgoing:
    """The message for one `call_events` row (a database row or its NOTIFY payload)."""
    data = dict(row["data"] or {})
    if row["type"] == EventType.state_changed:
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
    return Outgoing(
        event_id=row["id"],
        call_id=row["call_id"],
        text=_encode(message),
        type=row["type"],
        written_at=_moment(row["created_at"]).timestamp(),
    )


def progress_message(calls: Sequence[CallProgress], at: datetime) -> Outgoing:
    """Packet counts of calls that changed, in one message."""
    message = {
        "v": ENVELOPE_VERSION,
        "type": PROGRESS,
        "event_id": None,
        "call_id": None,
        "time": utc_iso(at),
        "data": {"calls": [call.model_dump(mode="json") for call in calls]},
    }
    return Outgoing(event_id=None, call_id=None, text=_encode(message), type=PROGRESS)


def ai_provider_message(payload: str) -> Outgoing:
    """The message for one AI health notification (a worker's breaker changed)."""
    data = AiProviderData.model_validate_json(payload)
    message = {
        "v": ENVELOPE_VERSION,
        "type": AI_PROVIDER,
        "event_id": None,
        "call_id": None,
        "time": utc_iso(data.time),
        "data": data.model_dump(mode="json"),
    }
    return Outgoing(event_id=None, call_id=None, text=_encode(message), type=AI_PROVIDER)


def snapshot_message(
    calls: Sequence[CallSummary], *, last_event_id: int, reason: str, truncated: bool
) -> str:
    return _encode(
        {
            "v": ENVELOPE_VERSION,
            "type": "snapshot",
            "reason": reason,
            "last_event_id": last_event_id,
            "calls": [call.model_dump(mode="json") for call in calls],
            "truncated": truncated,
        }
    )


def live_message(last_event_id: int) -> str:
    return _encode({"v": ENVELOPE_VERSION, "type": "live", "last_event_id": last_event_id})


def ping_message(at: datetime) -> str:
    return _encode({"v": ENVELOPE_VERSION, "type": "ping", "time": utc_iso(at)})


def utc_iso(value: datetime | str) -> str:
    """ISO 8601 in UTC with a `Z`; NOTIFY payloads carry the writer's time zone."""
    return _moment(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
