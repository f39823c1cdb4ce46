#!/usr/bin/env bash
# Stop with instructions when the host's Rust toolchain is missing or too old. The set-up
# scripts install everything else they need, but not Rust itself: rustup is the user's choice
# (and needs its server). Sourced by main.sh and test.sh.
required=1.95
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust $required or newer first:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain stable" >&2
    echo "  . \"\$HOME/.cargo/env\"" >&2
    exit 1
fi
version=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$required" "$version" | sort -V | head -1)" != "$required" ]; then
    echo "error: rustc $version is older than $required; run: rustup update stable" >&2
    exit 1
fi
