#!/usr/bin/env bash
# End-to-end check of the testcluster control plane; exits non-zero on the first failure.
#
#   e2e/testcluster/spike.sh [DIR]        (default DIR: $TESTCLUSTER_DIR or /tmp/tc)
#
# 1. builds e2e/testcluster/bin/testcluster if missing (TESTCLUSTER_BIN overrides the binary),
#    fetches kubectl/helm (e2e/scripts/get-kube-tools.sh) into KUBE_TOOLS_BIN (default: the bin/ here);
# 2. `testcluster up --dir DIR`, waits for DIR/ready;
# 3. checks: server version v1.35.x; a fake GPU Node (+ Lease) becomes schedulable; a pod asking for
#    nvidia.com/gpu: 1 is bound to it by the scheduler, one asking for 5 is refused; a Deployment gets
#    a ReplicaSet and a pod; RBAC denies the default ServiceAccount; token auth works;
# 4. SIGTERM to `up`, which must exit 0 and leave no component process behind.
# All waits are bounded polling loops.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${1:-${TESTCLUSTER_DIR:-/tmp/tc}}"
tc="${TESTCLUSTER_BIN:-$here/bin/testcluster}"
tools="${KUBE_TOOLS_BIN:-$here/bin}"
ready_timeout="${TESTCLUSTER_READY_TIMEOUT:-300}"

log() { printf '%s spike: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
pass() { log "PASS: $*"; }

[[ -x "$tc" ]] || "$here/build.sh" "$tc"
"$repo/e2e/scripts/get-kube-tools.sh" "$tools" >/dev/null 2>&1 || "$repo/e2e/scripts/get-kube-tools.sh" "$tools"
kubectl="$tools/kubectl"

up_pid=""
heartbeat_pid=""
cleanup() {
	local rc=$?
	[[ -n "$heartbeat_pid" ]] && kill "$heartbeat_pid" 2>/dev/null && wait "$heartbeat_pid" 2>/dev/null
	if [[ -n "$up_pid" ]] && kill -0 "$up_pid" 2>/dev/null; then
		log "stopping testcluster (pid $up_pid)"
		kill -TERM "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
	fi
	if ((rc != 0)); then
		log "last lines of $dir/up.log:"
		tail -n 20 "$dir/up.log" >&2 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
	local timeout=$1 what=$2
	shift 2
	local end=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if [[ -n "$up_pid" ]] && ! kill -0 "$up_pid" 2>/dev/null; then
			fail "testcluster up exited while waiting for $what"
		fi
		((SECONDS < end)) || fail "timed out after ${timeout}s waiting for $what"
		sleep 0.5
	done
}

# ---------------------------------------------------------------------------------------------
mkdir -p "$dir"
log "starting $tc up --dir $dir (log: $dir/up.log)"
"$tc" up --dir "$dir" >"$dir/up.log" 2>&1 &
up_pid=$!
t0=$SECONDS
wait_for "$ready_timeout" "control plane ready ($dir/ready)" test -f "$dir/ready"
pass "control plane ready after $((SECONDS - t0))s wall ($(cat "$dir/ready"))"
export KUBECONFIG="$dir/kubeconfig"
# shellcheck disable=SC1091
source "$dir/env"

# report_rss WHEN: resident memory of the four component processes.
report_rss() {
	local pid rss_kb comp total_kb=0 parts=""
	for pid in $(pgrep -P "$up_pid"); do
		rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
		comp=$(tr '\0' ' ' <"/proc/$pid/cmdline" | awk '{ print $2 }')
		parts+=" $comp=$((rss_kb / 1024))"
		total_kb=$((total_kb + rss_kb))
	done
	log "RSS $1: total $((total_kb / 1024)) MiB (MiB:$parts)"
}
report_rss "after ready"

# --- version ----------------------------------------------------------------------------------
server_version="$("$kubectl" version 2>&1 | sed -n 's/^Server Version: //p')"
[[ "$server_version" == v1.35.* ]] || fail "kubectl version: server version '$server_version', want v1.35.x"
pass "kubectl version: server $server_version"

# --- fake GPU node ------------------------------------------------------------------------------
node=fake-gpu-0
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
now_micro() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
"$kubectl" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels:
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    nvidia.com/gpu.present: "true"
EOF
# node_status [READY]: the node's status as a JSON merge patch; READY (default True) is the Ready condition.
node_status() {
	local t ready="${1:-True}" reason=KubeletReady
	[[ "$ready" == True ]] || reason=KubeletNotReady
	t="$(now)"
	cat <<EOF
{"status": {
  "capacity":    {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi", "nvidia.com/gpu": "4"},
  "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi", "nvidia.com/gpu": "4"},
  "conditions": [
    {"type": "Ready",          "status": "$ready",  "reason": "$reason",               "message": "fake node", "lastHeartbeatTime": "$t", "lastTransitionTime": "$t"},
    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "fake node", "lastHeartbeatTime": "$t", "lastTransitionTime": "$t"},
    {"type": "DiskPressure",   "status": "False", "reason": "KubeletHasNoDiskPressure",   "message": "fake node", "lastHeartbeatTime": "$t", "lastTransitionTime": "$t"},
    {"type": "PIDPressure",    "status": "False", "reason": "KubeletHasSufficientPID",    "message": "fake node", "lastHeartbeatTime": "$t", "lastTransitionTime": "$t"}
  ],
  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "$node"}],
  "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
  "nodeInfo": {"machineID": "fake", "systemUUID": "fake", "bootID": "fake", "kernelVersion": "fake",
               "osImage": "fake", "containerRuntimeVersion": "fake://0", "kubeletVersion": "$server_version",
               "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}
}}
EOF
}
"$kubectl" patch node "$node" --subresource=status --type=merge -p "$(node_status)" >/dev/null
node_uid="$("$kubectl" get node "$node" -o jsonpath='{.metadata.uid}')"
"$kubectl" apply -f - >/dev/null <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: $node
  namespace: kube-node-lease
  ownerReferences:
  - {apiVersion: v1, kind: Node, name: $node, uid: $node_uid}
