#!/usr/bin/env bash
# No wasmtime API hidden from its docs (`#[doc(hidden)]`: there for generated code, exempt from
# semver) is called by our code, so a wasmtime upgrade cannot break on internals
# (docs/decisions/0011-exports.md). The hidden names are read from the locked wasmtime's own
# source in cargo's registry, so the list follows the version in Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "wasmtime"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
cargo fetch --locked --quiet
source_dir=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "wasmtime-$version" | head -1)
if [[ -z "$source_dir" ]]; then
    echo "wasmtime $version's source is not in cargo's registry" >&2
    exit 1
fi

hidden=$(python3 - "$source_dir/src" <<'PY'
import os, re, sys
names = set()
for directory, _, files in os.walk(sys.argv[1]):
    for name in files:
        if not name.endswith(".rs"):
            continue
        lines = open(os.path.join(directory, name), errors="replace").read().split("\n")
        for i, line in enumerate(lines):
            if "#[doc(hidden)]" not in line:
                continue
            for after in lines[i + 1 : i + 6]:
                found = re.search(r"pub (?:unsafe )?fn ([a-z_0-9]+)", after)
                if found:
                    names.add(found.group(1))
                    break
                if re.search(r"\b(struct|enum|mod|trait|impl|type)\b", after):
                    break
print("\n".join(sorted(names)))
PY
)
if [[ -z "$hidden" ]]; then
    echo "found no hidden function in wasmtime $version's source: the scan is broken" >&2
    exit 1
fi
pattern="[.:](\\b$(paste -sd'|' <<<"$hidden" | sed 's/|/\\b|\\b/g')\\b)\\s*(::<[^>]*>)?\\("
uses=$(git ls-files '*.rs' | xargs grep -nE "$pattern" || true)
if [[ -n "$uses" ]]; then
    echo "wasmtime API hidden from its docs is called (wasmtime $version):" >&2
    echo "$uses" >&2
    exit 1
fi
echo "no hidden wasmtime API among $(git ls-files '*.rs' | wc -l) Rust files ($(wc -l <<<"$hidden") hidden functions in wasmtime $version)"
