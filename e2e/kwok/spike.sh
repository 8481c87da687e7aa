#!/usr/bin/env bash
# End-to-end check of KWOK (e2e/kwok/bin/kwok) with Tessera's stages against the test control plane;
# exits non-zero on the first failure. Only kubectl is needed as a client (no jq, no python).
#
#   e2e/kwok/spike.sh [DIR]        (default DIR: $KWOK_SPIKE_DIR or /tmp/kwok-spike)
#
# Environment: KWOK_SPIKE_NODES (1000), KWOK_SPIKE_PODS (Job completions, 2000), KWOK_SPIKE_IDLE_S
# (idle measuring window, 60), KWOK_SPIKE_TIMEOUT (per wait, 120 s; the Job gets 10x), KWOK_SPIKE_KCM_QPS
# (kube-controller-manager --kube-api-qps, 200; its default of 20 makes the Job controller the bottleneck,
# see README.md; 0 keeps the default), TESTCLUSTER_BIN, KWOK_BIN_DIR, KUBE_TOOLS_BIN.
#
# 1. builds what is missing; `testcluster up --dir DIR/cluster`; starts kwok with kwok.yaml,
#    node-stages.yaml, pod-stages.yaml (--v=WARN) and waits for /healthz;
# 2. creates KWOK_SPIKE_NODES nodes (nvidia.com/gpu 8, cpu 64, memory 512Gi, pods 110, label
#    tessera.dev/node-group=kwok-gpu, annotation kwok.x-k8s.io/node=fake, taint kwok.x-k8s.io/node=fake:NoSchedule);
#    measures the time until all are Ready and until the controller-manager has removed every
#    node.kubernetes.io/not-ready taint (schedulable);
# 3. idle: CPU and RSS of kwok and the control plane, API requests/s by verb and resource (from the
#    apiserver's apiserver_request_total) over KWOK_SPIKE_IDLE_S; checks the lease rate;
# 4. pod stages: outcome/exit code/duration annotations, kubelet-like status, restartPolicy Always,
#    fail-percent 0 and 100, deletion of running pods with and without the tessera.dev/ledger finalizer
#    (KWOK must leave it alone), deletion of a terminal pod with a finalizer;
# 5. an Indexed Job of KWOK_SPIKE_PODS pods (nvidia.com/gpu 1, run 1-3 s, fail-percent 1, backoffLimit
#    large) scheduled by the real kube-scheduler completes; counts, exit codes, time, pods/s;
# 6. no ERROR in kwok's log except stale stage decisions refused by the stages' phase test (see
#    README.md); SIGTERM stops kwok (exit code 1 is upstream's) and the cluster.
# All waits are bounded polling loops.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${1:-${KWOK_SPIKE_DIR:-/tmp/kwok-spike}}"
tc="${TESTCLUSTER_BIN:-$repo/e2e/testcluster/bin/testcluster}"
bindir="${KWOK_BIN_DIR:-$here/bin}"
tools="${KUBE_TOOLS_BIN:-$HOME/.cache/tessera/kube-tools/bin}"
timeout="${KWOK_SPIKE_TIMEOUT:-120}"
n_nodes="${KWOK_SPIKE_NODES:-1000}"
n_pods="${KWOK_SPIKE_PODS:-2000}"
idle_s="${KWOK_SPIKE_IDLE_S:-60}"
kcm_qps="${KWOK_SPIKE_KCM_QPS:-200}"

