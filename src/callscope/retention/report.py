"""What a pruning run removed (or, dry, would remove), and how the CLI says it. Pure."""

from dataclasses import dataclass

from callscope.retention.policy import RetentionPolicy


@dataclass(frozen=True, slots=True)
class PruneReport:
    """`calls`: calls whose audio is now entirely gone (or would be); `batches`: the
    transactions that deleted something (0 for a dry run)."""

    calls: int = 0
    packets: int = 0
    events: int = 0
    queue_log: int = 0
    batches: int = 0

    @property
    def removed_anything(self) -> bool:
        return any((self.calls, self.packets, self.events, self.queue_log))

    def __add__(self, other: "PruneReport") -> "PruneReport":
        return PruneReport(
            calls=self.calls + other.calls,
            packets=self.packets + other.packets,
            events=self.events + other.events,
            queue_log=self.queue_log + other.queue_log,
            batches=self.batches + other.batches,
        )


def describe(report: PruneReport, policy: RetentionPolicy, *, dry_run: bool) -> list[str]:
    """The lines `callscope prune` prints: one per kind of data, saying what went (or would
    go) and why, or that the kind is kept."""
    verb = "would drop" if dry_run else "dropped"
    if policy.audio_days is None:
        audio = "audio: kept forever (CALLSCOPE_RETAIN_AUDIO_DAYS is unset)"
    else:
        audio = (
            f"audio: {verb} the packets of {report.calls} ARCHIVED or FAILED calls that ended "
            f"over {policy.audio_days:g} days ago ({report.packets} packets)"
        )
    if policy.events_days is None:
        history = [
            "events: kept forever (CALLSCOPE_RETAIN_EVENTS_DAYS is unset)",
            "queue log: kept forever (CALLSCOPE_RETAIN_EVENTS_DAYS is unset)",
        ]
    else:
        age = f"older than {policy.events_days:g} days"
        history = [
            f"events: {verb} {report.events} call events {age}",
            f"queue log: {verb} {report.queue_log} queue log rows {age}",
        ]
    head = (
        "callscope: dry run, nothing changed"
        if dry_run
        else f"callscope: pruned in {report.batches} transactions"
    )
    return [head, f"  {audio}", *(f"  {line}" for line in history)]
