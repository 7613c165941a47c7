"""A call's stored audio, read in a unit of work and reassembled after it (in a thread)."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from callscope.audio.formats import AudioEncoding, AudioFormat
from callscope.audio.reassembly import reassemble
from callscope.calls.repository import CallRepository
from callscope.errors import CallNotFound
from callscope.ingest.packets import expected_last


@dataclass(frozen=True, slots=True)
class StoredAudio:
    audio_format: AudioFormat
    packets: Sequence[tuple[int, bytes]]  # (sequence, data) in sequence order
    last: int  # the call's last expected sequence

    async def pcm16(self) -> bytes:
        """16-bit PCM with silence for missing packets; raises AudioTooLong past the cap."""
        return await asyncio.to_thread(reassemble, self.packets, self.audio_format, last=self.last)


async def stored_audio(calls: CallRepository, call_id: str) -> StoredAudio:
    row = await calls.get(call_id)
    if row is None:
        raise CallNotFound(f"no call {call_id}")
    return StoredAudio(
        audio_format=AudioFormat(AudioEncoding(row.encoding), row.sample_rate),
        packets=await calls.packets(call_id),
        last=expected_last(row.max_sequence, row.final_sequence),
    )
