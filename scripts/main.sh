#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, ingest the sample
# corpus into a SQLite file, backfill its embeddings, then search, build a context and track
# a patch through the component, printing results and Prometheus metrics; then serve the same
# data over HTTP on 127.0.0.1:8080 (VECTOR_SERVICE_LISTEN) and print curl lines to try.
# MAIN_NO_SERVE=1 stops after the command-line part.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require-rust.sh

# No wasm toolchain needed: the component is checked in prebuilt (host/component). The demo
# uses the hashing embedder and lexical search, so it builds the CLI without the MiniLM
# embedder (candle) and usearch's SIMD kernels: 7.4 minutes from nothing on 2 idle cores
# (README, "1. Try the demo"). `cargo build --release` builds everything.
# VECTOR_SERVICE_BIN runs a binary already built instead (CI uses the one its tests built).
BIN=${VECTOR_SERVICE_BIN:-}
if [[ -z "$BIN" ]]; then
    cargo build --locked --release --no-default-features --bin vector-service
    BIN=target/release/vector-service
fi

DATA_DIR=${VECTOR_SERVICE_DATA_DIR:-"$PWD/target/demo-data"}
cli() { "$BIN" --data-dir "$DATA_DIR" "$@"; }

echo "== data dir: $DATA_DIR"
cli info
echo; echo "== ingest examples/data/records.jsonl"
cli ingest examples/data/records.jsonl
echo; echo "== backfill"
cli backfill --batch-size 50
echo; echo "== search \"upload failed\""
cli search "upload failed" --top-k 5
echo; echo "== context \"fix failing tests\""
cli context "fix failing tests" --top-k 2
echo; echo "== stats"
cli stats
echo; echo "== track a successful patch, with the Prometheus metrics of that call (buckets left out)"
cli track --patch-id demo-patch-1 --roi-tag high-roi bot:bot-005 workflow:wf-008 --metrics | grep -v '_bucket'

[[ "${MAIN_NO_SERVE:-}" == 1 ]] && exit 0
LISTEN=${VECTOR_SERVICE_LISTEN:-127.0.0.1:8080}
cat <<EOF

== serving the same data on http://$LISTEN (Ctrl-C stops). Try:
curl -s -X POST http://$LISTEN/v1/search -H 'Content-Type: application/json' -d '{"query": "upload failed", "top_k": 3}'
curl -s -X POST http://$LISTEN/v1/context -H 'Content-Type: application/json' -d '{"task": "fix failing tests", "top_k": 2}'
curl -s -X POST http://$LISTEN/v1/contributors -H 'Content-Type: application/json' -d '{"vector_ids": ["bot:bot-005"], "success": true, "patch_id": "p-2"}'
curl -s -X POST http://$LISTEN/v1/records -H 'Content-Type: application/x-ndjson' --data-binary @examples/data/records.jsonl
curl -s -X POST http://$LISTEN/v1/backfill -H 'Content-Type: application/json' -d '{}'   # a job: 202 + its id
curl -s http://$LISTEN/v1/backfill/JOB_ID                                               # its progress and outcome
curl -s http://$LISTEN/metrics | grep -v _bucket
EOF
exec "$BIN" --data-dir "$DATA_DIR" serve --listen "$LISTEN"
