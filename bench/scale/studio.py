#!/usr/bin/env python3
"""Studio-scale bench: RenderJobs against Indexed Jobs on KWOK's fake GPU nodes.

Started by bench/scale/studio.sh; see bench/scale/README.md ("Studio scale"). Python 3.11,
standard library only; the plumbing (API client, watches, processes, audit log) is bench.py's.

One control plane (e2e/testcluster, audit log on), KWOK (e2e/kwok) keeping N fake GPU nodes
Ready and moving pods through their phases (run time uniform in [--run-ms, --run-max-ms), a
--fail-percent chance of exit 1), the real kube-scheduler placing every pod, one
tessera-operator. The Job controller runs in a kube-controller-manager of its own, started for
each Indexed Job case at upstream defaults (client QPS 20, burst 30) or with its QPS raised, so
both settings are measured in one run on one control plane; the supervised controller-manager
runs every other controller (QPS 200: 1,000 nodes lose their not-ready taint in seconds).

Cases, one after the other (--cases picks some):
  rj-one       one RenderJob of --shards shards (frames x 2x2 tiles when --shards divides by 4;
               its frames merged as they finish, up to 32 merge pods at once)
  ij-one-*     the same work as one Indexed Job (--shards completions, parallelism = slots)
  rj-many      --jobs RenderJobs of --job-shards shards from --namespaces namespaces at once,
               priorities 0, 10, 20, ... by the job's place in its namespace
  ij-many-*    the same as Indexed Jobs, each pod with a PriorityClass of the same value
  (* = default: kube-controller-manager's defaults; raised: --raised-qps/--raised-burst)
An Indexed Job case at defaults that is not complete after --ij-default-window seconds is
stopped there and its makespan projected from its completions per second (reported as such).
"""

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402
from bench import ApiError, BenchError, Watch, log, wait_until  # noqa: E402

GPU_LABEL = ("tessera.dev/node-group", "kwok-gpu")
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
KWOK_NODE_ANNOTATIONS = {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}
POOL = "studio"
CASES = ("rj-one", "ij-one-default", "ij-one-raised", "rj-many", "ij-many-default", "ij-many-raised")
COMPONENTS = (("tessera-operator", "tessera-operator"), ("job-kcm", "kcm (Job controller only)"),
              ("controller-manager", "kcm (all other controllers)"), ("apiserver", "kube-apiserver"),
              ("etcd", "etcd"), ("scheduler", "kube-scheduler"), ("kwok", "kwok"))


