"""What the original module's own tests assert, case by case, against this package and the
real server.

The original is `vector_service` in Demi-urge/menace_sandbox at fed26761e; each test here names
the test it reproduces (`file::function`). Our tests are written anew in `unittest`; theirs
inject stub backends, and where one was injected its data became the server's records (one
tenant per stub, so no test sees another's). What a stub recorded (the pairs a metrics database
was handed, the contribution) is read back from the tenant's SQLite file; what the original's
decorators counted is read from the server's `/metrics`.

Not reproduced, and why:
- `test_vector_service.py::test_patch_logger_metrics_db_failure_ignored` and the failing half
  of `test_patch_logger_metrics.py::test_track_contributors_db_failure_still_counts`: a metrics
  database that fails is a fault inside the server (host/runtime/tests/service/patch_logger.rs
  injects it); from outside, its primary database does not fail.
- `test_vector_service_edge_cases.py::test_retriever_low_confidence_fallback`'s `calls == 2`:
  the retry happens inside the server and is not visible to a caller (the fallback is).
- `test_vector_service_layer.py::test_quick_fix_engine_uses_service_layer`, the three tests of
  `integration/test_vector_service_clients.py` past their first assertion,
  `test_context_builder.py::test_self_coding_engine_includes_context` and
  `::test_bot_development_bot_includes_context`: they test the original's other modules
  (QuickFixEngine, ErrorClusterPredictor, SelfCodingEngine, BotDevelopmentBot) with this
  module stubbed out.
- The decorators' gauges that tests replace (`_CALL_COUNT`, `_LATENCY_GAUGE`,
  `_RESULT_SIZE_GAUGE`, `_TRACK_OUTCOME`, `_RUN_OUTCOME`) do not exist here: the server's
  counters that measure the same are asserted instead.
- `test_retriever_confidence.py` and `integration/test_shared_vector_search.py`: they test
  `UniversalRetriever` and the original's database classes, not this module.
"""

import asyncio
import json
import logging
import sqlite3
import tempfile
import unittest
import urllib.request
from pathlib import Path

from test_client import Server, sha256

from vector_service import (
    Client,
    ContextBuilder,
    EmbeddableDBMixin,
    EmbeddingBackfill,
    FallbackResult,
    MalformedPromptError,
    PatchLogger,
    RateLimitError,
    Retriever,
)
from vector_service.decorators import log_and_measure

# Each stub of the original's tests, as the records of one tenant.
STUB_RECORDS = {
    # DummyHit: origin "db", record "1", no metadata; found by the tests' queries.
    "stubs": [{"db": "db", "origin_db": "db", "id": "1", "text": "query question",
               "metadata": {}}],
    # test_vector_service_async.py's DummyResult: an error record with integer id 1.
    "async": [{"db": "errors", "origin_db": "error", "id": 1, "text": "test query oops",
               "metadata": {"id": 1, "message": "oops"}}],
    # test_context_builder.py's make_builder: every record answers its query "alpha issue".
    "builder": [
        {"db": db, "origin_db": origin, "id": row["id"], "text": f"{text} alpha issue",
         "metadata": row}
        for db, origin, key, rows in (
            ("bots", "bot", "name", [{"id": 2, "name": "beta", "roi": 5},
                                     {"id": 1, "name": "alpha", "roi": 10}]),
            ("workflows", "workflow", "title", [{"id": 11, "title": "test", "roi": 2},
                                                {"id": 10, "title": "deploy", "roi": 7}]),
            ("errors", "error", "message", [{"id": 101, "message": "worse", "frequency": 3},
                                            {"id": 100, "message": "bad", "frequency": 1}]),
            ("code", "code", "summary", [{"id": 201, "summary": "tweak", "roi": 1},
                                         {"id": 200, "summary": "fix", "roi": 9}]))
        for row in rows for text in (row[key],)],
    # test_weighted_ordering's bundles: one bot, workflow and error, each scored 1.0.
    "weights": [
        {"db": "bots", "origin_db": "bot", "id": 1, "text": "alpha issue",
         "metadata": {"id": 1, "name": "alpha", "roi": 1}},
        {"db": "workflows", "origin_db": "workflow", "id": 10, "text": "alpha issue",
         "metadata": {"id": 10, "title": "deploy", "roi": 1}},
        {"db": "errors", "origin_db": "error", "id": 100, "text": "alpha issue",
         "metadata": {"id": 100, "message": "bad", "frequency": 1}}],
}
# make_builder's expected context for "alpha issue" at top_k=1, as the original's test wrote it.
EXPECTED_CONTEXT = json.dumps({
    "errors": [{"id": 100, "desc": "bad", "metric": 0.5}],
    "bots": [{"id": 1, "name": "alpha", "desc": "alpha", "metric": 10.0}],
    "workflows": [{"id": 10, "title": "deploy", "desc": "deploy", "metric": 7.0}],
    "code": [{"id": 200, "desc": "fix", "metric": 9.0}],
}, ensure_ascii=False, separators=(",", ":"))
TENANTS = ("stubs", "async", "builder", "weights", "empty", "limited", "outcomes", "backfill")
SERVER = None


