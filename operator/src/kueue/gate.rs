//! What Kueue's word means for one queued RenderJob now, and the one write to its Workload
//! that follows (docs/architecture.md §6a). Pure: the reconcile shell reads the job's
//! Workload from the cache, asks [`gate`], and makes the write.
//!
//! The protocol is the one Kueue's own job integrations follow (its `jobframework`
//! reconciler): one Workload per job, created by the operator; shards start only while it is
//! `Admitted`, at most as many at once as its admission counts; when Kueue evicts it the
//! job's shard pods stop (a disruption: they run again later, their attempts are not
//! failures) and, once none runs, the operator clears the reservation so Kueue queues it
//! again; shards no longer needed are reported as reclaimable; a finished job finishes its
//! Workload.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference};

use super::api::{PodSet, ResourceFlavorSpec, Workload, WorkloadSpec};
use crate::conditions;

/// The pod set every RenderJob Workload has: its shard pods.
pub const POD_SET: &str = "render";

const QUOTA_RESERVED: &str = "QuotaReserved";
const ADMITTED: &str = "Admitted";
const EVICTED: &str = "Evicted";
const REQUEUED: &str = "Requeued";
const FINISHED: &str = "Finished";

/// The Workload of a job: `renderjob-<name>-<uid prefix>`, a valid name of at most 63
/// characters whatever the job is called, and a new one for a job of the same name.
pub fn workload_name(job: &str, uid: &str) -> String {
    let stem: String = job.replace('.', "-").chars().take(44).collect();
    let uid: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!("renderjob-{}-{uid}", stem.trim_end_matches('-')).to_lowercase()
}

/// What the operator knows of Kueue.
#[derive(Debug, Clone, Copy)]
pub enum Kueue<'a> {
    /// The Workload API is not served (or not readable): queued jobs wait.
    Unavailable,
    /// The Workload cache is still filling: decide nothing yet.
    Listing,
    /// The job's Workload, if it exists.
    Listed(Option<&'a Workload>),
}

/// A queued job as the gate needs it.
pub struct QueuedJob<'a> {
    /// Its LocalQueue (the `kueue.x-k8s.io/queue-name` label).
    pub queue: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub owner: Option<OwnerReference>,
    /// A shard pod's template: what one admitted pod uses.
    pub template: PodTemplateSpec,
    /// The effective priority (after the pool's namespace policy).
    pub priority: i32,
    /// Shards still to render.
    pub shards_left: u32,
    /// Shard pods not finished.
    pub active_pods: u32,
    /// `Some(succeeded)` once the job is Complete or Failed.
    pub finished: Option<bool>,
}

/// The write to the job's Workload this pass makes (at most one).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadWrite {
    Create(Box<Workload>),
    /// A finished Workload of a job with shards to render again (a re-render): it goes, and
    /// the next pass queues a new one.
    Delete {
        name: String,
    },
    /// Evicted and no shard pod left: give the quota back so Kueue queues the job again.
    ReleaseQuota {
        name: String,
        resource_version: String,
        conditions: Vec<Condition>,
    },
    /// Shard pods of the admission that the job no longer needs.
    Reclaimable {
        name: String,
        count: i32,
    },
    Finish {
        name: String,
        resource_version: String,
        conditions: Vec<Condition>,
    },
}

/// Where admitted shard pods run, from the admission's flavors and the admission checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The `QueueAdmitted` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueNote {
    pub admitted: bool,
    pub reason: String,
    pub message: String,
}

/// Kueue's word on the job this pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueGate {
    /// Shard pods the job may run at once.
    pub admitted: u32,
    /// The job's running shard pods must stop: why.
    pub stop: Option<String>,
    pub write: Option<WorkloadWrite>,
    pub placement: Placement,
    pub note: Option<QueueNote>,
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions::is_true(conditions, type_)
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn waiting(reason: &str, message: String) -> Option<QueueNote> {
    Some(QueueNote {
        admitted: false,
        reason: reason.into(),
        message,
    })
}

