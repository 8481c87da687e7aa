#!/usr/bin/env bash
# Builds the `testcluster` multi-call binary (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, and the `up` supervisor).
#
# Usage: e2e/testcluster/build.sh [OUTPUT]      (default: e2e/testcluster/bin/testcluster)
#
# Uses the default GOCACHE/GOMODCACHE, so a warm rebuild only re-links (or does nothing).
# Environment: KUBE_GIT_COMMIT overrides the commit reported by /version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin/testcluster}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$here"

# Two cores are shared with other builds: at most 2 packages at a time, at low priority.
export GOFLAGS="-p=2 -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

kube_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"   # e.g. v1.35.4
if [[ ! "$kube_version" =~ ^v1\.([0-9]+)\.[0-9]+$ ]]; then
	echo "build.sh: unexpected k8s.io/kubernetes version '$kube_version'" >&2
	exit 1
fi
minor="${BASH_REMATCH[1]}"
# Tag time of the release (from the module proxy's .info): a fixed build date keeps the build
# reproducible, so an unchanged tree is not re-linked.
info="$(go mod download -json "k8s.io/kubernetes@$kube_version" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p')"
build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")"
# Commit of the release tag, as the official binaries report it. The module zip carries no git
# metadata, so it is looked up here; empty for unknown versions.
case "$kube_version" in
	v1.35.4) default_commit=7b8c6cf0edd376b3d7c2f255142977c7f93db258 ;;
	*) default_commit="" ;;
esac
git_commit="${KUBE_GIT_COMMIT:-$default_commit}"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitCommit=$git_commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

mkdir -p "$(dirname "$out")"
echo "build.sh: building testcluster (Kubernetes $kube_version) -> $out" >&2
nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$out" .
