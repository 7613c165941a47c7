"""Pydantic request models of the v1 HTTP API, the packet acknowledgement and the event history
(their descriptions are the docs). Calls themselves are rendered by `read_model`."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import Path
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    field_validator,
)

from callscope.audio.formats import SAMPLE_RATES, AudioEncoding
from callscope.calls.ids import CALL_ID_DESCRIPTION, CALL_ID_PATTERN, MAX_CALL_ID_LENGTH, CallId
from callscope.calls.states import CallState
from callscope.calls.storable import MAX_JSON_DEPTH, json_problem
from callscope.calls.vocabulary import EventType
from callscope.ingest import strict_base64
from callscope.ingest.packets import PacketStatus

# Sequences stay within the integers every JSON parser reads exactly (2^53 - 1).
MAX_SEQUENCE: Final = 2**53 - 1
NUL_FREE_PATTERN: Final = "^[^\\u0000]*$"  # PostgreSQL's text and jsonb cannot store NUL
# Canonical standard base64 with padding, at least one byte: the bits after the last byte of
# a padded group must be zero (Q== is 'A', QR== is refused).
BASE64_PATTERN: Final = (
    "^(?:[A-Za-z0-9+/]{4})*"
    "(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$"
)


def _integral(value: object) -> object:
    """JSON has one number type: 7.0 is the integer 7 (JSON Schema agrees); 7.5 and "7" are
    still refused by the strict models."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Sequence = Annotated[int, Field(ge=0, le=MAX_SEQUENCE), BeforeValidator(_integral)]


def _decode_base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("data must be a base64 string")  # noqa: TRY004 - pydantic wants ValueError
    try:
        return strict_base64.decode(value)
    except ValueError as exc:
        if str(exc) == "empty":
            raise ValueError("data must decode to at least one byte") from exc
        raise ValueError(f"data is {exc}") from exc


Base64Audio = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    WithJsonSchema(
        {
            "type": "string",
            "format": "byte",
            "pattern": BASE64_PATTERN,
            "minLength": 4,
            "examples": ["f39/f39/"],
        }
    ),
]


def base64_length_limit(max_bytes: int) -> dict[str, Any]:
    """The JSON Schema of a canonical base64 string that decodes to at most `max_bytes`: up to
    the last whole group of three bytes, or one more group padded to the bytes left."""
    whole, left = divmod(max_bytes, 3)
    if left == 0:
        return {"maxLength": 4 * whole}
    last_group = {"minLength": 4 * whole + 4, "maxLength": 4 * whole + 4}
    padding = "==$" if left == 1 else "=$"
    return {"anyOf": [{"maxLength": 4 * whole}, {**last_group, "pattern": padding}]}


_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
_LATEST: Final = datetime.max.replace(tzinfo=UTC)


def _instant(value: object) -> datetime:
    """An RFC 3339 date-time with its offset (JSON Schema's `date-time`), in UTC. An instant
    beyond what Python can hold (0001-01-01T00:00:00+01:00) is the earliest or latest one:
    as a filter bound it selects the same calls."""
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-28T17:00:00Z")
    moment = datetime.fromisoformat(value.upper())
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return _EARLIEST if moment.year == 1 else _LATEST


UtcDatetime = Annotated[
    datetime,
    PlainValidator(_instant),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-28T17:00:00Z"]}),
]

CallIdPath = Annotated[
    str,
    Path(
        pattern=CALL_ID_PATTERN,
        min_length=1,
        max_length=MAX_CALL_ID_LENGTH,
        description=CALL_ID_DESCRIPTION,
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

    sequence: Sequence = Field(
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

    call_id: CallId = Field(description="The call's id, as its packets will name it.")
    encoding: AudioEncoding | None = Field(
        None,
        strict=False,  # the enum's values are what JSON carries
        description="`mulaw` (G.711 μ-law, 8 kHz) or `pcm_s16le` (signed 16-bit little-endian "
        "PCM, 8 or 16 kHz), mono. Default: CALLSCOPE_AUDIO_ENCODING.",
    )
    sample_rate: Literal[8000, 16000] | None = Field(
        None,
        description="8000 or 16000 (μ-law: 8000 only). Without `encoding`, a rate of the "
        "server's default encoding. Default: that encoding's CALLSCOPE_AUDIO_SAMPLE_RATE, or its "
        "first rate.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Anything the PBX wants kept with the call: JSON without NUL characters, "
        f"nested at most {MAX_JSON_DEPTH} levels deep (this object counting 1).",
        json_schema_extra={
            "propertyNames": {"pattern": NUL_FREE_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
        },
    )

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        if (problem := json_problem(value)) is not None:
            raise ValueError(f"metadata cannot be stored: {problem}")
        return value


METADATA_VALUE_SCHEMA: Final = {
    "description": "Any JSON value without NUL characters.",
    "anyOf": [
        {"type": "string", "pattern": NUL_FREE_PATTERN},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/MetadataValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NUL_FREE_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
        },
    ],
}


def declared_format_schema(default_encoding: AudioEncoding) -> list[dict[str, Any]]:
    """The formats `CallCreateIn` may declare, as JSON Schema `anyOf` branches: a rate must be
    one of its encoding's (of the server's default encoding when none is named)."""
    absent = {"type": "null"}
    branches = [
        {
            "properties": {
                "encoding": {"const": encoding.value},
                "sample_rate": {"anyOf": [{"enum": list(rates)}, absent]},
            },
            "required": ["encoding"],
        }
        for encoding, rates in SAMPLE_RATES.items()
    ]
    default_rates = {"anyOf": [{"enum": list(SAMPLE_RATES[default_encoding])}, absent]}
    branches.append(
        {
            "properties": {
                "encoding": absent,
                "sample_rate": default_rates,
            }
        }
    )
    return branches


class CompleteIn(BaseModel):
    """End of call, as the sender declares it."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"final_sequence": 1500}]}
    )

    final_sequence: Sequence | None = Field(
        None,
        description="The last sequence of the call's inbound track (where HTTP packets go); "
        "packets up to it that never came count as missing.",
    )


class CallEventOut(BaseModel):
    id: int = Field(description="Monotonically increasing event id.")
    call_id: str = Field(description="The call's id.")
    type: EventType = Field(description="What happened.")
    from_state: CallState | None = Field(description="State before the change.")
    to_state: CallState | None = Field(description="State after the change.")
    data: dict[str, Any] = Field(description="Details, e.g. the reason of a completion.")
    created_at: datetime = Field(description="When the change committed.")


class CallEventListOut(BaseModel):
    items: list[CallEventOut] = Field(description="Events in the order they happened.")
    next_after: int | None = Field(description="Pass as `after` for more; null at end.")
