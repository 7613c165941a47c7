"""What retention keeps and how much one transaction takes, as values: built once from the
settings and passed down. Pure."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from callscope.settings import Settings

FIRST_WINDOW: Final = 8  # due calls a run's first audio batch reads
DEFAULT_PAUSE_RATIO: Final = 1.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """`None` keeps that kind of data forever. `batch_size` bounds the rows (packets, events,
    queue log rows) and the calls one transaction deletes; `interval` is the pause between two
    runs of a worker. After each transaction a run waits `pause_ratio` times as long as the
    transaction took, so that it uses at most 1 / (1 + pause_ratio) of one database
    connection's time however large the backlog (see docs/retention.md for the figures)."""

    audio_days: float | None
    events_days: float | None
    batch_size: int = 500
    interval: float = 300.0
    pause_ratio: float = DEFAULT_PAUSE_RATIO

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetentionPolicy":
        return cls(
            audio_days=settings.retain_audio_days,
            events_days=settings.retain_events_days,
            batch_size=settings.prune_batch_size,
            interval=settings.prune_interval,
            pause_ratio=settings.prune_pause_ratio,
        )

    @property
    def is_active(self) -> bool:
        """Something is ever pruned: at least one kind has a retention."""
        return self.audio_days is not None or self.events_days is not None

    def cutoffs(self, now: datetime) -> "Cutoffs":
        """The instants before which each kind goes, for a run starting at `now` (the
        database's clock, the one that stamped the rows)."""
        return Cutoffs(
            audio=None if self.audio_days is None else now - timedelta(days=self.audio_days),
            events=None if self.events_days is None else now - timedelta(days=self.events_days),
        )


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """One run's limits: calls that ended before `audio` lose their packets; events and queue
    log rows written before `events` go. `None`: that kind stays."""

    audio: datetime | None
    events: datetime | None


def calls_in_batch(candidates: Sequence[tuple[str, int]], batch_size: int) -> list[str]:
    """The first of these (call id, packets) whose packets fit `batch_size` together, and at
    least the first call: a longer call is deleted `batch_size` packets per transaction.
    Never more than `batch_size` calls (those without packets included)."""
    chosen: list[str] = []
    total = 0
    for call_id, packets in candidates[:batch_size]:
        if chosen and total + packets > batch_size:
            break
        chosen.append(call_id)
        total += packets
    return chosen


def candidate_window(chosen: int, batch_size: int) -> int:
    """How many due calls the next batch reads: twice as many as this one chose, at most
    `batch_size`. Long calls (one per batch) are read two at a time, not `batch_size` at a
    time; short ones let the window grow until a batch is full."""
    return min(batch_size, max(1, 2 * chosen))
