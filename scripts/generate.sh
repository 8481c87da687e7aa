#!/usr/bin/env bash
# Regenerates crds/ from the Rust types. With --check, fails when crds/ is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
cargo run --quiet -p tessera-operator --bin crdgen > "$out"
if [ "${1:-}" = "--check" ]; then
  if ! diff -u crds/tessera.dev.yaml "$out"; then
    echo "crds/ is stale: run scripts/gen-crds.sh and commit the result" >&2
    exit 1
  fi
  echo "crds/ is up to date"
else
  mkdir -p crds
  mv "$out" crds/tessera.dev.yaml
  echo "wrote crds/tessera.dev.yaml"
fi
