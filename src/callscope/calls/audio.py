"""A call's stored audio, read in a unit of work and reassembled after it (in a thread)."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from callscope.audio.codec import stereo
from callscope.audio.formats import AudioFormat
from callscope.audio.reassembly import reassemble
from callscope.calls.repository import CallRepository
from callscope.calls.vocabulary import Track
from callscope.errors import CallNotFound, TrackNotFound


@dataclass(frozen=True, slots=True)
class StoredTrack:
    track: Track
    packets: Sequence[tuple[int, bytes]]  # (sequence, data) in sequence order
    last: int  # the track's last expected sequence


@dataclass(frozen=True, slots=True)
class StoredAudio:
    audio_format: AudioFormat
    tracks: Sequence[StoredTrack]  # inbound first

    async def pcm16(self, track: Track) -> bytes:
        """One track as 16-bit PCM with silence for missing packets (empty if the track has
        no audio); raises AudioTooLong past the cap."""
        for stored in self.tracks:
            if stored.track == track:
                return await asyncio.to_thread(
                    reassemble, stored.packets, self.audio_format, last=stored.last
                )
        return b""

    async def stereo_pcm16(self) -> bytes:
        """Both tracks as 16-bit stereo PCM, the caller on the left, aligned by sequence."""
        caller, agent = await asyncio.gather(self.pcm16(Track.inbound), self.pcm16(Track.outbound))
        return await asyncio.to_thread(stereo, caller, agent)


async def stored_audio(
    calls: CallRepository, call_id: str, only: Track | None = None
) -> StoredAudio:
    """The call's tracks with audio (or just `only`, which must exist: TrackNotFound)."""
    row = await calls.get(call_id)
    if row is None:
        raise CallNotFound(f"no call {call_id}")
    tracks = [t for t in await calls.tracks(call_id) if only is None or t.track == only]
    if only is not None and not tracks:
        raise TrackNotFound(f"call {call_id} has no {only} audio")
    return StoredAudio(
        audio_format=AudioFormat(row.encoding, row.sample_rate),
        tracks=[
            StoredTrack(
                track=t.track,
                packets=await calls.packets(call_id, t.track),
                last=t.counts.expected_last,
            )
            for t in tracks
        ],
    )