def key(tenant):
    return f"k-{tenant}"


def setUpModule():
    global SERVER, DIR
    DIR = tempfile.TemporaryDirectory(prefix="vs-originals-tests-")
    tenants = Path(DIR.name) / "tenants.toml"
    tenants.write_text("".join(
        f'[[tenant]]\nname = "{t}"\napi_key_sha256 = "{sha256(key(t))}"\n'
        + ("[tenant.limits]\nrequests_per_second = 1.0\n" if t == "limited" else "") + "\n"
        for t in TENANTS))
    SERVER = Server(Path(DIR.name) / "data", tenants=tenants)
    for tenant, records in STUB_RECORDS.items():
        client(tenant).request("POST", "/v1/records", records)


def tearDownModule():
    SERVER.stop()
    DIR.cleanup()


def client(tenant):
    return Client(SERVER.url, key(tenant), timeout=30)


def outcome_rows(tenant, patch_id):
    """What the tenant's metrics databases recorded for `patch_id`: (table, session, origin,
    vector id, success, contribution) per vector, read from its SQLite file."""
    path = Path(DIR.name) / "data" / f"{tenant}.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT 'primary', session_id, origin_db, vector_id, success, contribution "
            "FROM patch_outcomes WHERE patch_id = ?1 UNION ALL "
            "SELECT 'vector', session_id, origin_db, vector_id, win, contribution "
            "FROM vector_outcomes WHERE patch_id = ?1 ORDER BY 3, 4", (patch_id,)).fetchall()


def metric(tenant, name, **labels):
    """One sample of the tenant's `/metrics` (0.0 when absent): the line whose name and
    label set are exactly `name` and `labels` plus `tenant`."""
    request = urllib.request.Request(SERVER.url + "/metrics",
                                     headers={"Authorization": "Bearer " + key(tenant)})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    wanted = {**labels, "tenant": tenant}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        sample, _, body = head.partition("{")
        pairs = dict(p.split("=", 1) for p in body.rstrip("}").split(",") if p)
        if sample == name and {k: v.strip('"') for k, v in pairs.items()} == wanted:
            return float(value)
    return 0.0


