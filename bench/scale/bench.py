#!/usr/bin/env python3
"""Scale benchmark: a 1,000-shard RenderJob against a 1,000-completion Indexed Job.

Started by bench/scale/run.sh (which builds the binaries first); see bench/scale/README.md.
Python 3.11, standard library only.

One control plane (e2e/testcluster, with kube-apiserver audit logging to a file), one process
node agent (fake GPU nodes, pods run as local processes), one tessera-operator. Then, one after
the other, each in its own namespace:
  (a) a RenderJob of N shards (frames 1-N, framesPerShard 1, tiles 1x1, sampleSplits 1) whose
      pool's render image is mapped to fake-render-pod (exits 0 at once);
  (b) a batch/v1 Job, completionMode Indexed, N completions, parallelism = the pool's slots,
      pods with the same nodeSelector, toleration and requests (1 nvidia.com/gpu, 2 cpu, 8Gi)
      as a shard pod, image mapped by the node agent to /bin/true.
For each: time until all N pods existed, time until Complete, apiserver_request_total delta,
audited requests by client, peak RSS (VmHWM, reset before each run) and CPU time of the
operator and the control-plane processes.

With --kueue BINARY (Kueue, e2e/kueue), a third case after those two:
  (c) RenderJob+Kueue: the RenderJob of (a) in namespace bench-kueue, labelled
      kueue.x-k8s.io/queue-name: bench (a LocalQueue of one ClusterQueue whose quota is the
      pool's slots: 1 nvidia.com/gpu, 2 cpu, 8Gi per slot). Kueue's CRDs are applied before the
      operator starts (it looks for Kueue once, at start-up) and Kueue runs as its own
      ServiceAccount, so the audit log tells its requests apart. Reported in a second table
      against (a): what Kueue costs in requests per shard and in time.

Everything it starts runs in its own session with PR_SET_PDEATHSIG, is stopped in `finally`
(SIGTERM, then SIGKILL), and the whole run is bounded by --total-timeout.
"""

import argparse
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

PR_SET_PDEATHSIG = 1
GPU_LABEL = ("tessera.dev/node-group", "gpu-a")
RENDER_IMAGE = "ghcr.io/tessera-dev/render-pod:bench"
TRUE_IMAGE = "bench.local/true:1"
SYSTEM_NS = "tessera-bench"
POOL = "bench-gpu"
KUEUE_NS = "bench-kueue"
KUEUE_QUEUE = "bench"  # the LocalQueue in KUEUE_NS, and the ClusterQueue it points to
KUEUE_FLAVOR = "bench-default"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_API = f"/apis/{KUEUE_GROUP}/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CASE_NS = {"RenderJob": "bench-renderjob", "IndexedJob": "bench-indexedjob", "RenderJob+Kueue": KUEUE_NS}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Deadline(BaseException):
    """Raised from SIGALRM/SIGTERM/SIGINT: unwinds to the cleanup."""


# ---------------------------------------------------------------------------------------------
# Kubernetes API over HTTPS (standard library only)


class ApiError(BenchError):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


class Api:
    def __init__(self, server, ca_file, token):
        url = urllib.parse.urlparse(server)
        self.host, self.port = url.hostname, url.port
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.token = token

    def connection(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def headers(self, content_type=None, accept="application/json"):
        h = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if content_type:
            h["Content-Type"] = content_type
        return h

    def call(self, method, path, body=None, content_type="application/json", raw=False, timeout=30):
        conn = self.connection(timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data,
                         headers=self.headers(content_type if data else None, "text/plain" if raw else "application/json"))
            resp = conn.getresponse()
            text = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise ApiError(resp.status, text)
        if raw:
            return text.decode()
        return json.loads(text) if text else None

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def create(self, path, body):
        return self.call("POST", path, body)

    def apply(self, path, body, manager="scale-bench"):
        sep = "&" if "?" in path else "?"
        return self.call("PATCH", f"{path}{sep}fieldManager={manager}&force=true", body,
                         content_type="application/apply-patch+yaml")


class Watch(threading.Thread):
    """Streams watch events of `path` (from a list's resourceVersion) into `on_event(type, obj, t)`."""

    def __init__(self, api, path, on_event):
        super().__init__(daemon=True)
        self.api, self.path, self.on_event = api, path, on_event
        self.conn = None
        self.stopping = False
        self.error = None
        self.established = threading.Event()

    def run(self):
        try:
            rv = self.api.get(self.path)["metadata"]["resourceVersion"]
        except Exception as error:  # noqa: BLE001 - reported by the caller
            self.error = error
            return
        while not self.stopping:
            sep = "&" if "?" in self.path else "?"
            path = f"{self.path}{sep}watch=1&resourceVersion={rv}&timeoutSeconds=900&allowWatchBookmarks=true"
            try:
                self.conn = self.api.connection(timeout=None)
                self.conn.request("GET", path, headers=self.api.headers())
                resp = self.conn.getresponse()
                if resp.status != 200:
                    raise ApiError(resp.status, resp.read())
                self.established.set()
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    now = time.monotonic()
                    event = json.loads(line)
                    obj = event.get("object", {})
                    if event.get("type") == "ERROR":
                        raise BenchError(f"watch {self.path}: {obj}")
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event.get("type") != "BOOKMARK":
                        self.on_event(event["type"], obj, now)
            except Exception as error:  # noqa: BLE001 - reported by the caller
                if self.stopping:
                    return
                self.error = error
                return
            finally:
                try:
                    self.conn.close()
                except Exception:  # noqa: BLE001
                    pass

    def stop(self):
        self.stopping = True
        try:
            if self.conn is not None and self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Processes


def _pdeathsig():
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Procs:
    def __init__(self):
        self.children = []  # (name, Popen), in start order

    def start(self, name, argv, log_path, env=None):
        out = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, preexec_fn=_pdeathsig)
        out.close()
        self.children.append((name, proc))
        log(f"started {name} (pid {proc.pid}), log {log_path}")
        return proc

    def stop_all(self):
        for name, proc in reversed(self.children):
            if proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for 40 s: SIGKILL")
                proc.kill()
                proc.wait(timeout=10)
            log(f"stopped {name} (exit {proc.returncode})")


