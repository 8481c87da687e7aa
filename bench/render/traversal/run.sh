#!/usr/bin/env bash
# The traversal benchmark (bench/render/traversal/README.md): builds the `traversal` binary
# (release), prepares the heavy scene and a Python with numpy and embreex (Embree 4), runs the
# benchmark twice (the JSON must be byte-identical), checks every tree's hits against Embree's
# and prints the tables. Fails, naming why, when any step does.
#
#   bench/render/traversal/run.sh                       # 2^18 rays a set; ~10 min on 2 cores
#   bench/render/traversal/run.sh --quick               # CI's smoke test: debug build, 4,096 rays,
#                                                       # cbox and 2,000 boxes (no heavy scene)
#   bench/render/traversal/run.sh --out FILE.json       # also keep the results (default: none)
#   bench/render/traversal/run.sh --gpu FILE.json       # and cast every set on the render pod's
#                                                       # GPU adapter (rays/s; hits vs the CPU's)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
RAYS=262144 BOXES=20000 OUT= QUICK= GPU=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) RAYS=4096 BOXES=2000 QUICK=1 ;;
    --rays) RAYS=$2; shift ;;
    --boxes) BOXES=$2; shift ;;
    --out) OUT=$2; shift ;;
    --gpu) GPU=$2; shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}
if [ -n "$QUICK" ]; then
  cargo build -q --locked -p tessera-traversal-bench
  BIN=$CARGO_TARGET_DIR/debug/traversal
else
  cargo build --release -q --locked -p tessera-traversal-bench
  BIN=$CARGO_TARGET_DIR/release/traversal
fi

WORK=$(mktemp -d /tmp/tessera-traversal.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
VENV=${TRAVERSAL_VENV:-$HOME/.cache/tessera/traversal-venv}
if ! "$VENV/bin/python" -c "import numpy, embreex" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "numpy>=1.26" "embreex==4.4.0.post1"
fi
PY=$VENV/bin/python
args=(--scene cbox=render-pod/tests/scenes/cbox.gltf --boxes "$BOXES" --rays "$RAYS")
if [ -z "$QUICK" ]; then
  "$PY" bench/render/heavy_scene.py "$WORK/scenes" >/dev/null
  args+=(--scene "heavy=$WORK/scenes/heavy.gltf")
fi
"$BIN" "${args[@]}" --hits "$WORK/hits" ${GPU:+--gpu "$GPU"} >"$WORK/first.json" 2>"$WORK/first.log"
"$BIN" "${args[@]}" >"$WORK/second.json" 2>"$WORK/second.log"
if ! cmp -s "$WORK/first.json" "$WORK/second.json"; then
  echo "run.sh: the two runs' JSON differ (the benchmark must be deterministic):" >&2
  diff "$WORK/first.json" "$WORK/second.json" | head -20 >&2
  exit 1
fi
"$PY" bench/render/traversal/report.py --json "$WORK/first.json" --log "$WORK/first.log" \
  --hits "$WORK/hits" ${OUT:+--out "$OUT"} ${GPU:+--gpu "$GPU"}
