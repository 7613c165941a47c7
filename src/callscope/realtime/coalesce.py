"""Packet progress, coalesced: calls touched since the last flush, each reported once."""

UNNAMED = "*"  # prefix of a notification whose batch touched too many calls to name them


class ProgressCoalescer:
    """Collects the calls named by `callscope_progress` notifications between two flushes.

    The hub flushes every `live_progress_interval` seconds (0.5 by default), so a call's counts
    are sent at most once per interval however many batches touched it. A notification
    `*<epoch seconds>` stands for every call that stored a packet since that moment.
    """

    def __init__(self) -> None:
        self._dirty: set[str] = set()
        self._unnamed_since: float | None = None

    def __len__(self) -> int:
        return len(self._dirty)

    def mark(self, payload: str) -> None:
        """Note the calls of one notification."""
        if payload.startswith(UNNAMED):
            self._note_unnamed(float(payload.removeprefix(UNNAMED)))
        else:
            self._dirty.update(payload.split())

    def take(self) -> tuple[list[str], float | None]:
        """The calls named since the last take, sorted, and the earliest moment since which
        unnamed calls were touched (None if none were); the collection starts over empty."""
        dirty, since = self._dirty, self._unnamed_since
        self._dirty, self._unnamed_since = set(), None
        return sorted(dirty), since

    def restore(self, call_ids: list[str], unnamed_since: float | None) -> None:
        """Put back what a failed flush took, for the next flush."""
        self._dirty.update(call_ids)
        if unnamed_since is not None:
            self._note_unnamed(unnamed_since)

    def _note_unnamed(self, since: float) -> None:
        if self._unnamed_since is None or since < self._unnamed_since:
            self._unnamed_since = since
