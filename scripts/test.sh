#!/usr/bin/env bash
# Every check and test, from a fresh clone: the checked-in components against a rebuild from
# source (installs the pinned guest toolchain when missing), formatting, lints (host workspace
# and guests), the lean-host proof and the whole test suite.
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

step "checked-in components vs a rebuild from guest/, tests/misbehaving-guest/ and benches/floor-guest/"
bash scripts/build-component.sh --check
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

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
bash scripts/check-documented-api.sh
# Host-target lints of the guests' workspace (their wasm builds: scripts/build-component.sh).
(cd guest && cargo clippy --workspace --all-targets --locked --target-dir ../target/guest-clippy -- -D warnings)

step "lean host (runtime crate only, no wasm toolchain)"
bash scripts/check-lean-host.sh

step "build the tests"
cargo test --workspace --locked --no-run
step "tests"
cargo test --workspace --locked

# The main job, as the README's first task runs it (its build is the release binary the Python
# client's tests use), up to where it would start serving.
step "the demo (scripts/main.sh, MAIN_NO_SERVE=1)"
MAIN_NO_SERVE=1 VECTOR_SERVICE_DATA_DIR="$(mktemp -d)" bash scripts/main.sh

# The Python client against the release binary a user runs (the build scripts/main.sh makes).
step "Python client (clients/python) against the release server"
VECTOR_SERVICE_BIN="$PWD/target/release/vector-service" \
    python3 -m unittest discover -s clients/python/tests -v
