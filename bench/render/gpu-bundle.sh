#!/usr/bin/env bash
# Prepares what bench/render/gpu-run.sh needs on a GPU machine that has no network and no
# toolchain (see bench/render/README.md, "GPU benchmark run"). Run on a Debian/Ubuntu x86-64
# machine, from anywhere in the repository:
#   bench/render/gpu-bundle.sh
# Writes (both ignored through .git/info/exclude):
#   .gpu-bundle/render-pod          release binary (this checkout's render-pod)
#   .gpu-bundle/traversal           release binary of bench/render/traversal (needs libstdc++)
#   .gpu-bundle/scenes/cbox.gltf    render-pod/tests/scenes/cbox.gltf
#   .gpu-bundle/scenes/heavy.{gltf,bin}  compare_cycles.py's heavy_scene() (538,722 + 36 triangles)
#   .gpu-bundle/BUILD-INFO.txt      commit, rustc, glibc the binary needs
#   .gl/*.deb                       Vulkan/GL loader packages (libvulkan1 & co.) for an image without them
# Env: CARGO_TARGET_DIR (default ~/.cache/tessera/target), SKIP_BUILD=1, SKIP_DEBS=1,
#      PYTHON (a python3 with numpy; default: python3 if it has numpy, else a venv in /tmp).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUNDLE=.gpu-bundle
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}

# Ignore the two folders (they travel only as carried paths).
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for p in /.gl/ /.gpu-bundle/; do
  grep -qxF "$p" "$exclude" || echo "$p" >>"$exclude"
done

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p render-pod -p tessera-traversal-bench
fi
BIN=$CARGO_TARGET_DIR/release/render-pod
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/scenes"
cp "$BIN" "$BUNDLE/render-pod"
strip "$BUNDLE/render-pod" 2>/dev/null || true
cp "$CARGO_TARGET_DIR/release/traversal" "$BUNDLE/traversal"
strip "$BUNDLE/traversal" 2>/dev/null || true
cp render-pod/tests/scenes/cbox.gltf "$BUNDLE/scenes/cbox.gltf"

# The heavy scene: bench/render/heavy_scene.py (numpy only).
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if python3 -c "import numpy" 2>/dev/null; then
    PY=python3
  else
    VENV=/tmp/tessera-gpu-bundle-venv
    [ -x $VENV/bin/python ] && $VENV/bin/python -c "import numpy" 2>/dev/null ||
      { python3 -m venv $VENV && $VENV/bin/pip install -q numpy; }
    PY=$VENV/bin/python
  fi
fi
"$PY" - "$ROOT" "$BUNDLE/scenes" <<'EOF'
import json, os, sys
root, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "bench", "render"))
from heavy_scene import GRID, heavy_scene
path, triangles = heavy_scene(out, GRID)
json.dump({"heavy": {"grid": GRID, "triangles": triangles}, "cbox": {"triangles": 36}},
          open(os.path.join(out, "scenes.json"), "w"))
print(f"heavy scene: grid {GRID}, {triangles} triangles -> {path}")
EOF

{
  echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- render-pod shard Cargo.lock 2>/dev/null || echo ' (render-pod/shard have uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release; echo "$PRETTY_NAME"), $(ldd --version | head -1)"
  echo "rustc: $(rustc --version)"
  echo "glibc needed: $(objdump -T "$BUNDLE/render-pod" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
} >"$BUNDLE/BUILD-INFO.txt"
cat "$BUNDLE/BUILD-INFO.txt"

if [ -z "${SKIP_DEBS:-}" ]; then
  # The device README's recipe: the amd64 loader packages, downloaded with a private list dir.
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  ls .gl/libvulkan1_*.deb >/dev/null 2>&1 || {
    apt-get $o update >/dev/null
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  }
fi

# What travels: the working tree (tracked + untracked-not-ignored) plus the carried folders; 64 MiB cap.
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(du -cb .gl "$BUNDLE" | tail -1 | cut -f1)
total=$((tree + carried))
echo "travels: working tree $tree B + .gl/.gpu-bundle $carried B = $total B ($((total / 1048576)) MiB of 64)"
# 8 MiB of margin for what the working tree gains before the run (results, logs).
[ "$total" -lt $((56 * 1048576)) ] || { echo "WARNING: over 56 MiB, too close to the 64 MiB limit" >&2; exit 1; }