/// The gate for `job`, given what the operator knows of Kueue and the ResourceFlavors.
pub fn gate(
    job: &QueuedJob<'_>,
    kueue: Kueue<'_>,
    flavor: &dyn Fn(&str) -> Option<ResourceFlavorSpec>,
    now: Timestamp,
) -> QueueGate {
    let name = workload_name(job.name, job.uid);
    let workload = match kueue {
        Kueue::Listing => return QueueGate::default(),
        Kueue::Unavailable => {
            return QueueGate {
                stop: (job.active_pods > 0).then(|| "Kueue is not available".to_string()),
                note: waiting(
                    "KueueUnavailable",
                    format!(
                        "the job names LocalQueue {} (label kueue.x-k8s.io/queue-name) but \
                         Kueue's Workload API (kueue.x-k8s.io/v1beta2) is not served, or the \
                         operator may not read it; install Kueue (and enable it in the \
                         operator's chart: kueue.enabled), then restart the operator",
                        job.queue
                    ),
                ),
                ..Default::default()
            };
        }
        Kueue::Listed(workload) => workload,
    };
    if let Some(succeeded) = job.finished {
        let write = workload
            .filter(|w| {
                !w.status
                    .as_ref()
                    .is_some_and(|s| is_true(&s.conditions, FINISHED))
            })
            .map(|w| {
                let mut conditions = w.status.clone().unwrap_or_default().conditions;
                let (reason, message) = if succeeded {
                    ("Succeeded", "the RenderJob is Complete")
                } else {
                    ("Failed", "the RenderJob Failed")
                };
                set(&mut conditions, w, FINISHED, true, reason, message, now);
                WorkloadWrite::Finish {
                    name: name.clone(),
                    resource_version: w.metadata.resource_version.clone().unwrap_or_default(),
                    conditions,
                }
            });
        return QueueGate {
            write,
            note: waiting("Finished", format!("the job finished (Workload {name})")),
            ..Default::default()
        };
    }
    let Some(workload) = workload else {
        if job.shards_left == 0 {
            // Rendered (merging): nothing to ask Kueue for.
            return QueueGate::default();
        }
        return QueueGate {
            write: Some(WorkloadWrite::Create(Box::new(new_workload(job, &name)))),
            stop: (job.active_pods > 0).then(|| format!("Workload {name} is gone")),
            note: waiting(
                "Queued",
                format!(
                    "created Workload {name} in LocalQueue {}; waiting for Kueue to admit it",
                    job.queue
                ),
            ),
            ..Default::default()
        };
    };
    let status = workload.status.clone().unwrap_or_default();
    if is_true(&status.conditions, FINISHED) {
        return QueueGate {
            write: Some(WorkloadWrite::Delete { name: name.clone() }),
            stop: (job.active_pods > 0).then(|| format!("Workload {name} is finished")),
            note: waiting(
                "Queued",
                format!("shards render again: Workload {name} is finished and is replaced"),
            ),
            ..Default::default()
        };
    }
    let evicted = find(&status.conditions, EVICTED);
    let admission = status.admission.as_ref().filter(|_| {
        evicted.is_none()
            && is_true(&status.conditions, ADMITTED)
            && workload.spec.active != Some(false)
    });
    let Some(admission) = admission else {
        let reserved = is_true(&status.conditions, QUOTA_RESERVED) || status.admission.is_some();
        let why = evicted
            .map(|c| (c.reason.clone(), c.message.clone()))
            .or_else(|| {
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == QUOTA_RESERVED && !c.message.is_empty())
                    .map(|c| ("Pending".to_string(), c.message.clone()))
            })
            .unwrap_or_else(|| ("Pending".into(), "waiting for Kueue to admit it".into()));
        let message = format!("Workload {name} (LocalQueue {}): {}", job.queue, why.1);
        // Only an eviction gives quota back: a reservation waiting on admission checks stays.
        let release = (evicted.is_some() && job.active_pods == 0 && reserved).then(|| {
            // What Kueue's jobframework does once an evicted job has stopped.
            let requeued = matches!(why.0.as_str(), "Preempted" | "NodeFailures");
            let mut conditions = status.conditions.clone();
            set(
                &mut conditions,
                workload,
                REQUEUED,
                requeued,
                &why.0,
                &why.1,
                now,
            );
            set(
                &mut conditions,
                workload,
                QUOTA_RESERVED,
                false,
                "Pending",
                &why.1,
                now,
            );
            if is_true(&conditions, ADMITTED) {
                let text = "The workload has no reservation";
                set(
                    &mut conditions,
                    workload,
                    ADMITTED,
                    false,
                    "NoReservation",
                    text,
                    now,
                );
            }
            WorkloadWrite::ReleaseQuota {
                name: name.clone(),
                resource_version: workload
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap_or_default(),
                conditions,
            }
        });
        return QueueGate {
            stop: (job.active_pods > 0).then(|| format!("Kueue: {}", why.1)),
            write: release,
            note: waiting(&why.0, message),
            ..Default::default()
        };
    };
    let assignment = admission
        .pod_set_assignments
        .iter()
        .find(|a| a.name == POD_SET);
    let pod_set_count = workload
        .spec
        .pod_sets
        .iter()
        .find(|p| p.name == POD_SET)
        .map_or(0, |p| p.count);
    let reported = status
        .reclaimable_pods
        .iter()
        .find(|r| r.name == POD_SET)
        .map_or(0, |r| r.count);
    // Kueue counts `min(admitted, count - reclaimable)` pods against the quota, and a
    // reclaimable count never goes down while the Workload is admitted (Kueue's webhook
    // refuses it): report only what frees quota (the tail of the job), and run within it.
    let admitted = assignment
        .and_then(|a| a.count)
        .unwrap_or(pod_set_count)
        .clamp(0, pod_set_count.saturating_sub(reported).max(0)) as u32;
    let needed = job.shards_left;
    if admitted == 0 && needed > 0 && job.active_pods == 0 {
        // Every pod reclaimed, then shards to render again (a corrupt output, a re-render):
        // this Workload can run nothing more; a new one queues the job again.
        return QueueGate {
            write: Some(WorkloadWrite::Delete { name: name.clone() }),
            note: waiting(
                "Queued",
                format!(
                    "shards render again: Workload {name} gave back all its pods and is replaced"
                ),
            ),
            ..Default::default()
        };
    }
    let reclaimable = if needed < admitted {
        pod_set_count.saturating_sub(needed as i32).max(reported)
    } else {
        reported
    };
    let placement = placement(workload, assignment.map(|a| &a.flavors), flavor);
    let flavors: Vec<&str> = assignment
        .map(|a| {
            let mut names: Vec<&str> = a.flavors.values().map(String::as_str).collect();
            names.sort_unstable();
            names.dedup();
            names
        })
        .unwrap_or_default();
    QueueGate {
        admitted,
        stop: None,
        write: (reclaimable > reported).then(|| WorkloadWrite::Reclaimable {
            name: name.clone(),
            count: reclaimable,
        }),
        placement,
        note: Some(QueueNote {
            admitted: true,
            reason: "Admitted".into(),
            message: format!(
                "Kueue admitted Workload {name}: up to {admitted} shard pods at once \
                 (ClusterQueue {}, flavor {})",
                admission.cluster_queue,
                if flavors.is_empty() {
                    "none".to_string()
                } else {
                    flavors.join(", ")
                }
            ),
        }),
    }
}

