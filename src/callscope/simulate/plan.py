"""What a simulated call sends: its packets in order, then lost, duplicated, reordered — pure."""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from callscope.audio.codec import to_mulaw

FRAME_BYTES: Final = 160  # 20 ms of 8 kHz μ-law, what telephony media streams carry
FRAME_SECONDS: Final = 0.02


@dataclass(frozen=True, slots=True)
class Send:
    sequence: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class CallPlan:
    sends: list[Send]  # in the order they go out
    last_sequence: int
    lost: frozenset[int]

    @property
    def lost_before_last_sent(self) -> int:
        """Lost packets a receiver can know of without being told the last sequence."""
        highest = max((send.sequence for send in self.sends), default=0)
        return sum(1 for sequence in self.lost if sequence < highest)


def frames_of(mulaw: bytes) -> list[bytes]:
    """μ-law audio cut into 20 ms packets (the last may be shorter)."""
    return [mulaw[n : n + FRAME_BYTES] for n in range(0, len(mulaw), FRAME_BYTES)]


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    """A quiet sine tone as 8 kHz μ-law, for calls without speech."""
    count = int(seconds * 8000)
    samples = (int(8000 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(count))
    pcm16 = b"".join(sample.to_bytes(2, "little", signed=True) for sample in samples)
    return to_mulaw(pcm16)


def plan_call(
    frames: Sequence[bytes],
    *,
    loss: float,
    duplicates: float,
    reorder: float,
    rng: random.Random,
) -> CallPlan:
    """Packets 1..n: each lost with probability `loss`, else sent, and sent again with
    probability `duplicates`; then neighbours swapped with probability `reorder`."""
    sends: list[Send] = []
    lost: set[int] = set()
    for sequence, frame in enumerate(frames, start=1):
        if rng.random() < loss:
            lost.add(sequence)
            continue
        sends.append(Send(sequence, frame))
        if rng.random() < duplicates:
            sends.append(Send(sequence, frame))
    index = 0
    while index < len(sends) - 1:
        if rng.random() < reorder:
            sends[index], sends[index + 1] = sends[index + 1], sends[index]
            index += 2
        else:
            index += 1
    return CallPlan(sends=sends, last_sequence=len(frames), lost=frozenset(lost))
