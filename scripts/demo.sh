#!/usr/bin/env bash
# The quick start's main job: bring up the local environment (a real control plane, fake GPU
# nodes, the operator), apply the sample RenderPool and RenderJob (the Cornell box, 4 frames
# in 2x2 tiles = 16 shards), wait for Complete, print where the merged frames are, and take
# the environment down again (--keep leaves it running).
#
#   scripts/demo.sh [--keep] [--fake-render] [--dir DIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$repo/out/demo" keep=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1; shift ;;
    --fake-render) extra+=(--fake-render); shift ;;
    --dir) dir="$2"; shift 2 ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "demo.sh: $1 is missing: $2" >&2; exit 1; }; }
need cargo "install Rust 1.95 (rustup)"
need go "install Go >= 1.24: the local control plane is built from the Kubernetes Go modules"
need python3 "install Python 3"
# The real render pod needs a Vulkan driver; without a GPU that is Mesa's lavapipe.
if [ "${#extra[@]}" = 0 ] && ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "demo.sh: installing Mesa's lavapipe (mesa-vulkan-drivers) for the renderer" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    echo "demo.sh: no Vulkan driver found (/usr/share/vulkan/icd.d is empty): install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1) or run with --fake-render" >&2
    exit 1
  fi
fi
# Mesa's Vulkan WSI complains on every start without it; rendering needs no display.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# Assignments before eval: set -e stops on a failed step only through an assignment's status.
dev_env="$("$repo/e2e/dev-env" up --dir "$dir" "${extra[@]}")"
eval "$dev_env"
[ "$keep" = 1 ] || trap '"$repo/e2e/dev-env" down --dir "$dir"' EXIT
tools_env="$("$repo/scripts/e2e-tools.sh")"
eval "$tools_env"
kubectl="$TESSERA_KUBECTL"

"$kubectl" delete renderjob cbox --ignore-not-found --wait=true > /dev/null
sed -e "s#file:///data/scenes/cbox.gltf#file://$repo/config/samples/scenes/cbox.gltf#" \
  "$repo/config/samples/renderjob.yaml" | "$kubectl" apply -f -
start=$(date +%s)
# Complete or Failed, whichever comes first (kubectl wait watches one condition only).
phase=""
while [ "$phase" != Complete ] && [ "$phase" != Failed ]; do
  if [ $(( $(date +%s) - start )) -gt 1800 ]; then
    echo "demo.sh: the job did not finish within 30 minutes" >&2; exit 1
  fi
  sleep 1   # poll the phase once a second: kubectl wait cannot wait on two conditions
  state="$("$kubectl" get renderjob cbox -o jsonpath='{.status.phase} {.status.framesDone}')"
  phase="${state%% *}"
  done_frames="${state#* }"
  # Frames are merged as soon as their shards are rendered: note when the first one is.
  if [ -z "${first_frame:-}" ] && [ -n "$done_frames" ] && [ "$done_frames" != "$state" ]; then
    first_frame=$(( $(date +%s) - start ))
    echo "demo.sh: first frame merged after ${first_frame} s (frames done: $done_frames)"
  fi
done
"$kubectl" get renderjob cbox
if [ "$phase" = Failed ]; then
  echo "demo.sh: the job failed:" >&2
  "$kubectl" get renderjob cbox -o jsonpath='{.status.conditions[?(@.type=="Failed")].message}{"\n"}' >&2
  exit 1
fi
echo "GPU-seconds: $("$kubectl" get renderjob cbox -o jsonpath='{.status.gpuSeconds}') (the job's ledger; finished shard pods are deleted once accounted)"
frames="$("$kubectl" get renderjob cbox -o jsonpath='{.status.output.frames}')"
echo
echo "Rendered in $(( $(date +%s) - start )) s (first frame after ${first_frame:-?} s). Merged frames: $frames"
ls -l "$dir/data/default/cbox/frames" 2>/dev/null || true
if [ "$keep" = 1 ]; then
  echo "The environment is still up: export KUBECONFIG=$dir/cluster/kubeconfig; stop it with e2e/dev-env down --dir $dir"
fi