def proc_status(pid):
    """VmHWM, VmRSS (KiB) and CPU seconds (utime+stime) of a process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    kib = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmHWM|VmRSS):\s+(.*)$", text, re.M)}
    return {"hwm": kib.get("VmHWM", 0), "rss": kib.get("VmRSS", 0),
            "cpu": (int(fields[11]) + int(fields[12])) / ticks}


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0: `echo 5 > /proc/PID/clear_refs`)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def leftover_processes(marker, programs):
    """Processes still running one of our programs in (or on) the working directory."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            cwd = ""
        if cmdline.split(" ", 1)[0] in programs and (marker in cmdline or cwd.startswith(marker)):
            found.append((int(entry), cmdline.strip()))
    return found


# ---------------------------------------------------------------------------------------------
# Counters


def request_total(api):
    """Sum of every apiserver_request_total series."""
    text = api.get("/metrics", raw=True)
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") or line.startswith("apiserver_request_total "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def audit_offset(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def audit_slice(path, start, end):
    """Audit events (ResponseComplete/Panic) between two byte offsets of the audit log."""
    if end < start:
        raise BenchError(f"the audit log {path} shrank ({start} -> {end} bytes): rotated?")
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    events = []
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("stage") in ("ResponseComplete", "Panic"):
            events.append(event)
    return events


def client_of(event):
    user = event.get("user", {}).get("username", "?")
    return {
        f"system:serviceaccount:{SYSTEM_NS}:tessera-operator": "tessera-operator",
        f"system:serviceaccount:{SYSTEM_NS}:node-agent": "node-agent (fake kubelets)",
        f"system:serviceaccount:{SYSTEM_NS}:kueue": "kueue",
        f"system:serviceaccount:{SYSTEM_NS}:kwok": "kwok",
        "system:serviceaccount:kube-system:job-controller": "kcm: job-controller",
        "system:kube-scheduler": "kube-scheduler",
        "system:kube-controller-manager": "kcm: shared informers",
        "system:apiserver": "kube-apiserver (loopback)",
        "tessera-admin": "bench harness (admin)",
        "tessera-admin-token": "bench harness (admin)",
    }.get(user, user.replace("system:serviceaccount:kube-system:", "kcm: "))


def tally(events):
    by_client, by_call = {}, {}
    for e in events:
        c = client_of(e)
        by_client[c] = by_client.get(c, 0) + 1
        ref = e.get("objectRef", {})
        resource = ref.get("resource", e.get("requestURI", "?").split("?")[0])
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        key = (c, e.get("verb", "?"), resource)
        by_call[key] = by_call.get(key, 0) + 1
    return by_client, by_call


def kueue_calls(events):
    """Calls on kueue.x-k8s.io resources: (client, verb, resource[/subresource], code) -> count."""
    calls = {}
    for e in events:
        ref = e.get("objectRef", {})
        if ref.get("apiGroup") != KUEUE_GROUP:
            continue
        resource = ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")
        key = (client_of(e), e.get("verb", "?"), resource, (e.get("responseStatus") or {}).get("code"))
        calls[key] = calls.get(key, 0) + 1
    return calls


