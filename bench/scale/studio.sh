#!/usr/bin/env bash
# Studio-scale bench: RenderJobs against Indexed Jobs on KWOK's fake GPU nodes (1,000 nodes x 8
# GPUs, a 100,000-shard job, 20 jobs x 2,000 shards from 5 namespaces). See bench/scale/README.md.
#
#   bench/scale/studio.sh [--ci] [--skip-build] [--bin DIR] [--dir DIR] [studio.py options...]
#
# Builds (unless --skip-build) the test control plane and kubectl (scripts/e2e-tools.sh), KWOK
# (e2e/kwok/build.sh) and tessera-operator in the release profile into target/bench (--bin DIR:
# use the tessera-operator in DIR instead, built by the caller), then runs studio.py, which
# starts everything under DIR (default: a fresh /tmp/tessera-studio.XXXXXX), measures, stops
# everything and prints the tables (JSON in DIR/results.json).
# --ci: the small version CI runs (100 nodes, one job of 5,000 shards, 20 jobs x 100 shards;
# Indexed Jobs at defaults stopped after 60 s): it checks that every job completes and the
# figures are produced, nothing more.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build=1 dir="" bin="" ci=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1; shift ;;
    --skip-build) build=0; shift ;;
    --bin) bin="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$dir" ] || dir="$(mktemp -d /tmp/tessera-studio.XXXXXX)"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [ "$build" = 1 ]; then
  eval "$("$repo/scripts/e2e-tools.sh")"
else
  export TESSERA_TESTCLUSTER="${TESSERA_TESTCLUSTER:-$repo/e2e/testcluster/bin/testcluster}"
  export TESSERA_KUBECTL="${TESSERA_KUBECTL:-$HOME/.cache/tessera/kube-tools/bin/kubectl}"
  export TESSERA_KWOK="${TESSERA_KWOK:-$repo/e2e/kwok/bin/kwok}"
fi
if [ -z "$bin" ]; then
  bin="${BENCH_TARGET_DIR:-$repo/target/bench}/release"
  if [ "$build" = 1 ]; then
    echo "studio.sh: cargo build --release -p tessera-operator (target ${bin%/release})" >&2
    (cd "$repo" && CARGO_TARGET_DIR="${bin%/release}" nice -n 5 cargo build --quiet --release --bins \
       -p tessera-operator)
  fi
fi
for f in "$TESSERA_TESTCLUSTER" "$TESSERA_KUBECTL" "$TESSERA_KWOK" "$bin/tessera-operator"; do
  [ -x "$f" ] || { echo "studio.sh: missing $f (run without --skip-build)" >&2; exit 1; }
done

if [ "$ci" = 1 ]; then
  args=(--nodes 100 --shards 5000 --jobs 20 --job-shards 100 --ij-default-window 60
        --run-timeout 900 --total-timeout 2400 ${args[@]+"${args[@]}"})
fi
echo "studio.sh: working directory $dir; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec python3 "$repo/bench/scale/studio.py" --repo "$repo" --bin "$bin" \
  --testcluster "$TESSERA_TESTCLUSTER" --kubectl "$TESSERA_KUBECTL" --kwok "$TESSERA_KWOK" --dir "$dir" \
  --json "$dir/results.json" ${args[@]+"${args[@]}"}
