"""The media streams' pure parts: Twilio messages and what they mean, native frames, acks,
Twilio's signature, and two tracks as one stereo file."""

import base64
import json
import random
import struct

import msgspec
import pytest

from callscope.audio.codec import stereo
from callscope.audio.formats import AudioEncoding, AudioFormat
from callscope.auth.twilio import is_valid_twilio_signature, twilio_signature
from callscope.calls.vocabulary import Track
from callscope.ingest.native import AckTracker, EndOfStream, binary_frame, parse_binary, parse_text
from callscope.ingest.packets import Packet, StreamRefused
from callscope.ingest.twilio import (
    KeyPressed,
    MarkReached,
    StreamStart,
    StreamStopped,
    TwilioStream,
)


def _twilio() -> TwilioStream:
    return TwilioStream(max_packet_bytes=400, clock=lambda: 1_000.0)


MULAW_8K = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


def _start(media_format: dict[str, object] | None = MULAW_8K, **parameters: str) -> str:
    details = {
        "callSid": "CA1",
        "streamSid": "MZ1",
        "tracks": ["inbound", "outbound"],
        "customParameters": parameters,
        **({"mediaFormat": media_format} if media_format is not None else {}),
    }
    return json.dumps({"event": "start", "sequenceNumber": "1", "start": details})


def _media(track: str, chunk: str, payload: str = "f39/f39/", timestamp: str = "40") -> str:
    body = {"track": track, "chunk": chunk, "timestamp": timestamp, "payload": payload}
    return json.dumps({"event": "media", "sequenceNumber": "2", "media": body})


def test_a_twilio_stream_means_a_call_its_frames_its_keys_and_its_end() -> None:
    stream = _twilio()
    assert stream.feed(json.dumps({"event": "connected", "protocol": "Call"})) is None
    started = stream.feed(_start(call_id="pbx-7", queue="billing", token="t0k"))
    assert started == StreamStart(
        call_id="pbx-7",
        metadata={"queue": "billing", "call_sid": "CA1"},
        token="t0k",
        tracks=(Track.inbound, Track.outbound),
    )
    frame = stream.feed(_media("outbound", "3"))
    assert isinstance(frame, Packet)
    assert (frame.track, frame.sequence, frame.data, frame.sent_at) == (
        Track.outbound,
        3,
        base64.b64decode("f39/f39/"),
        1_000.04,
    )
    stream.feed(_media("inbound", "2"))
    stream.feed(_media("inbound", "1"))  # late: the last chunk stays 2
    dtmf = {
        "event": "dtmf",
        "sequenceNumber": "9",
        "dtmf": {"track": "inbound_track", "digit": "#"},
    }
    assert stream.feed(json.dumps(dtmf)) == KeyPressed(Track.inbound, "#")
    mark = {"event": "mark", "sequenceNumber": "10", "mark": {"name": "greeting"}}
    assert stream.feed(json.dumps(mark)) == MarkReached("greeting")
    stopped = stream.feed(json.dumps({"event": "stop", "sequenceNumber": "11", "stop": {}}))
    assert stopped == StreamStopped({Track.outbound: 3, Track.inbound: 2})


@pytest.mark.parametrize(
    ("media_format", "expected"),
    [
        (MULAW_8K, AudioFormat(AudioEncoding.mulaw, 8000)),
        (None, AudioFormat(AudioEncoding.mulaw, 8000)),  # Twilio's, when not said
        (
            {"encoding": "audio/x-l16", "sampleRate": 16000},
            AudioFormat(AudioEncoding.pcm_s16le, 16000),
        ),
        ({"encoding": "audio/L16", "sampleRate": 8000}, AudioFormat(AudioEncoding.pcm_s16le, 8000)),
    ],
    ids=["mulaw", "absent", "x-l16 16 kHz", "L16 8 kHz"],
)
def test_the_media_format_declares_the_calls_format(
    media_format: dict[str, object] | None, expected: AudioFormat
) -> None:
    started = _twilio().feed(_start(media_format))
    assert isinstance(started, StreamStart)
    assert started.audio_format == expected


@pytest.mark.parametrize(
    ("media_format", "reason"),
    [
        ({"encoding": "audio/x-mulaw", "sampleRate": 16000}, "mulaw audio must be sampled at 8000"),
        ({"encoding": "audio/x-l16", "sampleRate": 44100}, "must be sampled at 8000 or 16000 Hz"),
        ({"encoding": "audio/ogg", "sampleRate": 8000}, "unsupported media format 'audio/ogg'"),
        ({**MULAW_8K, "channels": 2}, "2 channels"),
    ],
    ids=["mulaw 16 kHz", "l16 44.1 kHz", "ogg", "stereo"],
)
def test_a_media_format_post_v1_calls_would_refuse_is_refused(
    media_format: dict[str, object], reason: str
) -> None:
    with pytest.raises(StreamRefused, match=reason):
        _twilio().feed(_start(media_format))


def test_l16_frames_are_stored_little_endian_and_must_be_whole_samples() -> None:
    stream = _twilio()
    stream.feed(_start({"encoding": "audio/x-l16", "sampleRate": 16000}))
    big_endian = struct.pack(">3h", 1, -2, 300)
    frame = stream.feed(_media("inbound", "1", base64.b64encode(big_endian).decode()))
    assert isinstance(frame, Packet)
    assert frame.data == struct.pack("<3h", 1, -2, 300)
    with pytest.raises(StreamRefused, match="chunk 2 is not whole 16-bit samples"):
        stream.feed(_media("inbound", "2", base64.b64encode(b"odd").decode()))


