"""Pydantic request and response models of the v1 HTTP API (their descriptions are the docs)."""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from callscope.audio.formats import AudioEncoding
from callscope.calls.states import CallState
from callscope.ingest.packets import PacketStatus

# 1-128 of A-Za-z0-9._:- and not only dots ("." and ".." cannot be addressed in a URL path).
CALL_ID_PATTERN = r"^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
MAX_CALL_ID_LENGTH = 128
MAX_SEQUENCE = 2**63 - 1


def _decode_base64(value: object) -> bytes:
    """Strict standard base64: alphabet, padding and canonical trailing bits all checked."""
    if not isinstance(value, str):
        raise ValueError("data must be a base64 string")  # noqa: TRY004 - pydantic wants ValueError
    try:
        decoded = binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("data is not valid base64") from exc
    if not decoded:
        raise ValueError("data must decode to at least one byte")
    if base64.b64encode(decoded).decode("ascii") != value:
        raise ValueError("data is not canonical base64")
    return decoded


Base64Audio = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    WithJsonSchema({"type": "string", "format": "byte", "examples": ["f39/f39/"]}),
]


def utc_datetime(value: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC) that PostgreSQL can store."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


UtcDatetime = Annotated[datetime, AfterValidator(utc_datetime)]

CallIdPath = Annotated[
    str,
    Path(
        pattern=CALL_ID_PATTERN,
        min_length=1,
        max_length=MAX_CALL_ID_LENGTH,
        description="The call's id: 1 to 128 characters of A-Z a-z 0-9 . _ : -, not only dots",
        examples=["CA5f2c9e-0001"],
    ),
]


class PacketIn(BaseModel):
    """One audio packet of a live call."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"sequence": 1, "data": "f39/f39/", "timestamp": 1764340000.02}]
        },
    )

    sequence: int = Field(
        ge=0,
        le=MAX_SEQUENCE,
        description="Packet number within the call, counting from 1 (0 is accepted too).",
    )
    data: Base64Audio = Field(
        description="The audio payload, standard base64 with padding (strictly validated).",
    )
    timestamp: float = Field(
        ge=0, allow_inf_nan=False, description="When the sender captured it, seconds since epoch."
    )


class PacketAck(BaseModel):
    """The answer to an ingested packet, sent once it is committed."""

    call_id: str = Field(description="The call the packet belongs to.")
    sequence: int = Field(description="The packet's sequence number.")
    status: PacketStatus = Field(
        description="`accepted`: stored now; `duplicate`: the same packet was already stored."
    )
    in_order: bool = Field(
        description="False when the packet arrived after a higher sequence (late) "
        "or was a duplicate."
    )
    state: CallState = Field(description="The call's state after this packet.")
    missing: int = Field(description="Packets currently missing in 1..highest sequence.")


class CallCreateIn(BaseModel):
    """A call declared before its packets, with its audio format."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "call_id": "pbx-7-20261128-0042",
                    "encoding": "mulaw",
                    "sample_rate": 8000,
                    "metadata": {"queue": "billing", "agent": "a-17"},
                }
            ]
        },
    )

    call_id: str = Field(
        min_length=1,
        max_length=MAX_CALL_ID_LENGTH,
        pattern=CALL_ID_PATTERN,
        description="The call's id, as its packets will name it.",
    )
    encoding: Literal["mulaw", "pcm_s16le"] | None = Field(
        None,
        description="`mulaw` (G.711 μ-law, 8 kHz) or `pcm_s16le` (signed 16-bit little-endian "
        "PCM, 8 or 16 kHz), mono. Default: CALLSCOPE_AUDIO_ENCODING.",
    )
    sample_rate: int | None = Field(
        None, description="8000 or 16000 (μ-law: 8000). Default: CALLSCOPE_AUDIO_SAMPLE_RATE."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Anything the PBX wants kept with the call."
    )

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _has_nul(value):  # PostgreSQL's jsonb cannot store it
            raise ValueError("metadata may not contain NUL characters")
        return value


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class AudioFormatOut(BaseModel):
    encoding: AudioEncoding = Field(description="`mulaw` or `pcm_s16le`, mono.")
    sample_rate: int = Field(description="Samples per second.")


