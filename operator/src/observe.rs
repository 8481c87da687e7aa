//! Observe: a job's pods (from the shared reflector) → what happened to each shard attempt.
//!
//! Pure. The only inputs are the pods, the Ready state of their nodes, and the time; the
//! operator keeps no state of its own, so a restarted operator observes exactly the same.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tessera_shard::contract::{InvalidShards, MergeStep, exit};
use tessera_shard::{AttemptMap, IndexSet};

use crate::labels;

/// How an attempt's pod ended, or that it has not.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptState {
    /// Not yet running (unscheduled, pulling, starting).
    Pending,
    Running,
    Succeeded,
    Failed(Failure),
}

/// Why an attempt failed, and what it means for the shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    /// PascalCase.
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Counts against the shard's attempts; a retry may help.
    Retryable,
    /// No retry can help (bad scene or spec): the shard fails at once.
    Permanent,
    /// Evicted, preempted, or its pod deleted: retried without counting.
    Disruption,
    /// Its node stopped answering: retried without counting against the shard, but the node
    /// is blamed.
    NodeLost,
    /// A merge that found bad shard outputs; they must be rendered again.
    InvalidShards(IndexSet),
}

impl Failure {
    /// Whether the failure counts against the shard's attemptsPerShard.
    pub fn counts_against_shard(&self) -> bool {
        self.kind == FailureKind::Retryable
    }

    /// Whether the node it ran on is blamed (per-node tallies, node exclusion).
    pub fn blames_node(&self) -> bool {
        matches!(self.kind, FailureKind::Retryable | FailureKind::NodeLost)
    }

    /// Whether the attempt ended through no fault of its own (retried at once, not counted).
    pub fn is_disruption(&self) -> bool {
        matches!(self.kind, FailureKind::Disruption | FailureKind::NodeLost)
    }
}

/// One pod: one attempt of a shard, or of the merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub pod: String,
    pub attempt: u32,
    pub node: Option<String>,
    pub state: AttemptState,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// GPUs the pod requested; for GPU-seconds.
    pub gpus: u32,
    /// Deletion requested; the pod still exists.
    pub terminating: bool,
    /// The pod still carries the ledger finalizer (its attempt is not yet released).
    pub finalizer: bool,
    /// Shard pods: its `tessera.dev/shard-block` label (none on pods of older operators).
    pub block: Option<u32>,
    /// Merge pods only: the shard attempts the merge read.
    pub merge_inputs: Option<AttemptMap>,
    /// Merge pods only: what the merge does (`None`: a pod of an operator before merge steps,
    /// which merged everything at once).
    pub merge_step: Option<MergeStep>,
    /// Merge pods only: its `tessera.dev/merge-id` label (none on pods of older operators).
    pub merge_id: Option<String>,
    /// Not started, and why, when the kubelet says (a missing Secret, a bad image).
    pub waiting: Option<Waiting>,
    /// Not placed: the scheduler found no node with room for it (`PodScheduled` False,
    /// `Unschedulable`).
    pub unschedulable: bool,
}

/// Why a pod that has not started is waiting, as its container status says.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The kubelet's reason: `CreateContainerConfigError`, `ErrImagePull`, `ContainerCreating`, …
    pub reason: String,
    pub message: String,
    /// When the pod was bound to its node (the PodScheduled condition), if it was.
    pub scheduled: Option<Timestamp>,
}

impl Waiting {
    /// The kubelet gave up on the container's configuration or image: the pod will not start
    /// until someone fixes it (creates the Secret, fixes the image), whatever the operator does.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self.reason.as_str(),
            "CreateContainerConfigError"
                | "CreateContainerError"
                | "InvalidImageName"
                | "ErrImagePull"
                | "ImagePullBackOff"
                | "ErrImageNeverPull"
        )
    }
}

impl Attempt {
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            AttemptState::Succeeded | AttemptState::Failed(_)
        )
    }

    /// Holds a pool slot: not finished, and not a terminating pod on a dead node.
    pub fn is_active(&self) -> bool {
        !self.is_finished()
    }
}

/// Everything observed of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Attempts per shard, sorted by attempt.
    pub shards: BTreeMap<u32, Vec<Attempt>>,
    /// Merge attempts, sorted.
    pub merges: Vec<Attempt>,
}

/// Groups a job's pods by shard and reads each one's outcome. `node_ready` answers whether a
/// node exists and is Ready; pods on lost nodes are reported as disrupted.
pub fn observe<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    node_ready: &dyn Fn(&str) -> bool,
    gpu_resource: &str,
) -> Observed {
    observe_with_departed(pods, [], node_ready, gpu_resource)
}

