#!/usr/bin/env bash
# Builds the Google Cloud Storage emulator the gs:// integration test
# (render-pod/tests/fake_gcs.rs) runs against: fake-gcs-server (BSD-2-Clause, an unmodified test
# tool, not shipped), pinned in go.mod (github.com/fsouza/fake-gcs-server v1.56.1, from the Go
# module proxy), behind main.go, a small shim that adds the plain XML-API upload object_store
# sends and upstream lacks (see main.go).
#
# Usage: e2e/gcs/build.sh [OUTPUT_DIR]     (default: e2e/gcs/bin; the binary is
#        OUTPUT_DIR/fake-gcs-server; the test finds it there, or at $TESSERA_FAKE_GCS)
#
# Idempotent: a binary built from the same main.go, go.mod and go.sum is kept (a few
# milliseconds). Uses the default GOCACHE/GOMODCACHE. Cold build here (2 shared cores, empty
# GOCACHE, modules downloaded): about 1.5 minutes, ~35 MB.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

bin="$out/fake-gcs-server"
stamp="$out/fake-gcs-server.version"
version="$(cd "$here" && cat main.go go.mod go.sum | sha256sum | cut -d' ' -f1)"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
	exit 0
fi

# Two cores are shared with other builds: at most 2 packages at a time, at low priority.
export GOFLAGS="-buildvcs=false -p=2"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

mkdir -p "$out"
echo "build.sh: building fake-gcs-server (v1.56.1 + XML PUT shim) -> $bin" >&2
cd "$here"
nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin" .
echo "$version" >"$stamp"
