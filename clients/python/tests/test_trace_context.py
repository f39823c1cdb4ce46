"""The caller's OpenTelemetry trace reaches the server: with the OpenTelemetry API installed
and a span current, each request carries `traceparent`, and the server's log lines of that
request carry its trace id. (Without the API nothing is sent: every other test runs so.)

The API is installed into `target/python-otel` with pip when it is not there yet, as the
README's test command installs what is missing."""

import json
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from test_client import REPO, Server

from vector_service import Retriever

OTEL_DIR = REPO / "target" / "python-otel"
OTEL_API = "opentelemetry-api==1.45.2"


def opentelemetry_api():
    """`opentelemetry.trace`, installed into target/python-otel first if need be."""
    if not (OTEL_DIR / "opentelemetry").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(OTEL_DIR), OTEL_API], check=True)
    if str(OTEL_DIR) not in sys.path:
        sys.path.insert(0, str(OTEL_DIR))
    from opentelemetry import context, trace

    return context, trace


class TheCallersTraceReachesTheServer(unittest.TestCase):
    def test_a_search_inside_a_span_is_logged_under_its_trace_id(self):
        context, trace = opentelemetry_api()
        with tempfile.TemporaryDirectory(prefix="vs-trace-context-") as directory:
            log = Path(directory) / "server.log"
            server = Server(Path(directory) / "data", log=log)
            try:
                trace_id, span_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
                caller = trace.NonRecordingSpan(trace.SpanContext(
                    trace_id=trace_id, span_id=span_id, is_remote=False,
                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
                token = context.attach(trace.set_span_in_context(caller))
                try:
                    Retriever(server.url, timeout=30).search("anything at all", session_id="t-1")
                finally:
                    context.detach(token)
                # Outside the span nothing is forwarded: the server starts a trace of its own.
                Retriever(server.url, timeout=30).search("anything else", session_id="t-2")
                lines = self.request_lines(log, count=2)
            finally:
                server.stop()
        by_session = {line["fields"]["session_id"]: line["fields"]["trace_id"] for line in lines}
        self.assertEqual(by_session["t-1"], f"{trace_id:032x}")
        self.assertNotEqual(by_session["t-2"], f"{trace_id:032x}")

    def request_lines(self, log, count):
        """The server's `request` log lines, once `count` of them are written (the log
        writer batches; a few seconds at most)."""
        deadline = time.monotonic() + 10
        while True:
            requests = []
            for text in log.read_text().splitlines():
                try:
                    line = json.loads(text)
                except ValueError:  # a line still being written, or not the JSON log's
                    continue
                if line.get("fields", {}).get("message") == "request":
                    requests.append(line)
            if len(requests) >= count or time.monotonic() > deadline:
                return requests
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
