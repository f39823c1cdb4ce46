#!/usr/bin/env python3
"""Candidate confidence measures for lexical search, on the sample corpus and BEIR SciFact.

A model of the product's BM25 (k1 = 1.2, b = 0.75, the same idf; no stemming) that prints, per
corpus and query set, the share of queries whose confidence is at or above the default threshold
0.1 under each candidate. The product's own measure is `ceiling` (benches/confidence.rs measures
it through the product). Reads ../shared/data/scifact; says so and stops when it is not there.

Usage: python3 scripts/confidence-variants.py
"""

import collections
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCIFACT = os.path.join(ROOT, "..", "shared", "data", "scifact")


def tokens(text):
    return [w for w in re.split(r"[^0-9a-z]+", text.lower()) if w]


class Index:
    def __init__(self, docs):
        self.tf = [collections.Counter(tokens(d)) for d in docs]
        self.length = [sum(c.values()) for c in self.tf]
        self.n = len(docs)
        self.average = sum(self.length) / self.n
        self.df = collections.Counter()
        self.postings = collections.defaultdict(list)
        for i, counts in enumerate(self.tf):
            for term in counts:
                self.df[term] += 1
                self.postings[term].append(i)

    def idf(self, term, absent_df=1):
        n = self.df.get(term, 0) or absent_df
        return math.log(1 + (self.n - n + 0.5) / (n + 0.5))

    def part(self, term, doc):
        f = self.tf[doc][term]
        return self.idf(term) * 2.2 * f / (f + 1.2 * (0.25 + 0.75 * self.length[doc] / self.average))

    def measures(self, query):
        terms = tokens(query)
        scores = collections.Counter()
        for term in terms:
            for doc in self.postings.get(term, []):
                scores[doc] += self.part(term, doc)
        if not scores:
            return None
        best, top = max(scores.items(), key=lambda item: item[1])
        ceiling = sum(self.idf(t) * 2.2 for t in terms)
        parts = sorted((self.part(t, best) for t in set(terms) if t in self.tf[best]), reverse=True)
        idf_total = sum(self.idf(t) for t in terms)
        coverage = sum(self.idf(t) for t in terms if t in self.tf[best]) / idf_total
        distinctive = [t for t in set(terms) if self.df.get(t, 0) < self.n * 0.05]
        matched = [t for t in distinctive if t in self.tf[best]]
        return {
            "ceiling": top / ceiling,
            "coverage squared": coverage**2,
            "without the strongest term": (top - parts[0]) / ceiling,
            "distinctive terms matched": len(matched) / len(distinctive) if distinctive else 0.0,
        }


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    if not os.path.isdir(SCIFACT):
        print(f"SciFact not there ({SCIFACT}); nothing measured")
        return 0
    sample_docs = [r["text"] for r in read_jsonl(os.path.join(ROOT, "examples/data/records.jsonl"))]
    sample_queries = [q["query"] for q in read_jsonl(os.path.join(ROOT, "examples/data/queries.jsonl"))]
    scifact_docs = [d.get("title", "") + " " + d["text"] for d in read_jsonl(os.path.join(SCIFACT, "corpus.jsonl"))]
    with open(os.path.join(SCIFACT, "qrels_test.tsv")) as f:
        labelled = {line.split("\t")[0] for line in f.read().splitlines()[1:]}
    scifact_queries = [q["text"] for q in read_jsonl(os.path.join(SCIFACT, "queries.jsonl")) if q["_id"] in labelled]
    with open(os.path.join(ROOT, "benches/confidence.rs")) as f:
        source = f.read()
    everyday = re.findall(r'^    "([^"]+)",$', source.split("const EVERYDAY")[1].split("];")[0], re.M)
    sample, scifact = Index(sample_docs), Index(scifact_docs)
    rows = [
        ("sample", "its own (on topic)", sample, sample_queries),
        ("sample", "SciFact's (off topic)", sample, scifact_queries),
        ("sample", "everyday (off topic)", sample, everyday),
        ("SciFact", "its own (on topic)", scifact, scifact_queries),
        ("SciFact", "the sample's (off topic)", scifact, sample_queries),
        ("SciFact", "everyday (off topic)", scifact, everyday),
    ]
    names = ["ceiling", "coverage squared", "without the strongest term", "distinctive terms matched"]
    print("| corpus | queries | " + " | ".join(f"{n} >= 0.1" for n in names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for corpus, label, index, queries in rows:
        found = [m for m in (index.measures(q) for q in queries) if m]
        shares = [sum(m[n] >= 0.1 for m in found) / len(queries) for n in names]
        print(f"| {corpus} | {label} | " + " | ".join(f"{s:.2f}" for s in shares) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