fn set(
    conditions: &mut Vec<Condition>,
    workload: &Workload,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    conditions::set(
        conditions,
        type_,
        status,
        reason,
        message,
        workload.metadata.generation,
        now,
    );
}

/// The job's Workload: one pod set of its shard pods, as many as it has shards to render
/// (Kueue may admit fewer: `minCount` 1), at the job's priority.
fn new_workload(job: &QueuedJob<'_>, name: &str) -> Workload {
    let count = job.shards_left.clamp(1, i32::MAX as u32) as i32;
    Workload {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(job.namespace.into()),
            owner_references: job.owner.clone().map(|o| vec![o]),
            labels: Some(BTreeMap::from([
                (
                    crate::labels::MANAGED_BY.into(),
                    crate::labels::MANAGER.into(),
                ),
                (
                    crate::labels::JOB.into(),
                    crate::labels::job_label_value(job.name),
                ),
            ])),
            ..Default::default()
        },
        spec: WorkloadSpec {
            pod_sets: vec![PodSet {
                name: POD_SET.into(),
                count,
                min_count: Some(1),
                template: job.template.clone(),
            }],
            queue_name: Some(job.queue.into()),
            priority: Some(job.priority),
            active: None,
        },
        status: None,
    }
}

/// Node labels and tolerations of the assigned flavors, then what Ready admission checks add.
fn placement(
    workload: &Workload,
    flavors: Option<&BTreeMap<String, String>>,
    flavor: &dyn Fn(&str) -> Option<ResourceFlavorSpec>,
) -> Placement {
    let mut placement = Placement::default();
    let mut names: Vec<&String> = flavors.map(|f| f.values().collect()).unwrap_or_default();
    names.sort_unstable();
    names.dedup();
    for spec in names.into_iter().filter_map(|n| flavor(n)) {
        placement.node_selector.extend(spec.node_labels);
        for toleration in spec.tolerations {
            if !placement.tolerations.contains(&toleration) {
                placement.tolerations.push(toleration);
            }
        }
    }
    let checks = workload.status.iter().flat_map(|s| &s.admission_checks);
    for update in checks
        .filter(|c| c.state == "Ready")
        .flat_map(|c| &c.pod_set_updates)
        .filter(|u| u.name == POD_SET)
    {
        placement.node_selector.extend(update.node_selector.clone());
        placement.labels.extend(update.labels.clone());
        placement.annotations.extend(update.annotations.clone());
        for toleration in &update.tolerations {
            if !placement.tolerations.contains(toleration) {
                placement.tolerations.push(toleration.clone());
            }
        }
    }
    placement
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
