"""What one sampled ingest request's two spans cost on the event loop's thread: its request
span and the batch span that links to it, made by `callscope.tracing` (which records them
itself and hands the SDK's batch processor a `ReadableSpan` at the end) against the same two
spans made through the SDK's `Tracer`, both exported to a no-op exporter.

Measured in this process with `time.thread_time`, two ways: hot (one kept request after
another) and cold (a loop touching ~100,000 objects between two kept requests, as a busy
server's other requests do: at 1 % sampling, 99 requests run between two kept ones). The
server pays the cold figure. Each way runs in rounds alternating the two tracers, and the
script prints every round and the medians.

    .venv/bin/python -m benchmarks.kept_spans [--requests 300] [--rounds 5]
"""

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, SpanKind, Tracer

from callscope import tracing

ROUTE: Final = "/v1/call/stream/{call_id}"
ATTRIBUTES: Final = {
    "http.request.method": "POST",
    "url.path": "/v1/call/stream/c-1",
    "http.route": ROUTE,
}


class DiscardingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def callscope_request() -> None:
    """A kept request's span and its batch's, as the request middleware and committer make them."""
    with tracing.kept_span(f"POST {ROUTE}", kind=SpanKind.SERVER, attributes=ATTRIBUTES) as span:
        span.set_attribute("http.response.status_code", 202)
        request = tracing.current_span_context()
    with tracing.span(
        "ingest.batch", attributes={"callscope.packets": 10}, links=tracing.links_to([request])
    ):
        pass


def sdk_request(tracer: Tracer) -> Callable[[], None]:
    def made() -> None:
        with tracer.start_as_current_span(
            f"POST {ROUTE}", kind=SpanKind.SERVER, attributes=ATTRIBUTES
        ) as span:
            span.set_attribute("http.response.status_code", 202)
            request = span.get_span_context()
        with tracer.start_as_current_span(
            "ingest.batch", attributes={"callscope.packets": 10}, links=[Link(request)]
        ):
            pass

    return made


class CacheThrasher:
    """Touches ~100,000 small objects at a random offset: what other requests do to the
    caches between two kept ones."""

    def __init__(self) -> None:
        self._objects = [(n, str(n)) for n in range(400_000)]

    def __call__(self) -> None:
        start = random.randrange(300_000)
        total = 0
        for item in self._objects[start : start + 100_000]:
            total += item[0]


def per_request_us(
    made: Callable[[], None], requests: int, between: Callable[[], None] | None
) -> float:
    spent = 0.0
    for _ in range(requests):
        if between is not None:
            between()
        started = time.thread_time()
        made()
        spent += time.thread_time() - started
    return 1e6 * spent / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="kept requests per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    processor = BatchSpanProcessor(DiscardingExporter())
    tracing.install(processor)
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    makers = {"callscope": callscope_request, "sdk": sdk_request(provider.get_tracer("bench"))}
    thrash = CacheThrasher()
    figures: dict[tuple[str, str], list[float]] = {}
    print(f"µs of CPU per kept request (its span and its batch's), {args.requests} requests each")
    try:
        for round_number in range(1, args.rounds + 1):
            for way, between in (("hot", None), ("cold", thrash)):
                order = list(makers) if round_number % 2 else list(makers)[::-1]
                for name in order:
                    figure = per_request_us(makers[name], args.requests, between)
                    figures.setdefault((way, name), []).append(figure)
                    print(f"round {round_number}  {way:<4}  {name:<9}  {figure:7.1f}", flush=True)
    finally:
        tracing.shutdown()
        provider.shutdown()
    print("\nmedians:")
    for way in ("hot", "cold"):
        ours, sdk = (statistics.median(figures[way, name]) for name in makers)
        print(f"{way:<4}  callscope {ours:7.1f}   sdk {sdk:7.1f}   callscope/sdk {ours / sdk:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
