"""The benchmarks' heavy scene: cbox.gltf plus a height field of 538,722 triangles above its floor
(numpy only). Used by compare_cycles.py, gpu-bundle.sh and traversal/run.sh.

    python3 bench/render/heavy_scene.py OUT_DIR [--grid N]   # writes OUT_DIR/heavy.{gltf,bin}
"""

import argparse
import json
import os

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CBOX = os.path.join(ROOT, "render-pod", "tests", "scenes", "cbox.gltf")
# Height-field vertices per side: 2·(GRID−1)² = 538,722 triangles.
GRID = 520


def heavy_scene(directory, grid=GRID):
    """cbox.gltf + a (grid × grid)-vertex height field above the floor: 2·(grid−1)² triangles."""
    with open(CBOX) as f:
        doc = json.load(f)
    n = grid
    xs = np.linspace(-0.95, 0.95, n, dtype=np.float32)
    x, z = np.meshgrid(xs, xs)
    y = (-0.98 + 0.25 * (np.sin(7.0 * x) * np.cos(5.0 * z) + 1.0) * 0.5
         + 0.05 * np.sin(41.0 * x + 13.0 * z)).astype(np.float32)
    positions = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    i = np.arange(n * n, dtype=np.uint32).reshape(n, n)
    a, b, c, d = i[:-1, :-1], i[:-1, 1:], i[1:, :-1], i[1:, 1:]
    # Counter-clockwise seen from above (+Y): front faces up.
    tris = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    indices = tris.astype(np.uint32).reshape(-1)
    pos_bytes = positions.tobytes()
    idx_bytes = indices.tobytes()
    with open(os.path.join(directory, "heavy.bin"), "wb") as f:
        f.write(pos_bytes)
        f.write(idx_bytes)
    doc["buffers"].append({"uri": "heavy.bin", "byteLength": len(pos_bytes) + len(idx_bytes)})
    buffer = len(doc["buffers"]) - 1
    views = doc["bufferViews"]
    views.append({"buffer": buffer, "byteOffset": 0, "byteLength": len(pos_bytes), "target": 34962})
    views.append({"buffer": buffer, "byteOffset": len(pos_bytes), "byteLength": len(idx_bytes), "target": 34963})
    acc = doc["accessors"]
    acc.append({"bufferView": len(views) - 2, "componentType": 5126, "count": int(positions.shape[0]), "type": "VEC3",
                "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()})
    acc.append({"bufferView": len(views) - 1, "componentType": 5125, "count": int(indices.shape[0]), "type": "SCALAR"})
    doc["meshes"].append({"name": "heightfield", "primitives": [
        {"attributes": {"POSITION": len(acc) - 2}, "indices": len(acc) - 1, "material": 0}]})
    doc["nodes"].append({"name": "heightfield", "mesh": len(doc["meshes"]) - 1})
    doc["scenes"][0]["nodes"].append(len(doc["nodes"]) - 1)
    path = os.path.join(directory, "heavy.gltf")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, int(tris.shape[0]) + 36


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--grid", type=int, default=GRID)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    path, triangles = heavy_scene(args.out_dir, args.grid)
    print(f"heavy scene: grid {args.grid}, {triangles} triangles -> {path}")