class Studio(b.Bench):
    # -- environment ---------------------------------------------------------------------------

    def up(self):
        a = self.args
        # A saturated API server delays KWOK's lease renewals (every 40 s) past the node monitor's
        # 50-s grace: nodes flapped NotReady and the node controller tainted them and marked their
        # pods, which halved every case's pace in one 1,000-node run. Node health is not measured.
        self.start_cluster(["--controllers=*,-job-controller", "--kube-api-qps=200", "--kube-api-burst=300",
                            "--node-monitor-grace-period=5m"])
        self.apply_crds()
        kubeconfigs = self.identities(("tessera-operator", "kwok"))
        self.base_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        self.start_kwok(kubeconfigs["kwok"])
        self.create_nodes()
        operator = self.start_operator(kubeconfigs["tessera-operator"], self.base_env)
        self.wait_operator_leads(operator, 90)
        self.slots = a.nodes * a.gpus_per_node
        self.api.apply(f"/apis/tessera.dev/v1alpha1/renderpools/{POOL}", {
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": POOL},
            "spec": {"nodeSelector": dict([GPU_LABEL]), "tolerations": [KWOK_TAINT],
                     "gpu": {"resourceName": "nvidia.com/gpu", "count": 1},
                     "shardResources": {"cpu": "2", "memory": "8Gi"},
                     "image": "ghcr.io/tessera-dev/render-pod:studio", "maxConcurrentShards": self.slots,
                     "ledgerFinalizer": a.ledger_finalizer == "true",
                     "storage": {"url": f"file://{self.work}/data", "sharedReadPrefixes": ["file:///scenes"]}}})

        def pool_ready():
            status = self.api.get(f"/apis/tessera.dev/v1alpha1/renderpools/{POOL}").get("status") or {}
            return status.get("shardCapacity") == self.slots
        wait_until(f"RenderPool {POOL} to report {self.slots} slots", 180, pool_ready, alive=operator)
        for value in sorted({p for _, _, p in self.many_jobs()}):
            self.api.create("/apis/scheduling.k8s.io/v1/priorityclasses", {
                "metadata": {"name": f"studio-p{value}"}, "value": 1000 + value})
        self.readyz_ok = self.operator_ready()
        log(f"environment up: {a.nodes} KWOK GPU nodes x {a.gpus_per_node} GPUs = {self.slots} slots, "
            f"pids {self.pids}")

    def start_kwok(self, kubeconfig):
        a = self.args
        stages = os.path.join(self.work, "pod-stages.yaml")
        with open(os.path.join(a.repo, "e2e/kwok/pod-stages.yaml")) as f:
            text = f.read()
        # The stages' defaults (run time 1-3 s, 1 % failing) become this run's.
        # (pod-succeed and pod-fail each hold the run time and the fail-percent default.)
        for old, new, count in (
                ("durationMilliseconds: 1000\n", f"durationMilliseconds: {a.run_ms}\n", 2),
                ("jitterDurationMilliseconds: 3000\n", f"jitterDurationMilliseconds: {a.run_max_ms}\n", 2),
                ('"kwok.tessera.dev/fail-percent"] // "1"', f'"kwok.tessera.dev/fail-percent"] // "{a.fail_percent:g}"', 2),
                ("weight: 9900\n", f"weight: {10000 - round(a.fail_percent * 100)}\n", 1),
                ("weight: 100\n", f"weight: {round(a.fail_percent * 100)}\n", 1)):
            if text.count(old) != count:
                raise BenchError(f"e2e/kwok/pod-stages.yaml: expected {count} of {old.strip()!r}, "
                                 f"found {text.count(old)}")
            text = text.replace(old, new)
        with open(stages, "w") as f:
            f.write(text)
        home = os.path.join(self.work, "kwok-home")
        os.makedirs(home, exist_ok=True)
        self.kwok_port = b.free_port()
        kwok = self.procs.start("kwok", [
            a.kwok, f"--kubeconfig={kubeconfig}",
            f"--config={os.path.join(a.repo, 'e2e/kwok/kwok.yaml')}",
            f"--config={os.path.join(a.repo, 'e2e/kwok/node-stages.yaml')}", f"--config={stages}",
            f"--server-address=127.0.0.1:{self.kwok_port}", "--v=WARN"],
            os.path.join(self.work, "kwok.log"), env={**self.base_env, "HOME": home})
        self.pids["kwok"] = kwok.pid
        self.kwok = kwok

        wait_until("kwok /healthz", 60, lambda: b.answers_200(
            lambda: http.client.HTTPConnection("127.0.0.1", self.kwok_port, timeout=2)), alive=kwok)

    def node(self, name, index, labels, capacity, taints):
        ip = f"10.{48 + index // 65536}.{index // 256 % 256}.{index % 256 or 1}"
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": KWOK_NODE_ANNOTATIONS,
                             "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
                                        "kubernetes.io/hostname": name, "type": "kwok", **labels}},
                "spec": {"taints": taints},
                "status": {"allocatable": capacity, "capacity": capacity,
                           "addresses": [{"type": "InternalIP", "address": ip},
                                         {"type": "Hostname", "address": name}]}}

    def create_nodes(self):
        """N GPU nodes (tainted: only pods tolerating KWOK's taint land there) and CPU nodes for
        the merge pods, created 8 at a time; then waits until every one is Ready and untainted."""
        a = self.args
        gpu = {"cpu": str(8 * a.gpus_per_node), "memory": f"{64 * a.gpus_per_node}Gi", "pods": "110",
               "nvidia.com/gpu": str(a.gpus_per_node), "ephemeral-storage": "1Ti"}
        cpu = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}
        nodes = [self.node(f"kwok-gpu-{i:04d}", i + 1, dict([GPU_LABEL]), gpu, [{"key": "kwok.x-k8s.io/node",
                 "value": "fake", "effect": "NoSchedule"}]) for i in range(a.nodes)]
        nodes += [self.node(f"kwok-cpu-{i}", a.nodes + i + 1, {}, cpu, []) for i in range(a.cpu_nodes)]
        t0 = time.monotonic()
        queue, errors = list(nodes), []
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if not queue or errors:
                        return
                    node = queue.pop()
                try:
                    self.api.create("/api/v1/nodes", node)
                except Exception as error:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(error)
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise BenchError(f"creating nodes: {errors[0]}")

        def all_schedulable():
            items = self.api.get("/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
            ok = [n for n in items
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                  and not any(t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints") or [])]
            return len(ok) == len(nodes)
        wait_until(f"{len(nodes)} KWOK nodes Ready and untainted", 300, all_schedulable, alive=self.kwok)
        log(f"{len(nodes)} KWOK nodes Ready and schedulable {time.monotonic() - t0:.1f} s after the first create")

    def start_job_controller(self, raised):
        """A kube-controller-manager running only the Job controller, with the supervised one's flags."""
        a = self.args
        with open(os.path.join(self.work, "cluster", "logs", "controller-manager.args")) as f:
            argv = f.read().split("\n")
        argv = [x for x in argv if x and not x.startswith(("--controllers=", "--secure-port=", "--kube-api-"))]
        port = b.free_port()
        argv += ["--controllers=job-controller", f"--secure-port={port}"]
        if raised:
            argv += [f"--kube-api-qps={a.raised_qps}", f"--kube-api-burst={a.raised_burst}"]
        name = "job-kcm"
        proc = self.procs.start(name, argv, os.path.join(self.work, f"job-kcm-{'raised' if raised else 'default'}.log"))
        self.pids[name] = proc.pid
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # liveness only

        wait_until("the Job controller's kube-controller-manager /healthz", 60, lambda: b.answers_200(
            lambda: http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=insecure)), alive=proc)
        return proc

    def stop_job_controller(self, proc):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        self.procs.children = [(n, p) for n, p in self.procs.children if p is not proc]
        self.pids.pop("job-kcm", None)

    # -- the work ------------------------------------------------------------------------------

    def many_jobs(self):
        """(namespace, name, priority) of the many-jobs cases."""
        a = self.args
        per_ns = -(-a.jobs // a.namespaces)
        return [(f"studio-team-{i % a.namespaces}", f"job-{i:02d}", 10 * (i // a.namespaces))
                for i in range(a.jobs)][:per_ns * a.namespaces]

    def render_job(self, ns, name, shards, priority):
        frames, tiles = (shards // 4, 2) if shards % 4 == 0 else (shards, 1)
        return {"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"pool": POOL, "scene": {"url": "file:///scenes/cbox.gltf"}, "frames": f"1-{frames}",
                         "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 1, "priority": priority,
                         "sharding": {"framesPerShard": 1, "tiles": {"columns": tiles, "rows": tiles},
                                      "sampleSplits": 1},
                         # 1 % of attempts fail: five attempts make a shard failing for good ~1e-10.
                         "retry": {"attemptsPerShard": 5, "backoffSeconds": 0, "maxBackoffSeconds": 0},
                         # Frames are merged as they finish; at the default of 2 merge pods at
                         # once the merges of a thousand-node farm's frames fall behind.
                         "merge": {"maxConcurrent": 32}}}

    def indexed_job(self, ns, name, shards, priority):
        resources = {"nvidia.com/gpu": "1", "cpu": "2", "memory": "8Gi"}
        spec = {"restartPolicy": "Never", "nodeSelector": dict([GPU_LABEL]), "tolerations": [KWOK_TAINT],
                "automountServiceAccountToken": False, "enableServiceLinks": False,
                "containers": [{"name": "work", "image": "studio.local/true:1",
                                "resources": {"limits": resources, "requests": resources}}]}
        if priority is not None:
            spec["priorityClassName"] = f"studio-p{priority}"
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
                "spec": {"completionMode": "Indexed", "completions": shards, "parallelism": min(shards, self.slots),
                         "backoffLimitPerIndex": 4, "template": {"spec": spec}}}

    def run_case(self, case):
        a = self.args
        is_rj = case.startswith("rj")
        many = "many" in case
        if many:
            jobs = [(ns, name, a.job_shards, prio) for ns, name, prio in self.many_jobs()]
        else:
            jobs = [("studio-one", "one", a.shards, None)]
        if is_rj and not many:
            jobs = [("studio-one", "one", a.shards, 0)]
        namespaces = sorted({j[0] for j in jobs})
        for ns in namespaces:
            try:
                self.api.create("/api/v1/namespaces", {"metadata": {"name": ns}})
            except ApiError as error:
                if error.status != 409:
                    raise
            self.wait_default_sa(ns)
        total = sum(j[2] for j in jobs)
        want = {(ns, name) for ns, name, _, _ in jobs}
        job_kcm = None
        if not is_rj:
            job_kcm = self.start_job_controller(raised=case.endswith("raised"))

        lock = threading.Lock()
        st = {"seen": {}, "succeeded": set(), "failed": set(), "running": set(), "merge": 0,
              "ns_seen": {ns: 0 for ns in namespaces}, "ns_done": {ns: 0 for ns in namespaces},
              "active": {ns: set() for ns in namespaces}, "complete": {}, "failed_jobs": {}}
        ns_total = {ns: sum(j[2] for j in jobs if j[0] == ns) for ns in namespaces}
        finished = threading.Event()

        def on_pod(typ, pod, t):
            meta = pod["metadata"]
            ns = meta["namespace"]
            if ns not in st["ns_seen"]:
                return
            role = meta.get("labels", {}).get("tessera.dev/role")
            if is_rj and role != "shard":
                if role == "merge" and typ == "ADDED":
                    with lock:
                        st["merge"] += 1
                return
            key = (ns, meta["name"])
            phase = (pod.get("status") or {}).get("phase")
            with lock:
                if key not in st["seen"]:
                    st["seen"][key] = t
                    st["ns_seen"][ns] += 1
                if typ == "DELETED" or phase in ("Succeeded", "Failed"):
                    st["active"][ns].discard(key)
                    if phase == "Succeeded" and key not in st["succeeded"]:
                        st["succeeded"].add(key)
                        st["ns_done"][ns] += 1
                    elif phase == "Failed":
                        st["failed"].add(key)
                else:
                    st["active"][ns].add(key)

        def on_owner(typ, obj, t):
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if key not in want:
                return
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
                    with lock:
                        if key not in st["complete"]:
                            st["complete"][key] = (c["type"], t)
                            if c["type"] == "Failed":
                                st["failed_jobs"][key] = c.get("message")
                            if len(st["complete"]) == len(want):
                                finished.set()

        owners = "/apis/tessera.dev/v1alpha1/renderjobs" if is_rj else "/apis/batch/v1/jobs"
        watches = [Watch(self.api, "/api/v1/pods", on_pod), Watch(self.api, owners, on_owner)]
        for w in watches:
            w.start()
            if not w.established.wait(30):
                raise BenchError(f"watch {w.path} not established: {w.error}")

        # Fairness, sampled each second while every namespace still has shards waiting.
        samples = []
        self.reset_peaks()
        before = self.snapshot()
        log(f"{case}: creating {len(jobs)} {'RenderJob' if is_rj else 'Indexed Job'}(s), {total} shards")
        t0 = time.monotonic()
        for ns, name, shards, prio in jobs:
            body = self.render_job(ns, name, shards, prio) if is_rj else self.indexed_job(ns, name, shards, prio)
            path = (f"/apis/tessera.dev/v1alpha1/namespaces/{ns}/renderjobs" if is_rj
                    else f"/apis/batch/v1/namespaces/{ns}/jobs")
            self.api.create(path, body)
        windows = [a.ij_default_window if case.endswith("default") else None,
                   a.ij_raised_window if case.endswith("raised") else None, a.stop_after]
        window = min((w for w in windows if w is not None), default=None)
        deadline = t0 + a.run_timeout
        last_log = t0
        stopped_early = False
        while not finished.is_set():
            now = time.monotonic()
            if window is not None and now - t0 >= window:
                stopped_early = True
                break
            if now > deadline:
                raise BenchError(f"{case}: not complete after {a.run_timeout} s ({len(st['succeeded'])} of "
                                 f"{total} shard pods succeeded)")
            for w in watches:
                if w.error:
                    raise BenchError(f"watch failed: {w.error}")
            for name, proc in self.procs.children:
                if proc.poll() is not None:
                    raise BenchError(f"{name} exited with {proc.returncode}")
            finished.wait(1.0)
            with lock:
                active = {ns: len(st["active"][ns]) for ns in namespaces}
                done = dict(st["ns_done"])
                seen = len(st["seen"])
            waiting = {ns: ns_total[ns] - done[ns] - active[ns] for ns in namespaces}
            samples.append({"t": round(time.monotonic() - t0, 1), "active": active, "done": done,
                            "all_waiting": all(v > 0 for v in waiting.values())})
            if time.monotonic() - last_log >= 15:
                last_log = time.monotonic()
                log(f"{case}: {last_log - t0:6.1f} s: {seen} pods seen, {sum(done.values())} succeeded, "
                    f"{sum(active.values())} active, {len(st['complete'])}/{len(want)} jobs done")
        end_t = time.monotonic()
        at_end = self.snapshot()
        if not stopped_early:
            time.sleep(a.settle)  # the tail: last status writes, deletions
        after = self.snapshot()
        for w in watches:
            w.stop()
        if st["failed_jobs"]:
            raise BenchError(f"{case}: jobs Failed: {json.dumps({'/'.join(k): v for k, v in st['failed_jobs'].items()})[:1500]}")
        sizes = self.object_sizes(jobs, is_rj)
        w = self.window(before, after)
        if job_kcm is not None:
            self.stop_job_controller(job_kcm)
        w["at_end_requests"] = at_end["requests"] - before["requests"]
        succeeded = len(st["succeeded"])
        makespan = (max(t for _, t in st["complete"].values()) - t0) if not stopped_early else None
        projected = None
        if stopped_early:
            rate = succeeded / (end_t - t0)
            projected = total / rate if rate else None
        firsts = sorted(st["seen"].values())
        w.update({
            "case": case, "jobs": len(jobs), "shards": total, "namespaces": namespaces,
            "makespan_s": makespan, "stopped_at_s": (end_t - t0) if stopped_early else None,
            "projected_makespan_s": projected, "succeeded_pods": succeeded, "failed_pods": len(st["failed"]),
            "pods_seen": len(st["seen"]), "merge_pods": st["merge"],
            # Per-shard figures of a case stopped early count the shards it started (a shard
            # whose first attempt failed counts once), not the ones it never reached.
            "per_shard_of": total if not stopped_early else max(len(st["seen"]) - len(st["failed"]), 1),
            "job_complete_s": {"/".join(k): round(t - t0, 1) for k, (_, t) in sorted(st["complete"].items())},
            "pods_per_10s": bins([t - t0 for t in firsts], 10),
            "fairness": fairness(samples, namespaces, ns_total) if many else None,
            "object_bytes": sizes, "run_seconds": after["t"] - t0,
            "reconcile_ms": reconcile_percentiles(w["operator"]) if is_rj else None})
        log(f"{case}: {'makespan ' + format(makespan, '.1f') if makespan else 'stopped at ' + format(end_t - t0, '.0f')} s"
            f"{'' if projected is None else ', projected makespan ' + format(projected, '.0f') + ' s'}; "
            f"{succeeded} pods succeeded, {len(st['failed'])} failed")
        # The caller keeps the figures before the clean-up, which may fail.
        self.pending_clean_up = (case, jobs, is_rj)
        return w

    def object_sizes(self, jobs, is_rj):
        """Bytes of each job object's JSON at the end (largest, mean)."""
        sizes = []
        for ns, name, _, _ in jobs:
            path = (f"/apis/tessera.dev/v1alpha1/namespaces/{ns}/renderjobs/{name}" if is_rj
                    else f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
            sizes.append(len(json.dumps(self.api.get(path), separators=(",", ":"))))
        return {"max": max(sizes), "mean": sum(sizes) / len(sizes)}

    def clean_up(self, case, jobs, is_rj):
        """Deletes the case's jobs and waits until their pods are gone (outside the measurement)."""
        for ns, name, _, _ in jobs:
            path = (f"/apis/tessera.dev/v1alpha1/namespaces/{ns}/renderjobs/{name}" if is_rj
                    else f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
            try:
                self.api.call("DELETE", path, {"propagationPolicy": "Background"})
            except ApiError as error:
                if error.status != 404:
                    raise
        namespaces = sorted({j[0] for j in jobs})
        for ns in namespaces:
            # Thousands of pods in one request: it takes minutes, and the API server ends a
            # request after its 60 s timeout (the deletion stops there): ask again until done.
            end = time.monotonic() + 900
            while True:
                try:
                    self.api.call("DELETE", f"/api/v1/namespaces/{ns}/pods", {"gracePeriodSeconds": 0},
                                  timeout=900)
                    break
                except (ApiError, http.client.HTTPException, OSError) as error:
                    if time.monotonic() > end:
                        raise
                    log(f"{case}: deleting the pods of {ns}: {str(error)[:200]}; asking again")
        # Finalizers nobody will remove now (the Job controller's tracking finalizer once its
        # controller-manager is stopped) are dropped by the bench, 8 pods at a time.
        end = time.monotonic() + 900
        while True:
            held = [(ns, p["metadata"]["name"]) for ns in namespaces
                    for p in self.api.get(f"/api/v1/namespaces/{ns}/pods?limit=2000")["items"]
                    if p["metadata"].get("finalizers")]
            if not held:
                break
            if time.monotonic() > end:
                raise BenchError(f"{case}: {len(held)} pods still held by finalizers after 900 s")
            threads = [threading.Thread(target=self.drop_finalizers, args=(held[i::8],), daemon=True)
                       for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        def gone():
            return not any(self.api.get(f"/api/v1/namespaces/{ns}/pods?limit=1")["items"] for ns in namespaces)
        wait_until(f"{case}: every pod gone", 600, gone)

    def drop_finalizers(self, pods):
        for ns, name in pods:
            try:
                self.api.call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}", {"metadata": {"finalizers": None}},
                              content_type="application/merge-patch+json")
            except ApiError as error:
                if error.status != 404:
                    raise


def bins(offsets, width):
    out = []
    for t in offsets:
        i = int(t // width)
        out.extend([0] * (i + 1 - len(out)))
        out[i] += 1
    return out


def fairness(samples, namespaces, ns_total):
    """How far each namespace's share strayed from an equal one while all of them had shards
    waiting: of the shard pods that ended Succeeded in that window (the work each got), and
    of the pods running at each sample (median and worst sample)."""
    window = [s for s in samples if s["all_waiting"]]
    if len(window) < 2:
        return {"window_s": 0}
    fair = 1 / len(namespaces)
    done = {ns: window[-1]["done"][ns] - window[0]["done"][ns] for ns in namespaces}
    work = sum(done.values())
    devs = []
    for s in window:
        running = sum(s["active"].values())
        if running:
            devs.append(max(abs(s["active"][ns] / running / fair - 1) for ns in namespaces))
    devs.sort()
    return {"window_s": round(window[-1]["t"] - window[0]["t"], 1),
            "done_share": {ns: round(done[ns] / work, 4) if work else None for ns in namespaces},
            "done_share_max_deviation": max(abs(done[ns] / work / fair - 1) for ns in namespaces) if work else None,
            "running_share_deviation_p50": devs[len(devs) // 2] if devs else None,
            "running_share_deviation_max": devs[-1] if devs else None}


def ms(bound):
    """A percentile's bucket bound; None: above the histogram's largest bound (30 s)."""
    return ">30000" if bound is None else f"{bound:g}"


def reconcile_percentiles(op):
    """p50/p99 of RenderJob reconcile time (ms), from the histogram's bucket deltas: the bucket's upper bound."""
    buckets = sorted((float(k.rsplit(":", 1)[1]), v) for k, v in op.items()
                     if k.startswith("bucket:RenderJob:") and k.rsplit(":", 1)[1] != "+Inf")
    count = op.get("tessera_reconcile_duration_seconds_count:RenderJob", 0)
    if not count:
        return None
    out = {}
    for q in (0.5, 0.99):
        bound = next((le for le, v in buckets if v >= q * count), None)
        out[f"p{round(q * 100)}"] = None if bound is None else bound * 1000
    out["count"] = count
    out["mean"] = op.get("tessera_reconcile_duration_seconds_sum:RenderJob", 0) / count * 1000
    return out


# ---------------------------------------------------------------------------------------------
# Report


def report(studio, results):
    a = studio.args
    out = []
    p = out.append
    p("")
    p(f"=== Tessera studio-scale bench: {a.nodes} KWOK GPU nodes x {a.gpus_per_node} GPUs = {studio.slots} slots; "
      f"pods run {a.run_ms / 1000:g}-{a.run_max_ms / 1000:g} s, {a.fail_percent:g} % fail; "
      f"RenderPool ledgerFinalizer: {a.ledger_finalizer} ===")
    groups = (("one", f"one job of {a.shards} shards"), ("many", f"{a.jobs} jobs x {a.job_shards} shards, "
              f"{a.namespaces} namespaces"))
    for group, title in groups:
        cols = [c for c in CASES if group in c and c in results]
        if not cols:
            continue
        rj = results.get(f"rj-{group}")
        rows = []

        def row(label, f, digits=1):
            rows.append((label, [b.fmt(f(results[c]), digits) if f(results[c]) is not None else "-" for c in cols]))

        def shards(w):
            return w.get("per_shard_of", w["shards"])

        def per(w, client):
            return w["by_client"].get(client, 0) / shards(w)

        def ctl(w):
            return "tessera-operator" if w["case"].startswith("rj") else "kcm: job-controller"

        def writes(w):
            n = sum(k for (c, verb, _), k in w["by_call"].items()
                    if c == ctl(w) and verb in ("create", "update", "patch", "delete", "deletecollection"))
            return n / shards(w)

        def cpu_frac(w, comp):
            return w["cpu"].get(comp, 0) / w["seconds"] if comp in w["cpu"] else None
        row("makespan: create -> all Complete (s)", lambda w: w["makespan_s"])
        row("  projected (stopped early) (s)", lambda w: w["projected_makespan_s"], 0)
        row("pods created/s (mean over makespan)",
            lambda w: w["pods_seen"] / (w["makespan_s"] or w["stopped_at_s"]))
        row("pods created/s (peak 10 s)", lambda w: max(w["pods_per_10s"] or [0]) / 10)
        row("pods succeeded | failed", lambda w: f"{w['succeeded_pods']}|{w['failed_pods']}")
        row("API requests/shard, all clients", lambda w: w["requests"] / shards(w), 2)
        row("workload controller requests/shard", lambda w: per(w, ctl(w)), 2)
        row("workload controller writes/shard", writes, 2)
        row("kube-scheduler requests/shard", lambda w: per(w, "kube-scheduler"), 2)
        row("kwok requests/shard", lambda w: per(w, "kwok"), 2)
        row("workload controller CPU-s per 1,000 shards",
            lambda w: (w["cpu"].get("tessera-operator") if w["case"].startswith("rj") else w["cpu"].get("job-kcm", 0))
            / shards(w) * 1000, 2)
        row("workload controller peak RSS (MiB)",
            lambda w: w["peak"].get("tessera-operator" if w["case"].startswith("rj") else "job-kcm", 0) / 1024, 0)
        row("job object at the end, largest (KiB)", lambda w: w["object_bytes"]["max"] / 1024, 1)
        row("RenderJob reconcile p50 | p99 (ms)",
            lambda w: None if not w.get("reconcile_ms") else "|".join(ms(w["reconcile_ms"][p]) for p in ("p50", "p99")))
        if group == "many":
            row("fair share: window all waiting (s)", lambda w: (w["fairness"] or {}).get("window_s"))
            row("  max deviation, shards done in it (%)",
                lambda w: pct((w["fairness"] or {}).get("done_share_max_deviation")))
            row("  running-share deviation p50 | max (%)", lambda w: None if not (w["fairness"] or {}).get(
                "running_share_deviation_max") and (w["fairness"] or {}).get("running_share_deviation_max") != 0
                else f"{pct(w['fairness']['running_share_deviation_p50'])}|{pct(w['fairness']['running_share_deviation_max'])}")
        for comp, label in COMPONENTS:
            row(f"CPU {label} (cores)", lambda w, comp=comp: cpu_frac(w, comp), 2)
        row("saturated (busiest process)", lambda w: busiest(w))
        w0 = max(len(r[0]) for r in rows)
        p("")
        p(f"--- {title} ---")
        p(f"{'':{w0}}  " + "  ".join(f"{c:>16}" for c in cols))
        for label, vals in rows:
            p(f"{label:{w0}}  " + "  ".join(f"{v:>16}" for v in vals))
        if rj is not None:
            p("ratios, RenderJob / Indexed Job (makespan; projected where stopped early):")
            for c in cols[1:]:
                other = results[c]["makespan_s"] or results[c]["projected_makespan_s"]
                own = rj["makespan_s"] or rj["projected_makespan_s"]
                p(f"  vs {c}: makespan {b.ratio(own, other)}, all requests/shard "
                  f"{b.ratio(rj['requests'] / shards(rj), results[c]['requests'] / shards(results[c]))}")
        for c in cols:
            p(f"top calls, {c}:")
            b.top_calls(p, results[c], shards(results[c]), count=10)
    p("")
    p(f"kube-controller-manager for the Job controller: defaults (client QPS 20, burst 30) or raised "
      f"(--kube-api-qps={a.raised_qps} --kube-api-burst={a.raised_burst}); Indexed Jobs at defaults stop after "
      f"{a.ij_default_window:g} s"
      + (f", raised after {a.ij_raised_window:g} s" if a.ij_raised_window else "")
      + (f", every case after {a.stop_after:g} s" if a.stop_after else "")
      + "; a case stopped early is projected from completions/s and its per-shard figures count the shards it started")
    return "\n".join(out)


def pct(x):
    return None if x is None else round(100 * x, 1)


def busiest(w):
    fracs = {label: w["cpu"][comp] / w["seconds"] for comp, label in COMPONENTS if comp in w["cpu"]}
    if not fracs:
        return None
    label = max(fracs, key=fracs.get)
    return f"{label.split(' ')[0]} {fracs[label]:.2f}"


def main():
    ap = b.parser(__doc__.split("\n")[0], "tessera-operator")
    ap.add_argument("--kwok", required=True)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--cpu-nodes", type=int, default=4)
    ap.add_argument("--shards", type=int, default=100000, help="shards of the one-job cases")
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--job-shards", type=int, default=2000)
    ap.add_argument("--namespaces", type=int, default=5)
    ap.add_argument("--run-ms", type=int, default=1000)
    ap.add_argument("--run-max-ms", type=int, default=3000)
    ap.add_argument("--fail-percent", type=float, default=1.0)
    ap.add_argument("--ledger-finalizer", choices=["true", "false"], default="false",
                    help="the RenderPool's ledgerFinalizer (false: what a farm of many short shards sets)")
    ap.add_argument("--raised-qps", type=int, default=500)
    ap.add_argument("--raised-burst", type=int, default=1000)
    ap.add_argument("--ij-default-window", type=float, default=300)
    ap.add_argument("--ij-raised-window", type=float, default=None,
                    help="stop the Indexed Jobs with raised QPS after this many seconds (default: run to the end)")
    ap.add_argument("--stop-after", type=float, default=None,
                    help="stop every case after this many seconds and project its makespan (a 100,000-shard "
                         "run side by side in a few hours less)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--run-timeout", type=float, default=7200, help="seconds per case")
    ap.add_argument("--total-timeout", type=int, default=6 * 3600)
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    args.kcm_arg, args.kueue = [], None  # what bench.Bench reads

    studio = Studio(args)

    def write_json(results):
        if not args.json:
            return
        strip = lambda w: {k: v for k, v in w.items() if k != "by_call"}  # noqa: E731
        with open(args.json, "w") as f:
            json.dump({"cases": {k: strip(v) for k, v in results.items()},
                       "top_calls": {k: [{"client": c, "verb": v, "resource": r, "count": n}
                                         for (c, v, r), n in sorted(w["by_call"].items(), key=lambda kv: -kv[1])[:20]]
                                     for k, w in results.items()},
                       "settings": vars(args), "slots": studio.slots}, f, indent=1, default=str)

    def body():
        studio.up()
        results = {}
        for case in [c for c in CASES if c in cases]:
            results[case] = studio.run_case(case)
            # After every case: a long run stopped part way keeps the cases it finished.
            write_json(results)
            studio.clean_up(*studio.pending_clean_up)
        text = report(studio, results)
        print(text, flush=True)

    programs = {args.testcluster, args.kwok, os.path.join(args.bin, "tessera-operator")}
    return b.bounded_run(args, studio.procs, programs, body)


if __name__ == "__main__":
    sys.exit(main())
