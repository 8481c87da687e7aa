#!/usr/bin/env python3
"""Buckets `perf script -F comm,tid,time,period,ip,sym,dso` samples (cpu-clock, DWARF call
graphs) of one render-pod run into the categories of docs/renderer.md "Profile (lavapipe)".

Usage: perf script -i X.data -F comm,tid,time,period,ip,sym,dso | classify.py [title]

The first matching rule wins; frames are matched anywhere in the (leaf-first) stack unless the
rule says "leaf". lavapipe is stripped (Debian ships its symbols separately), so lavapipe time
that is not under a render-pod frame is split by time: before the first JIT sample it is
counted as compilation (NIR → gallivm IR), after it as runtime (thread pool, dispatch, copies).
"""

import re
import sys
from collections import defaultdict

RULES = [
    # (category, predicate over the sample)
    ("shader execution (JIT code)", lambda s: s["leaf_dso"].startswith("/tmp/perf-") or "[JIT]" in s["leaf_dso"]),
    ("start-up: shader compile, LLVM (lazy, 1st dispatch)", lambda s: any("libLLVM" in d for _, d in s["frames"]) and not has(s, "GpuContext::new")),
    ("start-up: shader compile, LLVM (pipeline creation)", lambda s: any("libLLVM" in d for _, d in s["frames"])),
    ("start-up: instance (loader, ICD dlopen)", lambda s: has(s, "GpuContext::new") and has(s, "Instance::new|ash::entry")),
    ("start-up: adapter", lambda s: has(s, "GpuContext::new") and has(s, "request_adapter|enumerate_adapters")),
    ("start-up: device", lambda s: has(s, "GpuContext::new") and has(s, "request_device")),
    ("start-up: WGSL parse/validate (naga)", lambda s: has(s, "GpuContext::new") and has(s, "create_shader_module")),
    ("start-up: pipeline (naga→SPIR-V, lavapipe NIR)", lambda s: has(s, "GpuContext::new") and has(s, "create_compute_pipeline")),
    ("start-up: other GpuContext::new", lambda s: has(s, "GpuContext::new")),
    ("start-up: process (dynamic linking, main)", lambda s: has(s, r"_dl_start|dl_main|_dl_init|_dl_relocate|__libc_start")
        and not has(s, r"render_pod::")),
    ("render-pod: scene load (glTF + buffers)", lambda s: has(s, r"scene_source::load")),
    ("render-pod: BVH build + packing", lambda s: has(s, r"layout::pack|render_pod::bvh::")),
    ("render-pod: scene upload", lambda s: has(s, r"GpuScene::upload")),
    ("render-pod: scene instancing (scene_at)", lambda s: has(s, r"scene_at|render_pod::gltf_scene")),
    ("render-pod: EXR/PNG encode", lambda s: has(s, r"image_io::|png::|exr::")),
    ("render-pod: hashing (SHA-256)", lambda s: has(s, r"sha2::|sha256")),
    ("render-pod: storage (object_store, files)", lambda s: has(s, r"render_pod::storage::|object_store::")),
    ("render-pod: merge (read, verify, stitch)", lambda s: has(s, r"commands::merge::")),
    ("lavapipe overhead: submit/wait/readback (main thread)", lambda s: has(s, r"gpu::tile::render")),
    ("render-pod: other (CLI, logging, planning)", lambda s: has(s, r"render_pod::")),
]


def has(sample, pattern):
    rx = re.compile(pattern)
    return any(rx.search(sym) for sym, _ in sample["frames"])


def parse(stream):
    sample = None
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if sample:
                yield sample
            sample = None
            continue
        if not line.startswith("\t") and not line.startswith(" "):
            m = re.match(r"(\S.*?)\s+(\d+)\s+([\d.]+):\s+(\d+)\s", line + " ")
            if not m:
                continue
            sample = {"tid": int(m.group(2)), "time": float(m.group(3)), "period": int(m.group(4)), "frames": []}
            continue
        if sample is None:
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*)\s+\((.*)\)$", line)
        if m:
            sample["frames"].append((m.group(1), m.group(2)))
    if sample:
        yield sample


def main():
    title = sys.argv[1] if len(sys.argv) > 1 else ""
    samples = list(parse(sys.stdin))
    for s in samples:
        real = [d for _, d in s["frames"] if d != "inlined"]
        s["leaf_dso"] = real[0] if real else "[unknown]"
    jit_times = [s["time"] for s in samples if RULES[0][1](s)]
    first_jit = min(jit_times) if jit_times else float("inf")
    last_jit = max(jit_times) if jit_times else float("-inf")
    t0 = min(s["time"] for s in samples)
    t1 = max(s["time"] for s in samples)
    buckets = defaultdict(int)
    for s in samples:
        cat = None
        for name, pred in RULES:
            if pred(s):
                cat = name
                break
        if cat is None:
            dso = s["leaf_dso"].rsplit("/", 1)[-1]
            if s["time"] < first_jit:
                cat = f"start-up: lavapipe/driver, before 1st shader instruction ({short(dso)})"
            elif s["time"] > last_jit:
                cat = f"teardown after the last shader instruction ({short(dso)})"
            else:
                cat = f"lavapipe overhead: worker/queue threads ({short(dso)})"
        buckets[cat] += s["period"]
    total = sum(buckets.values())
    print(f"# {title}")
    print(f"# {len(samples)} samples, {total / 1e9:.3f} s CPU sampled; span {t1 - t0:.3f} s; "
          f"first JIT sample at +{first_jit - t0:.3f} s, last at +{last_jit - t0:.3f} s")
    print(f"{'category':<66} {'CPU s':>8} {'share':>7}")
    for cat, period in sorted(buckets.items(), key=lambda kv: -kv[1]):
        print(f"{cat:<66} {period / 1e9:8.3f} {100 * period / total:6.2f}%")


def short(dso):
    if dso.startswith("libvulkan_lvp"):
        return "lavapipe"
    if dso.startswith("[kernel"):
        return "kernel"
    if dso.startswith("libc") or dso.startswith("ld-linux"):
        return "libc/ld.so"
    return dso


if __name__ == "__main__":
    main()