class TestVectorService(unittest.TestCase):
    """tests/test_vector_service.py"""

    def test_retriever_search_success_returns_results(self):
        # ::test_retriever_search_success_returns_results (and edge_cases.py's
        # ::test_retriever_search_success, the same): the backend's hit comes back first.
        results = Retriever(client=client("stubs")).search("query", session_id="s")
        self.assertEqual(results[0]["record_id"], "1")

    def test_retriever_search_rate_limit_raises_error(self):
        # ::test_retriever_search_rate_limit_raises_error: a 429 is RateLimitError. The stub
        # raised it in the backend; here the tenant's own limit (1 request/s) answers 429.
        retriever = Retriever(client=client("limited"))
        with self.assertRaises(RateLimitError):
            for _ in range(3):
                retriever.search("q", session_id="s")

    def test_retriever_search_fallback_when_no_hits(self):
        # ::test_retriever_search_fallback_when_no_hits
        res = Retriever(client=client("empty")).search("q", session_id="s")
        self.assertIsInstance(res, FallbackResult)
        self.assertEqual(res.reason, "no results")

    def test_retriever_search_low_confidence_fallback(self):
        # ::test_retriever_search_low_confidence_fallback: a hit that matches one word of a
        # longer query is below the default threshold 0.1.
        res = Retriever(client=client("stubs")).search("question about the weather in paris",
                                                       session_id="s")
        self.assertIsInstance(res, FallbackResult)
        self.assertEqual(res.reason, "low confidence")

    def test_retriever_search_malformed_prompt(self):
        # ::test_retriever_search_malformed_prompt
        with self.assertRaises(MalformedPromptError):
            Retriever(client=client("stubs")).search("  ", session_id="s")

    def test_patch_logger_metrics_db_success(self):
        # ::test_patch_logger_metrics_db_success: the metrics database gets the pair ("a", "b").
        PatchLogger(client=client("outcomes")).track_contributors(
            ["a:b"], True, patch_id="p", session_id="s")
        self.assertEqual(outcome_rows("outcomes", "p"), [("primary", "s", "a", "b", 1, 0.0)])

    def test_patch_logger_vector_metrics_db_success(self):
        # ::test_patch_logger_vector_metrics_db_success: a failure with a bare id is recorded.
        # The server writes its primary database while that one takes writes; the vector
        # metrics database takes outcomes when it does not (not reachable from outside).
        answer = PatchLogger(client=client("outcomes")).track_contributors(
            ["x"], False, session_id="s-x")
        self.assertEqual((answer["status"], answer["rows"]), ("failure", 1))

    def test_patch_logger_patch_db_success(self):
        # ::test_patch_logger_patch_db_success: patch "7" is recorded under its id.
        PatchLogger(client=client("outcomes")).track_contributors(
            ["a:b"], True, patch_id="7", session_id="sid")
        self.assertEqual(outcome_rows("outcomes", "7"), [("primary", "sid", "a", "b", 1, 0.0)])

    def test_embedding_backfill_run_processes_databases(self):
        # ::test_embedding_backfill_run_processes_databases: each known database is processed
        # with the run's batch size and session.
        called = []

        class DummyDB(EmbeddableDBMixin):
            def __init__(self, vector_backend="annoy"):
                pass

            def backfill_embeddings(self, batch_size=0):
                called.append((type(self), batch_size))

        with known_dbs(DummyDB):
            report = EmbeddingBackfill(batch_size=7, client=client("backfill")).run(
                session_id="sid")
        self.assertEqual(called, [(DummyDB, 7)])
        self.assertEqual(report["session_id"], "sid")

    def test_embedding_backfill_run_continues_on_error(self):
        # ::test_embedding_backfill_run_continues_on_error
        order = []

        class ErrorDB(EmbeddableDBMixin):
            def backfill_embeddings(self, batch_size=0):
                order.append(type(self))
                raise RuntimeError("fail")

        class DummyDB(EmbeddableDBMixin):
            def backfill_embeddings(self, batch_size=0):
                order.append(type(self))

        with known_dbs(ErrorDB, DummyDB):
            report = EmbeddingBackfill(client=client("backfill")).run(session_id="s")
        self.assertEqual(order, [ErrorDB, DummyDB])
        self.assertEqual([c["status"] for c in report["classes"]], ["failed", "backfilled"])

    def test_embedding_backfill_instantiation_fallback(self):
        # ::test_embedding_backfill_instantiation_fallback: a class that refuses
        # `vector_backend=` is made without arguments.
        made = []

        class InitFallbackDB(EmbeddableDBMixin):
            def __init__(self, vector_backend=""):
                if vector_backend:
                    raise TypeError("no backend")
                made.append(self)

            def backfill_embeddings(self, batch_size=0):
                self.batch = batch_size

        with known_dbs(InitFallbackDB):
            EmbeddingBackfill(batch_size=3, client=client("backfill")).run()
        self.assertEqual([db.batch for db in made], [3])


class TestVectorServiceAsync(unittest.TestCase):
    """tests/test_vector_service_async.py"""

    def test_log_and_measure_async(self):
        # ::test_log_and_measure_async: a coroutine function keeps its result, and its call
        # is logged (the original's gauges counted it; its log lines are asserted here).
        @log_and_measure
        async def example(n):
            await asyncio.sleep(0)
            return list(range(n))

        with self.assertLogs(example.__module__, "INFO") as logs:
            self.assertEqual(asyncio.run(example(3)), [0, 1, 2])
        self.assertEqual([r.getMessage().rsplit(" ", 1)[1] for r in logs.records],
                         ["start", "end"])
        self.assertEqual(logs.records[1].result_size, 3)

    def test_retriever_search_async(self):
        # ::test_retriever_search_async: the hit's integer record id, and one call counted.
        before = metric("async", "vector_service_calls_total", function="Retriever.search")
        result = asyncio.run(Retriever(client=client("async")).search_async("test",
                                                                            session_id="s"))
        self.assertEqual(result[0]["record_id"], 1)
        self.assertEqual(metric("async", "vector_service_calls_total",
                                function="Retriever.search") - before, 1)

    def test_context_builder_build_async(self):
        # ::test_context_builder_build_async: the error bucket holds record 1, as an integer.
        builder = ContextBuilder(retriever=Retriever(client=client("async")))
        data = json.loads(asyncio.run(builder.build_async("query")))
        self.assertEqual(data["errors"][0]["id"], 1)

    def test_patch_logger_track_contributors_async(self):
        # ::test_patch_logger_track_contributors_async: patch "99" reaches the metrics database.
        asyncio.run(PatchLogger(client=client("outcomes")).track_contributors_async(
            ["err:1", "code:2"], True, patch_id="99", session_id="s"))
        self.assertEqual([row[2:4] for row in outcome_rows("outcomes", "99")],
                         [("code", "2"), ("err", "1")])