def condition(obj, type_):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def operator_metrics(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(tessera_reconcile_duration_seconds_(?:count|sum))\{kind="(\w+)"\} (\S+)', line)
        if m:
            out[f"{m.group(1)}:{m.group(2)}"] = float(m.group(3))
        m = re.match(r'^tessera_reconcile_duration_seconds_bucket\{kind="RenderJob",le="([^"]+)"\} (\S+)', line)
        if m:
            out[f"bucket:RenderJob:{m.group(1)}"] = float(m.group(2))
        m = re.match(r'^tessera_pods_created_total\{role="(\w+)"\} (\S+)', line)
        if m:
            out[f"pods_created:{m.group(1)}"] = float(m.group(2))
        m = re.match(r'^tessera_reconcile_errors_total\{(.*)\} (\S+)', line)
        if m:
            out[f"reconcile_errors:{m.group(1)}"] = float(m.group(2))
    return out


# ---------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.dir
        self.procs = Procs()
        self.api = None
        self.pids = {}  # component -> pid

    # -- environment -----------------------------------------------------------------------

    def up(self):
        a = self.args
        self.start_cluster(a.kcm_arg)
        self.apply_crds()
        if a.kueue:
            # Before the operator starts: it asks once, at start-up, whether Workloads are served.
            crds = os.path.join(os.path.dirname(a.kueue), "crds")
            subprocess.run([a.kubectl, "--kubeconfig", self.admin_kubeconfig, "apply", "--server-side",
                            "-f", crds], check=True, stdout=subprocess.DEVNULL, timeout=120)
            # Polled, not `kubectl wait`: that fails at once on a CRD whose status has no
            # conditions yet (".status.conditions accessor error: <nil>"), as just after an apply.
            def established(crd):
                c = condition(self.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"),
                              "Established")
                return c is not None and c.get("status") == "True"
            for r in ("workloads", "clusterqueues", "localqueues", "resourceflavors"):
                wait_until(f"CRD {r}.{KUEUE_GROUP} Established", 60, lambda: established(f"{r}.{KUEUE_GROUP}"))
            log(f"Kueue CRDs applied from {crds}")

        # Own identities for the operator, the node agent (and Kueue), so the audit log tells them apart.
        kubeconfigs = self.identities(("tessera-operator", "node-agent") + (("kueue",) if a.kueue else ()))
        base_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        if a.kueue:
            self.kueue_up(kubeconfigs["kueue"], base_env)
        agent = self.procs.start("node-agent", [
            os.path.join(a.bin, "node-agent"), "--gpu-nodes", str(a.gpu_nodes),
            "--gpus-per-node", str(a.gpus_per_node), "--cpu-nodes", "1",
            "--pool-label", "=".join(GPU_LABEL),
            "--image", f"ghcr.io/tessera-dev/render-pod={os.path.join(a.bin, 'fake-render-pod')}",
            "--image", f"bench.local/true={a.true_binary}",
            "--work-dir", os.path.join(self.work, "pods")],
            os.path.join(self.work, "node-agent.log"),
            env={**base_env, "KUBECONFIG": kubeconfigs["node-agent"]})
        self.pids["node-agent"] = agent.pid
        operator = self.start_operator(kubeconfigs["tessera-operator"], base_env)

        def nodes_ready():
            items = self.api.get("/api/v1/nodes?labelSelector=" + urllib.parse.quote("=".join(GPU_LABEL)))["items"]
            ready = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in n.get("status", {}).get("conditions", []))]
            return len(ready) == a.gpu_nodes
        wait_until("Ready GPU nodes", 60, nodes_ready, alive=agent)
        self.wait_operator_leads(operator)

        self.slots = a.gpu_nodes * a.gpus_per_node
        self.api.apply(f"/apis/tessera.dev/v1alpha1/renderpools/{POOL}", {
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": POOL},
            "spec": {"nodeSelector": dict([GPU_LABEL]),
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                     "gpu": {"resourceName": "nvidia.com/gpu", "count": 1},
                     "shardResources": {"cpu": "2", "memory": "8Gi"},
                     "image": RENDER_IMAGE, "maxConcurrentShards": self.slots,
                     "storage": {"url": f"file://{self.work}/data",
                                 # The scene is a read-only library beside the tenants' area
                                 # (storage confinement; the fake render pod never reads it).
                                 "sharedReadPrefixes": ["file:///scenes"]}}})

        def pool_ready():
            status = self.api.get(f"/apis/tessera.dev/v1alpha1/renderpools/{POOL}").get("status") or {}
            return status.get("shardCapacity") == self.slots
        wait_until(f"RenderPool {POOL} to report {self.slots} slots", 60, pool_ready, alive=operator)
        # /readyz is not waited for: it can stay 503 "caches not synced" for good (see README).
        end = time.monotonic() + 10
        while not self.operator_ready() and time.monotonic() < end:
            time.sleep(0.25)
        self.readyz_ok = self.operator_ready()
        if not self.readyz_ok:
            log("operator /readyz still 503 (caches not synced) 10 s after the pool reported its capacity")
        log(f"environment up: {a.gpu_nodes} GPU nodes x {a.gpus_per_node} GPUs = {self.slots} slots, "
            f"pids {self.pids}")

    def start_cluster(self, kcm_args):
        """`testcluster up` with the apiserver's audit log; sets self.api, self.server, self.ca."""
        a = self.args
        os.makedirs(self.work, exist_ok=True)
        policy = os.path.join(self.work, "audit-policy.yaml")
        with open(policy, "w") as f:
            f.write("apiVersion: audit.k8s.io/v1\nkind: Policy\n"
                    "omitStages: [RequestReceived, ResponseStarted]\n"
                    "rules:\n  - level: Metadata\n")
        self.audit_log = os.path.join(self.work, "audit.log")
        cluster = os.path.join(self.work, "cluster")
        argv = [a.testcluster, "up", "--dir", cluster,
                f"--apiserver-arg=--audit-policy-file={policy}",
                f"--apiserver-arg=--audit-log-path={self.audit_log}",
                "--apiserver-arg=--audit-log-format=json",
                "--apiserver-arg=--audit-log-mode=blocking",
                # Never rotated (0 would mean lumberjack's 100 MB): the windows are byte offsets.
                "--apiserver-arg=--audit-log-maxsize=1000000"]
        argv += [f"--controller-manager-arg={x}" for x in kcm_args]
        up_log = os.path.join(self.work, "testcluster.log")
        for attempt in range(1, 4):
            # `up` picks free ports, then the components bind them: a rare race (see its README).
            up = self.procs.start("testcluster", argv, up_log)
            self.pids["testcluster"] = up.pid
            try:
                wait_until("the control plane", 180, lambda: os.path.exists(os.path.join(cluster, "ready")),
                           alive=up)
                break
            except BenchError as error:
                if attempt == 3 or up.poll() is None:
                    raise
                log(f"testcluster up failed ({error}); trying again")
                self.procs.children.remove(("testcluster", up))
        with open(up_log) as f:
            for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", f.read()):
                self.pids[name] = int(pid)
        env = dict(line.split("=", 1) for line in open(os.path.join(cluster, "env")).read().split())
        self.server, self.ca = env["TESTCLUSTER_APISERVER"], env["TESTCLUSTER_CA_FILE"]
        token = open(env["TESTCLUSTER_TOKEN_FILE"]).read().strip()
        self.api = Api(self.server, self.ca, token)
        self.admin_kubeconfig = env["KUBECONFIG"]

    def apply_crds(self):
        a = self.args
        subprocess.run([a.kubectl, "--kubeconfig", self.admin_kubeconfig, "apply", "--server-side",
                        "-f", os.path.join(a.repo, "crds")], check=True, stdout=subprocess.DEVNULL, timeout=60)
        # kubectl wait fails at once ("accessor error: <nil>") while a new CRD has no
        # status.conditions yet, instead of waiting: ask again until the deadline.
        deadline = time.monotonic() + 60
        while True:
            wait = subprocess.run([a.kubectl, "--kubeconfig", self.admin_kubeconfig, "wait",
                                   "--for=condition=Established", "crd/renderjobs.tessera.dev",
                                   "crd/renderpools.tessera.dev", "--timeout=10s"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=20)
            if wait.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRDs not Established within 60 s: {wait.stderr.strip()}")
            time.sleep(0.2)

    def identities(self, names):
        """A ServiceAccount bound to cluster-admin and a kubeconfig with its token, per name."""
        self.api.create("/api/v1/namespaces", {"metadata": {"name": SYSTEM_NS}})
        self.wait_default_sa(SYSTEM_NS)
        kubeconfigs = {}
        for sa in names:
            self.api.create(f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts", {"metadata": {"name": sa}})
            self.api.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
                "metadata": {"name": f"scale-bench-{sa}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": SYSTEM_NS}]})
            tok = self.api.create(f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts/{sa}/token",
                                  {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                   "spec": {"expirationSeconds": 7200}})["status"]["token"]
            path = os.path.join(self.work, f"{sa}.kubeconfig")
            with open(path, "w") as f:
                json.dump({"apiVersion": "v1", "kind": "Config",
                           "clusters": [{"name": "bench", "cluster": {"server": self.server,
                                                                      "certificate-authority": self.ca}}],
                           "users": [{"name": sa, "user": {"token": tok}}],
                           "contexts": [{"name": sa, "context": {"cluster": "bench", "user": sa}}],
                           "current-context": sa}, f)
            os.chmod(path, 0o600)
            kubeconfigs[sa] = path
        return kubeconfigs

    def start_operator(self, kubeconfig, env):
        a = self.args
        self.metrics_port = free_port()
        operator = self.procs.start("tessera-operator", [
            os.path.join(a.bin, "tessera-operator"), "--identity", "scale-bench",
            "--lease-namespace", SYSTEM_NS, "--http-addr", f"127.0.0.1:{self.metrics_port}"],
            os.path.join(self.work, "operator.log"),
            env={**env, "KUBECONFIG": kubeconfig})
        self.pids["tessera-operator"] = operator.pid
        return operator

    def wait_operator_leads(self, operator, seconds=60):
        log_path = os.path.join(self.work, "operator.log")
        wait_until("the operator to lead", seconds, lambda: "controllers running" in open(log_path).read(),
                   alive=operator)

    def kueue_up(self, kubeconfig, env):
        """Starts Kueue and creates its ResourceFlavor, ClusterQueue and LocalQueue."""
        a = self.args
        port = free_port()
        kueue = self.procs.start("kueue", [a.kueue, f"--kubeconfig={kubeconfig}",
                                           f"--health-probe-bind-address=127.0.0.1:{port}"],
                                 os.path.join(self.work, "kueue.log"), env=env)
        self.pids["kueue"] = kueue.pid

        wait_until("Kueue /readyz", 90, lambda: answers_200(
            lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=2), "/readyz"), alive=kueue)

        slots = a.gpu_nodes * a.gpus_per_node
        self.kueue_quota = {"nvidia.com/gpu": str(slots), "cpu": str(2 * slots), "memory": f"{8 * slots}Gi"}
        self.api.apply(f"{KUEUE_API}/resourceflavors/{KUEUE_FLAVOR}", {
            "apiVersion": f"{KUEUE_GROUP}/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": KUEUE_FLAVOR}})
        self.api.apply(f"{KUEUE_API}/clusterqueues/{KUEUE_QUEUE}", {
            "apiVersion": f"{KUEUE_GROUP}/v1beta2", "kind": "ClusterQueue", "metadata": {"name": KUEUE_QUEUE},
            "spec": {"namespaceSelector": {},
                     "resourceGroups": [{"coveredResources": list(self.kueue_quota),
                                         "flavors": [{"name": KUEUE_FLAVOR, "resources": [
                                             {"name": r, "nominalQuota": q} for r, q in self.kueue_quota.items()]}]}]}})
        self.api.create("/api/v1/namespaces", {"metadata": {"name": KUEUE_NS}})
        self.api.apply(f"{KUEUE_API}/namespaces/{KUEUE_NS}/localqueues/{KUEUE_QUEUE}", {
            "apiVersion": f"{KUEUE_GROUP}/v1beta2", "kind": "LocalQueue",
            "metadata": {"name": KUEUE_QUEUE, "namespace": KUEUE_NS}, "spec": {"clusterQueue": KUEUE_QUEUE}})

        def active():
            c = condition(self.api.get(f"{KUEUE_API}/clusterqueues/{KUEUE_QUEUE}"), "Active")
            return c is not None and c.get("status") == "True"
        wait_until(f"ClusterQueue {KUEUE_QUEUE} Active", 60, active, alive=kueue)
        log(f"Kueue ready: ClusterQueue {KUEUE_QUEUE} Active, quota {self.kueue_quota}; "
            f"LocalQueue {KUEUE_NS}/{KUEUE_QUEUE}")

    def operator_ready(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=2)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            body = resp.read().decode()
            conn.close()
            return resp.status == 200 and "standby" not in body
        except OSError:
            return False

    def wait_default_sa(self, ns):
        def exists():
            try:
                self.api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")
                return True
            except ApiError as e:
                if e.status == 404:
                    return False
                raise
        wait_until(f"ServiceAccount {ns}/default", 60, exists)

    # -- measurement ---------------------------------------------------------------------------

    def snapshot(self):
        return {"t": time.monotonic(), "requests": request_total(self.api),
                "audit": audit_offset(self.audit_log),
                "procs": {name: proc_status(pid) for name, pid in self.pids.items()},
                "operator": operator_metrics(self.metrics_port)}

    def reset_peaks(self):
        for pid in self.pids.values():
            reset_peak(pid)

    def window(self, before, after):
        events = audit_slice(self.audit_log, before["audit"], after["audit"])
        by_client, by_call = tally(events)
        calls = [{"client": c, "verb": v, "resource": r, "code": code, "count": k}
                 for (c, v, r, code), k in sorted(kueue_calls(events).items(), key=lambda kv: -kv[1])]
        cpu = {}
        for name in self.pids:
            b, e = before["procs"].get(name), after["procs"].get(name)
            if b and e:
                cpu[name] = e["cpu"] - b["cpu"]
        op = {k: after["operator"].get(k, 0) - before["operator"].get(k, 0) for k in after["operator"]}
        return {"seconds": after["t"] - before["t"], "requests": after["requests"] - before["requests"],
                "audited": len(events), "by_client": by_client, "by_call": by_call, "kueue_calls": calls, "cpu": cpu,
                "peak": {n: (after["procs"][n] or {}).get("hwm", 0) for n in self.pids if after["procs"].get(n)},
                "operator": op}

    def idle_baseline(self, seconds):
        log(f"idle baseline: {seconds} s with nothing to do")
        before = self.snapshot()
        time.sleep(seconds)
        return self.window(before, self.snapshot())

    def run_case(self, kind):
        a, n = self.args, self.args.shards
        ns = CASE_NS[kind]
        is_rj = kind.startswith("RenderJob")
        try:
            self.api.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        except ApiError as error:
            if error.status != 409:  # bench-kueue exists: kueue_up made its LocalQueue
                raise
        self.wait_default_sa(ns)

        seen, done_pods, lock = {}, set(), threading.Lock()
        all_seen, complete = threading.Event(), threading.Event()
        result = {}

        def on_pod(typ, pod, t):
            meta = pod["metadata"]
            labels = meta.get("labels", {})
            if is_rj and labels.get("tessera.dev/role") != "shard":
                if labels.get("tessera.dev/role") == "merge":
                    result.setdefault("merge_seen", t)
                return
            with lock:
                if meta["name"] not in seen:
                    seen[meta["name"]] = t
                    if len(seen) >= n and not all_seen.is_set():
                        result["all_pods_at"] = t
                        all_seen.set()
                if pod.get("status", {}).get("phase") == "Succeeded":
                    done_pods.add(meta["name"])

        def on_owner(typ, obj, t):
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
                    if not complete.is_set():
                        result["outcome"], result["complete_at"] = c["type"], t
                        result["final_status"] = obj.get("status")
                        complete.set()

        if is_rj:
            owner_list = f"/apis/tessera.dev/v1alpha1/namespaces/{ns}/renderjobs?fieldSelector=metadata.name%3Dbench"
            body = {"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
                    "metadata": {"name": "bench", "namespace": ns},
                    "spec": {"pool": POOL, "scene": {"url": "file:///scenes/cbox.gltf"}, "frames": f"1-{n}",
                             "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 1,
                             "sharding": {"framesPerShard": 1, "tiles": {"columns": 1, "rows": 1}, "sampleSplits": 1},
                             "retry": {"attemptsPerShard": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0}}}
            create_path = f"/apis/tessera.dev/v1alpha1/namespaces/{ns}/renderjobs"
            if kind == "RenderJob+Kueue":
                body["metadata"]["labels"] = {QUEUE_LABEL: KUEUE_QUEUE}
        else:
            owner_list = f"/apis/batch/v1/namespaces/{ns}/jobs?fieldSelector=metadata.name%3Dbench"
            resources = {"nvidia.com/gpu": "1", "cpu": "2", "memory": "8Gi"}
            body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bench", "namespace": ns},
                    "spec": {"completionMode": "Indexed", "completions": n, "parallelism": self.slots,
                             "backoffLimit": 6,
                             "template": {"spec": {
                                 "restartPolicy": "Never", "nodeSelector": dict([GPU_LABEL]),
                                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                                 "automountServiceAccountToken": False, "enableServiceLinks": False,
                                 "containers": [{"name": "work", "image": TRUE_IMAGE,
                                                 "resources": {"limits": resources, "requests": resources}}]}}}}
            create_path = f"/apis/batch/v1/namespaces/{ns}/jobs"

        # The job's Workload as Kueue and the operator change it (RenderJob+Kueue only).
        wl = {"events": 0, "admissions": [], "reclaimable": []}

        def on_workload(typ, obj, t):
            st = obj.get("status") or {}
            with lock:
                wl["events"] += 1
                wl.setdefault("name", obj["metadata"]["name"])
                wl.setdefault("seen_at", t)
                wl["last"] = obj
                wl["last_type"] = typ
                assignments = (st.get("admission") or {}).get("podSetAssignments") or []
                count = sum(p.get("count", 0) for p in assignments) if assignments else None
                if not wl["admissions"] or wl["admissions"][-1][1] != count:
                    wl["admissions"].append((t, count))
                rec = sum(p.get("count", 0) for p in st.get("reclaimablePods") or [])
                if (wl["reclaimable"][-1][1] if wl["reclaimable"] else 0) != rec:
                    wl["reclaimable"].append((t, rec))
                for type_, key in (("Admitted", "admitted_at"), ("Finished", "finished_at")):
                    c = condition(obj, type_)
                    if c is not None and c.get("status") == "True":
                        wl.setdefault(key, t)

        watches = [Watch(self.api, f"/api/v1/namespaces/{ns}/pods", on_pod), Watch(self.api, owner_list, on_owner)]
        if kind == "RenderJob+Kueue":
            watches.append(Watch(self.api, f"{KUEUE_API}/namespaces/{ns}/workloads", on_workload))
        pods_watch, owner_watch = watches[0], watches[1]
        for w in watches:
            w.start()
            if not w.established.wait(30):
                raise BenchError(f"watch {w.path} not established: {w.error}")

        self.reset_peaks()
        before = self.snapshot()
        log(f"{kind}: creating ({n} {'shards' if is_rj else 'completions'}) in namespace {ns}")
        t0 = time.monotonic()
        self.api.create(create_path, body)
        deadline = t0 + a.run_timeout
        last = 0.0
        while not complete.is_set():
            if time.monotonic() > deadline:
                raise BenchError(f"{kind}: not complete after {a.run_timeout} s "
                                 f"({len(seen)} pods seen, {len(done_pods)} succeeded)")
            for w in watches:
                if w.error:
                    raise BenchError(f"watch failed: {w.error}")
            for name, proc in self.procs.children:
                if proc.poll() is not None:
                    raise BenchError(f"{name} exited with {proc.returncode}")
            complete.wait(0.5)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                extra = ""
                if kind == "RenderJob+Kueue":
                    with lock:
                        extra = (f"; Workload {wl.get('name', 'not seen')}: admitted count "
                                 f"{wl['admissions'][-1][1] if wl['admissions'] else None}")
                log(f"{kind}: {last - t0:5.1f} s: {len(seen)} pods seen, {len(done_pods)} succeeded{extra}")
        at_complete = self.snapshot()
        time.sleep(a.settle)  # the tail: last events, finalizers, status writes
        after = self.snapshot()
        for w in watches:
            w.stop()
        if result["outcome"] != "Complete":
            raise BenchError(f"{kind} ended {result['outcome']}: {json.dumps(result.get('final_status'))[:2000]}")
        w = self.window(before, after)
        w["at_complete_requests"] = at_complete["requests"] - before["requests"]
        w.update({"kind": kind, "namespace": ns, "pods_seen": len(seen),
                  "all_pods_s": (result["all_pods_at"] - t0) if "all_pods_at" in result else None,
                  "complete_s": result["complete_at"] - t0,
                  "merge_seen_s": (result["merge_seen"] - t0) if "merge_seen" in result else None,
                  "run_seconds": after["t"] - t0})
        if kind == "RenderJob+Kueue":
            w["top_calls"] = [{"client": c, "verb": v, "resource": r, "count": k}
                              for (c, v, r), k in sorted(w["by_call"].items(), key=lambda kv: -kv[1])[:25]]
            rel = lambda t: None if t is None else round(t - t0, 2)  # noqa: E731
            last_wl = wl.get("last") or {}
            w["workload"] = {
                "name": wl.get("name"), "watch_events": wl["events"], "last_event": wl.get("last_type"),
                "seen_s": rel(wl.get("seen_at")), "admitted_s": rel(wl.get("admitted_at")),
                "finished_s": rel(wl.get("finished_at")),
                "admitted_counts": [(rel(t), c) for t, c in wl["admissions"]],
                "reclaimable": [(rel(t), c) for t, c in wl["reclaimable"]],
                "spec_pod_sets": [{k: p.get(k) for k in ("name", "count", "minCount")}
                                  for p in (last_wl.get("spec") or {}).get("podSets") or []],
                "status": last_wl.get("status")}
            try:
                w["clusterqueue_status"] = self.api.get(f"{KUEUE_API}/clusterqueues/{KUEUE_QUEUE}").get("status")
            except (ApiError, OSError) as error:
                w["clusterqueue_status"] = f"unreadable: {error}"
        log(f"{kind}: complete in {w['complete_s']:.1f} s; all {n} pods existed at "
            f"{w['all_pods_s'] if w['all_pods_s'] is None else round(w['all_pods_s'], 1)} s")
        return w