/// [`observe`], plus `departed`: the last state of pods the watch saw deleted whose attempt
/// the ledger may not hold yet (`pool/index.rs`). A departed pod that had not ended was
/// stopped by its deletion: a disruption, retried without counting against its shard.
pub fn observe_with_departed<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    departed: impl IntoIterator<Item = &'a Pod>,
    node_ready: &dyn Fn(&str) -> bool,
    gpu_resource: &str,
) -> Observed {
    let mut observed = Observed::default();
    let pods = pods.into_iter().map(|p| (p, false));
    for (pod, gone) in pods.chain(departed.into_iter().map(|p| (p, true))) {
        // Borrowed: a pass reads every pod of its job, and cloning their labels was a tenth of
        // the operator's CPU at 8,000 running pods.
        let Some(labels) = pod.metadata.labels.as_ref() else {
            continue;
        };
        let Some(attempt) = labels.get(labels::ATTEMPT).and_then(|a| a.parse().ok()) else {
            continue;
        };
        let mut view = read_attempt(pod, attempt, node_ready, gpu_resource);
        if gone {
            view.terminating = true;
            view.finalizer = false;
            if !view.is_finished() {
                view.state = AttemptState::Failed(Failure {
                    kind: FailureKind::Disruption,
                    reason: "PodDeleted".into(),
                    message: "the pod was deleted before it finished".into(),
                });
            }
        }
        match labels.get(labels::ROLE).map(String::as_str) {
            Some(labels::ROLE_MERGE) => observed.merges.push(view),
            _ => {
                if let Some(shard) = labels.get(labels::SHARD).and_then(|s| s.parse().ok()) {
                    observed.shards.entry(shard).or_default().push(view);
                }
            }
        }
    }
    for attempts in observed.shards.values_mut() {
        attempts.sort_by_key(|a| a.attempt);
    }
    observed.merges.sort_by_key(|a| a.attempt);
    observed
}

fn read_attempt(
    pod: &Pod,
    attempt: u32,
    node_ready: &dyn Fn(&str) -> bool,
    gpu_resource: &str,
) -> Attempt {
    // Borrowed, not cloned: a pass reads every pod of the job (100,000 at studio scale).
    let no_status = PodStatus::default();
    let status = pod.status.as_ref().unwrap_or(&no_status);
    let spec = pod.spec.as_ref();
    let node = spec.and_then(|s| s.node_name.clone());
    let terminated = status
        .container_statuses
        .as_ref()
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let started = status
        .start_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| terminated.and_then(|t| t.started_at.as_ref().map(|t| t.0)));
    let finished = terminated.and_then(|t| t.finished_at.as_ref().map(|t| t.0));
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let finalizer = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == labels::LEDGER_FINALIZER);
    let node_lost = node.as_deref().is_some_and(|n| !node_ready(n));

    let preempted_by = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::PREEMPTED_BY));
    let state = match phase {
        "Succeeded" => AttemptState::Succeeded,
        // Evicted for a higher-priority job, or by Kueue: however its process ended, not its
        // fault.
        "Failed" if preempted_by.is_some() => AttemptState::Failed(Failure {
            kind: FailureKind::Disruption,
            reason: "Preempted".into(),
            message: format!(
                "preempted by {}",
                preempted_by.map(String::as_str).unwrap_or("?")
            ),
        }),
        "Failed" => AttemptState::Failed(classify_failure(status, terminated)),
        // A pod that is going away before it finished, on a node that no longer answers, will
        // never report; treat its shard as disrupted so it runs elsewhere.
        _ if terminating && node_lost => AttemptState::Failed(Failure {
            kind: FailureKind::NodeLost,
            reason: "NodeLost".into(),
            message: format!(
                "node {} stopped answering while the shard ran",
                node.as_deref().unwrap_or("?")
            ),
        }),
        // Deleted (by a person, PodGC, or the operator on suspend) before it ran: it never
        // will, and the ledger finalizer keeps the object until this is accounted.
        "Pending" if terminating => AttemptState::Failed(Failure {
            kind: FailureKind::Disruption,
            reason: "PodDeleted".into(),
            message: "the pod was deleted before it ran".into(),
        }),
        "Running" => AttemptState::Running,
        _ => AttemptState::Pending,
    };
    let gpus = spec
        .and_then(|s| s.containers.first())
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(gpu_resource))
        .and_then(|q| q.0.parse().ok())
        .unwrap_or(0);
    let waiting = matches!(state, AttemptState::Pending)
        .then(|| waiting_of(status))
        .flatten();
    let unschedulable = matches!(state, AttemptState::Pending)
        && status.conditions.iter().flatten().any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
    let merge_inputs = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::MERGE_ATTEMPTS))
        .and_then(|text| AttemptMap::parse(text).ok());
    let merge_step = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::MERGE_STEP))
        .and_then(|text| serde_json::from_str(text).ok());
    let block = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SHARD_BLOCK))
        .and_then(|b| b.parse().ok());
    let merge_id = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::MERGE_ID))
        .cloned();
    Attempt {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        attempt,
        node,
        state,
        started,
        finished,
        gpus,
        terminating,
        finalizer,
        block,
        merge_inputs,
        merge_step,
        merge_id,
        waiting,
        unschedulable,
    }
}

