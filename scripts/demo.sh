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
"$kubectl" wait --for=condition=Complete renderjob/cbox --timeout=30m
"$kubectl" get renderjob cbox
"$kubectl" get pods -l tessera.dev/job=cbox -o wide --no-headers | awk '{print "  " $1 "\t" $3 "\t" $7}'
frames="$("$kubectl" get renderjob cbox -o jsonpath='{.status.output.frames}')"
echo
echo "Rendered in $(( $(date +%s) - start )) s. Merged frames: $frames"
ls -l "$dir/data/default/cbox/frames" 2>/dev/null || true
[ "$keep" = 1 ] && echo "The environment is still up: export KUBECONFIG=$dir/cluster/kubeconfig; stop it with e2e/dev-env down --dir $dir"