log() { printf '%s kwok-spike: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
pass() { log "PASS: $*"; }

[[ -x "$tc" ]] || "$repo/e2e/testcluster/build.sh" "$tc"
"$here/build.sh" "$bindir"
"$repo/e2e/scripts/get-kube-tools.sh" "$tools" >/dev/null 2>&1 || "$repo/e2e/scripts/get-kube-tools.sh" "$tools"
kubectl="$tools/kubectl"

rm -rf "$dir"
mkdir -p "$dir"
up_pid=""
kwok_pid=""
cleanup() {
	local rc=$?
	if ((rc != 0)) && [[ -n "$up_pid" ]]; then
		log "pods at the failure:"
		k get pods -o wide 2>/dev/null | head -n 30 >&2 || true
	fi
	if [[ -n "$kwok_pid" ]] && kill -0 "$kwok_pid" 2>/dev/null; then
		kill -TERM "$kwok_pid" 2>/dev/null || true
		wait "$kwok_pid" 2>/dev/null || true
	fi
	if [[ -n "$up_pid" ]] && kill -0 "$up_pid" 2>/dev/null; then
		kill -TERM "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
	fi
	if ((rc != 0)); then
		log "last lines of $dir/kwok.log and $dir/up.log:"
		tail -n 15 "$dir/kwok.log" >&2 2>/dev/null || true
		tail -n 10 "$dir/up.log" >&2 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: poll COMMAND every 0.25 s until it succeeds.
wait_for() {
	local t=$1 what=$2
	shift 2
	local end=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		[[ -z "$up_pid" ]] || kill -0 "$up_pid" 2>/dev/null || fail "testcluster up exited while waiting for $what"
		[[ -z "$kwok_pid" ]] || kill -0 "$kwok_pid" 2>/dev/null || fail "kwok exited while waiting for $what"
		((SECONDS < end)) || fail "timed out after ${t}s waiting for $what"
		sleep 0.25
	done
}
k() { "$kubectl" "$@"; }
expect() { # expect DESCRIPTION ACTUAL WANT
	[[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"
}
ms() { date +%s%3N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
pod() { k get pod "$1" -o jsonpath="$2"; }
phase_is() { [[ "$(pod "$1" '{.status.phase}')" == "$2" ]]; }
gone() { ! k get pod "$1" >/dev/null 2>&1; }
ts() { date -d "$1" +%s; } # RFC 3339 -> epoch seconds

# --- control plane, kwok ---------------------------------------------------------------------------
up_args=(up --dir "$dir/cluster")
if ((kcm_qps > 0)); then
	up_args+=(--controller-manager-arg="--kube-api-qps=$kcm_qps" --controller-manager-arg="--kube-api-burst=$((kcm_qps * 3 / 2))")
fi
"$tc" "${up_args[@]}" >"$dir/up.log" 2>&1 &
up_pid=$!
wait_for 300 "control plane ready" test -f "$dir/cluster/ready"
export KUBECONFIG="$dir/cluster/kubeconfig"
pass "control plane ready (controller-manager --kube-api-qps=${kcm_qps/#0/default})"

port=""
for p in $(seq $((20000 + RANDOM % 20000)) 1 40100); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || fail "no free port"
# HOME: kwok also loads ~/.kwok/kwok.yaml when it exists; keep it out.
HOME="$dir" "$bindir/kwok" --kubeconfig="$KUBECONFIG" \
	--config="$here/kwok.yaml" --config="$here/node-stages.yaml" --config="$here/pod-stages.yaml" \
	--server-address="127.0.0.1:$port" --v=WARN >"$dir/kwok.log" 2>&1 &
kwok_pid=$!
wait_for "$timeout" "kwok /healthz" k get --raw /healthz --server="http://127.0.0.1:$port"
pass "kwok $("$bindir/kwok" --version | awk '{print $3}') running (/healthz on 127.0.0.1:$port)"

# --- nodes -----------------------------------------------------------------------------------------
nodes() { # nodes COUNT
	local i name
	for ((i = 0; i < $1; i++)); do
		printf -v name 'kwok-gpu-%04d' "$i"
		cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/arch: amd64, kubernetes.io/hostname: $name, kubernetes.io/os: linux, type: kwok, tessera.dev/node-group: kwok-gpu}
spec:
  taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "8", ephemeral-storage: 1Ti}
  capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "8", ephemeral-storage: 1Ti}
  addresses: [{type: InternalIP, address: "10.48.$((i / 250)).$((i % 250 + 1))"}, {type: Hostname, address: $name}]
EOF
	done
}
nodes "$n_nodes" >"$dir/nodes.yaml"
n_ready() { k get nodes -l tessera.dev/node-group=kwok-gpu -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true; }
n_tainted() { k get nodes -l tessera.dev/node-group=kwok-gpu -o jsonpath='{range .items[*]}{.spec.taints[*].key}{"\n"}{end}' | grep -c 'node.kubernetes.io/' || true; }
all_ready() { [[ "$(n_ready)" == "$n_nodes" ]]; }
untainted() { [[ "$(n_tainted)" == 0 ]]; }
t0=$(ms)
k create -f "$dir/nodes.yaml" >/dev/null
t1=$(ms)
wait_for "$timeout" "$n_nodes nodes Ready" all_ready
t2=$(ms)
wait_for "$((timeout * 3))" "no node.kubernetes.io/* taint on $n_nodes nodes" untainted
t3=$(ms)
expect "leases in kube-node-lease" "$(k get leases -n kube-node-lease --no-headers | wc -l)" "$n_nodes"
expect "kwok-gpu-0000 allocatable/capacity GPUs" \
	"$(k get node kwok-gpu-0000 -o jsonpath='{.status.allocatable.nvidia\.com/gpu}/{.status.capacity.nvidia\.com/gpu}/{.status.allocatable.cpu}/{.status.allocatable.memory}/{.status.allocatable.pods}')" "8/8/64/512Gi/110"
pass "$n_nodes nodes: created in $(secs "$t0" "$t1") s (kubectl create, sequential); all Ready $(secs "$t0" "$t2") s after the first create; not-ready taints removed by the controller-manager after $(secs "$t0" "$t3") s"

# --- idle cost -------------------------------------------------------------------------------------
comp_pid() { ps --ppid "$up_pid" -o pid=,args= | awk -v c="$1" '$3 == c {print $1}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
reqs() { # "verb/resource count" from apiserver_request_total
	k get --raw /metrics | awk '/^apiserver_request_total\{/ {
		v = ""; r = ""
		if (match($0, /verb="[^"]*"/)) v = substr($0, RSTART + 6, RLENGTH - 7)
		if (match($0, /resource="[^"]*"/)) r = substr($0, RSTART + 10, RLENGTH - 11)
		n = $NF; c[v "/" r] += n
	} END { for (x in c) print x, c[x] }' | sort
}
names=(kwok apiserver etcd controller-manager scheduler)
pids=()
usage_start() { # CPU ticks of kwok and the control plane, and apiserver_request_total, now
	pids=("$kwok_pid" "$(comp_pid apiserver)" "$(comp_pid etcd)" "$(comp_pid controller-manager)" "$(comp_pid scheduler)")
	c0=()
	for i in "${!pids[@]}"; do c0+=("$(ticks "${pids[$i]}")"); done
	r0=$(reqs)
	u0=$(ms)
}
usage_report() { # usage_report LABEL: CPU %, RSS and API requests/s since usage_start
	local label=$1 w i
	w=$(secs "$u0" "$(ms)")
	for i in "${!pids[@]}"; do
		log "$label: ${names[$i]} CPU $(awk -v a="${c0[$i]}" -v b="$(ticks "${pids[$i]}")" -v w="$w" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) * 100 / hz / w }') %, RSS $(rss_mib "${pids[$i]}") MiB"
	done
	join <(echo "$r0") <(reqs) | awk -v w="$w" '{ d = ($3 - $2) / w; if (d >= 0.05) printf "%s %.2f\n", $1, d }' >"$dir/rates"
	while read -r x d; do log "$label: apiserver requests $x $d/s"; done <"$dir/rates"
	log "$label: apiserver requests total $(awk '{ t += $2 } END { printf "%.1f", t }' "$dir/rates")/s over ${w} s"
}
sleep 5 # let the node creation burst drain before the idle window opens
usage_start
sleep "$idle_s" # the idle window itself: its request rate is the figure measured
usage_report "idle, $n_nodes nodes"
lease_rate=$(awk '$1 == "PUT/leases" { print $2 }' "$dir/rates")
# nodeLeaseDurationSeconds 160 -> a renewal every 40-41.6 s per node (checked over >= 45 s only).
if ((idle_s >= 45)); then
	awk -v r="${lease_rate:-0}" -v n="$n_nodes" 'BEGIN { exit !(r > n / 50 && r < n / 30) }' ||
		fail "lease renewals ${lease_rate:-0}/s, want about $n_nodes/40"
fi
all_ready || fail "not all nodes Ready after idling ${idle_s}s"
untainted || fail "a node got a node.kubernetes.io/* taint while idling"
pass "idle: ${lease_rate:-0} lease renewals/s for $n_nodes nodes; all still Ready and untainted"

# --- pod stages ------------------------------------------------------------------------------------
mkpod() { # mkpod NAME RESTART_POLICY ANNOTATIONS(flow map) [FINALIZERS(flow list)]
	cat <<EOF | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {spike: stages}, annotations: $3, finalizers: ${4:-[]}}
spec:
  restartPolicy: $2
  nodeSelector: {tessera.dev/node-group: kwok-gpu}
  tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
  containers:
  - name: render
    image: registry.invalid/tessera/render:1
    resources: {limits: {nvidia.com/gpu: 1}}
EOF
}
mkpod p-ok Never '{kwok.tessera.dev/run-duration: 5s, kwok.tessera.dev/outcome: succeed}'
wait_for "$timeout" "p-ok Running" phase_is p-ok Running
# One read of the running status (the run ends after 5 s).
IFS='|' read -r r_cond r_ip r_ips r_host r_node r_start r_cid <<<"$(pod p-ok '{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="ContainersReady")].status}/{.status.conditions[?(@.type=="PodScheduled")].status}/{.status.containerStatuses[0].ready}/{.status.containerStatuses[0].started}/{.status.phase}|{.status.podIP}|{.status.podIPs[0].ip}|{.status.hostIP}|{.spec.nodeName}|{.status.startTime}|{.status.containerStatuses[0].state.running.startedAt}')"
expect "p-ok Ready/ContainersReady/PodScheduled/ready/started/phase" "$r_cond" "True/True/True/true/true/Running"
[[ "$r_ip" == 10.* && "$r_ips" == "$r_ip" ]] || fail "p-ok podIP '$r_ip', podIPs[0] '$r_ips'"
expect "p-ok hostIP (its node's InternalIP)" "$r_host" "$(k get node "$r_node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
[[ -n "$r_start" && -n "$r_cid" ]] || fail "p-ok startTime '$r_start', running.startedAt '$r_cid'"
mkpod p-fail Never '{kwok.tessera.dev/run-duration: 1s, kwok.tessera.dev/outcome: fail, kwok.tessera.dev/exit-code: "3"}'
mkpod p-always Always '{kwok.tessera.dev/run-duration: 1s}'
mkpod p-ledger Never '{kwok.tessera.dev/run-duration: 1h}' '[tessera.dev/ledger]'
mkpod p-plain Never '{kwok.tessera.dev/run-duration: 1h}'
mkpod p-done Never '{kwok.tessera.dev/run-duration: 100ms, kwok.tessera.dev/outcome: succeed}' '[tessera.dev/ledger]'
for i in 1 2 3 4 5 6 7 8 9 10; do
	mkpod "p-pct0-$i" Never '{kwok.tessera.dev/run-duration: 100ms, kwok.tessera.dev/fail-percent: "0"}'
	mkpod "p-pct100-$i" Never '{kwok.tessera.dev/run-duration: 100ms, kwok.tessera.dev/fail-percent: "100"}'
done
wait_for "$timeout" "p-ok Succeeded" phase_is p-ok Succeeded
expect "p-ok terminated" "$(pod p-ok '{.status.containerStatuses[0].state.terminated.exitCode}/{.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].ready}/{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}')" "0/Completed/false/False/PodCompleted"
run=$(($(ts "$(pod p-ok '{.status.containerStatuses[0].state.terminated.finishedAt}')") - $(ts "$(pod p-ok '{.status.containerStatuses[0].state.terminated.startedAt}')")))
((run >= 4 && run <= 7)) || fail "p-ok ran ${run}s (finishedAt - startedAt), want ~5s"
[[ "$(pod p-ok '{.status.containerStatuses[0].containerID}')" == containerd://* && -n "$(pod p-ok '{.status.containerStatuses[0].imageID}')" ]] || fail "p-ok lost containerID/imageID"
wait_for "$timeout" "p-fail Failed" phase_is p-fail Failed
expect "p-fail terminated" "$(pod p-fail '{.status.containerStatuses[0].state.terminated.exitCode}/{.status.containerStatuses[0].state.terminated.reason}')" "3/Error"
pass "a. outcome/exit-code/run-duration: p-ok Running (podIP, hostIP, startTime, Ready) then Succeeded (exit 0, Completed, ran ${run}s); p-fail Failed (exit 3, Error)"

n_phase() { k get pods -l spike=stages -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}' | grep -c "^$1-[0-9]* $2\$" || true; }
pct_done() { [[ "$(n_phase p-pct0 Succeeded)" == 10 && "$(n_phase p-pct100 Failed)" == 10 ]]; }
wait_for "$timeout" "fail-percent 0 pods Succeeded and fail-percent 100 pods Failed" pct_done
phase_is p-always Running || fail "p-always (restartPolicy Always) left Running"
pass "b. fail-percent 0: 10/10 Succeeded, 100: 10/10 Failed; restartPolicy Always stays Running"

# Deleted while running, with our finalizer: terminal Failed (143), kept until the finalizer goes.
wait_for "$timeout" "p-ledger Running" phase_is p-ledger Running
wait_for "$timeout" "p-plain Running" phase_is p-plain Running
wait_for "$timeout" "p-done Succeeded" phase_is p-done Succeeded
k delete pod p-ledger p-plain p-done --wait=false >/dev/null
wait_for "$timeout" "p-ledger Failed after deletion" phase_is p-ledger Failed
expect "p-ledger killed" "$(pod p-ledger '{.status.containerStatuses[0].state.terminated.exitCode}/{.status.containerStatuses[0].state.terminated.reason}/{.metadata.finalizers}')" '143/Error/["tessera.dev/ledger"]'
wait_for "$timeout" "p-plain deleted" gone p-plain
sleep 3 # a negative check: KWOK must not strip the ledger finalizer in this window
expect "p-ledger after 3 s" "$(pod p-ledger '{.status.phase}/{.metadata.finalizers}/{.metadata.deletionGracePeriodSeconds}')" 'Failed/["tessera.dev/ledger"]/30'
expect "p-done (terminal, deleted: grace period 0)" "$(pod p-done '{.status.phase}/{.metadata.finalizers}/{.metadata.deletionGracePeriodSeconds}')" 'Succeeded/["tessera.dev/ledger"]/0'
k patch pod p-ledger --type=json -p '[{"op":"remove","path":"/metadata/finalizers/0"}]' >/dev/null
k patch pod p-done --type=json -p '[{"op":"remove","path":"/metadata/finalizers/0"}]' >/dev/null
wait_for "$timeout" "p-ledger gone after its finalizer was removed" gone p-ledger
wait_for "$timeout" "p-done gone after its finalizer was removed" gone p-done
pass "c. deletion: running pod without finalizer removed; with tessera.dev/ledger: Failed (143) and kept, finalizer untouched, removed once it is gone; terminal pod with finalizer kept (grace 0) until the finalizer goes"
k delete pods -l spike=stages --wait=false >/dev/null
no_stage_pods() { [[ -z "$(k get pods -l spike=stages -o name)" ]]; }
wait_for "$timeout" "stage-check pods deleted" no_stage_pods

# --- Job -------------------------------------------------------------------------------------------
cat >"$dir/job.yaml" <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: render, namespace: default}
spec:
  completionMode: Indexed
  completions: $n_pods
  parallelism: $n_pods
  backoffLimit: $n_pods
  template:
    metadata:
      labels: {spike: job}
      annotations: {kwok.tessera.dev/run-duration: 1s, kwok.tessera.dev/run-duration-max: 3s, kwok.tessera.dev/fail-percent: "1"}
    spec:
      restartPolicy: Never
      nodeSelector: {tessera.dev/node-group: kwok-gpu}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers:
      - name: render
        image: registry.invalid/tessera/render:1
        resources: {limits: {nvidia.com/gpu: 1}}
EOF
usage_start
j0=$(ms)
k create -f "$dir/job.yaml" >/dev/null
job() { k get job render -o jsonpath="$1"; }
job_done() { [[ "$(job '{.status.conditions[?(@.type=="Complete")].status}/{.status.conditions[?(@.type=="Failed")].status}')" == *True* ]]; }
wait_for "$((timeout * 10))" "Job render Complete" job_done
[[ "$(job '{.status.conditions[?(@.type=="Complete")].status}')" == True ]] || fail "Job failed: $(job '{.status}')"
j1=$(ms)
usage_report "Job"
succeeded=$(job '{.status.succeeded}')
failed=$(job '{.status.failed}')
expect "Job succeeded" "$succeeded" "$n_pods"
# 1 % of >= 2,000 runs: P(no failure) = 0.99^2000 ~ 2e-9.
((failed >= 1 && failed <= n_pods / 20)) || fail "Job failed pods: $failed, want ~1 % of $n_pods"
k get pods -l spike=job -o jsonpath='{range .items[*]}{.status.phase} {.spec.nodeName} {.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.startedAt} {.status.containerStatuses[0].state.terminated.finishedAt}{"\n"}{end}' >"$dir/job-pods"
expect "Job pods Succeeded with exit 0/Completed" "$(grep -c '^Succeeded kwok-gpu-[0-9]* 0 Completed ' "$dir/job-pods")" "$n_pods"
expect "Job pods Failed with exit 1/Error" "$(grep -c '^Failed kwok-gpu-[0-9]* 1 Error ' "$dir/job-pods")" "$failed"
durations=$(awk '{ print $5, $6 }' "$dir/job-pods" | while read -r a b; do echo $(($(ts "$b") - $(ts "$a"))); done | sort -n | uniq -c | awk '{ printf "%s%ss x%s", sep, $2, $1; sep = ", " }')
nodes_used=$(awk '{ print $2 }' "$dir/job-pods" | sort -u | wc -l)
pass "Job $n_pods pods: Complete after $(secs "$j0" "$j1") s ($(awk -v n="$((succeeded + failed))" -v t="$(secs "$j0" "$j1")" 'BEGIN { printf "%.1f", n / t }') pods/s), succeeded $succeeded, failed $failed (exit 1), on $nodes_used nodes; run times (finishedAt - startedAt, 1 s resolution): $durations"

# --- end -------------------------------------------------------------------------------------------
# The only expected errors: a stage decided on a stale snapshot, refused by the JSON patch's test of
# .status.phase (HTTP 422; client-go reports "the server rejected our request due to an error in our request").
refused='the server rejected our request due to an error in our request","pod":"[^"]*","stage":"pod-\(start\|succeed\|fail\|kill\)"'
stale=$(grep -c "$refused" "$dir/kwok.log" || true)
if grep '"level":"ERROR"' "$dir/kwok.log" | grep -v "$refused" >&2; then fail "kwok logged errors"; fi
pass "kwok logged no unexpected errors ($stale stale stage decisions refused by the phase test)"
kill -TERM "$kwok_pid"
rc=0
wait "$kwok_pid" || rc=$?
kwok_pid=""
log "kwok exited with $rc after SIGTERM"
kill -TERM "$up_pid"
rc=0
wait "$up_pid" || rc=$?
up_pid=""
expect "testcluster up exit code" "$rc" 0
pass "kwok and the control plane stopped"
