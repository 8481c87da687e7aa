#!/usr/bin/env python3
"""render-pod (release build, wgpu) vs Blender Cycles (bpy 5.0.1, CPU or GPU) on this machine.

Same scene, resolution, samples per pixel and bounces for both; one run prints, per scene:
  - samples/s of each (marginal: pixels × N / (T(2N) − T(N)), which drops fixed costs such as
    scene load, BVH build and kernel compilation), by wall clock and by CPU time (user + sys of
    the renderer's process: robust when other jobs share the machine), medians of interleaved
    repeats,
  - the ratio render-pod / Cycles,
  - the image-mean difference of the 2N renders (per channel, relative).

Scenes: `cbox` (the shared Cornell box) and `heavy` (the Cornell box plus a procedural height
field of ≥ 500k triangles, generated here as glTF with an external .bin buffer).

Usage (from the repository root, in a venv with `pip install bpy==5.0.1 numpy`):
  python bench/render/compare_cycles.py [--size 256] [--spp 16] [--bounces 4] [--out results.json]
      [--cycles-device CPU|CUDA|OPTIX] [--render-pod target/release/render-pod]

GPU mode (`--cycles-device CUDA` or `OPTIX`): Cycles renders on those GPUs only (no CPU in the
mix), after one untimed warm-up render per scene so kernel loading/compilation is not timed;
render-pod gets one untimed 8×8 run too and runs with TESSERA_REQUIRE_HARDWARE_GPU=1. Either renderer finding no GPU is an error
(non-zero exit), never a silent fallback to the CPU. The devices used are printed and recorded.

Alignment with render-pod: see cycles_reference.py (one-sided emission, 1-px box filter, no
clamping/adaptive/denoising, every bounce cap = B, single-scatter GGX).
"""

import argparse
import base64
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cycles_reference  # noqa: E402  (imports bpy)
from heavy_scene import GRID, heavy_scene  # noqa: E402
import bpy  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CBOX = os.path.join(ROOT, "render-pod", "tests", "scenes", "cbox.gltf")


def build_render_pod():
    """Release build in target/render; see --render-pod to use another binary."""
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "render"))
    subprocess.run(["cargo", "build", "--release", "-p", "render-pod"], cwd=ROOT, env=env, check=True)
    return os.path.join(ROOT, "target", "render", "release", "render-pod")


def exr_mean(path):
    image = bpy.data.images.load(path, check_existing=False)
    w, h = image.size
    pixels = np.array(image.pixels[:], dtype=np.float64).reshape(h, w, 4)[:, :, :3]
    bpy.data.images.remove(image)
    return pixels.reshape(-1, 3).mean(axis=0)


def run_ours(binary, scene, size, spp, bounces, out, require_gpu=False):
    # render-pod logs its adapter at info level; everything else at warn.
    env = dict(os.environ, RUST_LOG="warn,render_pod::gpu=info")
    if require_gpu:
        env["TESSERA_REQUIRE_HARDWARE_GPU"] = "1"  # exit 5 instead of running on lavapipe
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [binary, "local", "--scene", scene, "--width", str(size), "--height", str(size), "--spp", str(spp),
         "--max-bounces", str(bounces), "--seed", "7", "--out", out],
        capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"render-pod failed ({proc.returncode}):\n{proc.stderr}")
    m = re.search(r"([\d.]+) s rendering, ([\d.]+) Msamples/s on (.*) ->", proc.stdout)
    kind = re.search(r"GPU adapter .*device_type=(\w+)", proc.stderr)
    return {"wall": wall, "cpu": cpu, "render": float(m.group(1)), "adapter": m.group(3),
            "deviceType": kind.group(1) if kind else "unknown",
            "mean": exr_mean(os.path.join(out, "frame_0001.exr"))}


