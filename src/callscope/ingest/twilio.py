"""Twilio Media Streams, as Twilio sends them: messages parsed into what the stream means.
Pure: no I/O; `WS /v1/media/twilio` (api/v1/media.py) drives it.

A stream is `connected`, one `start`, then `media` (and `dtmf`, `mark`) messages, then `stop`.
Numbers arrive as strings (`sequenceNumber`, `chunk`, `timestamp`); `chunk` counts the media
messages of one track from 1: it is the frame's sequence within its track. Anything else is a
`StreamRefused` with the reason the socket is closed with.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from callscope.audio.codec import from_big_endian_pcm16
from callscope.audio.formats import AudioEncoding, AudioFormat, UnsupportedFormat
from callscope.calls.ids import is_call_id
from callscope.calls.schemas import MAX_SEQUENCE
from callscope.calls.storable import json_problem, text_problem
from callscope.calls.vocabulary import Track
from callscope.ingest import strict_base64
from callscope.ingest.packets import Packet, StreamRefused

CALL_ID_PARAMETER: Final = "call_id"
TOKEN_PARAMETER: Final = "token"  # noqa: S105 - the parameter's name, not a secret
_DIGITS: Final = frozenset("0123456789")
# `mediaFormat.encoding` → how callscope stores it. Twilio sends μ-law; bridges that speak its
# protocol may send 16-bit linear PCM, which RTP's L16 puts in network byte order.
_ENCODINGS: Final = {
    "audio/x-mulaw": AudioEncoding.mulaw,
    "audio/x-l16": AudioEncoding.pcm_s16le,
    "audio/l16": AudioEncoding.pcm_s16le,
}
_TWILIO_FORMAT: Final = AudioFormat(AudioEncoding.mulaw, 8000)
# Twilio names the dtmf track "inbound_track"; media tracks are "inbound" and "outbound".
_TRACKS: Final = {
    "inbound": Track.inbound,
    "outbound": Track.outbound,
    "inbound_track": Track.inbound,
    "outbound_track": Track.outbound,
}


class TwilioMediaFormat(msgspec.Struct, rename="camel"):
    encoding: str
    sample_rate: int
    channels: int = 1


class TwilioStartDetails(msgspec.Struct, rename="camel"):
    call_sid: str
    stream_sid: str = ""
    account_sid: str = ""
    tracks: list[str] = msgspec.field(default_factory=lambda: ["inbound"])
    custom_parameters: dict[str, str] = msgspec.field(default_factory=dict)
    media_format: TwilioMediaFormat | None = None


class TwilioMediaDetails(msgspec.Struct):
    track: str
    chunk: str
    timestamp: str
    payload: str


class TwilioDtmfDetails(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class TwilioMarkDetails(msgspec.Struct):
    name: str


class TwilioConnected(msgspec.Struct, tag_field="event", tag="connected"):
    """First message of a stream."""

    protocol: str = ""
    version: str = ""


class TwilioStart(msgspec.Struct, tag_field="event", tag="start", rename="camel"):
    """Declares the call: `customParameters.call_id` (else `callSid`) names it, the other
    custom parameters become its metadata, `customParameters.token` may authenticate."""

    start: TwilioStartDetails
    sequence_number: str = "0"
    stream_sid: str = ""


class TwilioMedia(msgspec.Struct, tag_field="event", tag="media", rename="camel"):
    """One frame: `chunk` is its sequence within its track, `payload` its base64 audio in
    the stream's `mediaFormat` (μ-law from Twilio)."""

    media: TwilioMediaDetails
    sequence_number: str = "0"
    stream_sid: str = ""


class TwilioDtmf(msgspec.Struct, tag_field="event", tag="dtmf", rename="camel"):
    """A key pressed: recorded as a `call.dtmf` event."""

    dtmf: TwilioDtmfDetails
    sequence_number: str = "0"
    stream_sid: str = ""


class TwilioMark(msgspec.Struct, tag_field="event", tag="mark", rename="camel"):
    """A marker in the stream: recorded as a `call.mark` event."""

    mark: TwilioMarkDetails
    sequence_number: str = "0"
    stream_sid: str = ""


class TwilioStop(msgspec.Struct, tag_field="event", tag="stop", rename="camel"):
    """The end of the stream: the call is completed once its frames are stored."""

    sequence_number: str = "0"
    stream_sid: str = ""


Message = TwilioConnected | TwilioStart | TwilioMedia | TwilioDtmf | TwilioMark | TwilioStop
_DECODER: Final = msgspec.json.Decoder(Message)


@dataclass(frozen=True, slots=True)
class StreamStart:
    """What `start` declares: the call, its metadata, and a token if it carries one."""

    call_id: str
    metadata: dict[str, str]
    token: str | None
    tracks: tuple[Track, ...]
    audio_format: AudioFormat = _TWILIO_FORMAT


@dataclass(frozen=True, slots=True)
class KeyPressed:
    track: Track
    digit: str


@dataclass(frozen=True, slots=True)
class MarkReached:
    name: str


@dataclass(frozen=True, slots=True)
class StreamStopped:
    final_sequences: dict[Track, int]  # the last chunk of each track this socket saw


Meaning = StreamStart | Packet | KeyPressed | MarkReached | StreamStopped | None


