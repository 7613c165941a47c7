"""An OTLP/HTTP trace receiver on a free port, in this process: what a collector would get
from callscope's exporter, decoded (the OTLP export test; the ingest benchmarks, so that
tracing costs the servers what it costs)."""

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class OtlpReceiver:
    url: str  # the base URL, for OTEL_EXPORTER_OTLP_ENDPOINT
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)  # as received

    def span_names(self) -> Counter[str]:
        """Spans received so far, by name."""
        return Counter(
            span.name
            for request in list(self.requests)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        )


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    received: list[ExportTraceServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the exporter's connection open, as a collector does

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            found = self.path == "/v1/traces"
            if found:
                received.append(ExportTraceServiceRequest.FromString(body))
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield OtlpReceiver(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
