"""Prometheus metrics (prometheus-client), one set per process, served in the text exposition
format at `GET /metrics` (and on CALLSCOPE_METRICS_PORT / CALLSCOPE_WORKER_METRICS_PORT).

The names are a contract: dashboards and alerts rely on them (docs/operations.md lists them).
Counters count what this process did since it started; gauges of the whole system (calls by
state, AI jobs by status) come from a cheap periodic count by each process that runs it, so
aggregate them with `max`, not `sum`.

Ingest metrics are updated once per committed batch, not once per packet: a batch carries
hundreds of a stream's frames, and per-packet updates through prometheus-client's locks
would cost a noticeable share of what storing a frame costs. The ingest metrics themselves
(`PacketCounter`, `BatchHistogram`) are plain numbers added to on the event loop's thread,
without prometheus-client's per-update lock and checks: a batch of ten HTTP requests updates
them in ~3.7 µs (4.6 µs through prometheus-client's types; docs/benchmarks.md).
"""

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_PROVIDER_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
_WAIT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class BatchHistogram(Collector):
    """A histogram observed many values at a time: plain counters bisected into, collected
    as a Prometheus histogram. Observed and collected on the event loop's thread (a collect
    from another thread reads counts that are at most one batch behind)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = list(buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def observe_many(self, values: Iterable[float]) -> None:
        counts, bounds = self._counts, self._bounds
        total = 0.0
        for value in values:
            counts[bisect.bisect_left(bounds, value)] += 1
            total += value
        self._sum += total

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip([*self._bounds, float("inf")], self._counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=self._sum
        )


class PacketCounter(Collector):
    """A counter by (path, outcome) added to a batch at a time on the event loop's thread,
    collected as a Prometheus counter (`<name>_total`): a dict of plain ints, where
    prometheus-client's children lock and check on every `inc`."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name = name
        self._documentation = documentation
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, path: str, outcome: str, count: int = 1) -> None:
        key = (path, outcome)
        self._counts[key] = self._counts.get(key, 0) + count

    def add_all(self, counts: Mapping[tuple[str, str], int]) -> None:
        mine = self._counts
        for key, count in counts.items():
            mine[key] = mine.get(key, 0) + count

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=("path", "outcome"))
        for (path, outcome), count in sorted(self._counts.copy().items()):
            family.add_metric((str(path), outcome), count)
        yield family


REGISTRY: Final = CollectorRegistry()
# CALLSCOPE_METRICS_ENABLED=false: the ingest path records nothing and `/metrics` is not
# served (how the benchmark measures what metrics cost).
ENABLED = True

# Ingest
INGEST_PACKETS: Final = PacketCounter(
    "callscope_ingest_packets",
    "Packets and frames that reached ingestion, by path (http, twilio, stream) and outcome "
    "(accepted, duplicate, conflict, closed, invalid, shed, failed).",
)
REGISTRY.register(INGEST_PACKETS)
INGEST_BATCH_SIZE: Final = BatchHistogram(
    "callscope_ingest_batch_size",
    "Packets per committed ingest batch.",
    (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0),
)
REGISTRY.register(INGEST_BATCH_SIZE)
INGEST_COMMIT_SECONDS: Final = BatchHistogram(
    "callscope_ingest_commit_seconds",
    "From a packet's arrival (queued for ingestion) to the commit of the batch holding it.",
    _LATENCY_BUCKETS,
)
REGISTRY.register(INGEST_COMMIT_SECONDS)
INGEST_QUEUE_DEPTH: Final = Gauge(
    "callscope_ingest_queue_depth",
    "Packets queued for ingestion or being written.",
    registry=REGISTRY,
)

# Calls
CALLS: Final = Gauge(
    "callscope_calls", "Calls in each state (a periodic count).", ["state"], registry=REGISTRY
)
CALL_TRANSITIONS: Final = Counter(
    "callscope_call_transitions",
    "State changes of calls committed by this process.",
    ["from", "to"],
    registry=REGISTRY,
)

# AI
AI_ATTEMPTS: Final = Counter(
    "callscope_ai_attempts",
    "Provider calls, by step (transcribe, sentiment) and outcome (succeeded, failed, rejected).",
    ["step", "outcome"],
    registry=REGISTRY,
)
AI_PROVIDER_SECONDS: Final = Histogram(
    "callscope_ai_provider_seconds",
    "Duration of provider calls, by step.",
    ["step"],
    buckets=_PROVIDER_BUCKETS,
    registry=REGISTRY,
)
AI_JOBS: Final = Gauge(
    "callscope_ai_jobs",
    "AI jobs in the queue, by status (queued, running; a periodic count).",
    ["status"],
    registry=REGISTRY,
)
AI_BREAKER_STATE: Final = Gauge(
    "callscope_ai_breaker_state",
    "The worker's circuit breaker in front of the AI provider: 1 for its current state "
    "(closed, open, half_open), 0 for the others.",
    ["state"],
    registry=REGISTRY,
)
AI_JOB_WAIT_SECONDS: Final = Histogram(
    "callscope_ai_job_wait_seconds",
    "From a call's COMPLETED to a worker picking its AI job (first run).",
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)

# Live feed
LIVE_CLIENTS: Final = Gauge(
    "callscope_live_clients", "Supervisors connected to the live feed.", registry=REGISTRY
)
LIVE_MESSAGES: Final = Counter(
    "callscope_live_messages",
    "Messages sent to supervisors, by type.",
    ["type"],
    registry=REGISTRY,
)
LIVE_RESYNCS: Final = Counter(
    "callscope_live_resyncs",
    "Fresh snapshots sent instead of events, by reason.",
    ["reason"],
    registry=REGISTRY,
)
LIVE_CLOSED: Final = Counter(
    "callscope_live_closed",
    "Live-feed connections ended, by close code.",
    ["code"],
    registry=REGISTRY,
)
LIVE_LISTENER_RECONNECTS: Final = Counter(
    "callscope_live_listener_reconnects",
    "Times the LISTEN connection to PostgreSQL was opened again after it was lost.",
    registry=REGISTRY,
)
LIVE_DELAY_SECONDS: Final = Histogram(
    "callscope_live_delay_seconds",
    "From an event's commit to its send to a supervisor.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# Processes
TASK_RESTARTS: Final = Counter(
    "callscope_task_restarts",
    "Restarts of supervised background tasks after they failed, by task.",
    ["task"],
    registry=REGISTRY,
)


def set_enabled(enabled: bool) -> None:
    global ENABLED  # noqa: PLW0603 - one switch per process
    ENABLED = enabled


def render() -> bytes:
    """The `/metrics` body."""
    return generate_latest(REGISTRY)