def answers_200(connect, path="/healthz"):
    """Whether GET `path` on a fresh connection from `connect()` answers 200."""
    conn = connect()
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, seconds, check, alive=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if alive is not None and alive.poll() is not None:
            raise BenchError(f"process exited ({alive.returncode}) while waiting for {what}")
        try:
            if check():
                return
        except (OSError, ApiError):
            pass
        time.sleep(0.25)
    raise BenchError(f"timed out after {seconds} s waiting for {what}")


# ---------------------------------------------------------------------------------------------
# Report


def fmt(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def ratio(a, b):
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}"


def report(bench, base, rj, ij):
    n = bench.args.shards
    out = []
    p = out.append
    rate = {c: k / base["seconds"] for c, k in base["by_client"].items()}
    base_rate = base["requests"] / base["seconds"]

    def net(w):
        return w["requests"] - base_rate * w["seconds"]

    def client(w, name):
        return w["by_client"].get(name, 0)

    def client_net(w, name):
        return client(w, name) - rate.get(name, 0) * w["seconds"]

    rows = []

    def row(label, a, b, digits=1, show_ratio=True):
        rows.append((label, fmt(a, digits), fmt(b, digits), ratio(a, b) if show_ratio else ""))

    row(f"create -> all {n} pods existed (s)", rj["all_pods_s"], ij["all_pods_s"])
    row("create -> Complete (s)", rj["complete_s"], ij["complete_s"])
    row("pods seen (RenderJob: shard pods)", rj["pods_seen"], ij["pods_seen"], show_ratio=False)
    row(f"throughput (pods/s to Complete)", n / rj["complete_s"], n / ij["complete_s"])
    row("apiserver_request_total delta", rj["requests"], ij["requests"], 0)
    row("  ... per shard", rj["requests"] / n, ij["requests"] / n, 2)
    row("  ... per shard, net of idle rate", net(rj) / n, net(ij) / n, 2)
    row("audited requests (same window)", rj["audited"], ij["audited"], 0)
    row("workload controller reqs/shard", client(rj, "tessera-operator") / n,
        client(ij, "kcm: job-controller") / n, 2)
    row("  (operator | kcm job-controller identity)", None, None, show_ratio=False)
    for name in ("kube-scheduler", "node-agent (fake kubelets)", "kcm: generic-garbage-collector",
                 "kcm: shared informers", "bench harness (admin)"):
        row(f"{name} reqs/shard", client(rj, name) / n, client(ij, name) / n, 2)
    others = lambda w: sum(v for k, v in w["by_client"].items()  # noqa: E731
                           if k not in ("tessera-operator", "kcm: job-controller", "kube-scheduler",
                                        "node-agent (fake kubelets)", "kcm: generic-garbage-collector",
                                        "kcm: shared informers", "bench harness (admin)"))
    row("all other clients reqs/shard", others(rj) / n, others(ij) / n, 2)
    row("workload controller peak RSS (MiB)", rj["peak"].get("tessera-operator", 0) / 1024,
        ij["peak"].get("controller-manager", 0) / 1024, 0)
    row("  (operator | whole kube-controller-manager)", None, None, show_ratio=False)
    row("workload controller CPU (s)", rj["cpu"].get("tessera-operator"), ij["cpu"].get("controller-manager"), 1)
    row("  (operator | whole kube-controller-manager)", None, None, show_ratio=False)
    procs = (("tessera-operator", "tessera-operator"), ("controller-manager", "kube-controller-manager"),
             ("apiserver", "kube-apiserver"), ("scheduler", "kube-scheduler"),
             ("etcd", "etcd"), ("node-agent", "node-agent"))
    for comp, label in procs:
        row(f"{label} peak RSS in run (MiB)", rj["peak"].get(comp, 0) / 1024, ij["peak"].get(comp, 0) / 1024, 0,
            show_ratio=comp != "tessera-operator")
    for comp, label in procs:
        row(f"{label} CPU in run (s)", rj["cpu"].get(comp), ij["cpu"].get(comp), 1,
            show_ratio=comp != "tessera-operator")

    w0 = max(len(r[0]) for r in rows)
    p("")
    p(f"=== Tessera scale bench: {n} shards vs Indexed Job, {bench.args.gpu_nodes} GPU nodes x "
      f"{bench.args.gpus_per_node} GPUs = {bench.slots} slots ===")
    p(f"{'':{w0}}  {'RenderJob':>11}  {'IndexedJob':>11}  {'RJ/IJ':>6}")
    for label, a, b, r in rows:
        if label.startswith("  ("):
            p(label)
            continue
        p(f"{label:{w0}}  {a:>11}  {b:>11}  {r:>6}")
    p("")
    p(f"order: {'IndexedJob first' if bench.args.order == 'ij-first' else 'RenderJob first'}; "
      f"kube-controller-manager extra flags: {' '.join(bench.args.kcm_arg) or 'none (client QPS 20, burst 30: upstream defaults)'}")
    p(f"operator /readyz at start: {'200' if bench.readyz_ok else '503 caches not synced (the operator worked anyway)'}")
    p(f"idle baseline ({base['seconds']:.0f} s, nothing running): {base_rate:.2f} req/s "
      f"({', '.join(f'{k} {v:.2f}' for k, v in sorted(rate.items(), key=lambda kv: -kv[1]))})")
    p(f"windows: from just before create to {bench.args.settle:.0f} s after Complete "
      f"(RenderJob {rj['seconds']:.1f} s, IndexedJob {ij['seconds']:.1f} s); "
      f"request delta at the Complete moment: {rj['at_complete_requests']:.0f} vs {ij['at_complete_requests']:.0f}")
    if rj.get("merge_seen_s") is not None:
        p(f"RenderJob merge pod created at {rj['merge_seen_s']:.1f} s (counted in Complete, not in the {n} pods)")
    if rj["operator"]:
        p(operator_line(rj))
    for w in (rj, ij):
        p("")
        p(f"top audited calls, {w['kind']} window:")
        top_calls(p, w, n)
    return "\n".join(out)


