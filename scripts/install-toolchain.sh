#!/usr/bin/env bash
# Install what building the guest component needs, only what is missing (safe to run again).
#
# The guest is Rust compiled to wasm32-unknown-unknown. Where rustup's toolchain already has
# that target, nothing is installed. Otherwise Debian bookworm's rustc-web 1.85 with its std
# source and lld-19 are installed, pinned to the versions the build was verified with; the
# build (host/build.rs) then compiles std for wasm from source.
set -euo pipefail

PINNED="1.85.0+dfsg3-1~deb12u3"
PACKAGES=(rustc-web cargo-web libstd-rust-web-dev rust-web-src)

if sysroot=$(rustc --print sysroot 2>/dev/null) && [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib" ]; then
  echo "toolchain: rustup's wasm32-unknown-unknown target is installed; nothing to do"
  exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
  installed=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)
  [ "$installed" = "$PINNED" ] || missing+=("$package=$PINNED")
done
command -v wasm-ld-19 >/dev/null 2>&1 || missing+=(lld-19)

if [ ${#missing[@]} -eq 0 ]; then
  echo "toolchain: Debian's rustc-web $PINNED and lld-19 are installed; nothing to do"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "toolchain: no wasm32-unknown-unknown target and no apt-get." >&2
  echo "  Install the target with: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
echo "toolchain: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --allow-downgrades "${missing[@]}"
