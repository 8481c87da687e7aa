#!/usr/bin/env bash
# GPU benchmark of render-pod (release build) on the machine it runs on; see bench/render/README.md,
# "GPU benchmark run". Needs the bundle from bench/render/gpu-bundle.sh (.gpu-bundle/, .gl/) and
# python3 (standard library only; Pillow + numpy, when present, add an image-mean sanity check).
# Run from the repository root:
#   bash bench/render/gpu-run.sh
# Writes $OUT/gpu-results.json (also printed) and $OUT/gpu-run.log; OUT defaults to /tmp/gpu-run-out.
# Then the traversal benchmark's GPU casts: $OUT/gpu-traversal.json (rays/s per ray set and
# tree, bench/render/traversal/README.md), $OUT/traversal.json (its CPU figures).
#
# Per scene (cbox, heavy) and setting SIZE:N it renders N and 2N spp at SIZE×SIZE, 4 bounces,
# seed 7, `render-pod local`, REPEAT interleaved repeats, and reports
#   - reportedSamplesPerSecond: render-pod's own figure (pixel samples / its GPU render seconds,
#     which exclude scene load, BVH build, upload and image writing), median of the 2N runs,
#   - marginalSamplesPerSecondWall / ...Render: SIZE² × N / (T(2N) − T(N)) of the medians, by wall
#     clock of the whole process / by render seconds (fixed costs cancel; compare_cycles.py's rule).
# Env:
#   GPU_RUN_SETTINGS  comma list of SIZE:N (default 256:16,256:128,1024:128)
#   GPU_RUN_SCENES    default cbox,heavy
#   GPU_RUN_INTEGRATORS  TESSERA_INTEGRATOR values, each run side by side (default wavefront,megakernel)
#   GPU_RUN_REPEAT    default 3
#   GPU_RUN_BUDGET_S  no render starts that would (by its last run) end past this many seconds of
#                     the measuring loop (default 240)
#   GPU_RUN_TIMEOUT_S per-render timeout (default 120); worst case ~ BUDGET + TIMEOUT + start-up
#   GPU_RUN_QUICK=1   tiny settings (32:2, 1 repeat) and a software adapter allowed: a smoke test
#   GPU_RUN_ALLOW_SOFTWARE=1  do not set TESSERA_REQUIRE_HARDWARE_GPU=1 (needed on lavapipe)
#   GPU_RUN_TRAVERSAL_TIMEOUT_S  limit of the traversal run (default 300)
#   GPU_BUNDLE        bundle folder (default .gpu-bundle)
set -uo pipefail
OUT=${OUT:-/tmp/gpu-run-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-run.log") 2>&1
tee_pid=$!
export GPU_RUN_BUNDLE=${GPU_BUNDLE:-.gpu-bundle}
export OUT

echo "== gpu-run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(cat /proc/sys/kernel/hostname 2>/dev/null), $(uname -srm)"
( . /etc/os-release 2>/dev/null && echo "os: $PRETTY_NAME" ); echo "glibc: $(ldd --version 2>&1 | head -1)"
echo "cpus: $(nproc)  python3: $(command -v python3) $(python3 --version 2>&1)"

# The Vulkan loader: the device README's recipe when the image has none.
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  if ls .gl/*.deb >/dev/null 2>&1; then
    echo "== no libvulkan.so.1: unpacking .gl/*.deb into /"
    for f in .gl/*.deb; do dpkg -x "$f" / || echo "dpkg -x $f failed"; done
    ldconfig
  else
    echo "== no libvulkan.so.1 and no .gl/*.deb (run bench/render/gpu-bundle.sh where there is a network)"
  fi
fi
echo "== loader: $(ldconfig -p | grep 'libvulkan\.so' | tr -s ' \t' ' ' | paste -sd';' -)"
for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d; do
  [ -d "$d" ] && echo "   ICDs in $d: $(ls "$d" | paste -sd' ' -)"
done
if command -v nvidia-smi >/dev/null; then
  echo "== nvidia-smi"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,pstate --format=csv 2>&1
  nvidia-smi -L 2>&1
else
  echo "== nvidia-smi: not found"
fi

BIN=$GPU_RUN_BUNDLE/render-pod
if [ ! -x "$BIN" ]; then
  echo "ERROR: no $BIN (run bench/render/gpu-bundle.sh here first and carry .gpu-bundle)"
  exit 1
fi
[ -f "$GPU_RUN_BUNDLE/BUILD-INFO.txt" ] && sed 's/^/   bundle /' "$GPU_RUN_BUNDLE/BUILD-INFO.txt"
if ! ver=$("$BIN" --version 2>&1); then
  echo "ERROR: the bundled render-pod does not start here (glibc or library mismatch?):"
  echo "$ver"
  echo "   this machine: $(ldd --version 2>&1 | head -1); the binary needs: $(grep 'glibc needed' "$GPU_RUN_BUNDLE/BUILD-INFO.txt" 2>/dev/null)"
  exit 3
fi
echo "== $ver"

PYTHONUNBUFFERED=1 python3 - <<'EOF'
import datetime, hashlib, json, os, platform, re, shutil, statistics, subprocess, sys, tempfile, time

quick = os.environ.get("GPU_RUN_QUICK") == "1"
bundle = os.environ["GPU_RUN_BUNDLE"]
out_dir = os.environ["OUT"]
binary = os.path.abspath(os.path.join(bundle, "render-pod"))
scenes_dir = os.path.abspath(os.path.join(bundle, "scenes"))
settings_env = os.environ.get("GPU_RUN_SETTINGS") or ("32:2" if quick else "256:16,256:128,1024:128")
settings = [tuple(int(v) for v in s.split(":")) for s in settings_env.split(",") if s]
scene_names = (os.environ.get("GPU_RUN_SCENES") or "cbox,heavy").split(",")
integrators = (os.environ.get("GPU_RUN_INTEGRATORS") or "wavefront,megakernel").split(",")
repeat = int(os.environ.get("GPU_RUN_REPEAT") or (1 if quick else 3))
budget = float(os.environ.get("GPU_RUN_BUDGET_S") or 240)
timeout = float(os.environ.get("GPU_RUN_TIMEOUT_S") or 120)
allow_software = quick or os.environ.get("GPU_RUN_ALLOW_SOFTWARE") == "1"
BOUNCES, SEED = 4, 7
work = tempfile.mkdtemp(prefix="gpu-run-")
started = time.perf_counter()
errors = []
try:
    scene_info = json.load(open(os.path.join(scenes_dir, "scenes.json")))
except OSError:
    scene_info = {}

env = dict(os.environ, RUST_LOG="warn,render_pod::gpu=info")
env.pop("RENDER_POD_LOG_FORMAT", None)
if not allow_software:
    env["TESSERA_REQUIRE_HARDWARE_GPU"] = "1"  # exit 5 instead of running on a software adapter

SUMMARY = re.compile(r"([\d.]+) s total, ([\d.]+) s rendering, ([\d.]+) Msamples/s on (.*) -> ")
ADAPTER = re.compile(r"GPU adapter adapter=(.*) backend=(\S+) device_type=(\S+) driver=(.*) driver_info=(.*)$")


def render(scene, size, spp, tag, integrator=None, extra_env=None):
    """One `render-pod local` process; returns a dict (or raises on failure/timeout)."""
    out = os.path.join(work, tag)
    run_env = dict(env, TESSERA_INTEGRATOR=integrator) if integrator else dict(env)
    run_env.update(extra_env or {})
    shutil.rmtree(out, ignore_errors=True)
    cmd = [binary, "local", "--scene", os.path.join(scenes_dir, scene + ".gltf"), "--width", str(size),
           "--height", str(size), "--spp", str(spp), "--max-bounces", str(BOUNCES), "--seed", str(SEED), "--out", out]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=timeout, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"render-pod exit {proc.returncode} ({scene} {size}² {spp} spp):\n{proc.stderr[-3000:]}")
    m = SUMMARY.search(proc.stdout)
    if not m:
        raise RuntimeError(f"no summary line in render-pod's output:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    a = None
    for line in proc.stderr.splitlines():
        am = ADAPTER.search(re.sub(r"\x1b\[[0-9;]*m", "", line).strip())
        if am:
            a = dict(zip(("name", "backend", "deviceType", "driver", "driverInfo"), (g.strip() for g in am.groups())))
    msps = float(m.group(3))
    # The summary prints render seconds to 0.01 s and Msamples/s to 3 decimals: on a fast GPU the
    # render seconds are better recovered from the rate (samples / rate) than read.
    printed = float(m.group(2))
    precise_rate = msps > 0 and 0.0005 / msps < 0.005 / max(printed, 1e-9)  # relative rounding errors
    render_s = size * size * spp / (msps * 1e6) if precise_rate else printed
    return {"wall": wall, "total": float(m.group(1)), "render": render_s, "renderPrinted": printed,
            "msps": msps, "label": m.group(4), "adapter": a, "out": out}


def image_mean(out):
    """Mean of the 8-bit PNG (R, G, B, 0-255) when Pillow and numpy are there; else None."""
    try:
        import numpy as np
        from PIL import Image
        img = np.asarray(Image.open(os.path.join(out, "frame_0001.png")).convert("RGB"), dtype=np.float64)
        return [round(v, 3) for v in img.reshape(-1, 3).mean(axis=0).tolist()]
    except Exception:
        return None


def smi(query):
    if not shutil.which("nvidia-smi"):
        return None
    p = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()


# Adapter probe (untimed; also fills the driver's shader cache). If no hardware adapter shows
# up, retry with the device README's VK_DRIVER_FILES fallback.
FALLBACK_ICD = "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
fallback_used = False
probe = None
for attempt in range(2):
    try:
        probe = render("cbox", 8, 1, "probe")
        break
    except Exception as e:  # noqa: BLE001
        print(f"adapter probe failed: {e}", flush=True)
        errors.append(f"probe: {e}"[:2000])
        if attempt == 0 and "VK_DRIVER_FILES" not in env and os.path.exists(FALLBACK_ICD):
            print(f"retrying with VK_DRIVER_FILES={FALLBACK_ICD}", flush=True)
            env["VK_DRIVER_FILES"] = FALLBACK_ICD
            env["__EGL_VENDOR_LIBRARY_FILENAMES"] = "/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json"
            fallback_used = True
        else:
            break

result = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "host": {"hostname": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
             "glibc": " ".join(platform.libc_ver())},
    "nvidiaSmi": smi("name,driver_version,memory.total,clocks.max.sm"),
    "bundle": open(os.path.join(bundle, "BUILD-INFO.txt")).read().strip().splitlines()
    if os.path.exists(os.path.join(bundle, "BUILD-INFO.txt")) else None,
    "adapter": probe["adapter"] if probe else None,
    "adapterLabel": probe["label"] if probe else None,
    "vkDriverFilesFallback": fallback_used,
    "requireHardwareGpu": not allow_software,
    "quick": quick,
    "integrators": integrators, "maxBounces": BOUNCES, "seed": SEED, "repeats": repeat, "budgetSeconds": budget, "perRenderTimeoutSeconds": timeout,
    "loadAverageStart": os.getloadavg(),
    "results": [], "errors": errors,
}
if probe:
    print(f"== render-pod adapter: {probe['label']}  ({probe['adapter']})", flush=True)
    # One untimed small run per scene: scene files into the page cache, pipeline cached.
    for name, integ in ((n, i) for n in scene_names for i in integrators):
        try:
            w = render(name, 16, 1, f"warm_{name}", integ)
            print(f"warm-up {name}: {w['wall']:.2f} s wall, {w['total']:.2f} s total", flush=True)
        except Exception as e:  # noqa: BLE001
            errors.append(f"warm-up {name}: {e}"[:2000])
            print(f"warm-up {name} failed: {e}", flush=True)

    runs = {}  # (integrator, scene, size, n, spp) -> [run]
    last = {}  # same key -> last wall seconds, to skip what would not fit the budget
    dead = set()  # (scene, size, n) that failed or timed out
    truncated = False
    loop_start = time.perf_counter()
    for rep in range(repeat):
        for name in scene_names:
            for (size, n), integ in ((s, i) for s in settings for i in integrators):
                for spp in (n, 2 * n):
                    key = (integ, name, size, n, spp)
                    if (integ, name, size, n) in dead:
                        continue
                    elapsed = time.perf_counter() - loop_start
                    if elapsed + last.get(key, 0.0) > budget:
                        truncated = True
                        continue
                    try:
                        r = render(name, size, spp, f"{name}_{size}_{spp}", integ)
                    except subprocess.TimeoutExpired:
                        dead.add((integ, name, size, n))
                        errors.append(f"{name} {size}² {spp} spp: timed out after {timeout} s")
                        print(errors[-1], flush=True)
                        continue
                    except Exception as e:  # noqa: BLE001
                        dead.add((integ, name, size, n))
                        errors.append(str(e)[:2000])
                        print(errors[-1], flush=True)
                        continue
                    r["imageMean"] = image_mean(r["out"]) if spp == 2 * n else None
                    shutil.rmtree(r.pop("out"), ignore_errors=True)
                    r.pop("adapter"); r.pop("label")
                    last[key] = r["wall"]
                    runs.setdefault(key, []).append(r)
                    print(f"rep {rep + 1} {integ:10s} {name:5s} {size:4d}² {spp:4d} spp: {r['wall']:7.2f} s wall, "
                          f"{r['render']:7.3f} s rendering, {r['msps']:9.3f} Msamples/s (render-pod)", flush=True)
    result["truncated"] = truncated
    result["measureSeconds"] = round(time.perf_counter() - loop_start, 2)

    def med(rs, k):
        return statistics.median(r[k] for r in rs) if rs else None

    for integ, name, (size, n) in ((i, s, t) for s in scene_names for t in settings for i in integrators):
        a, b = runs.get((integ, name, size, n, n), []), runs.get((integ, name, size, n, 2 * n), [])
        pixels = size * size
        entry = {"integrator": integ, "scene": name, "triangles": scene_info.get(name, {}).get("triangles"), "size": size,
                 "spp": [n, 2 * n], "repeatsDone": [len(a), len(b)],
                 "medianWallSeconds": {str(n): med(a, "wall"), str(2 * n): med(b, "wall")},
                 "medianRenderSeconds": {str(n): med(a, "render"), str(2 * n): med(b, "render")},
                 "reportedSamplesPerSecond": {str(n): med(a, "msps") and med(a, "msps") * 1e6,
                                              str(2 * n): med(b, "msps") and med(b, "msps") * 1e6},
                 "marginalSamplesPerSecondWall": None, "marginalSamplesPerSecondRender": None,
                 "imageMean2N": next((r["imageMean"] for r in b if r["imageMean"]), None),
                 "runs": {str(n): a, str(2 * n): b}}
        if a and b:
            for key, field in (("wall", "marginalSamplesPerSecondWall"), ("render", "marginalSamplesPerSecondRender")):
                d = med(b, key) - med(a, key)
                entry[field] = pixels * n / d if d > 0 else None
        result["results"].append(entry)
    # Shader settings of hardware adapters against the alternatives, same images expected byte
    # for byte: trusted modules (default) vs runtime checks on; storage-buffer parameters
    # (default) vs immediates (opt-in until this shows them right).
    settings_runs = []
    s_size, s_spp = (32, 2) if quick else (512, 32)
    for label, extra in (("default", {}), ("checks on", {"TESSERA_SHADER_CHECKS": "on"}),
                         ("immediates", {"TESSERA_PARAMS": "immediate"})):
        for name in scene_names:
            try:
                r = render(name, s_size, s_spp, f"settings_{name}", None, extra)
                digest = hashlib.sha256(open(os.path.join(r["out"], "frame_0001.exr"), "rb").read()).hexdigest()
                shutil.rmtree(r["out"], ignore_errors=True)
                settings_runs.append({"setting": label, "env": extra, "scene": name, "msps": r["msps"],
                                      "render": r["render"], "exrSha256": digest})
            except Exception as e:  # noqa: BLE001
                settings_runs.append({"setting": label, "env": extra, "scene": name, "error": str(e)[:2000]})
            print(f"setting {label:10s} {name:5s} {s_size}² {s_spp} spp: {settings_runs[-1]}", flush=True)
    for r in settings_runs:
        base = next((d for d in settings_runs if d["setting"] == "default" and d["scene"] == r["scene"]), {})
        r["sameImageAsDefault"] = r.get("exrSha256") is not None and r.get("exrSha256") == base.get("exrSha256")
    result["shaderSettings"] = settings_runs
    result["nvidiaSmiAfter"] = smi("clocks.sm,clocks.mem,temperature.gpu,power.draw,pstate")

result["loadAverageEnd"] = os.getloadavg()
result["wallSeconds"] = round(time.perf_counter() - started, 2)
shutil.rmtree(work, ignore_errors=True)
text = json.dumps(result, indent=2)
with open(os.path.join(out_dir, "gpu-results.json"), "w") as f:
    f.write(text + "\n")
print("== gpu-results.json")
print(text)


def fmt(v, scale=1e6):
    return "n/a" if v is None else f"{v / scale:.3f}"


print(f"\n== summary: {result['adapterLabel']}; {BOUNCES} bounces; Msamples/s")
print("| integrator | scene | size | spp N/2N | render-pod (2N) | marginal (render s) | marginal (wall) | 2N wall s | repeats |")
print("|---|---|---|---|---|---|---|---|---|")
for e in result["results"]:
    n, n2 = (str(v) for v in e["spp"])
    w = e["medianWallSeconds"][n2]
    print(f"| {e['integrator']} | {e['scene']} | {e['size']}² | {n}/{n2} | {fmt(e['reportedSamplesPerSecond'][n2])} "
          f"| {fmt(e['marginalSamplesPerSecondRender'])} | {fmt(e['marginalSamplesPerSecondWall'])} "
          f"| {'n/a' if w is None else f'{w:.2f}'} | {e['repeatsDone'][0]}/{e['repeatsDone'][1]} |")
sys.exit(0 if probe and result["results"] else 4)
EOF
rc=$?

# Traversal alone (bench/render/traversal): every BVH builder × layout on the ray sets of cbox,
# heavy and the boxes, cast on the GPU by the render pod's own traversal code; rays/s per set,
# hits checked against the CPU traversal. Its CPU part (trees, rays) takes most of the time.
TRAVERSAL=$GPU_RUN_BUNDLE/traversal
if [ -x "$TRAVERSAL" ]; then
  echo "== traversal (rays/s per ray set on the GPU)"
  if [ "${GPU_RUN_QUICK:-}" = 1 ]; then t_args=(--boxes 2000 --rays 4096); else t_args=(--rays 262144); fi
  [ "${GPU_RUN_QUICK:-}" = 1 ] || [ "${GPU_RUN_ALLOW_SOFTWARE:-}" = 1 ] || export TESSERA_REQUIRE_HARDWARE_GPU=1
  if timeout "${GPU_RUN_TRAVERSAL_TIMEOUT_S:-300}" "$TRAVERSAL" \
      --scene "cbox=$GPU_RUN_BUNDLE/scenes/cbox.gltf" --scene "heavy=$GPU_RUN_BUNDLE/scenes/heavy.gltf" \
      "${t_args[@]}" --gpu "$OUT/gpu-traversal.json" >"$OUT/traversal.json" 2>"$OUT/traversal.log"; then
    python3 - "$OUT/gpu-traversal.json" <<'PYEOF'
import json, sys
doc = json.load(open(sys.argv[1]))
print(f"adapter: {doc['adapter']}; {doc['rays_per_set']} rays a set; G rays/s (agreement with the CPU)")
rows = {}
for c in doc["casts"]:
    rows.setdefault((c["scene"], c["tree"]), {})[c["set"]] = c["figures"]
sets = ["camera", "diffuse", "shadow", "later", "random"]
print("| scene | tree | " + " | ".join(sets) + " |")
print("|---|---|" + "---:|" * len(sets))
for (scene, tree), f in rows.items():
    cells = [f"{f[s]['rays_per_second'] / 1e9:.3f} ({f[s]['agree_with_cpu']:.4f})" if s in f else "" for s in sets]
    print(f"| {scene} | {tree} | " + " | ".join(cells) + " |")
PYEOF
  else
    echo "traversal failed (rc $?); its log:"; tail -20 "$OUT/traversal.log"
    [ $rc -eq 0 ] && rc=5
  fi
else
  echo "== no $TRAVERSAL in the bundle: traversal skipped"
fi
echo "== gpu-run.sh done (rc $rc)"
# Close our end of the pipe and wait for tee to write the rest of the log.
exec >&- 2>&-
wait "$tee_pid"
exit $rc