class CompleteIn(BaseModel):
    """End of call, as the sender declares it."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"final_sequence": 1500}]}
    )

    final_sequence: int | None = Field(
        None,
        ge=0,
        le=MAX_SEQUENCE,
        description="The call's last sequence; packets up to it that never came count as missing.",
    )


class SequenceRange(BaseModel):
    first: int = Field(description="First missing sequence of the range.")
    last: int = Field(description="Last missing sequence of the range (inclusive).")


class PacketStatsOut(BaseModel):
    received: int = Field(description="Distinct packets stored.")
    duplicates: int = Field(description="Repeated packets acknowledged but not stored again.")
    late: int = Field(description="Packets that arrived after a higher sequence.")
    missing: int = Field(description="Holes in 1..max(max_sequence, final_sequence).")
    missing_ranges: list[SequenceRange] = Field(description="The holes, in order.")
    missing_ranges_truncated: bool = Field(
        description="True when the call has more holes than listed."
    )
    max_sequence: int | None = Field(description="Highest sequence stored.")
    final_sequence: int | None = Field(description="Last sequence declared at completion.")
    bytes_received: int = Field(description="Decoded audio bytes stored.")


class AiAttemptOut(BaseModel):
    epoch: int = Field(description="Budget epoch: 0, then +1 per operator re-drive.")
    attempt: int = Field(description="Attempt number within the epoch, from 1.")
    step: str = Field(description="`transcribe` or `sentiment`.")
    outcome: str | None = Field(
        description="ok, failed (retryable), rejected (permanent), abandoned (worker died); "
        "null while running."
    )
    error: str | None = Field(description="What went wrong, if anything.")
    duration_s: float | None = Field(description="How long the provider call took.")
    started_at: datetime = Field(description="When the attempt started.")


class SegmentOut(BaseModel):
    start: float = Field(description="Seconds from the start of the call.")
    end: float = Field(description="Seconds from the start of the call.")
    text: str = Field(description="What was said.")


class TranscriptOut(BaseModel):
    text: str = Field(description="The whole transcript.")
    segments: list[SegmentOut] = Field(description="Timed segments.")


class SentimentOut(BaseModel):
    label: str = Field(description="positive, neutral or negative.")
    score: float = Field(description="-1 (negative) to 1 (positive).")
    trend: list[float] = Field(
        description="The score of each transcript segment, in order (empty if the engine "
        "scores only the whole call)."
    )


class AiOut(BaseModel):
    epoch: int = Field(description="Current budget epoch (re-drives so far).")
    attempts_used: int = Field(description="Provider calls spent in the current epoch.")
    last_error: str | None = Field(description="The last provider error, if any.")
    attempts: list[AiAttemptOut] = Field(description="Every attempt, oldest first.")
    transcript: TranscriptOut | None = Field(description="Set once transcription succeeded.")
    sentiment: SentimentOut | None = Field(description="Set once scoring succeeded.")


class CallOut(BaseModel):
    """A call with its packet statistics and AI processing."""

    call_id: str = Field(description="The call's id.")
    state: CallState = Field(description="Where the call is in its life cycle.")
    created_at: datetime = Field(description="When its first packet arrived.")
    updated_at: datetime = Field(description="Last change to the call.")
    last_packet_at: datetime = Field(description="When its last packet arrived.")
    completed_at: datetime | None = Field(description="When it left IN_PROGRESS.")
    packets: PacketStatsOut = Field(description="Packet accounting.")
    audio: AudioFormatOut = Field(description="The format of the call's audio packets.")
    metadata: dict[str, Any] = Field(description="What was declared with the call.")
    ai: AiOut = Field(description="Transcription and sentiment: attempts and results.")


class CallSummaryOut(BaseModel):
    call_id: str = Field(description="The call's id.")
    state: CallState = Field(description="Where the call is in its life cycle.")
    created_at: datetime = Field(description="When its first packet arrived.")
    updated_at: datetime = Field(description="Last change to the call.")
    packets_received: int = Field(description="Distinct packets stored.")
    packets_missing: int = Field(description="Holes in the sequence so far.")


class CallListOut(BaseModel):
    items: list[CallSummaryOut] = Field(description="Calls, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class CallEventOut(BaseModel):
    id: int = Field(description="Monotonically increasing event id.")
    call_id: str = Field(description="The call's id.")
    type: str = Field(description="`call.created`, `call.state_changed` or `call.ai_attempt`.")
    from_state: CallState | None = Field(description="State before the change.")
    to_state: CallState | None = Field(description="State after the change.")
    data: dict[str, Any] = Field(description="Details, e.g. the reason of a completion.")
    created_at: datetime = Field(description="When the change committed.")


class CallEventListOut(BaseModel):
    items: list[CallEventOut] = Field(description="Events in the order they happened.")
    next_after: int | None = Field(description="Pass as `after` for more; null at end.")
