#!/usr/bin/env bash
# Every check and test, from a fresh clone: installs the guest toolchain when missing, then
# formatting, lints (host workspace and guest) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-toolchain.sh

echo "== format"
cargo fmt --all -- --check
(cd guest && cargo fmt -- --check)

echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd guest && cargo clippy --locked --target-dir ../target/guest-clippy -- -D warnings)

echo "== tests"
cargo test --workspace --locked