def test_the_call_sid_is_the_call_id_unless_a_parameter_names_one() -> None:
    started = _twilio().feed(_start())
    assert isinstance(started, StreamStart)
    assert (started.call_id, started.token) == ("CA1", None)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (_media("inbound", "0"), "chunk 0 is out of range"),
        (_media("inbound", "1.5"), "not a whole number"),
        (_media("inbound", "-1"), "not a whole number"),
        (_media("inbound", "1", timestamp="soon"), "timestamp 'soon'"),
        (_media("inbound", "1", payload="QR=="), "not valid base64"),
        (_media("inbound", "1", payload="AA EC"), "not valid base64"),
        (_media("inbound", "1", payload=""), "is empty"),
        (_media("inbound", "1", payload=base64.b64encode(bytes(401)).decode()), "over 400"),
        (_media("both", "1"), "unknown track 'both'"),
        (_start(), "a second start"),
        ('{"event": "media"}', "not a Twilio Media Streams message"),
        ("[]", "not a Twilio Media Streams message"),
    ],
)
def test_a_broken_message_after_start_is_refused_with_a_reason(message: str, reason: str) -> None:
    stream = _twilio()
    stream.feed(_start())
    with pytest.raises(StreamRefused, match=reason):
        stream.feed(message)


def test_a_call_id_parameter_must_be_a_call_id_and_parameters_may_not_hold_nul() -> None:
    with pytest.raises(StreamRefused, match="call id"):
        _twilio().feed(_start(call_id="a/b"))
    with pytest.raises(StreamRefused, match="NUL"):
        _twilio().feed(_start(note="a\x00b"))


def test_native_binary_and_text_frames_carry_the_same_packet() -> None:
    binary = parse_binary(
        binary_frame(Track.outbound, 42, 1764340000.5, b"\x7f\x7e"), max_packet_bytes=10
    )
    text = parse_text(
        json.dumps(
            {"track": "outbound", "sequence": 42, "data": "f34=", "timestamp": 1764340000.5}
        ),
        max_packet_bytes=10,
    )
    assert isinstance(text, Packet)
    assert (binary.track, binary.sequence, binary.data, binary.sent_at) == (
        text.track,
        text.sequence,
        text.data,
        text.sent_at,
    )


def test_the_end_frame_may_name_each_track_s_last_sequence() -> None:
    assert parse_text('{"type": "end"}', max_packet_bytes=10) == EndOfStream({})
    end = parse_text('{"type": "end", "final_sequences": {"outbound": 9}}', max_packet_bytes=10)
    assert end == EndOfStream({Track.outbound: 9})
    with pytest.raises(StreamRefused, match="unknown track"):
        parse_text('{"type": "end", "final_sequences": {"left": 9}}', max_packet_bytes=10)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "18-byte header"),
        (struct.pack("!BBQd", 1, 0, 1, 1.0), "18-byte header"),  # no audio
        (struct.pack("!BBQd", 1, 0, 1, float("nan")) + b"x", "finite"),
        (struct.pack("!BBQd", 1, 0, 2**60, 1.0) + b"x", "out of range"),
        (struct.pack("!BBQd", 1, 0, 1, 1.0) + b"x" * 11, "over 10 bytes"),
    ],
)
def test_a_broken_binary_frame_is_refused(frame: bytes, reason: str) -> None:
    with pytest.raises(StreamRefused, match=reason):
        parse_binary(frame, max_packet_bytes=10)


def test_acks_say_the_highest_stored_and_the_holes_below_it() -> None:
    tracker = AckTracker(0)
    tracker.record([1, 2, 5, 9])
    assert (tracker.through, tracker.missing) == (9, [(3, 4), (6, 8)])
    tracker.record([7, 3, 3])
    assert (tracker.through, tracker.missing) == (9, [(4, 4), (6, 6), (8, 8)])
    assert msgspec.json.decode(msgspec.json.encode(tracker.message(Track.inbound))) == {
        "type": "ack",
        "track": "inbound",
        "through": 9,
        "missing": [[4, 4], [6, 6], [8, 8]],
        "missing_truncated": False,
    }


def test_acks_agree_with_a_plain_set_over_random_arrivals() -> None:
    rng = random.Random(3)
    for _ in range(50):
        sequences = [s for s in range(1, 200) if rng.random() > 0.1]
        rng.shuffle(sequences)
        start = sequences[: len(sequences) // 3]
        stored = set(start)
        highest = max(start)
        holes = [s for s in range(1, highest + 1) if s not in stored]
        tracker = AckTracker(highest, _ranges(holes))
        tracker.record(sequences[len(sequences) // 3 :])
        everything = set(sequences)
        assert tracker.through == max(everything)
        expected = [s for s in range(1, tracker.through + 1) if s not in everything]
        assert tracker.missing == _ranges(expected)


def _ranges(sequences: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for sequence in sequences:
        if ranges and ranges[-1][1] == sequence - 1:
            ranges[-1] = (ranges[-1][0], sequence)
        else:
            ranges.append((sequence, sequence))
    return ranges


def test_the_twilio_signature_matches_twilio_s_documented_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    form = "CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
    assert twilio_signature("12345", url + form) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert is_valid_twilio_signature("12345", url + form, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not is_valid_twilio_signature("12346", url + form, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_two_tracks_interleave_caller_left_and_the_shorter_ends_in_silence() -> None:
    left = struct.pack("<3h", 1, 2, 3)
    right = struct.pack("<1h", -7)
    assert struct.unpack("<6h", stereo(left, right)) == (1, -7, 2, 0, 3, 0)
