"""Checks the traversal benchmark's hits against Embree and prints its tables (run.sh calls it).

Embree (embreex 4.4, the Python binding of Intel's Embree 4) intersects the same triangles
with the same rays: nearest hit for camera, diffuse, later and random rays (the primitive
must be the same), occlusion for shadow rays. A tree whose agreement is below 99.9 % on any set
fails the run.
"""

import argparse
import json
import os
import re
import sys

import numpy as np
from embreex import rtcore_scene
from embreex.mesh_construction import TriangleMesh

AGREEMENT = 0.999


def embree_hits(hits_dir, scene, set_name, any_hit):
    d = os.path.join(hits_dir, scene)
    tris = np.fromfile(os.path.join(d, "triangles.f32"), dtype="<f4").reshape(-1, 3, 3)
    rays = np.fromfile(os.path.join(d, f"{set_name}.rays.f32"), dtype="<f4").reshape(-1, 7)
    embree = rtcore_scene.EmbreeScene()
    TriangleMesh(embree, tris)
    origins, dirs = np.ascontiguousarray(rays[:, 0:3]), np.ascontiguousarray(rays[:, 3:6])
    dists = np.ascontiguousarray(rays[:, 6])
    if any_hit:
        occluded = embree.run(origins, dirs, dists=dists, query="OCCLUDED")
        return np.where(occluded >= 0, 1, -1).astype(np.int32)
    return embree.run(origins, dirs, dists=dists, output=1)["primID"].astype(np.int32)


def check_embree(doc, hits_dir):
    """Per scene, set and tree: the share of rays whose hit is Embree's."""
    failures = []
    for scene in doc["scenes"]:
        for rs in scene["ray_sets"]:
            if rs["rays"] == 0:
                continue
            reference = embree_hits(hits_dir, scene["scene"], rs["set"], rs["any_hit"])
            for tree in rs["trees"]:
                name = tree["tree"].replace("/", "_")
                path = os.path.join(hits_dir, scene["scene"], f"{rs['set']}.{name}.hits.i32")
                ours = np.fromfile(path, dtype="<i4")
                agree = float(np.mean(ours == reference))
                tree["figures"]["agree_with_embree"] = round(agree, 6)
                if agree < AGREEMENT:
                    failures.append(f"{scene['scene']}/{rs['set']}/{tree['tree']}: {agree:.5f}")
    return failures


def build_times(log):
    """Build milliseconds per scene and tree from the binary's stderr."""
    times, scene = {}, None
    for line in open(log):
        m = re.match(r"^(\S+): \d+ triangles", line)
        if m:
            scene = m.group(1)
        m = re.match(r"^\s+build (\S+)\s+([\d.]+) ms", line)
        if m:
            times.setdefault(scene, {})[m.group(1)] = float(m.group(2))
    return times


def print_tables(doc):
    for scene in doc["scenes"]:
        print(f"\n## {scene['scene']} ({scene['triangles']:,} triangles)\n")
        print("| tree | SAH | nodes | leaves | tris/leaf | depth | node MB | build ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for t in scene["trees"]:
            s = t["structure"]
            print(f"| {t['tree']} | {s['sah_cost']:.2f} | {s['nodes']:,} | {s['leaves']:,} | "
                  f"{s['leaf_triangles_mean']:.2f} | {s['depth_max']} | {s['node_bytes'] / 1e6:.2f} | "
                  f"{t.get('build_ms', float('nan')):.1f} |")
        for rs in scene["ray_sets"]:
            print(f"\n{rs['set']} ({rs['rays']:,} rays{', any hit' if rs['any_hit'] else ''}):\n")
            print("| tree | steps | p99 | boxes | tris | p99 | stack p99 | bytes | p99 | SIMT | Embree |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for t in rs["trees"]:
                f = t["figures"]
                print(f"| {t['tree']} | {f['steps_mean']:.1f} | {f['steps_p99']:.0f} | "
                      f"{f['box_tests_mean']:.1f} | {f['triangle_tests_mean']:.1f} | "
                      f"{f['triangle_tests_p99']:.0f} | {f['stack_entries_p99']:.0f} | "
                      f"{f['bytes_mean']:.0f} | {f['bytes_p99']:.0f} | {f['simt_efficiency']:.3f} | "
                      f"{f.get('agree_with_embree', float('nan')):.5f} |")


def print_gpu(path):
    """The GPU casts: rays/s per scene, tree and set; fails below 99.9 % agreement with the CPU."""
    doc = json.load(open(path))
    print(f"\n## GPU casts: {doc['adapter']}\n")
    sets = ["camera", "diffuse", "shadow", "later", "random"]
    rows, failures = {}, []
    for c in doc["casts"]:
        rows.setdefault((c["scene"], c["tree"]), {})[c["set"]] = c["figures"]
        if c["figures"]["agree_with_cpu"] < AGREEMENT:
            failures.append(f"{c['scene']}/{c['set']}/{c['tree']}: {c['figures']['agree_with_cpu']:.5f}")
    print("M rays/s | " + " | ".join(sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for (scene, tree), f in rows.items():
        cells = [f"{f[s]['rays_per_second'] / 1e6:.2f}" if s in f else "" for s in sets]
        print(f"| {scene} {tree} | " + " | ".join(cells) + " |")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--hits", required=True)
    parser.add_argument("--out")
    parser.add_argument("--gpu", help="the binary's --gpu output: print it, check its hits")
    args = parser.parse_args()
    doc = json.load(open(args.json))
    times = build_times(args.log)
    for scene in doc["scenes"]:
        for t in scene["trees"]:
            t["build_ms"] = times.get(scene["scene"], {}).get(t["tree"])
    failures = check_embree(doc, args.hits)
    print_tables(doc)
    if args.gpu:
        failures += [f"GPU {f}" for f in print_gpu(args.gpu)]
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    if failures:
        print("\nhits that disagree (with Embree, or the GPU's with the CPU's) on more than 0.1 % of rays:",
              *failures, sep="\n  ",
              file=sys.stderr)
        sys.exit(1)
    print(f"\nevery tree agrees with Embree on ≥ {AGREEMENT:.1%} of every set's rays; "
          "two runs gave byte-identical JSON")


if __name__ == "__main__":
    main()
