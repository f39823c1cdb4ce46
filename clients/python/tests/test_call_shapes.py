"""The original's call sites, as they are written in its code base (Demi-urge/menace_sandbox at
fed26761e; each test names its site), run unchanged against this package and the real server:
constructors without arguments (the server from the environment), the keywords they pass, and
what they do with the answer."""

import json
import os
import tempfile
import unittest
from pathlib import Path

from test_client import KEY, REPO, Server, post_records, sha256

from vector_service import (
    ContextBuilder,
    EmbeddingBackfill,
    FallbackResult,
    PatchLogger,
    Retriever,
    VectorServiceError,
)


class TheOriginalsCallSites(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="vs-call-shapes-")
        cls.addClassCleanup(cls.dir.cleanup)
        tenants = Path(cls.dir.name) / "tenants.toml"
        tenants.write_text(f'[[tenant]]\nname = "acme"\napi_key_sha256 = "{sha256(KEY)}"\n')
        cls.server = Server(Path(cls.dir.name) / "data", tenants=tenants)
        cls.addClassCleanup(cls.server.stop)
        post_records(cls.server.url, KEY, REPO / "examples" / "data" / "records.jsonl")
        saved = {k: os.environ.get(k) for k in ("VECTOR_SERVICE_URL", "VECTOR_SERVICE_API_KEY")}
        os.environ["VECTOR_SERVICE_URL"] = cls.server.url
        os.environ["VECTOR_SERVICE_API_KEY"] = KEY

        def restore():
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        cls.addClassCleanup(restore)

    def test_chatgpt_idea_bot_searches_a_prompt_for_five_hits(self):
        # chatgpt_idea_bot.py:220: hits = retriever.search(user_prompt, top_k=5)
        retriever = Retriever()  # analytics/retrieval_ranker_dataset.py:142
        hits = retriever.search("the upload service keeps timing out", top_k=5)
        self.assertNotIsInstance(hits, FallbackResult)
        self.assertTrue(1 <= len(hits) <= 5)
        self.assertTrue(all(hit["origin_db"] and "score" in hit for hit in hits))

    def test_error_cluster_predictor_asks_one_hit_in_a_session(self):
        # error_cluster_predictor.py:110:
        #     res = self.retriever.search(mod, top_k=1, session_id=session_id)
        res = Retriever().search("upload service", top_k=1, session_id="cluster-1")
        self.assertEqual(len(res), 1)

    def test_quick_fix_engine_builds_a_context_in_a_session(self):
        # quick_fix_engine.py:248: ctx_block = builder.build(query, session_id=cb_session)
        builder = ContextBuilder()  # automated_reviewer.py:51
        ctx_block = builder.build("fix the failing upload", session_id="cb-1")
        self.assertIsInstance(ctx_block, str)
        self.assertTrue(json.loads(ctx_block))

    def test_self_coding_engine_builds_a_context_from_a_description(self):
        # self_coding_engine.py:424: retrieval_context = builder.build_context(description)
        retrieval_context = ContextBuilder().build_context("retry failed uploads with backoff")
        self.assertIsInstance(json.loads(retrieval_context), dict)

    def test_quick_fix_engine_tracks_a_patch_with_its_contribution(self):
        # quick_fix_engine.py:290-296: track_contributors(ids, result,
        #     patch_id=str(patch_id or ""), session_id=session_id,
        #     contribution=1.0 if result else 0.0), inside `except Exception`.
        patch_logger = PatchLogger()  # sandbox_runner/cycle.py:591
        ids = [f"{o}:{v}" for o, v in [("error", "err-002"), ("bot", "bot-001")]]
        for patch_id, result in (("p-77", True), (None, False)):
            answer = patch_logger.track_contributors(
                ids, result, patch_id=str(patch_id or ""), session_id="qf-1",
                contribution=1.0 if result else 0.0)
            self.assertEqual(answer["status"], "success" if result else "failure")
            self.assertEqual(answer["rows"], 2)

    def test_the_sandbox_cycle_tracks_a_failed_patch_without_an_id(self):
        # sandbox_runner/cycle.py:1257-1264: track_contributors(ids, bool(patch_id),
        #     patch_id=str(patch_id or ""), session_id=session_id), inside
        #     `except VectorServiceError`: a failure without a patch id is recorded, not raised.
        patch_id = None
        try:
            answer = PatchLogger().track_contributors(
                ["workflow:wf-001"], bool(patch_id), patch_id=str(patch_id or ""),
                session_id="cycle-1")
        except VectorServiceError as error:  # the original's site would swallow it
            self.fail(f"the outcome was lost: {error}")
        self.assertEqual(answer["status"], "failure")

    def test_the_vector_service_api_backfills_with_the_originals_keywords(self):
        # vector_service_api.py:200-204: _backfill.run(session_id=req.session_id,
        #     batch_size=req.batch_size, backend=req.backend)
        _backfill = EmbeddingBackfill()
        report = _backfill.run(session_id="bf-1", batch_size=50, backend="annoy")
        self.assertEqual(report["status"], "success")
        self.assertIsInstance(report["classes"], list)

if __name__ == "__main__":
    unittest.main()
