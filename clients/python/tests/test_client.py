"""The Python client against the real server (`$VECTOR_SERVICE_BIN`, which scripts/test.sh sets to
the binary its tests built, else `target/release/vector-service`): every method, every error mapping,
timeouts, a server that is down, and agreement with the server's OpenAPI document.

Run by scripts/test.sh: `python3 -m unittest discover -s clients/python/tests -v`.
"""

import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "clients" / "python"))

import vector_service  # noqa: E402
from vector_service import (  # noqa: E402
    AuthenticationError,
    BackendError,
    BackfillError,
    Client,
    ContextBuilder,
    EmbeddableDBMixin,
    EmbeddingBackfill,
    FallbackResult,
    LimitExceededError,
    MalformedPromptError,
    NotFoundError,
    PatchLogger,
    RateLimitError,
    Retriever,
    ServiceTimeoutError,
    ServiceUnavailableError,
    VectorServiceError,
)
from vector_service.exceptions import _BY_KIND  # noqa: E402

BINARY = Path(os.environ.get("VECTOR_SERVICE_BIN", REPO / "target" / "release" / "vector-service"))
KEY = "k-acme"
LIMITED_KEY = "k-limited"
HIT_KEYS = {"origin_db", "record_id", "score", "reason", "metadata"}


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


class Server:
    """`vector-service serve` on a free loopback port, stopped by `stop()`."""

    def __init__(self, data_dir, *global_args, tenants=None, log=None):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: build it (scripts/test.sh does)")
        command = [str(BINARY), "--data-dir", str(data_dir), *global_args, "serve",
                   "--listen", "127.0.0.1:0"]
        if tenants:
            command += ["--tenants", str(tenants)]
        self.log = open(log, "w") if log else None
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=self.log or subprocess.DEVNULL, text=True,
                                        env={**os.environ, "RUST_LOG": "info" if log else "warn"})
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the server did not start: {line!r}")
        self.url = line[len("listening on "):]

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        if self.log:
            self.log.close()


