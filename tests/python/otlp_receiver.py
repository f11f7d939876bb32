"""An OTLP/HTTP trace receiver for the tests: decodes each POST to /v1/traces with the official
OpenTelemetry protobuf types (opentelemetry-proto) and prints one JSON line per request and per
span on stdout. Listens on 127.0.0.1 at the port given (0: any), and says where on stderr."""

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value(any_value):
    """An AnyValue as plain JSON."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value"):
        return MessageToDict(getattr(any_value, kind))
    return getattr(any_value, kind)


def attributes(pairs):
    return {pair.key: value(pair.value) for pair in pairs}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = {
            "path": self.path,
            "content_type": self.headers.get("content-type"),
            "body_b64": base64.b64encode(body).decode(),
        }
        try:
            export = ExportTraceServiceRequest.FromString(body)
        except Exception as error:  # a body that is not the protobuf message
            request["error"] = str(error)
            self.emit({"request": request})
            self.send_response(400)
            self.end_headers()
            return
        self.emit({"request": request})
        for resource_spans in export.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.emit(
                        {
                            "span": {
                                "resource": resource,
                                "scope": scope_spans.scope.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": span.kind,
                                "start_ns": span.start_time_unix_nano,
                                "end_ns": span.end_time_unix_nano,
                                "status_code": span.status.code,
                                "attributes": attributes(span.attributes),
                            }
                        }
                    )
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def emit(self, record):
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