def operator_line(w):
    op = w["operator"]
    cnt = op.get("tessera_reconcile_duration_seconds_count:RenderJob", 0)
    tot = op.get("tessera_reconcile_duration_seconds_sum:RenderJob", 0)
    created = ", ".join(f"{k.split(':')[1]} {v:.0f}" for k, v in op.items() if k.startswith("pods_created"))
    errors = sum(v for k, v in op.items() if k.startswith("reconcile_errors"))
    mean_ms = (tot / cnt * 1000) if cnt else 0
    return (f"operator during the {w['kind']} run: {cnt:.0f} RenderJob reconciles, {tot:.2f} s inside them "
            f"({mean_ms:.1f} ms mean); pods created: {created}; reconcile errors: {errors:.0f}")


def top_calls(p, w, n, count=14):
    for (c, verb, res), k in sorted(w["by_call"].items(), key=lambda kv: -kv[1])[:count]:
        p(f"  {k:6d}  {k / n:5.2f}/shard  {c:28s} {verb:7s} {res}")


def report_kueue(bench, base, rj, kq):
    """The second table: the RenderJob case against the same RenderJob queued in Kueue."""
    n = bench.args.shards
    out = []
    p = out.append
    rate = {c: k / base["seconds"] for c, k in base["by_client"].items()}
    base_rate = base["requests"] / base["seconds"]
    rows = []

    def row(label, a, b, digits=2):
        diff = None if a is None or b is None else b - a
        rows.append((label, fmt(a, digits), fmt(b, digits), fmt(diff, digits) if diff is not None else "-"))

    def client(w, name):
        return w["by_client"].get(name, 0)

    def client_net(w, name):
        return client(w, name) - rate.get(name, 0) * w["seconds"]

    main = ("tessera-operator", "kueue", "kube-scheduler", "node-agent (fake kubelets)")
    row(f"create -> all {n} shard pods existed (s)", rj["all_pods_s"], kq["all_pods_s"], 1)
    row("create -> Complete (s)", rj["complete_s"], kq["complete_s"], 1)
    row("throughput (pods/s to Complete)", n / rj["complete_s"], n / kq["complete_s"], 1)
    row("tessera-operator reqs/shard", client(rj, "tessera-operator") / n, client(kq, "tessera-operator") / n)
    row("kueue reqs/shard", client(rj, "kueue") / n, client(kq, "kueue") / n)
    row("  ... net of its idle rate", client_net(rj, "kueue") / n, client_net(kq, "kueue") / n)
    for name in main[2:]:
        row(f"{name} reqs/shard", client(rj, name) / n, client(kq, name) / n)
    others = lambda w: sum(v for k, v in w["by_client"].items() if k not in main)  # noqa: E731
    row("all other clients reqs/shard", others(rj) / n, others(kq) / n)
    row("all clients reqs/shard (apiserver_request_total)", rj["requests"] / n, kq["requests"] / n)
    row("  ... net of idle rate", (rj["requests"] - base_rate * rj["seconds"]) / n,
        (kq["requests"] - base_rate * kq["seconds"]) / n)
    row("audited requests/shard (same window)", rj["audited"] / n, kq["audited"] / n)
    for comp, label in (("tessera-operator", "tessera-operator"), ("kueue", "kueue"),
                        ("apiserver", "kube-apiserver")):
        row(f"{label} CPU in run (s)", rj["cpu"].get(comp), kq["cpu"].get(comp), 1)
    for comp, label in (("tessera-operator", "tessera-operator"), ("kueue", "kueue")):
        row(f"{label} peak RSS in run (MiB)", rj["peak"].get(comp, 0) / 1024, kq["peak"].get(comp, 0) / 1024, 0)

    w0 = max(len(r[0]) for r in rows)
    p("")
    p(f"=== What Kueue costs: the {n}-shard RenderJob alone vs queued in Kueue "
      f"(ClusterQueue {KUEUE_QUEUE}: {', '.join(f'{k} {v}' for k, v in bench.kueue_quota.items())}) ===")
    p(f"{'':{w0}}  {'RenderJob':>11}  {'RJ+Kueue':>11}  {'diff':>7}")
    for label, a, b, d in rows:
        p(f"{label:{w0}}  {a:>11}  {b:>11}  {d:>7}")
    p("")
    p(f"windows: RenderJob {rj['seconds']:.1f} s, RenderJob+Kueue {kq['seconds']:.1f} s "
      f"(from just before create to {bench.args.settle:.0f} s after Complete); Kueue's idle rate "
      f"{rate.get('kueue', 0):.2f} req/s")
    wl = kq.get("workload") or {}
    if wl.get("name"):
        adm = wl["admitted_counts"]
        rec = wl["reclaimable"]
        p(f"Workload {wl['name']} (pod sets {wl['spec_pod_sets']}): seen at {fmt(wl['seen_s'])} s, "
          f"Admitted at {fmt(wl['admitted_s'])} s, Finished at {fmt(wl['finished_s'])} s; "
          f"{wl['watch_events']} watch events")
        p(f"  admitted count changes: {', '.join(f'{c} at {fmt(t)} s' for t, c in adm[:8])}"
          f"{' ...' if len(adm) > 8 else ''}")
        p(f"  reclaimablePods changes: {len(rec)}"
          + (f", first {rec[0][1]} at {fmt(rec[0][0])} s, last {rec[-1][1]} at {fmt(rec[-1][0])} s" if rec else ""))
        conds = ((wl.get("status") or {}).get("conditions")) or []
        p("  final conditions: " + ", ".join(f"{c.get('type')}={c.get('status')} ({c.get('reason')})" for c in conds))
    else:
        p("Workload: never seen by the bench's watch")
    cq = kq.get("clusterqueue_status")
    if isinstance(cq, dict):
        usage = [(r.get("name"), r.get("total")) for fu in cq.get("flavorsReservation") or []
                 for r in fu.get("resources") or []]
        p(f"ClusterQueue {KUEUE_QUEUE} at the end of the window: reservingWorkloads "
          f"{cq.get('reservingWorkloads', 0)}, admittedWorkloads {cq.get('admittedWorkloads', 0)}, "
          f"pendingWorkloads {cq.get('pendingWorkloads', 0)}, reserved {usage}")
    if kq["operator"]:
        p(operator_line(kq))
    p("")
    p(f"top audited calls, {kq['kind']} window:")
    top_calls(p, kq, n)
    p("")
    p(f"{KUEUE_GROUP} calls, {kq['kind']} window (client, verb, resource, HTTP code):")
    for c in kq["kueue_calls"]:
        p(f"  {c['count']:6d}  {c['client']:28s} {c['verb']:7s} {c['resource']:28s} {c['code']}")
    return "\n".join(out)


