//! Pods that cannot start, named: what the kubelet reports about a job's pods that have not
//! started (a missing Secret, an image that cannot be pulled, a volume that cannot be
//! mounted), turned into the `PodsBlocked` condition instead of an endless Pending.
//!
//! The operator cannot read Secrets or ConfigMaps (its RBAC does not allow it, by design), so it
//! reads what the kubelet wrote into the pods' container statuses. A pod scheduled but still
//! `ContainerCreating` after [`START_GRACE`] is reported too: that is where a missing ConfigMap
//! scene or volume claim keeps it (the kubelet names those only in Events).

use std::time::Duration;

use jiff::Timestamp;

use crate::observe::{AttemptState, Observed, Waiting};

use super::ValidJob;

/// How long a scheduled pod may stay `ContainerCreating` before the job says so. Pulling a
/// large render image for the first time takes a while; this only informs.
pub const START_GRACE: Duration = Duration::from_secs(120);

/// Why a job's pods cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// PascalCase: `SecretNotFound`, `ConfigMapNotFound`, the kubelet's reason
    /// (`CreateContainerConfigError`, `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, …),
    /// or `PodStartDelayed`.
    pub reason: String,
    pub message: String,
    /// The job starts no further shards while this holds (it would only add stuck pods). Off
    /// for `PodStartDelayed`, which may be a slow image pull.
    pub stops_creates: bool,
}

/// The first reason found among the job's pods that have not started: a configuration error
/// first, then a pod starting for longer than [`START_GRACE`].
pub fn blocked(job: &ValidJob<'_>, observed: &Observed, now: Timestamp) -> Option<Blocked> {
    let waiting = || {
        observed
            .shards
            .values()
            .flatten()
            .chain(&observed.merges)
            .filter(|a| a.state == AttemptState::Pending && !a.terminating)
            .filter_map(|a| Some((a.pod.as_str(), a.waiting.as_ref()?)))
    };
    if let Some((pod, waiting)) = waiting().find(|(_, w)| w.is_config_error()) {
        return Some(config_error(job, pod, waiting));
    }
    let grace = jiff::SignedDuration::try_from(START_GRACE).unwrap_or_default();
    let (pod, _) = waiting().find(|(_, w)| {
        w.reason == "ContainerCreating"
            && w.scheduled
                .is_some_and(|since| now.duration_since(since) > grace)
    })?;
    let mut suspects = Vec::new();
    if let Some(config_map) = &job.job.spec.scene.config_map {
        suspects.push(format!(
            "the ConfigMap {:?} (spec.scene.configMap)",
            config_map.name
        ));
    }
    if let Some(claim) = job
        .pool
        .spec
        .storage
        .as_ref()
        .and_then(|s| s.volume_claim.as_ref())
    {
        suspects.push(format!(
            "the PersistentVolumeClaim {claim:?} (RenderPool {} storage.volumeClaim)",
            job.job.spec.pool
        ));
    }
    let suspects = if suspects.is_empty() {
        "an image still being pulled is normal".to_string()
    } else {
        format!(
            "a missing or unmountable {} in namespace {} keeps a pod there",
            suspects.join(" or "),
            job.namespace
        )
    };
    Some(Blocked {
        reason: "PodStartDelayed".into(),
        message: format!(
            "pod {pod} has been starting (ContainerCreating) for more than {} s; {suspects}; \
             `kubectl describe pod {pod} -n {}` shows why",
            START_GRACE.as_secs(),
            job.namespace
        ),
        stops_creates: false,
    })
}

fn config_error(job: &ValidJob<'_>, pod: &str, waiting: &Waiting) -> Blocked {
    let text = if waiting.message.is_empty() {
        waiting.reason.clone()
    } else {
        waiting.message.clone()
    };
    let text: String = text.chars().take(512).collect();
    let missing =
        |kind: &str| text.starts_with(&format!("{kind} \"")) && text.ends_with("not found");
    let (reason, hint) = if missing("secret") {
        (
            "SecretNotFound".to_string(),
            format!(
                "create it in namespace {} (the job's spec.output.secretName, else RenderPool {} \
                 storage.secretName; the Secret is always read from the job's namespace)",
                job.namespace, job.job.spec.pool
            ),
        )
    } else if missing("configmap") {
        (
            "ConfigMapNotFound".to_string(),
            format!("create it in namespace {}", job.namespace),
        )
    } else if waiting.reason.contains("Image") {
        (
            waiting.reason.clone(),
            format!(
                "check RenderPool {} spec.image and the nodes' registry access",
                job.job.spec.pool
            ),
        )
    } else {
        (
            waiting.reason.clone(),
            format!(
                "`kubectl describe pod {pod} -n {}` shows why",
                job.namespace
            ),
        )
    };
    Blocked {
        reason,
        message: format!(
            "pod {pod} cannot start: {text}; {hint}. No further shards start until it does"
        ),
        stops_creates: true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::decide::tests::{job_from_yaml, pool_from_yaml};
    use crate::observe;

    fn waiting_pod(
        reason: &str,
        message: &str,
        scheduled: &str,
    ) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "shot010-0-0", "labels": {"tessera.dev/role": "shard",
                "tessera.dev/shard": "0", "tessera.dev/attempt": "0"}},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "render"}]},
            "status": {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}],
                "containerStatuses": [{"name": "render", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]}
        }))
        .unwrap()
    }

    fn blocked_by(pod: k8s_openapi::api::core::v1::Pod, now: &str) -> Option<Blocked> {
        let (job, pool) = (job_from_yaml(), pool_from_yaml());
        let valid = ValidJob::new(&job, &pool).unwrap();
        let observed = observe::observe([&pod], &|_| true, "nvidia.com/gpu");
        blocked(&valid, &observed, now.parse().unwrap())
    }

    #[test]
    fn a_missing_secret_is_named_and_stops_further_shards() {
        let pod = waiting_pod(
            "CreateContainerConfigError",
            "secret \"render-s3\" not found",
            "2027-01-15T08:00:00Z",
        );
        let blocked = blocked_by(pod, "2027-01-15T08:00:05Z").unwrap();
        assert_eq!(blocked.reason, "SecretNotFound");
        assert!(blocked.stops_creates);
        assert!(
            blocked
                .message
                .contains("pod shot010-0-0 cannot start: secret \"render-s3\" not found")
                && blocked.message.contains("namespace lighting"),
            "{}",
            blocked.message
        );
    }

    #[test]
    fn image_errors_keep_the_kubelets_reason() {
        let pod = waiting_pod(
            "ImagePullBackOff",
            "Back-off pulling image",
            "2027-01-15T08:00:00Z",
        );
        let blocked = blocked_by(pod, "2027-01-15T08:00:05Z").unwrap();
        assert_eq!(blocked.reason, "ImagePullBackOff");
        assert!(
            blocked.message.contains("spec.image"),
            "{}",
            blocked.message
        );
    }

    #[test]
    fn a_pod_starting_too_long_is_reported_but_does_not_stop_the_job() {
        let pod = || waiting_pod("ContainerCreating", "", "2027-01-15T08:00:00Z");
        assert_eq!(blocked_by(pod(), "2027-01-15T08:01:00Z"), None);
        let blocked = blocked_by(pod(), "2027-01-15T08:03:00Z").unwrap();
        assert_eq!(blocked.reason, "PodStartDelayed");
        assert!(!blocked.stops_creates);
        assert!(
            blocked.message.contains("kubectl describe pod shot010-0-0"),
            "{}",
            blocked.message
        );
    }
}
