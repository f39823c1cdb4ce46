#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build the component and a
# host, and run the four operations, printing results and Prometheus metrics.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-toolchain.sh
cargo run --locked --example embed
