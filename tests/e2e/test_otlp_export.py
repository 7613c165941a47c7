"""Traces as an operator turns them on: the standard OTEL_* variables make `callscope serve`
export its spans over OTLP/HTTP, here to a receiver that decodes what a collector would get."""

from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready
from tests.factories import packet_body
from tests.otlp import otlp_receiver

pytestmark = pytest.mark.usefixtures("db")


def test_the_standard_otel_variables_export_spans_over_otlp(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with otlp_receiver() as receiver:
        env = clean_env(
            CALLSCOPE_DATABASE_URL=db_url,
            CALLSCOPE_INGEST_TOKENS="pbx",
            CALLSCOPE_SUPERVISOR_TOKENS="sup",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_SERVICE_NAME="callscope-under-test",
            OTEL_BSP_SCHEDULE_DELAY="100",  # ms: export soon, not after the default 5 s
        )
        log = tmp_path / "serve.log"
        with callscope_process(["serve", "--port", str(port)], env, tmp_path, log) as process:
            wait_ready(base, process, timeout=30, log=log)
            posted = httpx.post(
                f"{base}/v1/call/stream/otlp-1",
                json=packet_body(1),
                headers={"Authorization": "Bearer pbx"},
                timeout=10,
            )
            assert posted.status_code == 202
        assert process.returncode == 0, log.read_text()[-2000:]  # its shutdown flushed the spans
    spans = {
        span.name: (resource_spans.resource, span)
        for request in receiver.requests
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }
    assert {"POST /v1/call/stream/{call_id}", "ingest.batch"} <= spans.keys(), sorted(spans)
    resource, request_span = spans["POST /v1/call/stream/{call_id}"]
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "callscope-under-test"
    _, batch = spans["ingest.batch"]
    assert [link.span_id for link in batch.links] == [request_span.span_id]