/// Drops from a pod what neither [`observe`] nor the pod index reads, before it enters the
/// operator's cache: managed fields, the containers' arguments (a shard's spec), environment,
/// commands, mounts and security settings, and the pod's tolerations, affinity, volumes and
/// security settings. At 100,000 shards the cache held ~16,000 pods (8,000 running, the rest
/// waiting for their block's collection) and the operator's RSS passed 512 MiB; this is about
/// 40 % of a shard pod.
pub fn trim_for_cache(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.tolerations = None;
    spec.affinity = None;
    spec.volumes = None;
    spec.security_context = None;
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        container.args = None;
        container.command = None;
        container.env = None;
        container.volume_mounts = None;
        container.security_context = None;
    }
}

/// The first container's waiting state, with when the pod was scheduled.
fn waiting_of(status: &PodStatus) -> Option<Waiting> {
    let waiting = status
        .container_statuses
        .as_ref()
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.clone())?;
    let scheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    Some(Waiting {
        reason: waiting.reason.unwrap_or_default(),
        message: waiting.message.unwrap_or_default(),
        scheduled,
    })
}

/// Reads why a pod failed: disruption (eviction, preemption, node loss) first, then the render
/// pod's exit code, which says whether a retry can help.
fn classify_failure(
    status: &PodStatus,
    terminated: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>,
) -> Failure {
    let disrupted = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        || matches!(
            status.reason.as_deref(),
            Some(
                "Evicted"
                    | "Preempting"
                    | "NodeLost"
                    | "Shutdown"
                    | "Terminated"
                    | "UnexpectedAdmissionError"
            )
        );
    // The kubelet stopped a pod that outlived its activeDeadlineSeconds (the job's
    // shardTimeoutSeconds): a hung or far too slow attempt, the node's fault as much as any.
    if status.reason.as_deref() == Some("DeadlineExceeded") {
        return Failure {
            kind: FailureKind::Retryable,
            reason: "Timeout".into(),
            message: status
                .message
                .clone()
                .unwrap_or_else(|| "the shard ran longer than shardTimeoutSeconds".into()),
        };
    }
    if disrupted {
        return Failure {
            kind: FailureKind::Disruption,
            reason: status.reason.clone().unwrap_or_else(|| "Disrupted".into()),
            message: status
                .message
                .clone()
                .unwrap_or_else(|| "the pod was evicted or preempted".into()),
        };
    }
    let Some(terminated) = terminated else {
        return Failure {
            kind: FailureKind::Retryable,
            reason: status.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: status
                .message
                .clone()
                .unwrap_or_else(|| "the pod failed".into()),
        };
    };
    let code = terminated.exit_code;
    let message = terminated.message.clone().unwrap_or_default();
    let reason = terminated.reason.clone().unwrap_or_else(|| "Error".into());
    match exit::classify(code) {
        exit::FailureKind::Permanent => Failure {
            kind: FailureKind::Permanent,
            reason: if code == exit::BAD_INPUT {
                "BadInput".into()
            } else {
                "BadUsage".into()
            },
            message: with_exit_code(code, &message),
        },
        exit::FailureKind::InvalidShards => {
            match serde_json::from_str::<InvalidShards>(message.trim()) {
                Ok(invalid) => Failure {
                    kind: FailureKind::InvalidShards(invalid.shards),
                    reason: "OutputCorrupt".into(),
                    message: invalid.reason,
                },
                Err(_) => Failure {
                    kind: FailureKind::Retryable,
                    reason: "OutputCorrupt".into(),
                    message: with_exit_code(code, &message),
                },
            }
        }
        exit::FailureKind::Retryable => Failure {
            kind: FailureKind::Retryable,
            reason: if code == exit::NO_ADAPTER {
                "NoGpu".into()
            } else {
                reason
            },
            message: with_exit_code(code, &message),
        },
    }
}