class TestVectorServiceEdgeCases(unittest.TestCase):
    """tests/test_vector_service_edge_cases.py"""

    def test_retriever_low_confidence_fallback(self):
        # ::test_retriever_low_confidence_fallback: the fallback carries the confidence the
        # retriever reported, below the threshold.
        res = Retriever(client=client("stubs"), similarity_threshold=0.1).search(
            "question about the weather in paris", session_id="s")
        self.assertIsInstance(res, FallbackResult)
        self.assertEqual(res.reason, "low confidence")
        self.assertTrue(0.0 < res.confidence < 0.1, res.confidence)

    def test_retriever_malformed_query(self):
        # ::test_retriever_malformed_query
        with self.assertRaises(MalformedPromptError):
            Retriever(client=client("stubs")).search("", session_id="s")

    def test_patch_logger_updates_vector_metrics_db(self):
        # ::test_patch_logger_updates_vector_metrics_db: pairs ("db1", "123") and ("", "id2"),
        # contribution 0.0, a win.
        PatchLogger(client=client("outcomes")).track_contributors(
            ["db1:123", "id2"], True, patch_id="p1", session_id="s1")
        self.assertEqual(outcome_rows("outcomes", "p1"),
                         [("primary", "s1", "", "id2", 1, 0.0),
                          ("primary", "s1", "db1", "123", 1, 0.0)])

    def test_embedding_backfill_run_on_dummy_db(self):
        # ::test_embedding_backfill_run_on_dummy_db: the run's backend and batch size reach
        # the database class.
        calls = []

        class DummyDB(EmbeddableDBMixin):
            def __init__(self, vector_backend=None):
                self.vector_backend = vector_backend

            def backfill_embeddings(self, batch_size=0):
                calls.append((self.vector_backend, batch_size))

        with known_dbs(DummyDB):
            EmbeddingBackfill(client=client("backfill")).run(batch_size=5, backend="vec",
                                                             session_id="s")
        self.assertEqual(calls, [("vec", 5)])


class TestVectorServiceLayer(unittest.TestCase):
    """tests/test_vector_service_layer.py and tests/integration/test_vector_service_layer.py"""

    def test_logging_hook_emits_session_id(self):
        # test_vector_service_layer.py::test_logging_hook_emits_session_id: a log record of
        # Retriever.search carries the session id; the default top_k is 5.
        with self.assertLogs("vector_service", "INFO") as logs:
            hits = Retriever(client=client("stubs")).search("query", session_id="sess-1")
        self.assertTrue(any("Retriever.search" in r.getMessage() and r.session_id == "sess-1"
                            for r in logs.records))
        self.assertTrue(1 <= len(hits) <= 5)

    def test_retriever_fallback_low_similarity(self):
        # test_vector_service_layer.py::test_retriever_fallback_low_similarity: the fallback's
        # first entry is the heuristic one.
        hits = Retriever(client=client("stubs")).search(
            "question about the weather in paris", session_id="sess-2")
        self.assertIsInstance(hits, FallbackResult)
        self.assertEqual(hits.reason, "low confidence")
        self.assertEqual(list(hits)[0]["origin_db"], "heuristic")

    def test_embedding_backfill_run(self):
        # integration/test_vector_service_layer.py::test_embedding_backfill_run: the database
        # is processed with the constructor's batch size, and the progress is logged.
        made = []

        class DummyDB(EmbeddableDBMixin):
            def __init__(self, vector_backend=""):
                made.append(self)

            def backfill_embeddings(self, batch_size=0):
                self.batch_size = batch_size

        with known_dbs(DummyDB), self.assertLogs("vector_service", "INFO") as logs:
            EmbeddingBackfill(batch_size=10, client=client("backfill")).run(session_id="s1")
        self.assertEqual([db.batch_size for db in made], [10])
        self.assertIn("Backfilling DummyDB", "\n".join(r.getMessage() for r in logs.records))

    def test_patch_logger_tracks_metrics_db(self):
        # integration/test_vector_service_layer.py::test_patch_logger_tracks_metrics_db
        PatchLogger(client=client("outcomes")).track_contributors(
            ["db1:1", "2"], True, patch_id="p-int-1", session_id="s1")
        self.assertEqual([r[1:5] for r in outcome_rows("outcomes", "p-int-1")],
                         [("s1", "", "2", 1), ("s1", "db1", "1", 1)])

    def test_patch_logger_tracks_vector_metrics(self):
        # integration/test_vector_service_layer.py::test_patch_logger_tracks_vector_metrics:
        # a failure, contribution 0.0 (the original's win False, regret True).
        PatchLogger(client=client("outcomes")).track_contributors(
            ["a:3", "4"], False, patch_id="p-int-2", session_id="s2")
        self.assertEqual([r[1:] for r in outcome_rows("outcomes", "p-int-2")],
                         [("s2", "", "4", 0, 0.0), ("s2", "a", "3", 0, 0.0)])