@dataclass(slots=True)
class TwilioStream:
    """One socket's Twilio stream: feed it each text message, in order of arrival."""

    max_packet_bytes: int
    clock: Callable[[], float] = time.time  # epoch seconds
    started_at: float | None = None  # epoch seconds when `start` arrived
    last_chunk: dict[Track, int] = field(default_factory=dict)
    pcm16_big_endian: bool = False  # payloads are L16: swapped to little-endian for storage

    def feed(self, text: str | bytes) -> Meaning:
        """What the message means; None for `connected`. Raises StreamRefused."""
        try:
            message = _DECODER.decode(text)
        except msgspec.DecodeError as exc:
            raise StreamRefused(f"not a Twilio Media Streams message: {exc}") from exc
        if isinstance(message, TwilioConnected):
            return None
        if isinstance(message, TwilioStart):
            return self._start(message.start)
        if self.started_at is None:
            raise StreamRefused(f"{_event_name(message)} before start")
        if isinstance(message, TwilioMedia):
            return self._media(message.media)
        if isinstance(message, TwilioDtmf):
            digit = _storable(message.dtmf.digit, "the dtmf digit")[:8]
            return KeyPressed(track=_track(message.dtmf.track), digit=digit)
        if isinstance(message, TwilioMark):
            return MarkReached(name=_storable(message.mark.name, "the mark's name")[:200])
        return StreamStopped(final_sequences=dict(self.last_chunk))

    def _start(self, start: TwilioStartDetails) -> StreamStart:
        if self.started_at is not None:
            raise StreamRefused("a second start")
        audio_format = _audio_format(start.media_format)
        parameters = dict(start.custom_parameters)
        call_id = parameters.pop(CALL_ID_PARAMETER, None) or start.call_sid
        if not is_call_id(call_id):
            raise StreamRefused("the call id (customParameters.call_id or callSid) is not valid")
        token = parameters.pop(TOKEN_PARAMETER, None)
        metadata = {**parameters, "call_sid": start.call_sid}
        if (problem := json_problem(metadata)) is not None:
            raise StreamRefused(f"the custom parameters and callSid cannot be stored: {problem}")
        self.started_at = self.clock()
        self.pcm16_big_endian = audio_format.encoding == AudioEncoding.pcm_s16le
        return StreamStart(
            call_id=call_id,
            metadata=metadata,
            token=token,
            tracks=tuple(_track(name) for name in start.tracks),
            audio_format=audio_format,
        )

    def _media(self, media: TwilioMediaDetails) -> Packet:
        track = _track(media.track)
        chunk = _number(media.chunk, "chunk")
        if not 1 <= chunk <= MAX_SEQUENCE:
            raise StreamRefused(f"chunk {media.chunk} is out of range")
        offset_ms = _number(media.timestamp, "timestamp")
        try:
            data = strict_base64.decode(media.payload)
        except ValueError as exc:
            raise StreamRefused(f"payload of chunk {chunk} is {_base64_problem(exc)}") from exc
        if len(data) > self.max_packet_bytes:
            raise StreamRefused(f"payload of chunk {chunk} is over {self.max_packet_bytes} bytes")
        if self.pcm16_big_endian:
            if len(data) % 2:
                raise StreamRefused(f"payload of chunk {chunk} is not whole 16-bit samples")
            data = from_big_endian_pcm16(data)
        if chunk > self.last_chunk.get(track, 0):
            self.last_chunk[track] = chunk
        assert self.started_at is not None  # noqa: S101 - media only after start
        return Packet(
            track=track,
            sequence=chunk,
            data=data,
            sent_at=self.started_at + offset_ms / 1000,
            received_at=time.time(),
        )


def _audio_format(declared: TwilioMediaFormat | None) -> AudioFormat:
    """`mediaFormat` under the rules of `POST /v1/calls` (Twilio's when it is absent)."""
    if declared is None:
        return _TWILIO_FORMAT
    encoding = _ENCODINGS.get(declared.encoding.lower())
    if encoding is None:
        known = ", ".join(_ENCODINGS)
        raise StreamRefused(f"unsupported media format {declared.encoding[:40]!r}: {known}")
    if declared.channels != 1:
        raise StreamRefused(f"{declared.channels} channels: a stream's track is mono")
    try:
        return AudioFormat(encoding, declared.sample_rate)
    except UnsupportedFormat as exc:
        raise StreamRefused(f"unsupported media format: {exc}") from None


def _storable(text: str, what: str) -> str:
    if (problem := text_problem(text)) is not None:
        raise StreamRefused(f"{what} {problem}")
    return text


def _base64_problem(exc: ValueError) -> str:
    return "empty" if str(exc) == "empty" else "not valid base64"


def _track(name: str) -> Track:
    try:
        return _TRACKS[name]
    except KeyError:
        raise StreamRefused(f"unknown track {name[:40]!r}") from None


def _number(text: str, what: str) -> int:
    if not text or len(text) > 19 or not _DIGITS.issuperset(text):  # noqa: PLR2004 - int64
        raise StreamRefused(f"{what} {text[:40]!r} is not a whole number")
    return int(text)


def _event_name(message: Message) -> str:
    tag: str = type(message).__struct_config__.tag  # type: ignore[assignment]  # always a str here
    return tag
