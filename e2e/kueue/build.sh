#!/usr/bin/env bash
# Builds the Kueue the e2e tests run against the test control plane (e2e/testcluster): Kueue
# (Apache-2.0, an unmodified test tool, not shipped) pinned in go.mod (sigs.k8s.io/kueue v0.17.1,
# the newest v0.17 patch the Go module proxy serves), behind main.go, a small own main that wires
# Kueue's packages as upstream's cmd/kueue does, minus webhooks, job integrations and certificate
# management (see main.go and README.md for why upstream's cmd/kueue is not used).
#
# Usage: e2e/kueue/build.sh [OUTPUT_DIR]     (default: e2e/kueue/bin)
#   OUTPUT_DIR/kueue    the controller binary
#   OUTPUT_DIR/crds/    Kueue's 11 CRDs from the module (config/components/crd/bases), rewritten by
#                       crdtool/ to serve and store only v1beta2 with conversion strategy None
#                       (apply with `kubectl apply --server-side -f OUTPUT_DIR/crds`)
#
# Idempotent: output built from the same main.go, crdtool/main.go, go.mod and go.sum is kept (a few
# milliseconds). Uses the default GOCACHE/GOMODCACHE. Cold build here (2 shared cores, load 4-5 from a
# concurrent cargo build, empty GOCACHE, modules downloaded): 4 min 8 s wall (324 s user), peak RSS
# 1.0 GB, GOCACHE +1.2 GB; binary 53.9 MB (51 MiB, -trimpath -s -w).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

bin="$out/kueue"
stamp="$out/kueue.version"
version="$(cd "$here" && cat main.go crdtool/main.go go.mod go.sum | sha256sum | cut -d' ' -f1)"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$version" && -f "$out/crds/kueue.x-k8s.io_workloads.json" ]]; then
	exit 0
fi

# Two cores are shared with other builds: at most 2 packages at a time, at low priority.
export GOFLAGS="-buildvcs=false -p=2"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
cd "$here"

kueue_version="$(go list -m -f '{{.Version}}' sigs.k8s.io/kueue)"
kueue_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
if [[ -z "$kueue_dir" ]]; then
	go mod download sigs.k8s.io/kueue
	kueue_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
fi

mkdir -p "$out"
rm -f "$stamp"
echo "build.sh: building Kueue $kueue_version (own main, no webhooks) -> $bin" >&2
nice -n 10 go build -trimpath \
	-ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$kueue_version" \
	-o "$bin" .
rm -rf "$out/crds"
nice -n 10 go run ./crdtool "$kueue_dir/config/components/crd/bases" "$out/crds"
echo "$version" >"$stamp"