spec:
  holderIdentity: $node
  leaseDurationSeconds: 40
  renewTime: "$(now_micro)"
EOF
gpus="$("$kubectl" get node "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')"
[[ "$gpus" == 4 ]] || fail "node $node allocatable nvidia.com/gpu='$gpus', want 4"
pass "fake node $node: allocatable nvidia.com/gpu=$gpus, Ready=$("$kubectl" get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'), Lease in kube-node-lease"

no_taints() { [[ -z "$("$kubectl" get node "$node" -o jsonpath='{.spec.taints}')" ]]; }
wait_for 120 "$node to have no taints" no_taints
# The controller-manager's node lifecycle controller taints a NotReady node and untaints it when it
# is Ready again (the TaintNodesByCondition admission plugin's not-ready taint on a new Node is
# removed by that controller too, possibly before the node reports any condition).
not_ready_taint() { [[ "$("$kubectl" get node "$node" -o jsonpath='{.spec.taints[*].key}')" == *node.kubernetes.io/not-ready* ]]; }
"$kubectl" patch node "$node" --subresource=status --type=merge -p "$(node_status False)" >/dev/null
wait_for 120 "node lifecycle controller to taint NotReady $node" not_ready_taint
"$kubectl" patch node "$node" --subresource=status --type=merge -p "$(node_status True)" >/dev/null
wait_for 120 "node lifecycle controller to untaint Ready $node" no_taints
pass "node lifecycle controller (controller-manager): Ready=False -> not-ready taint added; Ready=True -> removed"

# Heartbeat, as a kubelet would: renew the Lease every 10 s (and the Ready condition with it).
(
	while kill -0 "$up_pid" 2>/dev/null; do
		sleep 10
		"$kubectl" patch lease "$node" -n kube-node-lease --type=merge \
			-p "{\"spec\": {\"renewTime\": \"$(now_micro)\"}}" >/dev/null 2>&1 || true
		"$kubectl" patch node "$node" --subresource=status --type=merge -p "$(node_status)" >/dev/null 2>&1 || true
	done
) &
heartbeat_pid=$!