class TestContextBuilder(unittest.TestCase):
    """tests/test_context_builder.py: make_builder's records are the tenant `builder`'s."""

    def builder(self, **kwargs):
        return ContextBuilder(client=client("builder"), **kwargs)

    def test_build_context_compact_json(self):
        # ::test_build_context_compact_json: exactly the original's expected string.
        ctx = self.builder(max_tokens=800).build_context("alpha issue", top_k=1)
        self.assertEqual(ctx, EXPECTED_CONTEXT)
        self.assertNotIn(": ", ctx)
        self.assertNotIn(", ", ctx)

    def test_weighted_ordering(self):
        # ::test_weighted_ordering, through the entries' scores instead of a private method:
        # plain, bot 1, workflow 10, error 100; with error 4.0 and bot 0.1, the reverse.
        def ids_by_score(**kwargs):
            builder = ContextBuilder(client=client("weights"), **kwargs)
            _, meta = builder.build_context("alpha issue", top_k=1, return_metadata=True)
            ranked = sorted(meta["entries"], key=lambda e: e["score"], reverse=True)
            return [int(e["id"]) for e in ranked]

        self.assertEqual(ids_by_score(), [1, 10, 100])
        self.assertEqual(ids_by_score(db_weights={"error": 4.0, "bot": 0.1}), [100, 10, 1])

    def test_truncates_when_tokens_small(self):
        # ::test_truncates_when_tokens_small and ::test_config_respects_max_tokens
        for weights in (None, {"error": 2.0}):
            builder = self.builder(max_tokens=40, db_weights=weights)
            ctx = builder.build_context("alpha issue", top_k=2)
            self.assertLessEqual(sum(len(v) for v in json.loads(ctx).values()), 8)
            self.assertLessEqual(len(ctx) // 4, builder.max_tokens)

    def test_builder_from_config(self):
        # ::test_builder_from_config: the configured weights and budget are the builder's,
        # and the context for top_k=1 is still the expected one.
        weights = {"error": 4.0, "bot": 0.1}
        builder = self.builder(db_weights=weights, max_tokens=400)
        self.assertEqual((builder.db_weights, builder.max_tokens), (weights, 400))
        self.assertEqual(builder.build_context("alpha issue", top_k=1), EXPECTED_CONTEXT)

    def test_build_context_emits_metrics(self):
        # ::test_build_context_emits_metrics: one call counted, its result size the context's.
        labels = {"function": "ContextBuilder.build"}
        calls = metric("builder", "vector_service_calls_total", **labels)
        size = metric("builder", "vector_service_result_size_sum", **labels)
        ctx = self.builder().build_context("alpha issue")
        self.assertEqual(metric("builder", "vector_service_calls_total", **labels) - calls, 1)
        self.assertEqual(metric("builder", "vector_service_result_size_sum", **labels) - size,
                         len(ctx))

    def test_build_context_invalid_query(self):
        # ::test_build_context_invalid_query["", None, 123]
        for bad_query in ("", None, 123):
            with self.assertRaises(MalformedPromptError):
                self.builder().build_context(bad_query)


class TestPatchLoggerMetrics(unittest.TestCase):
    """tests/test_patch_logger_metrics.py: the original's gauges are the server's counters."""

    def counted(self, status):
        return metric("outcomes", "patch_logger_track_contributors_total", status=status)

    def test_track_contributors_success_emits_metrics(self):
        # ::test_track_contributors_success_emits_metrics: recorded, one success counted, the
        # duration observed.
        before = (self.counted("success"),
                  metric("outcomes", "patch_logger_track_contributors_duration_seconds_count"))
        PatchLogger(client=client("outcomes")).track_contributors(
            ["a:b", "c"], True, patch_id="pm-1", session_id="s")
        self.assertEqual(len(outcome_rows("outcomes", "pm-1")), 2)
        after = (self.counted("success"),
                 metric("outcomes", "patch_logger_track_contributors_duration_seconds_count"))
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (1, 1))

    def test_track_contributors_failure_counts(self):
        # ::test_track_contributors_db_failure_still_counts: a failed patch counts as failure.
        before = self.counted("failure")
        PatchLogger(client=client("outcomes")).track_contributors(
            ["x"], False, patch_id="pm-2", session_id="s")
        self.assertEqual(self.counted("failure") - before, 1)

    def test_track_contributors_malformed_vector_ids_raise(self):
        # ::test_track_contributors_malformed_vector_ids_raise_and_count: TypeError, nothing
        # recorded. (The original counted an error; here the call stops before the server.)
        with self.assertRaises(TypeError):
            PatchLogger(client=client("outcomes")).track_contributors(
                ["ok", None], True, patch_id="pm-3", session_id="s")
        self.assertEqual(outcome_rows("outcomes", "pm-3"), [])

    def test_track_contributors_forwards_contribution(self):
        # ::test_track_contributors_forwards_contribution_vector_metrics (0.3) and
        # ::..._patch_db (0.8): the contribution is kept with the outcome.
        for patch_id, vector, result, contribution in (("pm-4", "v1", True, 0.3),
                                                       ("pm-5", "v2", False, 0.8)):
            PatchLogger(client=client("outcomes")).track_contributors(
                [vector], result, patch_id=patch_id, session_id="s", contribution=contribution)
            self.assertEqual([r[5] for r in outcome_rows("outcomes", patch_id)], [contribution])

    def test_embedding_backfill_run_retries_and_skips(self):
        # ::test_embedding_backfill_run_retries_and_skips: a class made on the second try is
        # processed, one that cannot be made is skipped, and the run counts as a success.
        processed = []

        class RetryDB(EmbeddableDBMixin):
            def __init__(self, vector_backend=None):
                if vector_backend is not None:
                    raise RuntimeError("no backend")

            def backfill_embeddings(self, batch_size=0):
                processed.append(type(self))

        class FailDB(EmbeddableDBMixin):
            def __init__(self, vector_backend=None):
                raise RuntimeError("construction failed")

            def backfill_embeddings(self, batch_size=0):
                processed.append(type(self))

        before = metric("backfill", "embedding_backfill_runs_total", status="success")
        with known_dbs(RetryDB, FailDB):
            report = EmbeddingBackfill(batch_size=5, client=client("backfill")).run(
                session_id="sid")
        self.assertEqual(processed, [RetryDB])
        self.assertEqual([c["status"] for c in report["classes"]], ["backfilled", "skipped"])
        self.assertEqual(metric("backfill", "embedding_backfill_runs_total", status="success")
                         - before, 1)


class TestIntegrationClients(unittest.TestCase):
    """tests/integration/test_vector_service_clients.py"""

    def test_sandbox_runner_uses_vector_service(self):
        # ::test_sandbox_runner_uses_vector_service: the classes come from `vector_service`.
        self.assertTrue(Retriever.__module__.startswith("vector_service"))
        self.assertTrue(PatchLogger.__module__.startswith("vector_service"))


class known_dbs:
    """While open, the database classes a run finds are exactly `classes` (the original's
    tests replaced `_load_known_dbs` to the same end): classes defined by other tests may
    still be alive in this process."""

    def __init__(self, *classes):
        self.classes = list(classes)

    def __enter__(self):
        self.saved = EmbeddingBackfill._load_known_dbs
        EmbeddingBackfill._load_known_dbs = lambda _self: [
            c for c in self.saved(_self) if c in self.classes]
        return self

    def __exit__(self, *exc):
        EmbeddingBackfill._load_known_dbs = self.saved
        return False


logging.getLogger("vector_service").addHandler(logging.NullHandler())

if __name__ == "__main__":
    unittest.main()
