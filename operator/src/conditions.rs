//! Conditions as a list-map keyed by `type`, with `lastTransitionTime` kept stable while a
//! condition's status does not change (so unchanged status is never rewritten).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const ACCEPTED: &str = "Accepted";
pub const RENDERING: &str = "Rendering";
pub const MERGING: &str = "Merging";
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUSPENDED: &str = "Suspended";
/// The API server refused a shard pod (quota, admission webhook, policy).
pub const CREATE_REFUSED: &str = "PodCreateRefused";
/// The job's pods cannot start: a missing Secret, an image that cannot be pulled, a pod stuck
/// in ContainerCreating (decide/blocked.rs).
pub const PODS_BLOCKED: &str = "PodsBlocked";
/// The jobs in `spec.dependsOn` are Complete (decide/depends.rs).
pub const DEPENDENCIES_READY: &str = "DependenciesReady";
/// The pool's namespace policy holds the job back: its namespace's GPU-hour budget is spent,
/// or it runs as many shards as the policy allows (pool/policy.rs).
pub const POLICY_LIMITED: &str = "PolicyLimited";
/// Kueue admitted the job's Workload (jobs that name a LocalQueue; kueue/gate.rs).
pub const QUEUE_ADMITTED: &str = "QueueAdmitted";
/// The job runs at the namespace policy's maximum priority, below its `spec.priority`.
pub const PRIORITY_CLAMPED: &str = "PriorityClamped";

/// Sets condition `type_`, keeping the old transition time when the status is unchanged.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let t0 = Timestamp::from_second(100).unwrap();
        let t1 = Timestamp::from_second(200).unwrap();
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            RENDERING,
            true,
            "ShardsRunning",
            "3 running",
            Some(1),
            t0,
        );
        set(
            &mut conditions,
            RENDERING,
            true,
            "ShardsRunning",
            "5 running",
            Some(1),
            t1,
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        assert_eq!(conditions[0].message, "5 running");
        set(&mut conditions, RENDERING, false, "Done", "", Some(1), t1);
        assert_eq!(conditions[0].last_transition_time, Time(t1));
        assert!(!is_true(&conditions, RENDERING));
    }
}
