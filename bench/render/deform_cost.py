#!/usr/bin/env python3
"""What a deforming mesh costs per frame: the scene rebuilt (skinning, morphing, flattening, BVH,
upload) for every frame of an animated scene, against a still one built once, and against the
same meshes neither skinned nor morphed (what the deformation itself adds).

Builds `render-pod/tests/scenes/make_feature_scenes.py`'s skinned tube and morphing sphere at a
finer tessellation (about 370,000 triangles), animated and still, renders frames 1-4 of each at
64x48 and 1 spp with `render-pod local` (release), and reads the pod's own log
("scene built (BVH + upload)": seconds, triangles, BVH nodes) per frame.

Usage (from the repository root):
  python3 bench/render/deform_cost.py [--binary target/release/render-pod] [--out results.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "render-pod", "tests", "scenes"))
import make_feature_scenes  # noqa: E402

FINE = {"rings": 401, "segments": 256, "sphere_rings": 200, "sphere_segments": 400}


def builds(binary, scene, out):
    """Per built scene: the pod's log record of it; and the run's wall seconds."""
    env = dict(os.environ, RENDER_POD_LOG_FORMAT="json")
    env.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())
    run = subprocess.run(
        [binary, "local", "--scene", scene, "--frames", "1-4", "--width", "64", "--height", "48",
         "--spp", "1", "--max-bounces", "1", "--background", "1,1,1", "--out", out],
        env=env, capture_output=True, text=True, check=True)
    records = []
    for line in run.stderr.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        fields = record.get("fields", {})
        if fields.get("message") == "scene built (BVH + upload)":
            records.append(fields)
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    parser.add_argument("--binary", default=os.path.join(target, "release", "render-pod"))
    parser.add_argument("--out")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release", "-p", "render-pod"], cwd=ROOT, check=True)
    result = {"scene": "skin_morph (fine)", **FINE}
    with tempfile.TemporaryDirectory() as tmp:
        for name, animated in [("rigid", False), ("still", False), ("animated", True)]:
            path = os.path.join(tmp, f"{name}.gltf")
            document = make_feature_scenes.skin_morph_scene(animated, **FINE)
            if name == "rigid":  # neither skinned nor morphed: the flattening and BVH alone
                del document["nodes"][0]["skin"]
                del document["meshes"][1]["primitives"][0]["targets"]
                del document["meshes"][1]["weights"]
                del document["nodes"][3]["weights"]
            with open(path, "w") as f:
                json.dump(document, f)
            records = builds(args.binary, path, os.path.join(tmp, f"out-{name}"))
            seconds = [float(r["seconds"]) for r in records]
            result[name] = {
                "frames": 4,
                "builds": len(records),
                "triangles": int(records[0]["triangles"]),
                "bvh_nodes": int(records[0]["bvh_nodes"]),
                "build_seconds": seconds,
                "median_build_seconds": statistics.median(seconds),
            }
    rigid, still, animated = result["rigid"], result["still"], result["animated"]
    print(f"{animated['triangles']:,} triangles: a still skinned and morphed scene is built "
          f"{still['builds']}x for 4 frames ({still['median_build_seconds']:.3f} s, the same "
          f"scene neither skinned nor morphed {rigid['median_build_seconds']:.3f} s); animated, "
          f"{animated['builds']}x, median {animated['median_build_seconds']:.3f} s per frame "
          f"({animated['triangles'] / animated['median_build_seconds'] / 1e6:.2f} M triangles/s)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
