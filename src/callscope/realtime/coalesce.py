"""Packet progress, coalesced: calls touched since the last flush, each reported once."""


class ProgressCoalescer:
    """Collects the calls named by `callscope_progress` notifications between two flushes.

    The hub flushes every `live_progress_interval` seconds (0.5 by default), so a call's counts
    are sent at most once per interval however many batches touched it.
    """

    def __init__(self) -> None:
        self._dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self._dirty)

    def mark(self, payload: str) -> None:
        """Note the calls of one notification (space-separated call ids)."""
        self._dirty.update(payload.split())

    def take(self) -> list[str]:
        """The calls touched since the last take, sorted; the set starts over empty."""
        dirty, self._dirty = self._dirty, set()
        return sorted(dirty)
