#!/usr/bin/env python3
"""SciFact through the product as a user runs it: `ingest`, one `backfill` run of the whole
corpus with the chosen embedder (timed), then the 300 test queries through `serve` with each
retrieval mode, scored by nDCG@10 (binary gains, log2 discount, all 300 queries). Prints a table.

Usage: python3 scripts/bench-scifact-cli.py [--embedder minilm] [--binary target/release/vector-service]
Reads ../shared/data/scifact when it is there; says so and exits 0 when it is not.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "scifact")


def records(path):
    """BEIR documents as vector-service records (title and abstract as the text)."""
    with open(path) as corpus:
        for line in corpus:
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc.get('text', '')}".strip()
            yield {"db": "abstracts", "origin_db": "abstract", "id": doc["_id"], "text": text}


def run(binary, data_dir, embedder, *args):
    command = [binary, "--data-dir", data_dir, "--embedder", embedder, *args]
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{output.stderr}")
    return time.monotonic() - started, output.stdout


def ndcg_at_10(ranked, relevant):
    gains = sum(1 / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]) if doc in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(10, len(relevant))))
    return gains / ideal if ideal else 0.0


def serve_and_score(binary, data_dir, embedder, retrieval, queries, qrels):
    server = subprocess.Popen(
        [binary, "--data-dir", data_dir, "--embedder", embedder, "--retrieval", retrieval,
         "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = server.stdout.readline().strip().removeprefix("listening on ")
        scores, latencies = [], []
        for query_id, text in queries:
            body = json.dumps({"query": text, "top_k": 10, "threshold": 0.0}).encode()
            request = urllib.request.Request(
                f"{url}/v1/search", data=body, headers={"Content-Type": "application/json"})
            started = time.monotonic()
            with urllib.request.urlopen(request, timeout=60) as answer:
                hits = json.load(answer)["hits"]
            latencies.append(time.monotonic() - started)
            ranked = [hit["record_id"] for hit in hits if hit["origin_db"] != "heuristic"]
            scores.append(ndcg_at_10(ranked, qrels.get(query_id, set())))
        latencies.sort()
        return sum(scores) / len(scores), latencies[len(latencies) // 2]
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/vector-service"))
    args = parser.parse_args()
    if not os.path.isdir(DATA):
        print(f"SciFact is not at {DATA}: nothing measured")
        return
    qrels = {}
    with open(os.path.join(DATA, "qrels_test.tsv")) as lines:
        next(lines)
        for line in lines:
            query_id, doc_id, score = line.split()
            if int(score) > 0:
                qrels.setdefault(query_id, set()).add(doc_id)
    with open(os.path.join(DATA, "queries.jsonl")) as lines:
        queries = [(q["_id"], q["text"]) for q in map(json.loads, lines) if q["_id"] in qrels]

    with tempfile.TemporaryDirectory() as data_dir:
        corpus = os.path.join(data_dir, "scifact.jsonl")
        with open(corpus, "w") as out:
            count = sum(out.write(json.dumps(r) + "\n") > 0 for r in records(os.path.join(DATA, "corpus.jsonl")))
        ingest, _ = run(args.binary, data_dir, args.embedder, "ingest", corpus)
        backfill, report = run(args.binary, data_dir, args.embedder, "--json", "backfill")
        report = json.loads(report)
        embedded = sum(d["embedded"] for d in report["databases"])
        print(f"| step | {args.embedder} |")
        print("|---|---:|")
        print(f"| ingest {count} abstracts | {ingest:.1f} s |")
        print(f"| backfill, one run ({embedded} embedded, status {report['status']}) | {backfill:.1f} s ({embedded / backfill:.1f}/s) |")
        for retrieval in ["lexical", "vector", "hybrid"]:
            ndcg, p50 = serve_and_score(args.binary, data_dir, args.embedder, retrieval, queries, qrels)
            print(f"| `--retrieval {retrieval}` nDCG@10 ({len(queries)} queries, via /v1/search) | {ndcg:.3f} (p50 {p50 * 1e3:.1f} ms) |")


if __name__ == "__main__":
    main()
