"""OpenTelemetry: the span tree of one call, from its packets to ARCHIVED, with an in-memory
exporter: the PBX's `traceparent` is continued by each request, each ingest batch links the
requests it carried, the AI job is a child of the request that completed the call, its
provider attempts and the archive are children of the job; events sent to a supervisor get a
span each; log lines carry the trace id."""

import asyncio
import json
import secrets
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import structlog
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.testing import capture_logs
from websockets.asyncio.client import connect

from callscope import tracing
from callscope.logging import add_trace_id
from callscope.settings import Settings
from tests.factories import INGEST, packet_body
from tests.integration.ai_helpers import FAST_AI, wait_for_states, worker_running
from tests.live import feed_url, served


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _only(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (found,) = _named(spans, name)
    return found


async def test_one_call_is_one_span_tree_from_packets_to_archived(
    spans: InMemorySpanExporter, settings: Settings, db: asyncpg.Connection
) -> None:
    trace_id = secrets.token_hex(16)
    parents = [secrets.token_hex(8) for _ in range(4)]

    def traced(n: int) -> dict[str, str]:
        return {**INGEST, "traceparent": f"00-{trace_id}-{parents[n]}-01"}

    ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.0})
    merged = [structlog.contextvars.merge_contextvars, add_trace_id]
    async with served(settings) as running, httpx.AsyncClient(base_url=running.http) as http:
        async with connect(feed_url(running.ws)) as feed:
            assert json.loads(await feed.recv())["type"] == "snapshot"
            for n in range(3):
                response = await http.post(
                    "/v1/call/stream/tr-1", json=packet_body(n + 1), headers=traced(n)
                )
                assert response.status_code == 202
            completed = await http.post("/v1/calls/tr-1/complete", headers=traced(3))
            assert completed.status_code == 200
            with capture_logs(processors=merged) as logs:
                async with worker_running(ai):
                    await wait_for_states(db, {"ARCHIVED"}, count=1)
            while json.loads(await feed.recv())["type"] != "call.archived":
                pass
        await asyncio.sleep(0.05)  # the send's span ends after the frame is written
    finished = spans.get_finished_spans()
    wanted = int(trace_id, 16)

    requests = _named(finished, "POST /v1/call/stream/{call_id}")
    assert len(requests) == 3
    complete = _only(finished, "POST /v1/calls/{call_id}/complete")
    for n, request in enumerate([*requests, complete]):
        assert request.context is not None
        assert request.parent is not None
        assert request.context.trace_id == wanted
        assert request.parent.span_id == int(parents[n], 16)
        assert request.attributes is not None
        assert request.attributes["http.response.status_code"] in (200, 202)

    linked = {link.context.span_id for b in _named(finished, "ingest.batch") for link in b.links}
    assert {r.context.span_id for r in requests if r.context is not None} <= linked

    job = _only(finished, "ai.job")
    assert job.context is not None
    assert job.parent is not None
    assert complete.context is not None
    assert job.context.trace_id == wanted
    assert job.parent.span_id == complete.context.span_id
    children = [
        s for s in finished if s.parent is not None and s.parent.span_id == job.context.span_id
    ]
    assert {s.name for s in children} == {
        "ai.provider.transcribe",
        "ai.provider.sentiment",
        "call.archive",
    }
    sends = [
        s
        for s in _named(finished, "live.send")
        if s.attributes is not None and s.attributes["callscope.event"] == "call.archived"
    ]
    assert len(sends) == 1

    (archived_line,) = [line for line in logs if line["event"] == "call_archived"]
    assert archived_line["trace_id"] == trace_id


