#!/usr/bin/env bash
# Per-dispatch cost of render-pod on lavapipe: wall, CPU and peak RSS (GNU time -v) of
# `render-pod local` with many small dispatches (TESSERA_DISPATCH_SECONDS=1e-6 clamps every
# dispatch to the 4096-path minimum) vs the default sizing. See docs/renderer.md, "Profile".
# Usage (repository root): bench/render/profile/dispatch_overhead.sh BIN [HEAVY_GLTF]
#   HEAVY_GLTF: the 538,758-triangle scene written by compare_cycles.py's heavy_scene().
set -euo pipefail
BIN=$1
HEAVY=${2:-}
CBOX=render-pod/tests/scenes/cbox.gltf
W=/tmp/rp-dispatch
mkdir -p $W
# R label scene size spp [VAR=value ...]
R() {
  local label=$1 scene=$2 size=$3 spp=$4; shift 4
  rm -rf $W/out
  env "$@" /usr/bin/time -v -o $W/time.txt $BIN local --scene "$scene" --width "$size" \
    --height "$size" --spp "$spp" --max-bounces 4 --out $W/out >$W/stdout.txt 2>$W/stderr.txt
  printf '%-58s %7.2f s wall %7.2f s user %6.2f s sys %8d KiB maxrss  sha256 %s\n' "$label" \
    "$(awk -F': ' '/Elapsed \(wall/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' $W/time.txt)" \
    "$(awk -F': ' '/User time/ {print $2}' $W/time.txt)" \
    "$(awk -F': ' '/System time/ {print $2}' $W/time.txt)" \
    "$(awk -F': ' '/Maximum resident/ {print $2}' $W/time.txt)" \
    "$(sha256sum $W/out/frame_0001.exr | cut -c1-16)"
}
echo "# $(uptime)"
$BIN local --scene $CBOX --width 8 --height 8 --spp 1 --out $W/warm >/dev/null 2>&1  # warm Mesa's cache
R "cbox 256² 32 spp, default dispatches" $CBOX 256 32
R "cbox 256² 32 spp, 4096-path dispatches" $CBOX 256 32 TESSERA_DISPATCH_SECONDS=0.000001
R "cbox 128² 32 spp, 4096-path dispatches" $CBOX 128 32 TESSERA_DISPATCH_SECONDS=0.000001
R "cbox 128² 8 spp, 4096-path, shader cache disabled" $CBOX 128 8 \
  TESSERA_DISPATCH_SECONDS=0.000001 MESA_SHADER_CACHE_DISABLE=true
if [ -n "$HEAVY" ]; then
  R "heavy 256² 16 spp, default dispatches" "$HEAVY" 256 16
  R "heavy 256² 16 spp, 4096-path dispatches" "$HEAVY" 256 16 TESSERA_DISPATCH_SECONDS=0.000001
fi
echo "# $(uptime)"
