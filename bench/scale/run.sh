#!/usr/bin/env bash
# Scale benchmark: a 1,000-shard RenderJob against a 1,000-completion Indexed Job, one after the
# other on one test control plane, then (when Kueue is built) the same RenderJob queued in Kueue.
# See bench/scale/README.md.
#
#   bench/scale/run.sh [--skip-build] [--no-kueue] [--dir DIR] [bench.py options...]
#
# Builds (unless --skip-build) the test control plane, kubectl and Kueue (scripts/e2e-tools.sh)
# and tessera-operator, node-agent and fake-render-pod in the release profile into target/bench,
# then runs bench/scale/bench.py, which starts everything under DIR (default: a fresh
# /tmp/tessera-scale.XXXXXX), measures, stops everything and prints a summary table. When the
# Kueue binary exists ($TESSERA_KUEUE; with --skip-build default e2e/kueue/bin/kueue) it passes
# --kueue: a third case, RenderJob+Kueue, and a second table (what Kueue costs per shard);
# --no-kueue leaves it out. bench.py options: --shards N (1000) --gpu-nodes N (10)
# --gpus-per-node G (8) --baseline S (15) --settle S (5) --run-timeout S (240, per case)
# --total-timeout S (660; 900 with Kueue) --kcm-arg=FLAG (repeatable) --order rj-first|ij-first
# (of the first two cases) --json FILE.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build=1 dir="" kueue=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-build) build=0; shift ;;
    --no-kueue) kueue=0; shift ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$dir" ] || dir="$(mktemp -d /tmp/tessera-scale.XXXXXX)"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

target="${BENCH_TARGET_DIR:-$repo/target/bench}"
if [ "$build" = 1 ]; then
  eval "$("$repo/scripts/e2e-tools.sh")"
  echo "run.sh: cargo build --release (target $target)" >&2
  (cd "$repo" && CARGO_TARGET_DIR="$target" nice -n 5 cargo build --quiet --release --bins \
     -p tessera-operator -p tessera-e2e)
else
  export TESSERA_TESTCLUSTER="${TESSERA_TESTCLUSTER:-$repo/e2e/testcluster/bin/testcluster}"
  export TESSERA_KUBECTL="${TESSERA_KUBECTL:-$HOME/.cache/tessera/kube-tools/bin/kubectl}"
  export TESSERA_KUEUE="${TESSERA_KUEUE:-$repo/e2e/kueue/bin/kueue}"
fi
for f in "$TESSERA_TESTCLUSTER" "$TESSERA_KUBECTL" "$target/release/tessera-operator" \
         "$target/release/node-agent" "$target/release/fake-render-pod"; do
  [ -x "$f" ] || { echo "run.sh: missing $f (run without --skip-build)" >&2; exit 1; }
done

kueue_args=()
if [ "$kueue" = 1 ] && [ -n "${TESSERA_KUEUE:-}" ] && [ -x "$TESSERA_KUEUE" ]; then
  kueue_args=(--kueue "$TESSERA_KUEUE")
else
  echo "run.sh: without the RenderJob+Kueue case (--no-kueue, or no Kueue binary at ${TESSERA_KUEUE:-$repo/e2e/kueue/bin/kueue})" >&2
fi
echo "run.sh: working directory $dir; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec python3 "$repo/bench/scale/bench.py" --repo "$repo" --bin "$target/release" \
  --testcluster "$TESSERA_TESTCLUSTER" --kubectl "$TESSERA_KUBECTL" --dir "$dir" \
  --json "$dir/results.json" ${kueue_args[@]+"${kueue_args[@]}"} ${args[@]+"${args[@]}"}