async def test_tracing_is_off_unless_the_environment_asks() -> None:
    assert not tracing.enabled()
    assert not tracing.wanted_by_environment({})
    assert tracing.wanted_by_environment({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted_by_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.wanted_by_environment(
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing.wanted_by_environment({"OTEL_TRACES_EXPORTER": "none"})


async def test_the_sampler_decides_before_a_span_is_made(client: httpx.AsyncClient) -> None:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter), root_ratio=0.0)  # keep no new trace
    trace_id = secrets.token_hex(16)
    try:
        for n, flags in enumerate(("", "00", "01"), start=1):
            headers = dict(INGEST)
            if flags:
                headers["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"
            response = await client.post(
                "/v1/call/stream/tr-s", json=packet_body(n), headers=headers
            )
            assert response.status_code == 202
    finally:
        tracing.shutdown()
    finished = exporter.get_finished_spans()
    # Only the request whose caller sampled it, and the batch that carried it.
    assert sorted(span.name for span in finished) == [
        "POST /v1/call/stream/{call_id}",
        "ingest.batch",
    ]
    assert all(span.context is not None for span in finished)


def test_the_ratio_comes_from_the_standard_variables() -> None:
    assert tracing.sampling_ratio({}) == 1.0
    ratio = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
    assert tracing.sampling_ratio(ratio) == 0.01
    assert tracing.sampling_ratio({"OTEL_TRACES_SAMPLER": "always_off"}) == 0.0
    assert tracing.sampling_ratio({"OTEL_TRACES_SAMPLER": "traceidratio"}) == 1.0


@pytest.mark.parametrize(
    ("environment", "service"),
    [
        ({}, "callscope-serve"),
        ({"OTEL_SERVICE_NAME": "pbx-ingest"}, "pbx-ingest"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=eu-1,deployment.environment=prod"}, "eu-1"),
    ],
    ids=["default", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"],
)
def test_the_service_is_named_by_the_environment_if_it_says(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], service: str
) -> None:
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert tracing.service_resource("callscope-serve").attributes["service.name"] == service


def test_a_span_inside_a_kept_one_is_its_kept_child_and_nothing_leaks_out() -> None:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter), root_ratio=0.0)  # keep no new trace
    try:
        with tracing.span("dropped") as dropped:
            assert dropped is None
            assert tracing.current_span_context() is None
        with tracing.kept_span("outer") as outer:
            assert tracing.current_span_context() == outer.get_span_context()
            with tracing.span("inner") as inner:
                assert inner is not None
                assert tracing.current_span_context() == inner.get_span_context()
            assert tracing.current_span_context() == outer.get_span_context()
        assert tracing.current_span_context() is None
        assert not tracing.keeps()
    finally:
        tracing.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert sorted(spans) == ["inner", "outer"]
    inner_parent = spans["inner"].parent
    assert inner_parent is not None
    assert inner_parent.span_id == spans["outer"].context.span_id


def test_an_exception_that_leaves_a_span_is_recorded_on_it() -> None:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    try:
        with pytest.raises(ValueError, match="bad frame"), tracing.kept_span("failing"):
            raise ValueError("bad frame")
    finally:
        tracing.shutdown()
    (failed,) = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: bad frame"
    (event,) = failed.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert "bad frame" in str(event.attributes["exception.stacktrace"])


def test_kept_spans_encode_for_otlp_with_their_parent_links_and_resource() -> None:
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": "callscope-test"})
    tracing.install(SimpleSpanProcessor(exporter), resource=resource)
    caller = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    incoming = tracing.incoming_context({"traceparent": caller, "tracestate": "pbx=7"})
    try:
        with tracing.kept_span("request", kind=SpanKind.SERVER, parent=incoming) as request:
            request.set_attribute("http.response.status_code", 202)
            headers = tracing.outgoing_headers()
            linked = tracing.current_span_context()
        with tracing.span("batch", links=tracing.links_to([linked])):
            pass
    finally:
        tracing.shutdown()
    assert headers is not None
    assert headers["traceparent"].split("-")[1] == caller.split("-")[1]
    assert headers["traceparent"].split("-")[2] == format(
        request.get_span_context().span_id, "016x"
    )
    assert headers["tracestate"] == "pbx=7"

    decoded = ExportTraceServiceRequest.FromString(
        encode_spans(exporter.get_finished_spans()).SerializeToString()
    )
    (resource_spans,) = decoded.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "callscope-test"
    by_name = {s.name: s for scope in resource_spans.scope_spans for s in scope.spans}
    assert by_name["request"].parent_span_id.hex() == caller.split("-")[2]
    assert by_name["request"].trace_id.hex() == caller.split("-")[1]
    assert by_name["request"].attributes[0].value.int_value == 202
    (link,) = by_name["batch"].links
    assert link.span_id == by_name["request"].span_id
    assert by_name["batch"].trace_id != by_name["request"].trace_id  # a batch starts its own
    assert by_name["batch"].end_time_unix_nano >= by_name["batch"].start_time_unix_nano > 0
