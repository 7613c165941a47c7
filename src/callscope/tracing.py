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

Spans are recorded here, not by the SDK's `Tracer`: a kept span is a few fields until it
ends, when it becomes the SDK's `ReadableSpan` and goes to the span processor (the OTLP
exporter's `BatchSpanProcessor`, or whatever a test installs). Made through the SDK, the two
spans of a kept ingest request (its own and its batch's) cost ~200 µs of CPU when the caches
are cold, as a busy server's are between two kept requests, and ~65 µs made here
(`make bench-spans`); at 1 % sampling, that was 2.5 to 3.7 points of the ingest path's CPU
per request (`docs/benchmarks.md`). The SDK's processors and exporters are used as they are;
only `on_end` is called (the SDK's own processors do nothing on start).

Spans: each HTTP request (continuing the caller's W3C `traceparent`), each ingest batch
(linked to the requests and streams whose packets it carries), each AI job run (a child of
the request that queued it: the job carries its `traceparent`), each provider attempt, the
archive or failure of a call, and each event's send to a supervisor. Off, none is made: the
hot paths test one module variable.
"""

import contextlib
import os
import random
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

INSTRUMENTATION: Final = InstrumentationScope("callscope")
MAX_LINKS: Final = 128  # of one ingest batch: the SDK's default limit

_processor: SpanProcessor | None = None
_resource: Resource = Resource.get_empty()
_root_ratio = 1.0  # share of new traces kept
_random = random.Random()  # noqa: S311 - sampling and ids, not security
os.register_at_fork(after_in_child=_random.seed)  # a forked process draws its own ids
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_UNSET: Final = Status(StatusCode.UNSET)
# The context of the kept span current in this task, or None. The hot paths ask this one
# ContextVar, where OpenTelemetry's context API (a few calls per request) cost ~4 % of an
# ingest request's API CPU in the server although nothing was sampled.
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

    install(
        BatchSpanProcessor(OTLPSpanExporter()),
        resource=service_resource(service_name),
        root_ratio=sampling_ratio(),
    )
    return True


def service_resource(default_name: str) -> Resource:
    """The resource the environment describes (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME),
    named `default_name` unless it names the service itself."""
    resource = Resource.create({})
    named = str(resource.attributes.get("service.name", ""))
    if named and not named.startswith("unknown_service"):
        return resource
    return resource.merge(Resource({"service.name": default_name}))


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


def install(
    processor: SpanProcessor, *, resource: Resource | None = None, root_ratio: float = 1.0
) -> None:
    """Send every kept span to `processor` from now on, keeping `root_ratio` of new traces
    (tests pass a `SimpleSpanProcessor` with an in-memory exporter)."""
    global _processor, _resource, _root_ratio  # noqa: PLW0603 - the process's one pipeline
    _processor = processor
    _resource = resource or Resource.create({})
    _root_ratio = root_ratio


def shutdown() -> None:
    """Export what is buffered and stop tracing."""
    global _processor  # noqa: PLW0603
    if _processor is not None:
        _processor.shutdown()
    _processor = None


def enabled() -> bool:
    return _processor is not None


class KeptSpan:
    """A kept span while it runs: what `span` and `kept_span` yield."""

    __slots__ = ("_context", "attributes", "events", "status")

    def __init__(self, context: SpanContext, attributes: Mapping[str, AttributeValue] | None):
        self._context = context
        self.attributes: dict[str, AttributeValue] = dict(attributes) if attributes else {}
        self.events: list[Event] = []
        self.status = _UNSET

    def get_span_context(self) -> SpanContext:
        return self._context

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value

    def set_status(self, code: StatusCode, description: str | None = None) -> None:
        self.status = Status(code, description)

    def record_exception(self, exc: BaseException) -> None:
        """What the SDK records for an exception that leaves a span: an `exception` event
        and an ERROR status."""
        self.events.append(
            Event(
                "exception",
                {
                    "exception.type": type(exc).__qualname__,
                    "exception.message": str(exc),
                    "exception.stacktrace": "".join(traceback.format_exception(exc)),
                },
            )
        )
        self.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    links: Sequence[Link] = (),
    parent: otel_context.Context | None = None,
    started_at: float | None = None,
) -> contextlib.AbstractContextManager[KeptSpan | None]:
    """A span, current inside the block (from `started_at`, epoch seconds, if given); None
    (and nothing made) when tracing is off or the sampler drops it."""
    if _processor is None or not keeps(parent, links):
        return _NOT_KEPT
    return kept_span(
        name, kind=kind, attributes=attributes, links=links, parent=parent, started_at=started_at
    )


def keeps(parent: otel_context.Context | None = None, links: Sequence[Link] = ()) -> bool:
    """The sampling decision, for a caller that would rather build nothing for a span the
    sampler drops (`kept_span` then makes the one it keeps). Parent-based: a child is kept
    when its parent is (a remote `traceparent`'s flag included); a new trace when a span it
    links to was, else by the ratio. False when tracing is off."""
    if _processor is None:
        return False
    if parent is not None:
        found = _named_span(parent)
        if found is not None:
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
) -> Iterator[KeptSpan]:
    """A span `keeps` has kept (`span` without the decision), current inside the block: a
    child of `parent` (a caller's `traceparent`) if given, else of the kept span current
    here, else the root of a new trace. An exception that leaves it is recorded on it.
    Tracing must be on."""
    processor = _processor
    if processor is None:
        raise RuntimeError("tracing is off: ask `keeps` before making a span")
    parent_context = _parent_context(parent)
    context = SpanContext(
        parent_context.trace_id if parent_context else _new_id(128, INVALID_TRACE_ID),
        _new_id(64, INVALID_SPAN_ID),
        is_remote=False,
        trace_flags=_SAMPLED,
        trace_state=parent_context.trace_state if parent_context else None,
    )
    start = time.time_ns() if started_at is None else int(started_at * 1e9)
    current = KeptSpan(context, attributes)
    token = _KEPT.set(context)
    try:
        yield current
    except BaseException as exc:
        current.record_exception(exc)
        raise
    finally:
        _KEPT.reset(token)
        processor.on_end(
            ReadableSpan(
                name,
                context=context,
                parent=parent_context,
                resource=_resource,
                attributes=current.attributes,
                events=current.events,
                links=links,
                kind=kind,
                status=current.status,
                start_time=start,
                end_time=time.time_ns(),
                instrumentation_scope=INSTRUMENTATION,
            )
        )


def _parent_context(parent: otel_context.Context | None) -> SpanContext | None:
    if parent is not None and (found := _named_span(parent)) is not None:
        return found
    return _KEPT.get()


def _named_span(parent: otel_context.Context) -> SpanContext | None:
    """The span `parent` names (a caller's `traceparent`), None if it names no valid one."""
    found = trace.get_current_span(parent).get_span_context()
    return found if found.is_valid else None


def _new_id(bits: int, invalid: int) -> int:
    while (new := _random.getrandbits(bits)) == invalid:
        pass
    return new


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
    current = current_span_context()
    if current is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(current)))
    return carrier


def incoming_context(carrier: Mapping[str, object] | None) -> otel_context.Context | None:
    """The context a `traceparent` carrier names (None: start a new trace)."""
    if _processor is None or not carrier:
        return None
    return propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})


def trace_id_of_current_span() -> str | None:
    """The current trace id as 32 hex digits, for log lines."""
    found = current_span_context()
    return None if found is None else format(found.trace_id, "032x")
