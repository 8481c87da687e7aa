#!/usr/bin/env bash
# End-to-end check of Kueue (e2e/kueue/bin/kueue) against the test control plane; exits non-zero
# on the first failure. Only kubectl is needed as a client (no jq, no python).
#
#   e2e/kueue/spike.sh [DIR]        (default DIR: $KUEUE_SPIKE_DIR or /tmp/kueue-spike)
#
# 1. builds e2e/testcluster/bin/testcluster if missing (TESTCLUSTER_BIN overrides), runs
#    e2e/kueue/build.sh (idempotent; KUEUE_BIN_DIR overrides the output dir), fetches kubectl into
#    KUBE_TOOLS_BIN (default ~/.cache/tessera/kube-tools/bin);
# 2. `testcluster up --dir DIR/cluster`; applies Kueue's CRDs (server-side); starts kueue;
# 3. ResourceFlavor default; ClusterQueues cq-a, cq-b (cohort farm, 2 nvidia.com/gpu each);
#    LocalQueue q in team-a (-> cq-a) and team-b (-> cq-b);
# 4. checks, as an external owner of Workload objects (no pods, no job integration):
#    a. team-a/render-a (count 4, minCount 1, priority 0) is admitted with count 4, borrowing 2;
#    b. team-b/render-b (count 2, priority 100) makes Kueue set Evicted/Preempted on render-a, which
#       keeps QuotaReserved and status.admission until its owner acts (checked for 3 s);
#    c. the owner's JSON merge patch (admission null, QuotaReserved False, Admitted False,
#       Requeued True; with resourceVersion; a stale one gets 409) releases the quota: render-b is
#       admitted, render-a re-admitted with count 2 (partial admission);
#    d. status.reclaimablePods counts against spec.podSets[].count, not the admitted count;
#    e. a Finished=True condition (server-side apply, own field manager) releases the quota;
#    f. no error in Kueue's log; SIGTERM stops kueue and the cluster with exit 0.
# All waits are bounded polling loops.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${1:-${KUEUE_SPIKE_DIR:-/tmp/kueue-spike}}"
tc="${TESTCLUSTER_BIN:-$repo/e2e/testcluster/bin/testcluster}"
bindir="${KUEUE_BIN_DIR:-$here/bin}"
tools="${KUBE_TOOLS_BIN:-$HOME/.cache/tessera/kube-tools/bin}"
timeout="${KUEUE_SPIKE_TIMEOUT:-60}" # per wait, seconds

