#!/usr/bin/env bash
# Every check and test, from a fresh clone: formatting, one build of the host (with no wasm
# toolchain visible), the lean-host proof, the checked-in components against a rebuild from
# source (installs the pinned guest toolchain when missing), lints (host workspace and guests),
# the whole test suite, the demo and the Python client.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require-rust.sh
# One build from nothing: incremental state would only cost disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Each step says how long the one before took, so a slow CI shows where its time went.
step_started=$SECONDS
step_name=""
step() {
    [[ -n "$step_name" ]] && echo "-- $step_name: $((SECONDS - step_started)) s"
    step_name=$1
    step_started=$SECONDS
    echo "== $1"
}
trap '[[ -n "$step_name" ]] && echo "-- $step_name: $((SECONDS - step_started)) s (total $SECONDS s)"' EXIT

step "fetch what the tests run against"
# What the tests run against, fetched fatally: a test that cannot run fails, it never skips.
# Prometheus + promtool (the metrics checks and a real scrape), PostgreSQL + pgvector (the
# conformance and two-host tests), all-MiniLM-L6-v2 (the neural embedder's tests), Node.js and
# npm (the jco host's test), Python 3 (the Python client's tests).
bash scripts/fetch-prometheus.sh
bash scripts/fetch-pgserver.sh
bash scripts/fetch-minilm.sh
bash scripts/install-node.sh
bash scripts/install-python.sh

step "format"
cargo fmt --all -- --check
(cd guest && cargo fmt --all -- --check)

# One build of the host for everything below: the tests, the lean host (examples/own-linker,
# which its test runs) and the demo's binary. It runs first, with no wasm toolchain visible, so
# in a fresh clone every build script of the host runs without one.
step "build the tests, with no wasm toolchain visible"
bash scripts/without-wasm-toolchain.sh cargo test --workspace --locked --no-run --timings
step "lean host: what examples/own-linker depends on"
bash scripts/check-lean-host.sh

step "checked-in components vs a rebuild from guest/ (the product, misbehaving/ and floor/)"
bash scripts/build-component.sh --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
bash scripts/check-documented-api.sh
# Host-target lints of the guests' workspace (their wasm builds: scripts/build-component.sh).
(cd guest && cargo clippy --workspace --all-targets --locked --target-dir ../target/guest-clippy -- -D warnings)

step "tests"
cargo test --workspace --locked

# The main job as the README's first task runs it, up to where it would start serving, on the
# binary the tests built: scripts/main.sh's own release build is the same cargo command a user
# types, and its time from nothing is measured in BENCHMARKS.md ("Build time").
step "the demo (scripts/main.sh, MAIN_NO_SERVE=1) on the tests' binary"
MAIN_NO_SERVE=1 VECTOR_SERVICE_BIN="$PWD/target/debug/vector-service" \
    VECTOR_SERVICE_DATA_DIR="$(mktemp -d)" bash scripts/main.sh

step "Python client (clients/python) against the server"
VECTOR_SERVICE_BIN="$PWD/target/debug/vector-service" \
    python3 -m unittest discover -s clients/python/tests -v