# --- scheduler: GPU pods -------------------------------------------------------------------------
gpu_pod() {
	cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
spec:
  containers:
  - name: main
    image: tessera/probe:test
    resources:
      limits: {nvidia.com/gpu: "$2"}
EOF
}
gpu_pod gpu-1 1 | "$kubectl" apply -f - >/dev/null
gpu_pod gpu-5 5 | "$kubectl" apply -f - >/dev/null
bound() { [[ "$("$kubectl" get pod "$1" -o jsonpath='{.spec.nodeName}')" == "$node" ]]; }
wait_for 120 "pod gpu-1 to be bound to $node" bound gpu-1
pass "scheduler bound pod gpu-1 (nvidia.com/gpu: 1) to $node"
unschedulable() {
	"$kubectl" get pod gpu-5 -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].message}' |
		grep -q 'Insufficient nvidia.com/gpu'
}
wait_for 120 "pod gpu-5 to be refused for lack of GPUs" unschedulable
[[ -z "$("$kubectl" get pod gpu-5 -o jsonpath='{.spec.nodeName}')" ]] || fail "pod gpu-5 (5 GPUs) was bound"
pass "scheduler refused pod gpu-5 (nvidia.com/gpu: 5): Insufficient nvidia.com/gpu"

# --- controller-manager: Deployment -> ReplicaSet -> Pod -----------------------------------------
"$kubectl" create deployment probe --image=tessera/probe:test --replicas=1 >/dev/null
has_rs() { [[ -n "$("$kubectl" get rs -l app=probe -o jsonpath='{.items[*].metadata.ownerReferences[?(@.kind=="Deployment")].name}')" ]]; }
wait_for 120 "a ReplicaSet for Deployment probe" has_rs
has_pod() { [[ "$("$kubectl" get pods -l app=probe -o jsonpath='{.items[0].spec.nodeName}')" == "$node" ]]; }
wait_for 120 "the Deployment's pod to be created and bound" has_pod
pass "Deployment probe -> ReplicaSet $("$kubectl" get rs -l app=probe -o jsonpath='{.items[0].metadata.name}') -> pod bound to $node"

# --- authentication and RBAC -------------------------------------------------------------------
answer="$("$kubectl" auth can-i --as=system:serviceaccount:default:default list secrets 2>/dev/null || true)"
[[ "$answer" == no ]] || fail "auth can-i as default ServiceAccount list secrets: '$answer', want 'no'"
answer="$("$kubectl" auth can-i '*' '*' 2>/dev/null || true)"
[[ "$answer" == yes ]] || fail "auth can-i as admin '*' '*': '$answer', want 'yes'"
sa_token="$("$kubectl" create token default --duration=10m)"
if out="$("$kubectl" --kubeconfig=/dev/null --server="$TESTCLUSTER_APISERVER" --certificate-authority="$TESTCLUSTER_CA_FILE" \
	--token="$sa_token" get secrets 2>&1)"; then
	fail "the default ServiceAccount could list secrets"
fi
grep -q Forbidden <<<"$out" || fail "listing secrets with the default ServiceAccount token: '$out', want Forbidden"
pass "RBAC on: default ServiceAccount (TokenRequest token) is Forbidden to list secrets; admin may do anything"
"$kubectl" --kubeconfig=/dev/null --server="$TESTCLUSTER_APISERVER" --certificate-authority="$TESTCLUSTER_CA_FILE" \
	--token="$(cat "$TESTCLUSTER_TOKEN_FILE")" get namespace default >/dev/null || fail "static admin token rejected"
pass "static admin token ($TESTCLUSTER_TOKEN_FILE) accepted"

# --- clean shutdown ----------------------------------------------------------------------------
report_rss "after the checks"
kill "$heartbeat_pid" 2>/dev/null || true
wait "$heartbeat_pid" 2>/dev/null || true
heartbeat_pid=""
children="$(pgrep -P "$up_pid" | tr '\n' ' ')"
[[ -n "$children" ]] || fail "no component processes found under testcluster up (pid $up_pid)"
log "sending SIGTERM to testcluster up (pid $up_pid; children: $children)"
t_stop=$SECONDS
kill -TERM "$up_pid"
up_gone() { ! kill -0 "$up_pid" 2>/dev/null; }
wait_for 90 "testcluster up to exit" up_gone
rc=0
wait "$up_pid" || rc=$?
up_pid=""
((rc == 0)) || fail "testcluster up exited with status $rc"
for pid in $children; do
	if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q testcluster; then
		fail "component process $pid is still running: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-120)"
	fi
done
pass "SIGTERM: testcluster up exited 0 after $((SECONDS - t_stop))s; no component process left"
log "ALL CHECKS PASSED"