def run_cycles_once(scene, spp, path):
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    seconds, pixels = cycles_reference.render(scene, path, spp=spp)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {"wall": seconds, "cpu": cpu, "mean": pixels.reshape(-1, 3).astype(np.float64).mean(axis=0)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spp", type=int, default=16, help="N; each renderer renders N and 2N")
    parser.add_argument("--bounces", type=int, default=4)
    parser.add_argument("--grid", type=int, default=GRID, help="height-field vertices per side (heavy scene)")
    parser.add_argument("--scenes", default="cbox,heavy")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats; medians are reported")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--cycles-device", choices=("CPU",) + cycles_reference.GPU_DEVICE_TYPES, default="CPU",
                        help="Cycles device; CUDA/OPTIX render on the GPU(s) only and fail if there is none")
    parser.add_argument("--render-pod", default=None, metavar="BINARY",
                        help="use this render-pod binary instead of building one in target/render")
    args = parser.parse_args()
    gpu = args.cycles_device != "CPU"

    # Fail before the build when the requested GPU is missing.
    cycles_reference.use_device(bpy.context.scene, args.cycles_device)
    binary = os.path.abspath(args.render_pod) if args.render_pod else build_render_pod()
    work = tempfile.mkdtemp(prefix="tessera-bench-")
    if gpu:
        # Untimed, like Cycles' warm-up: the first run on a fresh node may compile the pipeline.
        run_ours(binary, CBOX, 8, 1, args.bounces, os.path.join(work, "ours_warmup"), require_gpu=True)
    scenes = {}
    for name in args.scenes.split(","):
        if name == "cbox":
            scenes[name] = (CBOX, 36)
        elif name == "heavy":
            scenes[name] = heavy_scene(work, args.grid)
    pixels = args.size * args.size
    n, n2 = args.spp, 2 * args.spp
    results = []
    for name, (path, triangles) in scenes.items():
        cycles_scene = cycles_reference.setup_scene(path, args.size, args.size, n, args.bounces, [0.0, 0.0, 0.0], seed=7)
        cycles_device = cycles_reference.use_device(cycles_scene, args.cycles_device)
        print(f"{name}: Cycles renders on {cycles_device}", flush=True)
        if gpu:
            # Untimed: loads (and on first use compiles) the GPU kernels for this scene.
            run_cycles_once(cycles_scene, 1, os.path.join(work, f"cycles_{name}_warmup.exr"))
        runs = {("ours", k): [] for k in (n, n2)}
        runs.update({("cycles", k): [] for k in (n, n2)})
        # Interleaved repeats, so load from other processes hits both renderers alike.
        for rep in range(args.repeat):
            for k in (n, n2):
                runs[("ours", k)].append(run_ours(binary, path, args.size, k, args.bounces,
                                                  os.path.join(work, f"ours_{name}_{k}_{rep}"), require_gpu=gpu))
                runs[("cycles", k)].append(run_cycles_once(cycles_scene, k, os.path.join(work, f"cycles_{name}_{k}.exr")))

        def med(who, k, key):
            return statistics.median(r[key] for r in runs[(who, k)])

        def marginal(who, key):
            # None when load from other processes made T(2N) <= T(N): no usable figure.
            delta = med(who, n2, key) - med(who, n, key)
            return pixels * n / delta if delta > 0 else None

        def ratio(key):
            ours, cycles = marginal("ours", key), marginal("cycles", key)
            return ours / cycles if ours and cycles else None

        ours_mean = np.mean([r["mean"] for r in runs[("ours", n2)]], axis=0)
        cyc_mean = np.mean([r["mean"] for r in runs[("cycles", n2)]], axis=0)
        rel = ((ours_mean - cyc_mean) / cyc_mean).tolist()
        results.append({
            "scene": name,
            "triangles": triangles,
            "resolution": args.size,
            "spp": [n, n2],
            "maxBounces": args.bounces,
            "repeats": args.repeat,
            "renderPod": {
                "adapter": runs[("ours", n2)][0]["adapter"],
                "deviceType": runs[("ours", n2)][0]["deviceType"],
                "wallSeconds": {str(n): med("ours", n, "wall"), str(n2): med("ours", n2, "wall")},
                "cpuSeconds": {str(n): med("ours", n, "cpu"), str(n2): med("ours", n2, "cpu")},
                "marginalSamplesPerSecond": marginal("ours", "wall"),
                "marginalSamplesPerCpuSecond": marginal("ours", "cpu"),
                "mean": ours_mean.tolist(),
            },
            "cycles": {
                "device": cycles_device,
                "wallSeconds": {str(n): med("cycles", n, "wall"), str(n2): med("cycles", n2, "wall")},
                "cpuSeconds": {str(n): med("cycles", n, "cpu"), str(n2): med("cycles", n2, "cpu")},
                "marginalSamplesPerSecond": marginal("cycles", "wall"),
                "marginalSamplesPerCpuSecond": marginal("cycles", "cpu"),
                "mean": cyc_mean.tolist(),
            },
            "ratioMarginal": ratio("wall"),
            "ratioMarginalCpu": ratio("cpu"),
            "meanRelativeDifference": rel,
        })
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    ours = results[0]["renderPod"]
    print(f"\nrender-pod on {ours['adapter']} [{ours['deviceType']}] vs Cycles {bpy.app.version_string} on "
          f"{results[0]['cycles']['device']}; {machine}; {args.size}², {n}/{n2} spp, {args.bounces} bounces")
    print("| scene | tris | render-pod samples/s (wall) | Cycles samples/s (wall) | ratio | render-pod samples/CPU-s "
          "| Cycles samples/CPU-s | ratio (CPU) | render-pod 2N wall s | Cycles 2N wall s | mean diff R/G/B |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rel = "/".join(f"{100 * v:+.2f}%" for v in r["meanRelativeDifference"])
        o, c = r["renderPod"], r["cycles"]
        def m(v):
            return "n/a" if v is None else f"{v / 1e6:.3f} M"

        def x(v):
            return "n/a" if v is None else f"{v:.2f}"
        print(f"| {r['scene']} | {r['triangles']} | {m(o['marginalSamplesPerSecond'])} "
              f"| {m(c['marginalSamplesPerSecond'])} | {x(r['ratioMarginal'])} "
              f"| {m(o['marginalSamplesPerCpuSecond'])} | {m(c['marginalSamplesPerCpuSecond'])} "
              f"| {x(r['ratioMarginalCpu'])} | {o['wallSeconds'][str(n2)]:.1f} | {c['wallSeconds'][str(n2)]:.1f} | {rel} |")
    print(f"load average at the end: {os.getloadavg()}")
    print(f"render-pod adapter: {ours['adapter']} (device type {ours['deviceType']})")
    print(f"Cycles device: {results[0]['cycles']['device']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "cycles": bpy.app.version_string, "cyclesDevice": args.cycles_device,
                       "loadAverage": os.getloadavg(), "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
