#!/usr/bin/env bash
# Every check and test, from a fresh clone: installs the guest toolchain when missing, then
# formatting, lints (host workspace and guest) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-toolchain.sh
# The neural embedder's tests run when its model is present; they say so when it is not.
bash scripts/fetch-prometheus.sh || echo "warning: prometheus/promtool not unpacked; the server tests will report it" >&2
# The PostgreSQL conformance and two-host tests need it: no fallback.
bash scripts/fetch-pgserver.sh
bash scripts/fetch-minilm.sh || echo "warning: all-MiniLM-L6-v2 not fetched; its tests will report it missing" >&2

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
