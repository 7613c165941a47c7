"""callscope's own media stream, `WS /v1/calls/{call_id}/media`: its frames, parsed, and the
cumulative acks it answers with. Pure: no I/O; api/v1/media.py drives it.

Audio comes in two forms:
- binary frames: an 18-byte header, then the audio. Header (network byte order): kind (u8,
  1 = audio), track (u8, 0 = inbound, 1 = outbound), sequence (u64), timestamp (f64, seconds
  since the epoch).
- JSON text frames: the HTTP packet's fields plus `track`:
  `{"track": "inbound", "sequence": 1, "data": "<base64>", "timestamp": 1764340000.02}`.
The text frame `{"type": "end"}` ends the call once every frame before it is committed;
`{"type": "end", "final_sequences": {"inbound": 1500, "outbound": 1498}}` also says which
sequence was each track's last.

The server acks what has committed, per track: `{"type": "ack", "track", "through",
"missing"}`: `through` is the highest sequence stored, `missing` the ranges below it that
are not (what a client that reconnects must resend, if it still has them).
"""

import bisect
import math
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from callscope.calls.schemas import MAX_SEQUENCE
from callscope.calls.vocabulary import Track
from callscope.ingest import strict_base64
from callscope.ingest.packets import Packet, StreamRefused

HEADER: Final = struct.Struct("!BBQd")
KIND_AUDIO: Final = 1
TRACK_CODES: Final = {0: Track.inbound, 1: Track.outbound}
MAX_LISTED_RANGES: Final = 100


class NativeAudio(msgspec.Struct, forbid_unknown_fields=True):
    """An audio frame as JSON text: the HTTP packet's fields plus its track. (Binary frames
    carry the same: an 18-byte header (kind 1, track 0|1, sequence u64, timestamp f64, network
    byte order), then the audio.)"""

    track: str
    sequence: int
    data: str
    timestamp: float


class NativeEnd(msgspec.Struct, forbid_unknown_fields=True):
    """The end of the stream: the call is completed once every frame before it is stored."""

    type: Literal["end"]
    final_sequences: dict[str, int] = msgspec.field(default_factory=dict)


class NativeAck(msgspec.Struct, tag_field="type", tag="ack"):
    """What one track has stored: the highest sequence, and the ranges below it missing."""

    track: str
    through: int
    missing: list[tuple[int, int]]
    missing_truncated: bool


class NativeError(msgspec.Struct, tag_field="type", tag="error"):
    """A frame that was not stored, and why (`packet_conflict`, `packet_size_invalid`,
    `sequence_out_of_range`, `call_not_accepting_packets`); the stream goes on unless it is
    closed. Also the answer to an `end` whose final sequence is out of range (then 4400)."""

    code: str
    detail: str
    track: str
    sequence: int


class NativeEnded(msgspec.Struct, tag_field="type", tag="ended"):
    """After `end`: every frame is stored and the call completed; the socket closes (1000)."""

    call_id: str
    state: str


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The client is done: complete the call once its frames are committed, with each named
    track's last sequence (frames up to it that never came count as missing)."""

    final_sequences: dict[Track, int]


_AUDIO: Final = msgspec.json.Decoder(NativeAudio)
_END: Final = msgspec.json.Decoder(NativeEnd)


def binary_frame(track: Track, sequence: int, timestamp: float, audio: bytes) -> bytes:
    """A binary audio frame, as a client writes it."""
    code = next(code for code, named in TRACK_CODES.items() if named == track)
    return HEADER.pack(KIND_AUDIO, code, sequence, timestamp) + audio


def parse_binary(frame: bytes, *, max_packet_bytes: int) -> Packet:
    if len(frame) <= HEADER.size:
        raise StreamRefused(f"a binary frame is an {HEADER.size}-byte header and audio")
    kind, code, sequence, timestamp = HEADER.unpack_from(frame)
    if kind != KIND_AUDIO:
        raise StreamRefused(f"unknown frame kind {kind}")
    track = TRACK_CODES.get(code)
    if track is None:
        raise StreamRefused(f"unknown track {code}")
    return _packet(track, sequence, timestamp, frame[HEADER.size :], max_packet_bytes)


