"""Packet progress, coalesced: calls touched since the last flush, each reported once."""

EVERYTHING = "*"  # a batch touched too many calls to name them in one notification


class ProgressCoalescer:
    """Collects the calls named by `callscope_progress` notifications between two flushes.

    The hub flushes every `live_progress_interval` seconds (0.5 by default), so a call's counts
    are sent at most once per interval however many batches touched it.
    """

    def __init__(self) -> None:
        self._dirty: set[str] = set()
        self._everything = False

    def __len__(self) -> int:
        return len(self._dirty)

    def mark(self, payload: str) -> None:
        """Note the calls of one notification (space-separated call ids, or `*`)."""
        if payload == EVERYTHING:
            self._everything = True
        else:
            self._dirty.update(payload.split())

    def take(self) -> tuple[list[str], bool]:
        """The calls touched since the last take, sorted, and whether some were not named
        (then every recently touched call must be read); the set starts over empty."""
        dirty, everything = self._dirty, self._everything
        self._dirty, self._everything = set(), False
        return sorted(dirty), everything

    def restore(self, call_ids: list[str], everything: bool) -> None:
        """Put back what a failed flush took, for the next flush."""
        self._dirty.update(call_ids)
        self._everything = self._everything or everything
