"""The AsyncAPI 3 document of callscope's WebSocket channels, served at `/asyncapi.json`
beside `/openapi.json`: the supervisor feed (schemas from `realtime/messages.py`) and the two
media streams (schemas from `ingest/twilio.py` and `ingest/native.py`)."""

from typing import Any, Final

import msgspec

from callscope import __version__
from callscope.ingest import native, twilio
from callscope.realtime.messages import SUPERVISOR_MESSAGES

ASYNCAPI_VERSION: Final = "3.0.0"
_REF_TEMPLATE: Final = "#/components/schemas/{model}"
_MSGSPEC_REF: Final = "#/components/schemas/{name}"

_SUPERVISOR_CHANNEL: Final = (
    "A snapshot on connect (or, with `?since=<event_id>`, the missed events then `live`), then "
    "live events, batched `call.progress` and `ping`s. Authenticate with `?token=` or "
    "`Authorization: Bearer` (a supervisor token). `?call_id=` filters to one call. Refusals "
    "close before any message: 4401 no or unknown token, 4403 wrong kind of token, 4400 bad "
    "parameters; 4408 a client that cannot keep up, 1011 a failing feed (reconnect with since=)."
)
_TWILIO_CHANNEL: Final = (
    "Twilio Media Streams, unchanged: JSON text messages `connected`, `start`, `media`, "
    "`dtmf`, `mark`, `stop`; μ-law at 8 kHz, mono; tracks inbound (the caller) and outbound "
    "(the agent). Credentials, checked before anything is stored: `Authorization: Bearer` (an "
    "ingest token), a valid `X-Twilio-Signature` (with CALLSCOPE_TWILIO_AUTH_TOKEN), or a "
    "`token` custom parameter on `start`. `stop` completes the call once its frames are "
    "stored (close 1000); a socket that closes without `stop` leaves it IN_PROGRESS. Nothing "
    "is sent back. Close codes: 4400 bad input, including a chunk more than "
    "CALLSCOPE_MAX_SEQUENCE_JUMP ahead of its track (`sequence_out_of_range: chunk N of "
    "<track>`; the reason says what; what came before it is "
    "stored), 4401/4403 credentials, 4409 a call that no longer takes frames or a conflicting "
    "frame, 1013 overloaded or storage away."
)
_NATIVE_CHANNEL: Final = (
    "callscope's own stream of one call, for bridges that want a delivery guarantee. "
    "Authenticate with `Authorization: Bearer` or `?token=` (an ingest token). Frames are "
    "binary (an 18-byte header: kind u8 = 1, track u8 (0 inbound, 1 outbound), sequence u64, "
    "timestamp f64 seconds since the epoch, network byte order; then the audio) or JSON text "
    "(`NativeAudio`). On connect, and after each commit, the server sends an `ack` per track "
    "it stored something on: nothing is acked before it is committed. A client that "
    "reconnects resends from its last ack (and the listed missing ranges it still has): "
    "nothing is lost, nothing stored twice. A frame more than CALLSCOPE_MAX_SEQUENCE_JUMP "
    "ahead of its track gets an `error` (`sequence_out_of_range`) and the stream goes on. "
    "`NativeEnd` completes the call. Close codes as "
    "on the Twilio channel."
)


def asyncapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    supervisor = _pydantic_messages(schemas)
    twilio_in = _msgspec_messages(schemas, list(twilio.Message.__args__))
    native_in = _msgspec_messages(schemas, [native.NativeAudio, native.NativeEnd])
    native_out = _msgspec_messages(
        schemas, [native.NativeAck, native.NativeError, native.NativeEnded]
    )
    messages = {
        name: _message(name, schemas[name])
        for name in [*supervisor, *twilio_in, *native_in, *native_out]
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "callscope WebSocket channels",
            "version": __version__,
            "description": "Every message is one WebSocket message; JSON unless a channel "
            "says otherwise.",
        },
        "channels": {
            "supervisor": _channel(
                "/ws/supervisor", "Supervisor feed", _SUPERVISOR_CHANNEL, supervisor
            ),
            "twilioMedia": _channel(
                "/v1/media/twilio", "Twilio Media Streams", _TWILIO_CHANNEL, twilio_in
            ),
            "nativeMedia": _channel(
                "/v1/calls/{call_id}/media",
                "callscope media stream",
                _NATIVE_CHANNEL,
                [*native_in, *native_out],
                parameters={"call_id": {"description": "The call's id (as in the HTTP API)."}},
            ),
        },
        "operations": {
            "sendSupervisorFeed": _operation("send", "supervisor", supervisor),
            "receiveTwilioMedia": _operation("receive", "twilioMedia", twilio_in),
            "receiveNativeMedia": _operation("receive", "nativeMedia", native_in),
            "sendNativeAcks": _operation("send", "nativeMedia", native_out),
        },
        "components": {"schemas": schemas, "messages": messages},
    }


def _pydantic_messages(schemas: dict[str, Any]) -> list[str]:
    union = SUPERVISOR_MESSAGES.json_schema(ref_template=_REF_TEMPLATE, mode="serialization")
    schemas.update(union.pop("$defs"))
    return [ref["$ref"].rsplit("/", 1)[1] for ref in union["oneOf"]]


def _msgspec_messages(schemas: dict[str, Any], types: list[type[msgspec.Struct]]) -> list[str]:
    _, components = msgspec.json.schema_components(types, ref_template=_MSGSPEC_REF)
    schemas.update(components)
    return [kind.__name__ for kind in types]


def _message(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "title": schema.get("title", name),
        "summary": schema.get("description", ""),
        "contentType": "application/json",
        "payload": {"$ref": _REF_TEMPLATE.format(model=name)},
    }


def _channel(
    address: str,
    title: str,
    description: str,
    names: list[str],
    *,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "title": title,
        "description": description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
    }
    if parameters:
        channel["parameters"] = parameters
    return channel


def _operation(action: str, channel: str, names: list[str]) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names],
    }
