#!/usr/bin/env bash
# Rebuild the checked-in components from source with the pinned toolchain (installed when
# missing): host/component/vector_service.wasm (+ its .sha256) from guest/,
# guest/misbehaving/misbehaving.wasm, and guest/floor/floor.wasm (the overhead
# bench's floor). Run it after changing guest/ or wit/, and commit the result. `--check` writes
# nothing and fails when a rebuild differs from the checked-in bytes (CI runs that).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-toolchain.sh --pinned
cargo run --quiet --locked -p vector-service-component-builder -- "$@"