def post_records(url, key, path):
    request = urllib.request.Request(url + "/v1/records", data=Path(path).read_bytes(),
                                     method="POST")
    request.add_header("Content-Type", "application/x-ndjson")
    request.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class AgainstTheServer(unittest.TestCase):
    """One server with two tenants: `acme` (the sample corpus) and `limited` (1 request/s)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="vs-python-client-")
        tenants = Path(cls.dir.name) / "tenants.toml"
        tenants.write_text(
            f'[[tenant]]\nname = "acme"\napi_key_sha256 = "{sha256(KEY)}"\n\n'
            f'[[tenant]]\nname = "limited"\napi_key_sha256 = "{sha256(LIMITED_KEY)}"\n'
            "[tenant.limits]\nrequests_per_second = 1.0\n")
        cls.addClassCleanup(cls.dir.cleanup)
        cls.server = Server(Path(cls.dir.name) / "data", tenants=tenants)
        cls.addClassCleanup(cls.server.stop)
        answer = post_records(cls.server.url, KEY, REPO / "examples" / "data" / "records.jsonl")
        assert answer["databases"], answer
        cls.client = Client(cls.server.url, KEY, timeout=30)

    def test_search_returns_the_hits_as_the_original_did(self):
        hits = Retriever(client=self.client).search("upload failed", top_k=3, session_id="s-1")
        self.assertIsInstance(hits, list)
        self.assertNotIsInstance(hits, FallbackResult)
        self.assertTrue(1 <= len(hits) <= 3, hits)
        for hit in hits:
            self.assertEqual(set(hit), HIT_KEYS)
            self.assertIsInstance(hit["metadata"], dict)
        scores = [hit["score"] for hit in hits]
        self.assertEqual(scores, sorted(scores, reverse=True))

    def test_url_and_key_come_from_the_environment(self):
        saved = {k: os.environ.get(k) for k in ("VECTOR_SERVICE_URL", "VECTOR_SERVICE_API_KEY")}
        os.environ["VECTOR_SERVICE_URL"] = self.server.url
        os.environ["VECTOR_SERVICE_API_KEY"] = KEY
        try:
            self.assertTrue(Retriever().search("upload failed"))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def test_a_search_without_a_confident_answer_is_a_fallback_result(self):
        result = Retriever(client=self.client).search("qqxzv wwkjq", session_id="s-2")
        self.assertIsInstance(result, FallbackResult)
        self.assertIsInstance(result, list)
        self.assertEqual(result.reason, "no results")
        self.assertEqual(result.confidence, 0.0)
        self.assertEqual(len(result), 1)
        self.assertEqual(result[0]["origin_db"], "heuristic")
        self.assertIn("reason=", repr(result))

    def test_bad_input_is_malformed_prompt_before_and_at_the_server(self):
        retriever = Retriever(client=self.client)
        for query in ("", "   ", None, 42):
            with self.assertRaises(MalformedPromptError):
                retriever.search(query)
        with self.assertRaises(MalformedPromptError):
            ContextBuilder(client=self.client).build(" ")
        with self.assertRaises(MalformedPromptError) as raised:
            PatchLogger(client=self.client).track_contributors(["bot:x"] * 1001, True)
        self.assertEqual(raised.exception.status, 400)

    def test_a_whole_log_as_a_query_is_read_up_to_its_bound_with_a_warning(self):
        # The original took any size and its callers pass whole logs: the server cuts the query
        # at 512 words and says so, which the client turns into a Python warning.
        log = "upload failed while sending the file " * 100
        with self.assertWarns(UserWarning) as warned:
            hits = Retriever(client=self.client).search(log, top_k=3)
        self.assertIn("query cut to its first", str(warned.warning))
        self.assertTrue(hits)
        with self.assertWarns(UserWarning) as warned:
            ContextBuilder(client=self.client).build(log)
        self.assertIn("task cut to its first", str(warned.warning))

    def test_a_database_class_mixing_in_the_mixin_stores_and_searches_through_the_service(self):
        # The shape of the original's database classes (bot_database.py's BotDB): the mixin's
        # __init__ with the local index's keywords, iter_records, vector() returning
        # encode_text(...), and search_by_vector(self.encode_text(query)).
        class BotDB(EmbeddableDBMixin):
            vector_service_db = "bots-mixin"

            def __init__(self, client, bots):
                self.bots = bots
                EmbeddableDBMixin.__init__(self, index_path="bots.ann", embedding_version=2,
                                           backend="faiss", client=client)

            def iter_records(self):
                for bot_id, bot in self.bots.items():
                    yield bot_id, bot, "mixin-bot"

            def vector(self, rec):
                if isinstance(rec, int):
                    rec = self.bots[rec]
                return self.encode_text(rec["purpose"])

        with self.assertWarns(UserWarning) as warned:
            db = BotDB(self.client, {1: {"purpose": "rotates expiring tls certificates"},
                                     2: {"purpose": "compresses nightly database backups"}})
        self.assertIn("backend, index_path ignored", str(warned.warning))
        db.backfill_embeddings()
        found = db.search_by_vector(db.encode_text("certificates that are expiring"), top_k=1)
        self.assertEqual([rid for rid, _ in found], ["1"])
        self.assertEqual(db.search_by_vector(db.vector(2), top_k=1)[0][0], "2")
        db.add_embedding(3, {"purpose": "archives old chat transcripts"}, "mixin-bot",
                         source_id="chat")
        self.assertEqual(db.search_by_vector(db.encode_text("chat transcripts"))[0][0], "3")
        # Only this class's kind: the sample corpus's records are not among the hits.
        self.assertEqual(len(db.search_by_vector(db.encode_text("upload failed"))), 0)
        with self.assertRaises(MalformedPromptError):
            db.search_by_vector([1.0, 0.0])
        self.assertIsNone(db.get_vector(1))

    def test_the_retriever_helpers_read_the_records_metrics(self):
        retriever = Retriever(client=self.client)
        # The sample corpus: err-002 has frequency 35, wf-001 usage 141, bot-001 deploy_count 3.
        self.assertEqual(retriever.error_frequency("err-002"), 35.0)
        self.assertEqual(retriever.workflow_usage("wf-001"), 141.0)
        self.assertEqual(retriever.workflow_usage({"id": "wf-001", "title": "x"}), 141.0)
        self.assertEqual(retriever.bot_deploy_freq("bot-001"), 3.0)
        # As the original: 0.0 for what cannot be read, never an error.
        self.assertEqual(retriever.error_frequency("no-such-error"), 0.0)
        self.assertEqual(retriever.bot_deploy_freq("x" * 300), 0.0)
        self.assertEqual(retriever.workflow_usage(object()), 0.0)

    def test_build_returns_the_compact_context_string_and_its_reliability(self):
        builder = ContextBuilder(client=self.client)
        context = builder.build("fix failing tests", top_k=2, session_id="s-3")
        self.assertIsInstance(context, str)
        parsed = json.loads(context)
        self.assertTrue(parsed)
        self.assertEqual(context, json.dumps(parsed, separators=(",", ":"), ensure_ascii=False))
        order = ["errors", "bots", "workflows", "code", "discrepancies"]
        self.assertEqual(list(parsed), [b for b in order if b in parsed])
        for entries in parsed.values():
            self.assertLessEqual(len(entries), 2)
        same, metadata = builder.build("fix failing tests", top_k=2, return_metadata=True)
        self.assertEqual(same, context)
        self.assertEqual(metadata["session_id"] != "", True)
        for entry in metadata["entries"]:
            self.assertIn(entry["reliability_source"], ("vector", "origin", "none"))

    def test_track_contributors_writes_outcomes_that_reliability_then_counts(self):
        logger = PatchLogger(client=self.client)
        answer = logger.track_contributors(["bot:bot-005", "workflow:wf-008"], True,
                                           patch_id="p-1", session_id="s-4")
        self.assertEqual(answer["status"], "success")
        self.assertEqual(answer["written_to"], "primary")
        self.assertEqual(answer["rows"], 2)
        failed = logger.track_contributors(["bot:bot-005"], False, patch_id="p-2",
                                           roi_tag="no-such-tag")
        self.assertEqual(failed["status"], "failure")
        self.assertEqual(failed["roi_tag"], "success")
        self.assertTrue(failed["warnings"])
        _, metadata = ContextBuilder(client=self.client).build(
            "repairs failing tests by bisecting recent changes", top_k=5, return_metadata=True)
        tracked = [e for e in metadata["entries"] if e["id"] == "bot-005"]
        self.assertTrue(tracked, metadata["entries"])
        self.assertEqual(tracked[0]["reliability_source"], "vector")
        self.assertGreaterEqual(tracked[0]["reliability"]["samples"], 2)

    def test_the_originals_constructor_keywords_are_accepted_and_configure_or_warn(self):
        import warnings as w
        local = object()  # stands for a local database or retriever object
        with w.catch_warnings(record=True) as caught:
            w.simplefilter("always")
            # Baseline (fed26761e) and newest keywords; the backends are named and ignored.
            retriever = Retriever(retriever=local, top_k=1, similarity_threshold=0.0,
                                  retriever_kwargs={}, context_builder=local,
                                  client=self.client)
            builder = ContextBuilder(retriever=retriever, db_weights={"bot": 2.0},
                                     max_tokens=400, memory_manager=local, ranking_weight=1.0)
            logger = PatchLogger(patch_db=local, vector_metrics=local, metrics_db=local,
                                 client=self.client)
            backfill = EmbeddingBackfill(20, backend="annoy", client=self.client)
            positional = Retriever(local, client=self.client)
        ignored = " ".join(str(warning.message) for warning in caught)
        for name in ("retriever", "context_builder", "memory_manager", "patch_db",
                     "vector_metrics", "metrics_db", "<positional>"):
            self.assertIn(name, ignored)
        self.assertNotIn("top_k", ignored)
        # What configures behaviour is kept: one hit by the retriever's own top_k, the
        # builder reuses the retriever's server connection, the batch size is the run's.
        self.assertEqual(len(retriever.search("upload failed", session_id="s-k")), 1)
        self.assertIs(builder.client, self.client)
        self.assertEqual((builder.db_weights, builder.max_tokens), ({"bot": 2.0}, 400))
        self.assertTrue(builder.build_context("fix failing tests", top_k=2,
                                              include_vectors=False, session_id=None))
        self.assertEqual((backfill.batch_size, backfill.backend), (20, "annoy"))
        self.assertEqual(positional.client, self.client)
        with w.catch_warnings(record=True):
            w.simplefilter("always")
            hits = retriever.search("upload failed", dbs=["error"], exclude_tags=["x"])
        self.assertTrue(all(hit["origin_db"] == "error" for hit in hits), hits)
        self.assertEqual(logger.track_contributors(["error:err-001"], True,
                                                   patch_id="p-k")["status"], "success")

    def test_the_async_methods_answer_as_their_blocking_ones(self):
        import asyncio

        async def all_of_them():
            return await asyncio.gather(
                Retriever(client=self.client).search_async("upload failed", top_k=2),
                ContextBuilder(client=self.client).build_async("fix failing tests", top_k=1),
                PatchLogger(client=self.client).track_contributors_async(
                    ["bot:bot-002"], False, patch_id="p-async"),
            )

        hits, context, tracked = asyncio.run(all_of_them())
        self.assertEqual(hits, Retriever(client=self.client).search("upload failed", top_k=2))
        self.assertTrue(context.startswith("{"), context)
        self.assertEqual(tracked["status"], "failure")

    def test_a_failure_without_a_patch_id_is_recorded_as_the_original_did(self):
        # The original's callers leave patch_id at its default "" when a patch failed early.
        answer = PatchLogger(client=self.client).track_contributors(["bot:bot-001"], False)
        self.assertEqual(answer["status"], "failure")
        self.assertEqual(answer["written_to"], "primary")
        self.assertEqual(answer["rows"], 1)

    def test_backfill_runs_as_a_job_and_returns_its_report(self):
        backfill = EmbeddingBackfill(client=self.client)
        report = backfill.run(session_id="s-5", batch_size=50)
        self.assertEqual(report["status"], "success")
        self.assertEqual(report["session_id"], "s-5")
        self.assertTrue(report["databases"])
        again = backfill.run(dbs=["bots"])
        self.assertEqual([d["name"] for d in again["databases"]], ["bots"])
        self.assertEqual(again["databases"][0]["embedded"], 0)

    def test_a_wrong_key_is_an_authentication_error(self):
        with self.assertRaises(AuthenticationError) as raised:
            Retriever(self.server.url, api_key="wrong").search("upload failed")
        self.assertEqual(raised.exception.status, 401)
        self.assertEqual(raised.exception.kind, "unauthorized")
        self.assertIsInstance(raised.exception, VectorServiceError)

    def test_the_tenants_rate_is_a_rate_limit_error_with_retry_after(self):
        retriever = Retriever(self.server.url, api_key=LIMITED_KEY)
        with self.assertRaises(RateLimitError) as raised:
            for _ in range(5):
                retriever.search("upload failed")
        self.assertEqual(raised.exception.status, 429)
        self.assertGreaterEqual(raised.exception.retry_after, 1)

    def test_an_unknown_job_is_not_found(self):
        with self.assertRaises(NotFoundError) as raised:
            self.client.request("GET", "/v1/backfill/no-such-job")
        self.assertEqual(raised.exception.status, 404)

    def test_every_request_the_client_sends_is_one_the_document_describes(self):
        document = self.client.request("GET", "/openapi.json")
        sent = []

        class Recording(Client):
            def request(inner, method, path, body=None):
                sent.append((method, path, body))
                return Client.request(inner, method, path, body)

        client = Recording(self.server.url, KEY)
        Retriever(client=client).search("upload failed", top_k=2, similarity_threshold=0.2,
                                        session_id="s-6", origins=["bot"])
        ContextBuilder(client=client).build("fix failing tests", top_k=1, max_tokens=200,
                                            db_weights={"bot": 2.0}, session_id="s-6")
        PatchLogger(client=client).track_contributors(["bot:bot-001"], True, patch_id="p-9",
                                                      contribution=0.5, roi_tag="high-roi")
        EmbeddingBackfill(client=client).run(batch_size=10, dbs=["bots"], session_id="s-6")
        routes = {(m, p) for m, p, _ in sent}
        for method, path in [("POST", "/v1/search"), ("POST", "/v1/context"),
                             ("POST", "/v1/contributors"), ("POST", "/v1/backfill")]:
            self.assertIn((method, path), routes)
        for method, path, body in sent:
            template = re.sub(r"^/v1/backfill/[^/]+$", "/v1/backfill/{job}", path)
            operation = document["paths"].get(template, {}).get(method.lower())
            self.assertIsNotNone(operation, f"{method} {path} is not in the document")
            if body is None:
                continue
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            check_against(self, document, schema, body, f"{method} {path}")

    def test_every_error_kind_the_document_names_has_an_exception(self):
        document = self.client.request("GET", "/openapi.json")
        described = document["components"]["schemas"]["ErrorDetail"]["properties"]["kind"]
        kinds = set(re.findall(r"`([a-z-]+)`", described["description"]))
        cli_only = {"failed", "backfill-failed"}
        self.assertGreater(len(kinds), 15)
        self.assertEqual(kinds - cli_only - set(_BY_KIND), set())


def check_against(test, document, schema, value, where):
    """`value` fits `schema` in the ways a client can get wrong: names, required fields,
    JSON types (resolving `$ref`s into the document)."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    json_type = {bool: "boolean", int: "integer", float: "number", str: "string",
                 list: "array", dict: "object", type(None): "null"}[type(value)]
    if types:
        allowed = set(types) | ({"number"} if "integer" in types else set())
        if json_type == "integer" and "number" in types:
            allowed.add("integer")
        test.assertIn(json_type, allowed, f"{where}: {value!r} is not {types}")
    if isinstance(value, dict) and "properties" in schema:
        for name in schema.get("required", []):
            test.assertIn(name, value, f"{where}: {name} is required")
        for name, field in value.items():
            if schema.get("additionalProperties") is False:
                test.assertIn(name, schema["properties"], f"{where}: {name} is not a field")
            if name in schema["properties"]:
                check_against(test, document, schema["properties"][name], field, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for item in value:
            check_against(test, document, schema["items"], item, f"{where}[]")


class CannedAnswers(http.server.BaseHTTPRequestHandler):
    """A stand-in HTTP server (for fault handling only): `answer(path)` gives each POST's
    (status, JSON payload, extra headers)."""

    def answer(self, path):
        raise NotImplementedError

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, payload, headers = self.answer(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class RefusingEmbedder(CannedAnswers):
    """An embedding endpoint that refuses every request (400): a permanent backend failure."""

    def answer(self, path):
        return 400, b'{"error": {"message": "no such model"}}', ()


class AgainstABrokenBackend(unittest.TestCase):
    """The real server with an embedding endpoint that refuses: a backend error, a failed
    backfill."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="vs-python-client-")
        cls.addClassCleanup(cls.dir.cleanup)
        embedder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingEmbedder)
        threading.Thread(target=embedder.serve_forever, daemon=True).start()
        cls.addClassCleanup(embedder.server_close)
        cls.addClassCleanup(embedder.shutdown)
        cls.server = Server(Path(cls.dir.name), "--retrieval", "vector",
                            "--embedder", "http://127.0.0.1:%d/v1" % embedder.server_address[1],
                            "--embedding-model", "refused", "--embedding-dimensions", "8")
        cls.addClassCleanup(cls.server.stop)
        request = urllib.request.Request(
            cls.server.url + "/v1/records", method="POST",
            data=(REPO / "examples" / "data" / "records.jsonl").read_bytes(),
            headers={"Content-Type": "application/x-ndjson"})
        urllib.request.urlopen(request, timeout=30).read()

    def test_a_failing_backend_is_a_backend_error(self):
        with self.assertRaises(BackendError) as raised:
            Retriever(self.server.url).search("upload failed")
        self.assertEqual(raised.exception.status, 502)

    def test_a_failed_backfill_raises_with_its_report(self):
        with self.assertRaises(BackfillError) as raised:
            EmbeddingBackfill(self.server.url).run()
        report = raised.exception.report
        self.assertEqual(report["status"], "failure")
        self.assertTrue(all(d["error"] for d in report["databases"]), report)


class WithoutAServer(unittest.TestCase):
    """Nothing answering, a server that never answers, and error answers of every kind."""

    def test_a_server_that_is_down_is_service_unavailable(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with self.assertRaises(ServiceUnavailableError) as raised:
            Retriever(f"http://127.0.0.1:{port}", timeout=5).search("anything")
        self.assertEqual(raised.exception.kind, "unreachable")
        self.assertIsNone(raised.exception.status)

    def test_a_server_that_never_answers_times_out(self):
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            url = "http://127.0.0.1:%d" % silent.getsockname()[1]
            started = time.monotonic()
            with self.assertRaises(ServiceTimeoutError) as raised:
                Retriever(url, timeout=0.5).search("anything")
            self.assertLess(time.monotonic() - started, 5)
        self.assertIsInstance(raised.exception, ServiceUnavailableError)

    def test_each_error_answer_becomes_its_exception(self):
        answers = {}

        class Canned(CannedAnswers):
            def answer(self, path):
                status, kind, body = answers[path]
                payload = body if body is not None else json.dumps(
                    {"error": {"kind": kind, "message": f"{kind} here"}}).encode()
                return status, payload, [("Retry-After", "3")]

        expected = {
            (400, "malformed-prompt"): MalformedPromptError,
            (400, "bad-request"): MalformedPromptError,
            (401, "unauthorized"): AuthenticationError,
            (403, "forbidden-host"): AuthenticationError,
            (413, "limit-exceeded"): LimitExceededError,
            (429, "rate-limited"): RateLimitError,
            (502, "backend"): BackendError,
            (503, "overloaded"): ServiceUnavailableError,
            (503, "unavailable"): ServiceUnavailableError,
            (503, "deadline-exceeded"): LimitExceededError,
            (500, "internal"): VectorServiceError,
            (500, "a-kind-from-a-newer-server"): VectorServiceError,
        }
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            client = Client("http://127.0.0.1:%d" % server.server_address[1], timeout=5)
            for (status, kind), cls in expected.items():
                answers["/v1/search"] = (status, kind, None)
                with self.assertRaises(cls) as raised:
                    Retriever(client=client).search("q")
                self.assertIs(type(raised.exception), cls, kind)
                self.assertEqual((raised.exception.status, raised.exception.kind), (status, kind))
                self.assertEqual(raised.exception.retry_after, 3.0)
                self.assertEqual(str(raised.exception), f"{kind} here")
            answers["/v1/search"] = (502, None, b"<html>bad gateway</html>")
            with self.assertRaises(VectorServiceError) as raised:
                Retriever(client=client).search("q")
            self.assertEqual(raised.exception.status, 502)
        finally:
            server.shutdown()
            server.server_close()

    def test_the_original_names_are_exported(self):
        for name in ("Retriever", "ContextBuilder", "PatchLogger", "EmbeddingBackfill",
                     "FallbackResult", "VectorServiceError", "MalformedPromptError",
                     "RateLimitError", "SemanticServiceError", "ErrorResult"):
            self.assertTrue(hasattr(vector_service, name), name)
        for cls in (MalformedPromptError, RateLimitError, BackendError, LimitExceededError):
            self.assertTrue(issubclass(cls, VectorServiceError))

    def test_the_original_submodules_import_what_its_callers_import(self):
        # The import lines the original's own modules use most (its fed26761e and newest).
        import importlib
        for module, names in {
            "vector_service.retriever": ("Retriever", "FallbackResult"),
            "vector_service.context_builder": ("ContextBuilder", "ErrorResult"),
            "vector_service.patch_logger": ("PatchLogger",),
            "vector_service.embedding_backfill": ("EmbeddingBackfill",),
            "vector_service.exceptions": ("SemanticServiceError", "VectorServiceError",
                                          "RateLimitError", "MalformedPromptError",
                                          "RetrieverConfigurationError"),
            "vector_service.decorators": ("log_and_measure", "log_and_time", "track_metrics"),
        }.items():
            loaded = importlib.import_module(module)
            for name in names:
                self.assertIs(getattr(loaded, name), getattr(vector_service, name), name)

    def test_the_exceptions_have_the_original_bases(self):
        # `except ValueError` around a blank query, `except RuntimeError` or
        # `except SemanticServiceError` around any call: as the original's callers wrote them.
        from vector_service import SemanticServiceError
        self.assertTrue(issubclass(MalformedPromptError, ValueError))
        self.assertTrue(issubclass(VectorServiceError, RuntimeError))
        self.assertTrue(issubclass(VectorServiceError, SemanticServiceError))
        with self.assertRaises(ValueError):
            Retriever(client=Client("http://127.0.0.1:9", None, 1)).search("   ")

    def test_a_fallback_result_is_a_sequence_with_the_original_fields(self):
        result = FallbackResult("low confidence", [{"origin_db": "heuristic"}], 0.05)
        self.assertEqual(result.results, [{"origin_db": "heuristic"}])
        self.assertEqual((result.reason, result.confidence, len(result)), ("low confidence", 0.05, 1))
        self.assertEqual(result[0]["origin_db"], "heuristic")

    def test_log_and_measure_logs_each_call_and_passes_its_result_and_errors_through(self):
        from vector_service.decorators import log_and_measure

        @log_and_measure
        def double(value, session_id=""):
            if value < 0:
                raise ValueError("negative")
            return 2 * value

        with self.assertLogs(double.__module__, "INFO") as logs:
            self.assertEqual(double(21, session_id="s-1"), 42)
            with self.assertRaises(ValueError):
                double(-1)
        # The original's messages and extra fields, which log formatters written for it read.
        self.assertEqual([r.getMessage().rsplit(" ", 1)[1] for r in logs.records],
                         ["start", "end", "start", "error"])
        self.assertTrue(logs.records[1].getMessage().endswith("double end"))
        self.assertEqual([r.session_id for r in logs.records], ["s-1", "s-1", "", ""])
        self.assertGreaterEqual(logs.records[1].latency, 0.0)
        self.assertEqual((logs.records[1].result_size, logs.records[3].result_size), (0, 0))
        self.assertIsNotNone(logs.records[3].exc_info)

if __name__ == "__main__":
    unittest.main()
