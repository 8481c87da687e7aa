#!/usr/bin/env bash
# Builds KWOK (sigs.k8s.io/kwok, Apache-2.0, the Kubernetes SIG's node/pod lifecycle simulator; an
# unmodified upstream test tool, not shipped) for the e2e tests against the test control plane
# (e2e/testcluster): upstream's own cmd/kwok at KWOK_VERSION (default v0.8.0, the newest release the Go
# module proxy serves), built with `go install pkg@version`. KWOK's go.mod has no replace directives,
# so no own module is needed; the build uses KWOK's own go.mod/go.sum pins (k8s.io/* v0.36.1,
# controller-runtime v0.24.1) and needs go >= 1.26.0.
#
# Usage: e2e/kwok/build.sh [OUTPUT_DIR]     (default: e2e/kwok/bin)
#   OUTPUT_DIR/kwok           the controller binary (run it with the checked-in e2e/kwok/*.yaml, see README.md)
#   OUTPUT_DIR/kwok.version   stamp: module version, build flags and Go version
#
# Idempotent: a binary built from the same version, flags and Go toolchain is kept (10 ms). Uses the
# default GOCACHE/GOMODCACHE. Cold build here (go1.26.8, 2 shared cores, load 2-6 from a concurrent
# cargo build, empty GOCACHE, KWOK's k8s.io v0.36.1 dependencies downloaded during the build): 4 min 13 s
# wall (243 s user + 44 s sys), peak RSS 1.0 GB, GOCACHE +0.8 GB; relink with a warm GOCACHE 1.3 s.
# Binary 83.6 MB (80 MiB, -trimpath -s -w).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

kwok_version="${KWOK_VERSION:-v0.8.0}"
pkg="sigs.k8s.io/kwok/cmd/kwok"
bin="$out/kwok"
stamp="$out/kwok.version"

# Two cores are shared with other builds: at most 2 packages at a time, at low priority.
export GOFLAGS="-buildvcs=false -p=2"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# `go install pkg@version` ignores any go.mod around it and must not be redirected by go.work.
export GOWORK=off
ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} -X sigs.k8s.io/kwok/pkg/consts.PreRelease=GA"
version="$(printf '%s\n' "$pkg@$kwok_version" "$ldflags" "$(go version)" | sha256sum | cut -d' ' -f1)"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
	exit 0
fi

mkdir -p "$out"
rm -f "$stamp"
echo "build.sh: building KWOK $kwok_version ($pkg) -> $bin" >&2
cd "$here"
GOBIN="$out" nice -n 10 go install -trimpath -ldflags "$ldflags" "$pkg@$kwok_version"
echo "$version" >"$stamp"
