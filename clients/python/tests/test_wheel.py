"""The client as a user installs it: a wheel built in the repository with the standard library
alone (scripts/build-python-wheel.py), installed by pip with no index and no network, imported
from outside the source tree, and called against the real server."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from test_client import KEY, REPO, Server, post_records, sha256

CLIENT = REPO / "clients" / "python"


def source_files():
    """Every file under clients/python but bytecode caches (ignored by .gitignore)."""
    return sorted(str(p.relative_to(CLIENT)) for p in CLIENT.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def build(out):
    built = subprocess.run([sys.executable, str(REPO / "scripts" / "build-python-wheel.py"),
                            "--out", str(out)], check=True, capture_output=True, text=True)
    return Path(built.stdout.strip())


class TheWheel(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="vs-python-wheel-")
        self.addCleanup(self.dir.cleanup)
        self.root = Path(self.dir.name)

    def test_builds_the_same_bytes_and_writes_nothing_into_the_source_tree(self):
        before = source_files()
        first = build(self.root / "one")
        second = build(self.root / "two")
        self.assertEqual(source_files(), before)
        self.assertEqual(first.name, "vector_service_client-0.1.0-py3-none-any.whl")
        self.assertEqual(first.read_bytes(), second.read_bytes())

    def test_installs_offline_and_serves_the_original_call_shapes(self):
        wheel = build(self.root / "dist")
        site = self.root / "site"
        # No index and a proxy that refuses: any download attempt fails the install.
        offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "",
                   "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                        "--quiet", "--target", str(site), str(wheel)],
                       check=True, env=offline, capture_output=True)

        tenants = self.root / "tenants.toml"
        tenants.write_text(f'[[tenant]]\nname = "acme"\napi_key_sha256 = "{sha256(KEY)}"\n')
        server = Server(self.root / "data", tenants=tenants)
        self.addCleanup(server.stop)
        post_records(server.url, KEY, REPO / "examples" / "data" / "records.jsonl")

        # The original's imports and call sites, run from a folder outside the repository.
        program = (
            "import json, vector_service\n"
            "from vector_service.retriever import Retriever\n"
            "from vector_service.context_builder import ContextBuilder\n"
            "from vector_service.exceptions import VectorServiceError\n"
            "hits = Retriever().search('upload failed', top_k=3)\n"
            "context = ContextBuilder().build('fix the failing upload')\n"
            "print(json.dumps({'file': vector_service.__file__, 'hits': len(hits),\n"
            "                  'context': json.loads(context)}))\n"
        )
        env = {**os.environ, "PYTHONPATH": str(site), "VECTOR_SERVICE_URL": server.url,
               "VECTOR_SERVICE_API_KEY": KEY}
        ran = subprocess.run([sys.executable, "-c", program], cwd=self.root, env=env,
                             check=True, capture_output=True, text=True)
        answer = json.loads(ran.stdout)
        self.assertTrue(answer["file"].startswith(str(site)), answer["file"])
        self.assertTrue(1 <= answer["hits"] <= 3, answer)
        self.assertTrue(answer["context"], answer)


if __name__ == "__main__":
    unittest.main()
