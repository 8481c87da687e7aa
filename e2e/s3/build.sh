#!/usr/bin/env bash
# Builds the S3-compatible server the S3 end-to-end scenario runs against: MinIO (AGPL-3.0, an
# unmodified test tool, not shipped), pinned, with `go install` from the Go module proxy.
#
# Usage: e2e/s3/build.sh [OUTPUT_DIR]     (default: e2e/s3/bin; the binary is OUTPUT_DIR/minio)
#
# Idempotent: a binary already built from the pinned version is kept. Uses the default
# GOCACHE/GOMODCACHE. Cold build here (2 shared cores, busy): about 5 minutes, ~150 MB.
#
# The pin: MinIO's community edition is source-only and has no semver tags; the proxy refuses
# the 2025 pins (v0.0.0-20251015172955-9e49d5e7a648, v0.0.0-20251203081311-27742d469462: 403
# "This module version is not available"). This is what `@latest` resolved to on 2026-11-23.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

module=github.com/minio/minio
version=v0.0.0-20260212201848-7aac2a2c5b7c
bin="$out/minio"
stamp="$out/minio.version"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$module@$version" ]]; then
	exit 0
fi

# Two cores are shared with other builds: at most 2 packages at a time, at low priority.
export GOFLAGS="-p=2"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

mkdir -p "$out"
echo "build.sh: building MinIO $version -> $bin" >&2
GOBIN="$out" nice -n 10 go install "$module@$version"
echo "$module@$version" >"$stamp"
