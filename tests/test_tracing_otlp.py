"""Tracing for real: a default bake started with SERVICE_TRACING_ENDPOINT exports its spans by OTLP/HTTP to a
receiver on 127.0.0.1, in the trace the event's `traceparent` names (the span tree itself is checked in
runtime/tests/integration/test_tracing.py with the SDK's in-memory exporter)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from service_process import ServiceProcess

pytestmark = pytest.mark.slow

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
# decoded in the baked venv, which has the exporter's protobuf classes (the template's test env does not)
DECODE = """
import json, sys
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
spans = []
for path in sys.argv[1:]:
    request = ExportTraceServiceRequest.FromString(open(path, "rb").read())
    for resource in request.resource_spans:
        service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append({"service": service, "name": span.name, "trace_id": span.trace_id.hex(),
                              "parent_span_id": span.parent_span_id.hex()})
print(json.dumps(spans))
"""


class OtlpReceiver(ThreadingHTTPServer):
    """Answers every POST 200 and keeps its path, content type and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: OtlpReceiver

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.requests.append((self.path, self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_bake_with_the_tracing_endpoint_set_exports_the_events_trace_by_otlp(
    bake_project, baked_python: Path, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path / 'events.db'}", "SERVICE_TRACING_ENDPOINT": endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    event = {"specversion": "1.0", "id": "traced-1", "source": "/tests", "type": "com.example.order.placed",
             "subject": "o-1", "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01",
             "data": {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 990, "currency": "EUR"}}
    with ServiceProcess(bake_project(), baked_python, env=env) as service:
        service.wait_ready()
        reply = httpx.post(f"{service.url}/events", json=event,
                           headers={"content-type": "application/cloudevents+json"}, timeout=10)
        assert reply.status_code == 202, reply.text
        service.wait_idle()
        assert service.stop() == 0  # the stop flushes what the batch processor still holds
    assert receiver.requests, "nothing was exported"
    assert {(path, content_type) for path, content_type, _ in receiver.requests} == {
        ("/v1/traces", "application/x-protobuf")
    }
    bodies = []
    for number, (_, _, body) in enumerate(receiver.requests):
        bodies.append(tmp_path / f"export-{number}.bin")
        bodies[-1].write_bytes(body)
    decoded = subprocess.run([str(baked_python), "-c", DECODE, *map(str, bodies)], capture_output=True, text=True,
                             check=True, timeout=60)
    spans = json.loads(decoded.stdout)
    names = sorted(span["name"] for span in spans)
    assert names == ["process com.example.order.placed", "process com.example.order.placed",
                     "receive com.example.order.placed", "store"], spans  # two handlers of order.placed
    assert {span["trace_id"] for span in spans} == {TRACE_ID}
    assert {span["service"] for span in spans} == {"event-service"}  # from the bake's event source, /event-service
    receive = next(span for span in spans if span["name"].startswith("receive"))
    assert receive["parent_span_id"] == PARENT_SPAN_ID
    assert all(span["parent_span_id"] == PARENT_SPAN_ID for span in spans if span["name"].startswith("process"))