fn with_exit_code(code: i32, message: &str) -> String {
    let message = message.trim();
    // Termination messages can be long logs; status keeps the tail a human needs.
    let tail: String = message
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        format!("exit code {code}")
    } else {
        format!("exit code {code}: {tail}")
    }
}

/// Nodes a shard's earlier attempts failed on.
pub fn nodes_failed_for(attempts: &[Attempt]) -> HashSet<String> {
    attempts
        .iter()
        .filter(|a| matches!(a.state, AttemptState::Failed(_)))
        .filter_map(|a| a.node.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn shard_pod(shard: u32, attempt: u32, status: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": format!("j-{shard}-{attempt}"), "labels": {
                "tessera.dev/role": "shard", "tessera.dev/shard": shard.to_string(),
                "tessera.dev/attempt": attempt.to_string()}},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "render",
                "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
            "status": status,
        }))
    }

    fn terminated(code: i32, message: &str) -> serde_json::Value {
        json!({"phase": if code == 0 {"Succeeded"} else {"Failed"}, "containerStatuses": [{
            "name": "render", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "message": message, "reason": "Error",
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}}}]})
    }

    fn state_of(pod: Pod) -> AttemptState {
        let observed = observe([&pod], &|_| true, "nvidia.com/gpu");
        observed.shards.values().next().unwrap()[0].state.clone()
    }

    #[test]
    fn a_pod_trimmed_for_the_cache_observes_and_indexes_as_it_was() {
        let full = pod(json!({
            "metadata": {"name": "j-3-1", "namespace": "ns", "finalizers": ["tessera.dev/ledger"],
                "labels": {"tessera.dev/role": "shard", "tessera.dev/shard": "3", "tessera.dev/attempt": "1",
                    "tessera.dev/pool": "p", "tessera.dev/shard-block": "0"},
                "annotations": {"tessera.dev/preempted-by": "job x"},
                "ownerReferences": [{"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
                    "name": "j", "uid": "u", "controller": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
            "spec": {"nodeName": "gpu-1", "tolerations": [{"key": "k", "operator": "Exists"}],
                "affinity": {"nodeAffinity": {}}, "securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "render", "args": ["render", "--spec", "{}"],
                    "env": [{"name": "A", "value": "b"}], "securityContext": {"runAsNonRoot": true},
                    "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
            "status": {"phase": "Pending", "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
                "containerStatuses": [{"name": "render", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "m"}}}]},
        }));
        let mut trimmed = full.clone();
        trim_for_cache(&mut trimmed);
        let container = &trimmed.spec.as_ref().unwrap().containers[0];
        assert!(container.args.is_none() && container.env.is_none());
        assert!(trimmed.metadata.managed_fields.is_none());
        let read = |p: &Pod| observe([p], &|_| true, "nvidia.com/gpu");
        assert_eq!(read(&trimmed), read(&full));
        assert_eq!(read(&full).shards[&3][0].gpus, 2);
        assert_eq!(
            crate::pool::index::IndexedPod::of(&trimmed),
            crate::pool::index::IndexedPod::of(&full)
        );
    }

    #[test]
    fn a_departed_pod_ends_as_it_last_was_or_as_deleted() {
        let done = shard_pod(0, 0, json!({"phase": "Succeeded"}));
        let running = shard_pod(1, 0, json!({"phase": "Running"}));
        let live = shard_pod(2, 0, json!({"phase": "Running"}));
        let observed =
            observe_with_departed([&live], [&done, &running], &|_| true, "nvidia.com/gpu");
        let state = |shard: u32| observed.shards[&shard][0].state.clone();
        assert_eq!(state(0), AttemptState::Succeeded);
        assert!(observed.shards[&0][0].terminating);
        assert!(matches!(state(1), AttemptState::Failed(f)
            if f.kind == FailureKind::Disruption && f.reason == "PodDeleted"));
        assert_eq!(state(2), AttemptState::Running);
        assert!(!observed.shards[&2][0].terminating);
    }

    #[test]
    fn exit_codes_decide_whether_to_retry() {
        assert_eq!(
            state_of(shard_pod(1, 0, terminated(0, ""))),
            AttemptState::Succeeded
        );
        let AttemptState::Failed(f) = state_of(shard_pod(1, 0, terminated(1, "s3 timeout"))) else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.message.as_str()),
            (FailureKind::Retryable, "exit code 1: s3 timeout")
        );
        let AttemptState::Failed(f) =
            state_of(shard_pod(1, 0, terminated(3, "no camera in scene")))
        else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.reason.as_str()),
            (FailureKind::Permanent, "BadInput")
        );
        let AttemptState::Failed(f) = state_of(shard_pod(1, 0, terminated(137, ""))) else {
            panic!()
        };
        assert_eq!(f.kind, FailureKind::Retryable);
    }

    #[test]
    fn evictions_do_not_count() {
        let status =
            json!({"phase": "Failed", "reason": "Evicted", "message": "node out of memory"});
        let AttemptState::Failed(f) = state_of(shard_pod(1, 0, status)) else {
            panic!()
        };
        assert_eq!(f.kind, FailureKind::Disruption);
        let status = json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]});
        let AttemptState::Failed(f) = state_of(shard_pod(1, 0, status)) else {
            panic!()
        };
        assert_eq!(f.kind, FailureKind::Disruption);
    }

    #[test]
    fn a_terminating_pod_on_a_lost_node_is_disrupted() {
        let mut p = shard_pod(4, 0, json!({"phase": "Running"}));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::UNIX_EPOCH,
        ));
        let observed = observe([&p], &|_| false, "nvidia.com/gpu");
        let AttemptState::Failed(f) = &observed.shards[&4][0].state else {
            panic!()
        };
        assert_eq!(f.reason, "NodeLost");
        assert!(f.blames_node() && f.is_disruption() && !f.counts_against_shard());
        // The same pod on a live node is still running (being deleted normally).
        let observed = observe([&p], &|_| true, "nvidia.com/gpu");
        assert_eq!(observed.shards[&4][0].state, AttemptState::Running);
    }

    #[test]
    fn a_preempted_pod_is_a_disruption_however_its_process_ended() {
        let mut p = shard_pod(2, 0, terminated(143, ""));
        p.metadata.annotations = Some(
            [(
                "tessera.dev/preempted-by".to_string(),
                "job urgent/shot (priority 100)".to_string(),
            )]
            .into(),
        );
        let observed = observe([&p], &|_| true, "nvidia.com/gpu");
        let AttemptState::Failed(f) = &observed.shards[&2][0].state else {
            panic!()
        };
        assert_eq!(
            (f.reason.as_str(), f.kind.clone()),
            ("Preempted", FailureKind::Disruption)
        );
        assert!(f.message.contains("urgent/shot") && !f.counts_against_shard() && !f.blames_node());
    }

    #[test]
    fn merge_failures_name_the_shards_to_render_again() {
        let p = pod(json!({
            "metadata": {"name": "j-merge-0", "labels": {"tessera.dev/role": "merge", "tessera.dev/attempt": "0"},
                "annotations": {"tessera.dev/merge-attempts": "3:1"}},
            "status": terminated(4, r#"{"shards": "3,7-8", "reason": "sha256 mismatch in shard 3"}"#),
        }));
        let observed = observe([&p], &|_| true, "nvidia.com/gpu");
        let merge = &observed.merges[0];
        assert_eq!(merge.merge_inputs.as_ref().unwrap().get(3), 1);
        let AttemptState::Failed(f) = &merge.state else {
            panic!()
        };
        assert_eq!(
            f.kind,
            FailureKind::InvalidShards(IndexSet::parse("3,7-8").unwrap())
        );
    }

    #[test]
    fn a_pod_waiting_on_a_missing_secret_says_so() {
        let status = json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "containerStatuses": [{"name": "render", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"render-s3\" not found"}}}]});
        let observed = observe([&shard_pod(1, 0, status)], &|_| true, "nvidia.com/gpu");
        let attempt = &observed.shards[&1][0];
        assert_eq!(attempt.state, AttemptState::Pending);
        let waiting = attempt.waiting.clone().unwrap();
        assert!(waiting.is_config_error());
        assert_eq!(waiting.message, "secret \"render-s3\" not found");
        assert_eq!(
            waiting.scheduled,
            Some("2026-01-01T00:00:00Z".parse().unwrap())
        );
        // A running pod waits for nothing.
        let observed = observe(
            [&shard_pod(1, 0, json!({"phase": "Running"}))],
            &|_| true,
            "x",
        );
        assert_eq!(observed.shards[&1][0].waiting, None);
    }

    #[test]
    fn attempts_are_grouped_and_sorted_and_gpus_read() {
        let pods = [
            shard_pod(2, 1, json!({"phase": "Running"})),
            shard_pod(2, 0, terminated(1, "")),
            shard_pod(0, 0, json!({})),
        ];
        let observed = observe(pods.iter(), &|_| true, "nvidia.com/gpu");
        assert_eq!(
            observed.shards[&2]
                .iter()
                .map(|a| a.attempt)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(observed.shards[&2][1].gpus, 2);
        assert_eq!(observed.shards[&0][0].state, AttemptState::Pending);
        assert_eq!(nodes_failed_for(&observed.shards[&2]).len(), 1);
    }
}