log() { printf '%s kueue-spike: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
pass() { log "PASS: $*"; }

[[ -x "$tc" ]] || "$repo/e2e/testcluster/build.sh" "$tc"
"$here/build.sh" "$bindir"
"$repo/e2e/scripts/get-kube-tools.sh" "$tools" >/dev/null 2>&1 || "$repo/e2e/scripts/get-kube-tools.sh" "$tools"
kubectl="$tools/kubectl"

rm -rf "$dir"
mkdir -p "$dir"
up_pid=""
kueue_pid=""
cleanup() {
	local rc=$?
	if [[ -n "$kueue_pid" ]] && kill -0 "$kueue_pid" 2>/dev/null; then
		kill -TERM "$kueue_pid" 2>/dev/null || true
		wait "$kueue_pid" 2>/dev/null || true
	fi
	if [[ -n "$up_pid" ]] && kill -0 "$up_pid" 2>/dev/null; then
		kill -TERM "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
	fi
	if ((rc != 0)); then
		log "last lines of $dir/kueue.log and $dir/up.log:"
		tail -n 15 "$dir/kueue.log" >&2 2>/dev/null || true
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
		[[ -z "$kueue_pid" ]] || kill -0 "$kueue_pid" 2>/dev/null || fail "kueue exited while waiting for $what"
		((SECONDS < end)) || fail "timed out after ${t}s waiting for $what"
		sleep 0.25
	done
}
k() { "$kubectl" "$@"; }
# wl NS NAME JSONPATH: a field of a Workload.
wl() { k get workloads.kueue.x-k8s.io -n "$1" "$2" -o jsonpath="$3"; }
# cond NS NAME TYPE: "status/reason" of a Workload condition ("/" if absent).
cond() { wl "$1" "$2" "{.status.conditions[?(@.type==\"$3\")].status}/{.status.conditions[?(@.type==\"$3\")].reason}"; }
is_cond() { [[ "$(cond "$1" "$2" "$3")" == "$4" ]]; }
expect() { # expect DESCRIPTION ACTUAL WANT
	[[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"
}
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# --- control plane, CRDs, kueue --------------------------------------------------------------------
"$tc" up --dir "$dir/cluster" >"$dir/up.log" 2>&1 &
up_pid=$!
wait_for 300 "control plane ready" test -f "$dir/cluster/ready"
export KUBECONFIG="$dir/cluster/kubeconfig"
pass "control plane ready"

k apply --server-side -f "$bindir/crds" >/dev/null
wait_for "$timeout" "Kueue CRDs Established" k wait --for condition=Established --timeout=1s crd \
	workloads.kueue.x-k8s.io clusterqueues.kueue.x-k8s.io localqueues.kueue.x-k8s.io \
	resourceflavors.kueue.x-k8s.io cohorts.kueue.x-k8s.io admissionchecks.kueue.x-k8s.io \
	workloadpriorityclasses.kueue.x-k8s.io topologies.kueue.x-k8s.io
expect "served versions of workloads.kueue.x-k8s.io" \
	"$(k get crd workloads.kueue.x-k8s.io -o jsonpath='{.spec.versions[*].name}/{.spec.conversion.strategy}')" "v1beta2/None"
pass "CRDs applied (server-side): 11, v1beta2 only, conversion None"

# A free port for /readyz: the first in a random range nothing answers on.
port=""
for p in $(seq $((20000 + RANDOM % 20000)) 1 $((40100))); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || fail "no free port"
t0=$(date +%s%N)
"$bindir/kueue" --kubeconfig="$KUBECONFIG" --health-probe-bind-address="127.0.0.1:$port" >"$dir/kueue.log" 2>&1 &
kueue_pid=$!
wait_for "$timeout" "kueue /readyz" k get --raw /readyz --server="http://127.0.0.1:$port" --insecure-skip-tls-verify
pass "kueue ready (/readyz on 127.0.0.1:$port) $(((($(date +%s%N) - t0) / 1000000)))ms after start"
grep -q '"msg":"kueue ready"' "$dir/kueue.log" || fail "no 'kueue ready' log line"

# --- queues ------------------------------------------------------------------------------------------
cq() {
	cat <<EOF
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: $1}
spec:
  cohortName: farm
  namespaceSelector: {}
  resourceGroups:
  - coveredResources: ["nvidia.com/gpu"]
    flavors:
    - name: default
      resources:
      - {name: nvidia.com/gpu, nominalQuota: 2}
  preemption:
    reclaimWithinCohort: Any
    withinClusterQueue: LowerPriority
    borrowWithinCohort: {policy: LowerPriority}
---
apiVersion: v1
kind: Namespace
metadata: {name: $2}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: q, namespace: $2}
spec: {clusterQueue: $1}
EOF
}
{
	printf 'apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: default}\n'
	cq cq-a team-a
	cq cq-b team-b
} | k apply -f - >/dev/null
cq_active() { [[ "$(k get clusterqueue "$1" -o jsonpath='{.status.conditions[?(@.type=="Active")].status}')" == True ]]; }
wait_for "$timeout" "ClusterQueue cq-a Active" cq_active cq-a
wait_for "$timeout" "ClusterQueue cq-b Active" cq_active cq-b
lq_active() { [[ "$(k get localqueue q -n "$1" -o jsonpath='{.status.conditions[?(@.type=="Active")].status}')" == True ]]; }
wait_for "$timeout" "LocalQueue team-a/q Active" lq_active team-a
wait_for "$timeout" "LocalQueue team-b/q Active" lq_active team-b
pass "ResourceFlavor default, ClusterQueues cq-a/cq-b (cohort farm) and LocalQueues Active"

# workload NS NAME COUNT PRIORITY [MINCOUNT]: a Workload as an external controller creates it.
workload() {
	cat <<EOF | k create -f - >/dev/null
apiVersion: kueue.x-k8s.io/v1beta2
kind: Workload
metadata: {name: $2, namespace: $1}
spec:
  queueName: q
  priority: $4
  podSets:
  - name: render
    count: $3
    ${5:+minCount: $5}
    template:
      spec:
        restartPolicy: Never
        containers:
        - name: render
          image: tessera/render-pod
          resources:
            requests: {nvidia.com/gpu: 1}
            limits: {nvidia.com/gpu: 1}
EOF
}
reserved() { k get clusterqueue "$1" -o jsonpath='{.status.flavorsReservation[0].resources[?(@.name=="nvidia.com/gpu")].total}'; }
reserved_is() { [[ "$(reserved "$1")" == "$2" ]]; }

# --- a. admission with borrowing -----------------------------------------------------------------
workload team-a render-a 4 0 1
wait_for "$timeout" "render-a Admitted" is_cond team-a render-a Admitted True/Admitted
expect "render-a QuotaReserved" "$(cond team-a render-a QuotaReserved)" "True/QuotaReserved"
expect "render-a admission" \
	"$(wl team-a render-a '{.status.admission.clusterQueue} {.status.admission.podSetAssignments[0].name} {.status.admission.podSetAssignments[0].count} {.status.admission.podSetAssignments[0].flavors.nvidia\.com/gpu} {.status.admission.podSetAssignments[0].resourceUsage.nvidia\.com/gpu}')" \
	"cq-a render 4 default 4"
wait_for "$timeout" "cq-a reservation 4" reserved_is cq-a 4
expect "cq-a borrowed" "$(k get clusterqueue cq-a -o jsonpath='{.status.flavorsReservation[0].resources[0].borrowed}')" 2
pass "a. render-a admitted: cq-a, count 4, flavor default, nvidia.com/gpu 4 (2 borrowed from cq-b)"

# --- b. preemption by a higher-priority workload in the other queue -------------------------------
workload team-b render-b 2 100
wait_for "$timeout" "render-a Evicted" is_cond team-a render-a Evicted True/Preempted
expect "render-a Preempted" "$(cond team-a render-a Preempted)" "True/InCohortReclamation"
wl team-a render-a '{.status.conditions[?(@.type=="Evicted")].message}' | grep -q 'Preempted to accommodate a workload' ||
	fail "render-a Evicted message: $(wl team-a render-a '{.status.conditions[?(@.type=="Evicted")].message}')"
wait_for "$timeout" "render-b pending on the preemption" is_cond team-b render-b QuotaReserved False/Pending
sleep 3 # Kueue does not withdraw the admission itself: it waits for the owner.
expect "render-a QuotaReserved after 3 s" "$(cond team-a render-a QuotaReserved)" "True/QuotaReserved"
expect "render-a Admitted after 3 s" "$(cond team-a render-a Admitted)" "True/Admitted"
expect "render-a admission after 3 s" "$(wl team-a render-a '{.status.admission.podSetAssignments[0].count}')" 4
expect "render-b after 3 s" "$(cond team-b render-b QuotaReserved)" "False/Pending"
wl team-b render-b '{.status.conditions[?(@.type=="QuotaReserved")].message}' | grep -q 'Pending the preemption of 1 workload' ||
	fail "render-b QuotaReserved message: $(wl team-b render-b '{.status.conditions[?(@.type=="QuotaReserved")].message}')"
pass "b. render-b (priority 100) -> render-a Evicted=True/Preempted, Preempted=True/InCohortReclamation; QuotaReserved, Admitted, admission kept until the owner acts"

# --- c. the owner stops its pods, then withdraws the admission ------------------------------------
# As jobframework's reconciler (step 6 "handle eviction"): Requeued=True (reason = Evicted's
# reason), QuotaReserved=False/Pending, Admitted=False/NoReservation, status.admission removed.
# A JSON merge patch replaces the whole conditions list, so it carries the conditions kept as they
# are (Evicted, Preempted) verbatim; the resourceVersion makes it fail on a concurrent change.
rv="$(wl team-a render-a '{.metadata.resourceVersion}')"
gen="$(wl team-a render-a '{.metadata.generation}')"
evicted="$(wl team-a render-a '{.status.conditions[?(@.type=="Evicted")]}')"
preempted="$(wl team-a render-a '{.status.conditions[?(@.type=="Preempted")]}')"
ev_msg="$(wl team-a render-a '{.status.conditions[?(@.type=="Evicted")].message}')"
t="$(now)"
requeue_patch() {
	cat <<EOF
{"metadata": {"resourceVersion": "$1"},
 "status": {"admission": null, "conditions": [
   $evicted,
   $preempted,
   {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": "$ev_msg", "lastTransitionTime": "$t", "observedGeneration": $gen},
   {"type": "Admitted", "status": "False", "reason": "NoReservation", "message": "The workload has no reservation", "lastTransitionTime": "$t", "observedGeneration": $gen},
   {"type": "Requeued", "status": "True", "reason": "Preempted", "message": "$ev_msg", "lastTransitionTime": "$t", "observedGeneration": $gen}]}}
EOF
}
requeue_patch "$rv" >"$dir/requeue-patch.json"
if out="$(k patch workloads.kueue.x-k8s.io -n team-a render-a --subresource=status --type=merge -p "$(requeue_patch 1)" 2>&1)"; then
	fail "merge patch with a stale resourceVersion was accepted"
fi
[[ "$out" == *"the object has been modified"* ]] || fail "stale resourceVersion: unexpected error: $out"
k patch workloads.kueue.x-k8s.io -n team-a render-a --subresource=status --type=merge --patch-file="$dir/requeue-patch.json" >/dev/null
pass "c. owner merge patch on workloads/status accepted (stale resourceVersion: 409 Conflict)"
wait_for "$timeout" "render-b Admitted" is_cond team-b render-b Admitted True/Admitted
expect "render-b admission" "$(wl team-b render-b '{.status.admission.clusterQueue} {.status.admission.podSetAssignments[0].count}')" "cq-b 2"
wait_for "$timeout" "render-a re-admitted" is_cond team-a render-a Admitted True/Admitted
expect "render-a re-admission (partial)" \
	"$(wl team-a render-a '{.status.admission.clusterQueue} {.status.admission.podSetAssignments[0].count} {.status.admission.podSetAssignments[0].resourceUsage.nvidia\.com/gpu}')" "cq-a 2 2"
expect "render-a Evicted after re-admission" "$(cond team-a render-a Evicted)" "False/QuotaReserved"
expect "render-a Preempted after re-admission" "$(cond team-a render-a Preempted)" "False/QuotaReserved"
expect "render-a Requeued after re-admission" "$(cond team-a render-a Requeued)" "True/Preempted"
expect "render-a evictions" "$(wl team-a render-a '{.status.schedulingStats.evictions[0].reason}={.status.schedulingStats.evictions[0].count}')" "Preempted=1"
wait_for "$timeout" "cq-a reservation 2" reserved_is cq-a 2
pass "c. render-b admitted in cq-b (count 2); render-a re-admitted in cq-a with count 2 of 4 (partial admission, minCount 1)"

# --- d. reclaimablePods ------------------------------------------------------------------------------
workload team-a render-c 1 0
wait_for "$timeout" "render-c pending" is_cond team-a render-c QuotaReserved False/Pending
# Kueue counts reclaimable pods against spec.podSets[].count (4), not the admitted count (2):
# usage = min(admitted, spec - reclaimable), so 1 reclaimable pod frees nothing here ...
k patch workloads.kueue.x-k8s.io -n team-a render-a --subresource=status --type=merge \
	-p '{"status": {"reclaimablePods": [{"name": "render", "count": 1}]}}' >/dev/null
sleep 3 # a negative check: nothing may be admitted in this window (no event to wait on)
expect "render-c with reclaimablePods 1" "$(cond team-a render-c QuotaReserved)" "False/Pending"
expect "cq-a reservation with reclaimablePods 1" "$(reserved cq-a)" 2
# ... and 3 (4 - 3 = 1 < 2) frees one GPU, which render-c gets.
k patch workloads.kueue.x-k8s.io -n team-a render-a --subresource=status --type=merge \
	-p '{"status": {"reclaimablePods": [{"name": "render", "count": 3}]}}' >/dev/null
wait_for "$timeout" "render-c Admitted" is_cond team-a render-c Admitted True/Admitted
expect "render-a admission unchanged" "$(wl team-a render-a '{.status.admission.podSetAssignments[0].count}')" 2
expect "cq-a reservation (1 render-a + 1 render-c)" "$(reserved cq-a)" 2
pass "d. reclaimablePods counts against spec count 4: 1 frees nothing, 3 frees 1 GPU -> render-c admitted"

# --- e. finish ------------------------------------------------------------------------------------------
# Server-side apply of a new condition type with an own field manager: merged into the list by
# type, no conflict with Kueue's field manager (kueue-admission), no resourceVersion needed.
cat <<EOF | k apply --server-side --subresource=status --field-manager=tessera-operator -f - >/dev/null
apiVersion: kueue.x-k8s.io/v1beta2
kind: Workload
metadata: {name: render-a, namespace: team-a}
status:
  conditions:
  - {type: Finished, status: "True", reason: Succeeded, message: "all frames rendered", lastTransitionTime: "$(now)", observedGeneration: $gen}
EOF
wait_for "$timeout" "cq-a reservation 1 (render-a finished)" reserved_is cq-a 1
expect "render-a Finished" "$(cond team-a render-a Finished)" "True/Succeeded"
expect "render-a QuotaReserved after Finished" "$(cond team-a render-a QuotaReserved)" "True/QuotaReserved"
expect "cq-a reservingWorkloads" "$(k get clusterqueue cq-a -o jsonpath='{.status.reservingWorkloads}')" 1
pass "e. Finished=True/Succeeded (SSA, field manager tessera-operator) releases render-a's quota; admission and QuotaReserved stay"

# --- f. clean log, clean stop ------------------------------------------------------------------------
if grep -q '"level":"error"' "$dir/kueue.log"; then
	grep '"level":"error"' "$dir/kueue.log" | head -3 >&2
	fail "errors in $dir/kueue.log"
fi
kill -TERM "$kueue_pid"
end=$((SECONDS + 30))
while kill -0 "$kueue_pid" 2>/dev/null; do ((SECONDS < end)) || fail "kueue did not stop within 30 s"; sleep 0.2; done
rc=0; wait "$kueue_pid" || rc=$?
kueue_pid=""
expect "kueue exit status after SIGTERM" "$rc" 0
kill -TERM "$up_pid"
end=$((SECONDS + 60))
while kill -0 "$up_pid" 2>/dev/null; do ((SECONDS < end)) || fail "testcluster did not stop within 60 s"; sleep 0.2; done
rc=0; wait "$up_pid" || rc=$?
up_pid=""
expect "testcluster exit status after SIGTERM" "$rc" 0
pass "f. no errors in kueue's log; kueue and testcluster stopped with exit 0"
