"""OpenTelemetry traces, off by default.

On when the standard variables ask for the OTLP exporter: `OTEL_TRACES_EXPORTER=otlp`, or
an `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true`
keeps it off. The sampler is the standard `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`,
`traceidratio`, and their `parentbased_` forms) with `OTEL_TRACES_SAMPLER_ARG`, decided here
before a span is made: a span the sampler drops is never created (creating one through the
SDK to drop it cost ~10-20 µs, a tenth of an ingest request). A hot path asks `keeps` first
and builds nothing else for a dropped span (the request middleware: its route, attributes and
`send` wrapper), then makes the kept one with `kept_span`. Children follow their parent (a
caller's `traceparent` flag included); a batch is kept when a request it carries was.
Everything else comes from the standard variables through the SDK: `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, the exporter's endpoint, headers and timeouts, the batch
processor's limits.

Spans: each HTTP request (continuing the caller's W3C `traceparent`), each ingest batch
(linked to the requests and streams whose packets it carries), each AI job run (a child of
the request that queued it: the job carries its `traceparent`), each provider attempt, the
archive or failure of a call, and each event's send to a supervisor. Off, none is made: the
hot paths test one module variable.
"""

import contextlib
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

INSTRUMENTATION: Final = "callscope"
MAX_LINKS: Final = 128  # of one ingest batch: the SDK's default limit

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_root_ratio = 1.0  # share of new traces kept
_random = random.Random()  # noqa: S311 - sampling, not security
# The context of the span `kept_span` made current, mirrored from OpenTelemetry's context:
# the hot paths ask this one ContextVar instead of OpenTelemetry's context API, whose few
# calls per request (the queued packet's parent, the batch's decision) cost ~4 % of an ingest
# request's API CPU in the server although nothing was sampled.
_KEPT: Final[ContextVar[SpanContext | None]] = ContextVar("callscope_kept_span", default=None)
# What `span` returns for a span it does not make: one reusable no-op, where a generator-made
# context manager cost ~1 µs to build for every ingest batch the sampler drops.
_NOT_KEPT: Final = contextlib.nullcontext(None)
_RATIO_SAMPLERS: Final = ("traceidratio", "parentbased_traceidratio")
_OFF_SAMPLERS: Final = ("always_off", "parentbased_always_off")


def wanted_by_environment(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    return (
        "otlp" in exporters
        or bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        or bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    )


def configure_from_environment(service_name: str) -> bool:
    """Start exporting spans over OTLP/HTTP if the environment asks for it; True if so."""
    if not wanted_by_environment():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415 - only when on
        OTLPSpanExporter,
    )

    resource = Resource.create({"service.name": service_name})  # OTEL_SERVICE_NAME wins
    # Records every span it is asked for: `span` has sampled already.
    provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider, root_ratio=sampling_ratio())
    return True


def sampling_ratio(environ: Mapping[str, str] = os.environ) -> float:
    """The share of new traces `OTEL_TRACES_SAMPLER` (and `_ARG`) keeps."""
    sampler = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler in _OFF_SAMPLERS:
        return 0.0
    if sampler in _RATIO_SAMPLERS:
        try:
            return min(1.0, max(0.0, float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))))
        except ValueError:
            return 1.0  # the SDK's default for an unreadable ratio
    return 1.0


def install(provider: TracerProvider, *, root_ratio: float = 1.0) -> None:
    """Trace through `provider` from now on, keeping `root_ratio` of new traces (tests pass
    one with an in-memory exporter)."""
    global _tracer, _provider, _root_ratio  # noqa: PLW0603 - the process's one tracer
    _provider = provider
    _root_ratio = root_ratio
    _tracer = provider.get_tracer(INSTRUMENTATION)


def shutdown() -> None:
    """Export what is buffered and stop tracing."""
    global _tracer, _provider  # noqa: PLW0603
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    links: Sequence[Link] = (),
    parent: otel_context.Context | None = None,
    started_at: float | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span, current inside the block (from `started_at`, epoch seconds, if given); None
    (and nothing made) when tracing is off or the sampler drops it."""
    if _tracer is None or not keeps(parent, links):
        return _NOT_KEPT
    return kept_span(
        name, kind=kind, attributes=attributes, links=links, parent=parent, started_at=started_at
    )


def keeps(parent: otel_context.Context | None = None, links: Sequence[Link] = ()) -> bool:
    """The sampling decision, for a caller that would rather build nothing for a span the
    sampler drops (`kept_span` then makes the one it keeps). Parent-based: a child is kept
    when its parent is (a remote `traceparent`'s flag included); a new trace when a span it
    links to was, else by the ratio. False when tracing is off."""
    if _tracer is None:
        return False
    if parent is not None:
        found = trace.get_current_span(parent).get_span_context()
        if found.is_valid:
            return found.trace_flags.sampled
    elif _KEPT.get() is not None:
        return True
    for link in links:  # a loop, not `any`: no generator made for the usual no links
        if link.context.trace_flags.sampled:
            return True
    return _random.random() < _root_ratio


@contextlib.contextmanager
def kept_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    links: Sequence[Link] = (),
    parent: otel_context.Context | None = None,
    started_at: float | None = None,
) -> Iterator[Span]:
    """A span `keeps` has kept (`span` without the decision), current inside the block.
    Tracing must be on."""
    if _tracer is None:
        raise RuntimeError("tracing is off: ask `keeps` before making a span")
    start_time = None if started_at is None else int(started_at * 1e9)
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        links=links,
        start_time=start_time,
    ) as current:
        token = _KEPT.set(current.get_span_context())
        try:
            yield current
        finally:
            _KEPT.reset(token)


def current_span_context() -> SpanContext | None:
    """The context of the span `kept_span` made current, to link to later; None when there
    is none (or tracing is off)."""
    return _KEPT.get()


def links_to(contexts: Sequence[SpanContext | None]) -> Sequence[Link]:
    """Links to the distinct contexts (None: no span), at most MAX_LINKS."""
    kept = [c for c in contexts if c is not None]
    if not kept:
        return ()
    unique = {c.span_id: c for c in kept}
    return [Link(c) for c in list(unique.values())[:MAX_LINKS]]


def outgoing_headers() -> dict[str, str] | None:
    """`traceparent` (and `tracestate`) of the current span, for work that goes on elsewhere
    (an AI job); None when tracing is off or there is no span."""
    if current_span_context() is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def incoming_context(carrier: Mapping[str, object] | None) -> otel_context.Context | None:
    """The context a `traceparent` carrier names (None: start a new trace)."""
    if _tracer is None or not carrier:
        return None
    return propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})


def trace_id_of_current_span() -> str | None:
    """The current trace id as 32 hex digits, for log lines."""
    found = current_span_context()
    return None if found is None else format(found.trace_id, "032x")