def parser(description, binaries):
    """The arguments every scale bench takes: the repository, the binaries, the directory."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--bin", required=True, help=f"directory with {binaries}")
    ap.add_argument("--testcluster", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--dir", required=True, help="fresh working directory")
    return ap


def main():
    ap = parser(__doc__.split("\n")[0], "tessera-operator, node-agent, fake-render-pod")
    ap.add_argument("--shards", type=int, default=1000)
    ap.add_argument("--gpu-nodes", type=int, default=10)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--true-binary", default="/bin/true")
    ap.add_argument("--baseline", type=float, default=15, help="seconds of idle baseline")
    ap.add_argument("--settle", type=float, default=5, help="seconds counted after Complete")
    ap.add_argument("--run-timeout", type=float, default=240, help="seconds per case")
    ap.add_argument("--total-timeout", type=int, default=None,
                    help="seconds for everything (default 660; 900 with --kueue)")
    ap.add_argument("--kcm-arg", action="append", default=[], help="extra kube-controller-manager flag")
    ap.add_argument("--order", choices=["rj-first", "ij-first"], default="rj-first",
                    help="which case runs first (default: the RenderJob)")
    ap.add_argument("--kueue", help="Kueue binary (e2e/kueue/bin/kueue; CRDs in its directory's crds/): "
                    "adds the RenderJob+Kueue case after the other two")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    if args.total_timeout is None:
        args.total_timeout = 900 if args.kueue else 660
    if args.kueue and not os.access(args.kueue, os.X_OK):
        ap.error(f"--kueue {args.kueue}: not an executable file")

    bench = Bench(args)

    def body():
        bench.up()
        time.sleep(3)
        base = bench.idle_baseline(args.baseline)
        results = {}
        for kind in (["IndexedJob", "RenderJob"] if args.order == "ij-first" else ["RenderJob", "IndexedJob"]):
            results[kind] = bench.run_case(kind)
        if args.kueue:
            results["RenderJob+Kueue"] = bench.run_case("RenderJob+Kueue")
        rj, ij = results["RenderJob"], results["IndexedJob"]
        text = report(bench, base, rj, ij)
        kq = results.get("RenderJob+Kueue")
        if kq is not None:
            text += "\n" + report_kueue(bench, base, rj, kq)
        if args.json:
            with open(args.json, "w") as f:
                strip = lambda w: {k: v for k, v in w.items() if k != "by_call"}  # noqa: E731
                raw = {"baseline": strip(base), "renderjob": strip(rj), "indexedjob": strip(ij)}
                if kq is not None:
                    raw["renderjob_kueue"] = strip(kq)
                    raw["kueue_quota"] = bench.kueue_quota
                raw["settings"] = vars(args)
                json.dump(raw, f, indent=1, default=str)
        print(text, flush=True)

    programs = {args.testcluster, args.true_binary} | ({args.kueue} if args.kueue else set()) | {
        os.path.join(args.bin, b) for b in ("node-agent", "tessera-operator", "fake-render-pod")}
    return bounded_run(args, bench.procs, programs, body)


def bounded_run(args, procs, programs, body):
    """Runs `body` under --total-timeout (SIGALRM) and the usual signals; whatever happens,
    stops what `procs` started and kills leftovers of `programs` in --dir. The exit code."""
    def interrupt(signum, _frame):
        raise Deadline(f"signal {signum}" if signum != signal.SIGALRM else
                       f"--total-timeout ({args.total_timeout} s) reached")
    for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, interrupt)
    signal.alarm(args.total_timeout)
    code, started = 0, time.monotonic()
    try:
        body()
    except (BenchError, Deadline, subprocess.SubprocessError, OSError) as error:
        log(f"FAILED: {error}")
        code = 1
    finally:
        signal.alarm(0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        procs.stop_all()
        for pid, cmd in leftover_processes(args.dir, programs):
            log(f"left behind, killing: {pid} {cmd[:120]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        log(f"done in {time.monotonic() - started:.0f} s; logs and audit log in {args.dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
