"""Audio formats, reassembly with silence for missing packets, WAV encoding."""

import io
import struct
import wave

import pytest

from callscope.audio.codec import to_mulaw, to_pcm16
from callscope.audio.formats import AudioEncoding, AudioFormat, UnsupportedFormat
from callscope.audio.reassembly import AudioTooLong, reassemble, wav_bytes
from tests.factories import pcm16

MULAW = AudioFormat(AudioEncoding.mulaw, 8000)
PCM16 = AudioFormat(AudioEncoding.pcm_s16le, 16000)


def test_supported_formats() -> None:
    assert AudioFormat(AudioEncoding.pcm_s16le, 8000).bytes_per_sample == 2
    with pytest.raises(UnsupportedFormat, match="8000"):
        AudioFormat(AudioEncoding.mulaw, 16000)
    with pytest.raises(UnsupportedFormat):
        AudioFormat(AudioEncoding.pcm_s16le, 44100)


def test_a_packet_fits_when_it_holds_whole_samples() -> None:
    assert PCM16.fits(320)
    assert not PCM16.fits(321)
    assert MULAW.fits(161)
    assert not MULAW.fits(0)


def test_mulaw_decodes_to_twice_the_bytes_and_its_silence_to_zero() -> None:
    assert to_pcm16(b"\xff" * 160, AudioEncoding.mulaw) == bytes(320)  # 0xFF is μ-law zero
    loud = to_pcm16(b"\x00", AudioEncoding.mulaw)
    assert abs(struct.unpack("<h", loud)[0]) > 30000


def test_gaps_become_silence_as_long_as_a_usual_packet() -> None:
    one, three = pcm16(100, 200), pcm16(300, 400)
    audio = reassemble([(1, one), (3, three)], PCM16, last=5)
    # 1, silence for 2, 3, silence for 4 and 5 (missing at the end, up to the last sequence)
    assert audio == one + bytes(4) + three + bytes(8)


def test_missing_first_packets_are_silence_and_sequence_zero_is_kept() -> None:
    packet = pcm16(7)
    assert reassemble([(3, packet)], PCM16, last=3) == bytes(4) + packet
    assert reassemble([(0, packet), (1, packet)], PCM16, last=1) == packet + packet


def test_silence_follows_the_most_common_packet_size() -> None:
    usual, short = pcm16(1, 1, 1), pcm16(2)
    audio = reassemble([(1, usual), (2, short), (3, usual), (5, usual)], PCM16, last=5)
    assert audio == usual + short + usual + bytes(6) + usual


def test_mulaw_calls_are_decoded_before_reassembly() -> None:
    audio = reassemble([(1, b"\xff" * 4), (3, b"\xff" * 4)], MULAW, last=3)
    assert audio == bytes(8 * 3)


def test_no_packets_is_no_audio() -> None:
    assert reassemble([], MULAW, last=0) == b""


def test_wav_round_trips() -> None:
    samples = pcm16(0, 1000, -1000, 32767, -32768)
    with wave.open(io.BytesIO(wav_bytes(samples, 16000))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.readframes(wav.getnframes()) == samples


def test_mulaw_round_trips_within_its_quantisation() -> None:
    samples = [0, 100, -100, 1000, -1000, 20000, -20000, 32000]
    decoded = to_pcm16(to_mulaw(pcm16(*samples)), AudioEncoding.mulaw)
    back = struct.unpack(f"<{len(samples)}h", decoded)
    for original, restored in zip(samples, back, strict=True):
        assert abs(original - restored) <= max(8, abs(original) // 16)  # ~ 3 % or a step


def test_a_sequence_claiming_hours_of_audio_is_refused_before_any_is_built() -> None:
    with pytest.raises(AudioTooLong, match="60 minutes"):
        reassemble([(1, b"\xff" * 160)], MULAW, last=2**62)
    hour = 3600 * 50  # packets of 20 ms
    assert len(reassemble([(1, b"\xff" * 160)], MULAW, last=hour)) == hour * 320