def parse_text(text: str | bytes, *, max_packet_bytes: int) -> Packet | EndOfStream:
    try:
        audio = _AUDIO.decode(text)
    except msgspec.ValidationError as exc:
        try:
            end = _END.decode(text)
        except msgspec.DecodeError as end_exc:
            if _names_a_type(text):
                raise StreamRefused(f"not an end message: {end_exc}") from end_exc
            raise StreamRefused(f"not an audio frame: {exc}") from exc
        return EndOfStream(_final_sequences(end.final_sequences))
    except msgspec.DecodeError as exc:
        raise StreamRefused(f"not JSON: {exc}") from exc
    try:
        track = Track(audio.track)
    except ValueError:
        raise StreamRefused(f"unknown track {audio.track[:40]!r}") from None
    try:
        data = strict_base64.decode(audio.data)
    except ValueError as exc:
        raise StreamRefused(f"data of sequence {audio.sequence} is not valid base64") from exc
    return _packet(track, audio.sequence, audio.timestamp, data, max_packet_bytes)


def _names_a_type(text: str | bytes) -> bool:
    """Whether a message that is neither frame nor end has a `type`: it meant to be an end
    (audio frames have none), so that is the refusal to explain."""
    return b'"type"' in (text.encode() if isinstance(text, str) else text)


def _final_sequences(named: dict[str, int]) -> dict[Track, int]:
    finals = {}
    for name, sequence in named.items():
        try:
            track = Track(name)
        except ValueError:
            raise StreamRefused(f"unknown track {name[:40]!r}") from None
        if not 0 <= sequence <= MAX_SEQUENCE:
            raise StreamRefused(f"final sequence {sequence} is out of range")
        finals[track] = sequence
    return finals


def _packet(
    track: Track, sequence: int, timestamp: float, data: bytes, max_packet_bytes: int
) -> Packet:
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise StreamRefused(f"sequence {sequence} is out of range")
    if not math.isfinite(timestamp) or timestamp < 0:
        raise StreamRefused("the timestamp must be finite seconds since the epoch")
    if not data:
        raise StreamRefused(f"sequence {sequence} has no audio")
    if len(data) > max_packet_bytes:
        raise StreamRefused(f"sequence {sequence} is over {max_packet_bytes} bytes")
    return Packet(
        track=track,
        sequence=sequence,
        data=data,
        sent_at=timestamp,
        received_at=time.time(),
    )


class AckTracker:
    """What one track has stored, as acks say it: the highest sequence, and the holes below
    it (sorted, disjoint ranges). Starts from what the database held when the socket opened."""

    def __init__(self, through: int, missing: Sequence[tuple[int, int]] = ()) -> None:
        self.through = through
        self._starts = [first for first, _ in missing]
        self._ends = [last for _, last in missing]

    @property
    def missing(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def record(self, sequences: Iterable[int]) -> None:
        """These sequences are stored now."""
        for sequence in sequences:
            if sequence > self.through:
                if sequence > self.through + 1:
                    self._starts.append(self.through + 1)
                    self._ends.append(sequence - 1)
                self.through = sequence
            else:
                self._fill(sequence)

    def _fill(self, sequence: int) -> None:
        index = bisect.bisect_right(self._starts, sequence) - 1
        if index < 0 or self._ends[index] < sequence:
            return  # not a hole: stored before
        first, last = self._starts[index], self._ends[index]
        del self._starts[index], self._ends[index]
        for low, high in ((sequence + 1, last), (first, sequence - 1)):  # right part first
            if low <= high:
                self._starts.insert(index, low)
                self._ends.insert(index, high)

    def message(self, track: Track) -> NativeAck:
        return NativeAck(
            track=track.value,
            through=self.through,
            missing=self.missing[:MAX_LISTED_RANGES],
            missing_truncated=len(self._starts) > MAX_LISTED_RANGES,
        )
