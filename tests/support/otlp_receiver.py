#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver for flowlib's `otel` tests.

Listens on 127.0.0.1 (an ephemeral port unless --port), accepts POST /v1/traces with an
`application/x-protobuf` body (gzip or not), decodes it as an ExportTraceServiceRequest with
the official `opentelemetry-proto` package (PyPI, installed by scripts/services.sh into its
otlp-venv), appends one JSON line per span to --out, and answers with an (empty)
ExportTraceServiceResponse, as the OTLP/HTTP specification says. Prints `listening <port>`
once it is ready. Stops after --timeout seconds, whatever happens.

Nothing is emulated in the protocol: the bytes are what the exporter sent and the
messages are the official ones. What it is not is a collector: it stores spans, it does
not process or forward them.
"""
import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    x = getattr(v, kind)
    if kind == "array_value":
        return [value(i) for i in x.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in x.values}
    if kind == "bytes_value":
        return x.hex()
    return x


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            if self.path != "/v1/traces":
                self.send_error(404, "only /v1/traces")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding", "") == "gzip":
                body = gzip.decompress(body)
            if not self.headers.get("Content-Type", "").startswith("application/x-protobuf"):
                self.send_error(415, "application/x-protobuf only")
                return
            req = ExportTraceServiceRequest()
            try:
                req.ParseFromString(body)
            except Exception as e:  # a malformed body is the exporter's bug: say so
                self.send_error(400, "not an ExportTraceServiceRequest: %s" % e)
                return
            lines = []
            for rs in req.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        lines.append(json.dumps({
                            "name": s.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "attributes": attrs(s.attributes),
                            "resource": resource,
                            "scope": ss.scope.name,
                        }))
            with lock, open(args.out, "a") as f:
                for line in lines:
                    f.write(line + "\n")
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Timer(args.timeout, server.shutdown).start()
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
