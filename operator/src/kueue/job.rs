//! The Kueue gate in a RenderJob's pass: the queued job as [`gate`] sees it, and what its
//! answer means for the pass's decision. Pure; the reconcile shell calls both.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::gate::{QueueGate, QueuedJob, gate};
use super::{KueueCache, queue_of};
use crate::conditions;
use crate::decide::{self, Decision, EventNote, ValidJob};
use crate::labels;
use crate::observe::Observed;

/// Shard pods of the job that hold a slot.
pub fn active_shards(observed: &Observed) -> u32 {
    observed
        .shards
        .values()
        .flatten()
        .filter(|a| a.is_active())
        .count() as u32
}

/// Kueue's word on a job that names a LocalQueue ([`gate`]); `None` for other jobs.
pub fn gate_for(
    valid: &ValidJob<'_>,
    observed: &Observed,
    priority: i32,
    kueue: &KueueCache,
    now: Timestamp,
) -> Option<QueueGate> {
    let job = valid.job;
    let queue = queue_of(job)?;
    let status = job.status.clone().unwrap_or_default();
    let done = status.succeeded_shards.len() + status.failed_shards.len();
    let finished = if conditions::is_true(&status.conditions, conditions::COMPLETE) {
        Some(true)
    } else if conditions::is_true(&status.conditions, conditions::FAILED) {
        Some(false)
    } else {
        None
    };
    let template = decide::shard_template(valid)
        .map(|pod| PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: pod.metadata.labels,
                ..Default::default()
            }),
            spec: pod.spec,
        })
        .unwrap_or_default();
    let queued = QueuedJob {
        queue,
        name: &valid.name,
        namespace: &valid.namespace,
        uid: &valid.uid,
        // Not a controller reference: Kueue reads a Workload's controller to finish orphans,
        // which would need Kueue's own RBAC on RenderJobs. The garbage collector still deletes
        // the Workload with its job.
        owner: job.owner_ref(&()),
        template,
        priority,
        shards_left: u64::from(valid.shard_count())
            .saturating_sub(done)
            .try_into()
            .unwrap_or(u32::MAX),
        active_pods: active_shards(observed),
        finished,
    };
    let lookup = kueue.workload_of(&valid.namespace, &valid.name, &valid.uid);
    Some(gate(
        &queued,
        lookup.as_kueue(),
        &|flavor| kueue.flavor(flavor),
        now,
    ))
}

/// What Kueue's word means for the pass's writes: the Workload write, its placement on the
/// shard pods created, and, when the job lost its admission, its running shard pods stopped
/// (recorded as preempted: they render again once Kueue admits the job again).
pub fn follow(decision: &mut Decision, queue: QueueGate, observed: &Observed, namespace: &str) {
    decision.workload = queue.write;
    let placement = queue.placement;
    for pod in decision
        .create
        .iter_mut()
        .filter(|p| p.labels().get(labels::ROLE).map(String::as_str) == Some(labels::ROLE_SHARD))
    {
        pod.labels_mut().extend(placement.labels.clone());
        pod.annotations_mut().extend(placement.annotations.clone());
        if let Some(spec) = pod.spec.as_mut() {
            if !placement.node_selector.is_empty() {
                spec.node_selector
                    .get_or_insert_with(Default::default)
                    .extend(placement.node_selector.clone());
            }
            let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
            for toleration in &placement.tolerations {
                if !tolerations.contains(toleration) {
                    tolerations.push(toleration.clone());
                }
            }
        }
    }
    if let Some(why) = queue.stop {
        let stopping: Vec<_> = observed
            .shards
            .values()
            .flatten()
            .filter(|a| a.is_active() && !a.terminating)
            .map(|a| (namespace.to_string(), a.pod.clone(), why.clone()))
            .collect();
        if !stopping.is_empty() {
            decision.events.push(EventNote {
                warning: false,
                reason: "QueueEvicted".into(),
                note: format!("stopping {} shard pods: {why}", stopping.len()),
            });
        }
        decision.evict.extend(stopping);
    }
}
