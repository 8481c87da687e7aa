#!/usr/bin/env bash
# Regenerates every generated file: crds/ from the Rust types, the Helm chart's CRD template,
# and the chart's copy of the Grafana dashboard. With --check, fails when any is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --quiet -p tessera-operator --bin crdgen > "$tmp/crds.yaml"
cargo run --quiet -p tessera-operator --bin crdgen -- --helm > "$tmp/chart-crds.yaml"
cp config/grafana/tessera-dashboard.json "$tmp/dashboard.json"

# generated file in $tmp -> its place in the repository
targets=(
  "crds.yaml:crds/tessera.dev.yaml"
  "chart-crds.yaml:charts/tessera/templates/crds.yaml"
  "dashboard.json:charts/tessera/dashboards/tessera.json"
)
stale=0
for target in "${targets[@]}"; do
  from="$tmp/${target%%:*}" to="${target#*:}"
  if [ "${1:-}" = "--check" ]; then
    if ! diff -u "$to" "$from" >/dev/null 2>&1; then
      diff -u "$to" "$from" | head -40 >&2 || true
      echo "$to is stale: run scripts/generate.sh and commit the result" >&2
      stale=1
    fi
  else
    mkdir -p "$(dirname "$to")"
    cp "$from" "$to"
    echo "wrote $to"
  fi
done
if [ "${1:-}" = "--check" ]; then
  [ "$stale" = 0 ] && echo "generated files are up to date"
  exit "$stale"
fi
