#!/usr/bin/env bash
# Profiles render-pod on lavapipe (see docs/renderer.md, "Profile (lavapipe)").
# Usage (repository root): bench/render/profile/run_profile.sh [HEAVY_GLTF]
#   HEAVY_GLTF: the 538,758-triangle scene written by compare_cycles.py's heavy_scene().
# Needs: linux-perf (cpu-clock software event; this VM has no hardware counters), GNU time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
P=bench/render/profile
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/profile}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p render-pod
BIN=${BIN:-$CARGO_TARGET_DIR/release/render-pod}
CBOX=render-pod/tests/scenes/cbox.gltf
HEAVY=${1:-}
W=/tmp/rp-profile
mkdir -p $W
# R scene size spp [VAR=value ...]: one timed `local` run; prints the summary line and GNU time.
R() {
  local scene=$1 size=$2 spp=$3; shift 3
  rm -rf $W/out
  env "$@" /usr/bin/time -o $W/time.txt -f "%e s wall  %U s user  %S s sys  %M KiB maxrss" \
    $BIN local --scene "$scene" --width "$size" --height "$size" --spp "$spp" --max-bounces 4 \
    --out $W/out 2>$W/stderr.txt | tail -1
  cat $W/time.txt
}

{
  echo "# uptime before: $(uptime)"
  $BIN local --scene $CBOX --width 8 --height 8 --spp 1 --out $W/warm >/dev/null  # fill Mesa's shader cache
  for i in 1 2 3; do
    echo "## cbox 8x8 1 spp (fixed overhead), warm shader cache, run $i"; R $CBOX 8 1
  done
  for i in 1 2; do
    echo "## cbox 8x8 1 spp, shader cache disabled (MESA_SHADER_CACHE_DISABLE=true), run $i"
    R $CBOX 8 1 MESA_SHADER_CACHE_DISABLE=true
  done
  for i in 1 2 3; do
    echo "## cbox 64x64 8 spp (small shard), warm cache, run $i"; R $CBOX 64 8
  done
  echo "## cbox 64x64 8 spp, cache disabled"; R $CBOX 64 8 MESA_SHADER_CACHE_DISABLE=true
  for i in 1 2; do
    echo "## cbox 256x256 32 spp, default dispatch sizing, run $i"; R $CBOX 256 32
    echo "## cbox 256x256 32 spp, TESSERA_DISPATCH_SECONDS=1e-6 (4096-path dispatches), run $i"
    R $CBOX 256 32 TESSERA_DISPATCH_SECONDS=0.000001
  done
  for t in 1 2; do
    echo "## cbox 256x256 32 spp, LP_NUM_THREADS=$t"; R $CBOX 256 32 LP_NUM_THREADS=$t
  done
  if [ -n "$HEAVY" ]; then
    echo "## heavy 8x8 1 spp (load + BVH + start-up)"; R "$HEAVY" 8 1
    echo "## heavy 256x256 32 spp"; R "$HEAVY" 256 32
  fi
  echo "# uptime after: $(uptime)"
} 2>&1 | tee $P/timings.txt

# Phase timestamps from the program's own logs (+ wgpu's).
RUST_LOG=debug,naga=info $BIN local --scene $CBOX --width 256 --height 256 --spp 32 --max-bounces 4 \
  --out $W/log 2>&1 | grep -v -E "^\s*$" | head -400 > $P/log-cbox-256-32spp-debug.txt || true

# perf: sampled cpu-clock (no hardware counters on this VM) with DWARF call graphs; lavapipe's
# JIT-compiled shader shows up as /tmp/perf-PID.map (no map is written): "shader execution".
prof() { # name scene size spp [VAR=value ...]
  local name=$1 scene=$2 size=$3 spp=$4; shift 4
  rm -rf $W/p-$name
  perf record -e cpu-clock -F 997 --call-graph dwarf,16384 -o $W/$name.data -- env "$@" \
    $BIN local --scene "$scene" --width "$size" --height "$size" --spp "$spp" --max-bounces 4 \
    --out $W/p-$name >/dev/null 2>&1
  { echo "# perf report -i $name.data --no-children --sort dso -n -g none"
    perf report -i $W/$name.data --no-children --sort dso -n --stdio -g none 2>/dev/null | grep "%"
    echo; echo "# perf report -i $name.data --no-children --sort dso,sym -n -g none --percent-limit 0.1"
    perf report -i $W/$name.data --no-children --sort dso,sym -n --stdio -g none --percent-limit 0.1 \
      2>/dev/null | grep "%" | grep -v "^#" | head -80
    echo; echo "# classify.py (categories of docs/renderer.md)"
    perf script -i $W/$name.data -F comm,tid,time,period,ip,sym,dso 2>/dev/null | python3 $P/classify.py "$name"
  } > $P/perf-$name.txt
}
prof cbox-256-32spp $CBOX 256 32
prof cbox-64-8spp $CBOX 64 8
prof warm8 $CBOX 8 1
prof cold $CBOX 64 8 MESA_SHADER_CACHE_DISABLE=true
prof small $CBOX 128 32 TESSERA_DISPATCH_SECONDS=0.000001
[ -n "$HEAVY" ] && prof heavy-256-32spp "$HEAVY" 256 32
du -sh $P
