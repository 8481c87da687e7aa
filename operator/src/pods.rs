//! Pod builder: the shard and merge pods, as pure functions of the job, the pool and the spec.
//!
//! Every pod: deterministic name, the job's labels, a controller owner reference to the
//! RenderJob (the garbage collector deletes pods with their job), `restartPolicy: Never` (the
//! operator decides about retries), the restricted Pod Security profile, no service-account
//! token and no service links. The shard spec travels as the container's arguments, so
//! `kubectl describe pod` shows exactly what a pod rendered.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, EnvFromSource, EnvVar, EnvVarSource,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PreferredSchedulingTerm,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource;
use kube::api::ObjectMeta;
use tessera_shard::contract::{MergeSpec, MergeStep, ShardSpec};

use crate::api::{RenderJob, RenderPool};
use crate::decide::ValidJob;
use crate::job_plan::SCENE_MOUNT;
use crate::labels;

/// The user every Tessera container runs as (the distroless `nonroot` user).
const NON_ROOT_UID: i64 = 65532;
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Nodes a shard attempt stays off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Avoidance {
    /// Never schedule there (nodes this shard failed on, nodes this job excluded).
    pub required: BTreeSet<String>,
    /// Only when nothing else fits (the pool's suspect nodes).
    pub preferred: BTreeSet<String>,
}

/// The pod for one attempt of one shard. Unless its pool says `ledgerFinalizer: false` it
/// carries the ledger finalizer: the pod object outlives its deletion (by a person, PodGC or
/// the operator) until the operator has accounted its attempt in the job's status (see
/// `ledger`).
pub fn shard_pod(valid: &ValidJob<'_>, spec: &ShardSpec, avoid: &Avoidance) -> Pod {
    let (job, pool) = (valid.job, valid.pool);
    let storage_secret = valid.storage_secret.as_deref();
    let mut labels = job_labels(valid, labels::ROLE_SHARD);
    labels.insert(labels::SHARD.into(), spec.shard.to_string());
    labels.insert(labels::ATTEMPT.into(), spec.attempt.to_string());
    labels.insert(
        labels::SHARD_BLOCK.into(),
        (spec.shard / labels::SHARDS_PER_BLOCK).to_string(),
    );
    labels.insert(labels::POOL.into(), labels::job_label_value(&job.spec.pool));

    let gpu = &pool.spec.gpu;
    let limits = BTreeMap::from([
        (gpu.resource_name.clone(), Quantity(gpu.count.to_string())),
        (
            "cpu".to_string(),
            pool.spec
                .shard_resources
                .cpu
                .clone()
                .unwrap_or_else(|| Quantity("2".into())),
        ),
        (
            "memory".to_string(),
            pool.spec
                .shard_resources
                .memory
                .clone()
                .unwrap_or_else(|| Quantity("8Gi".into())),
        ),
    ]);
    // Requests equal limits: a shard gets exactly what it asked for (Guaranteed QoS).
    let requests = limits.clone();

    let container = Container {
        name: "render".into(),
        image: Some(pool.spec.image.clone()),
        args: Some(vec![
            "render".into(),
            "--spec".into(),
            serde_json::to_string(spec).expect("a shard spec always serializes"),
        ]),
        resources: Some(ResourceRequirements {
            limits: Some(limits),
            requests: Some(requests),
            ..Default::default()
        }),
        env: Some(
            provenance_env()
                .into_iter()
                .chain([ambient_credentials_env(valid)])
                .collect(),
        ),
        ..base_container(job, pool, storage_secret)
    };

    let mut tolerations = pool.spec.tolerations.clone();
    tolerations.extend(node_lost_tolerations(
        pool.spec.node_lost_toleration_seconds,
    ));

    Pod {
        metadata: ObjectMeta {
            name: Some(labels::shard_pod_name(
                &valid.name,
                spec.shard,
                spec.attempt,
            )),
            namespace: Some(valid.namespace.clone()),
            labels: Some(labels),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            finalizers: pool
                .spec
                .ledger_finalizer
                .then(|| vec![labels::LEDGER_FINALIZER.into()]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            // The kubelet stops a hung attempt; the operator reads DeadlineExceeded as Timeout.
            active_deadline_seconds: valid.policy.shard_timeout_seconds.map(i64::from),
            node_selector: (!pool.spec.node_selector.is_empty())
                .then(|| pool.spec.node_selector.clone()),
            affinity: avoid_nodes(pool.spec.affinity.clone(), avoid),
            tolerations: Some(tolerations),
            priority_class_name: pool.spec.priority_class_name.clone(),
            ..base_pod_spec(job, pool)
        }),
        status: None,
    }
}

/// The merge pod's memory (request and limit), from what it holds at once
/// (render-pod/src/commands/merge.rs): `framesPerShard` frames of accumulators (Σ in f64 and
/// a count: 32 bytes a pixel), one decoded tile and its EXR bytes, the finished frame and its
/// encodings (about 52 bytes a pixel together at worst), plus 256 MiB for the runtime and
/// 64 MiB for the verified object lists (a few hundred bytes a shard, 10⁵ shards at most).
/// A 1080p frame per shard needs about 490 MiB; a fixed size would be too small for 8K chunks
/// and wasteful for previews.
pub fn merge_memory_bytes(spec: &MergeSpec) -> u64 {
    let pixels = u64::from(spec.settings.width) * u64::from(spec.settings.height);
    let frames = u64::from(spec.frames_per_shard.max(1));
    (320 << 20) + pixels.saturating_mul(32 * frames + 52)
}

/// A merge pod, named after its step (`spec.step`). It needs no GPU and runs wherever the
/// scheduler likes.
pub fn merge_pod(valid: &ValidJob<'_>, spec: &MergeSpec, attempt: u32) -> Pod {
    let merge_id = match &spec.step {
        MergeStep::Chunks(chunks) => labels::merge_id(chunks.iter().next().unwrap_or(0), attempt),
        MergeStep::Preview { chunk, .. } => labels::preview_id(*chunk, attempt),
        MergeStep::All | MergeStep::Manifest => labels::manifest_id(attempt),
    };
    let name = labels::pod_name_of_merge(&valid.name, &merge_id);
    let (job, pool) = (valid.job, valid.pool);
    let storage_secret = valid.storage_secret.as_deref();
    let mut labels = job_labels(valid, labels::ROLE_MERGE);
    labels.insert(labels::ATTEMPT.into(), attempt.to_string());
    labels.insert(labels::MERGE_ID.into(), merge_id);
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity("1".into())),
        (
            "memory".to_string(),
            Quantity(format!("{}Mi", merge_memory_bytes(spec).div_ceil(1 << 20))),
        ),
    ]);
    let container = Container {
        name: "merge".into(),
        image: Some(pool.spec.image.clone()),
        args: Some(vec![
            "merge".into(),
            "--spec".into(),
            serde_json::to_string(spec).expect("a merge spec always serializes"),
        ]),
        resources: Some(ResourceRequirements {
            limits: Some(resources.clone()),
            requests: Some(resources),
            ..Default::default()
        }),
        env: Some(vec![ambient_credentials_env(valid)]),
        ..base_container(job, pool, storage_secret)
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(valid.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (
                    labels::MERGE_ATTEMPTS.to_string(),
                    spec.attempts.to_string(),
                ),
                (
                    labels::MERGE_STEP.to_string(),
                    serde_json::to_string(&spec.step).expect("a merge step always serializes"),
                ),
            ])),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            ..base_pod_spec(job, pool)
        }),
        status: None,
    }
}

/// The variable that tells the render pod whether it may fall back to ambient cloud
/// credentials (instance metadata, IRSA, Workload Identity) when its Secret configures none.
pub const AMBIENT_CREDENTIALS_ENV: &str = "TESSERA_AMBIENT_CREDENTIALS";

/// `TESSERA_AMBIENT_CREDENTIALS`: `"true"` only when the pool opted in
/// (`spec.storage.ambientCredentials`), `"false"` on every other pod.
fn ambient_credentials_env(valid: &ValidJob<'_>) -> EnvVar {
    EnvVar {
        name: AMBIENT_CREDENTIALS_ENV.into(),
        value: Some(valid.ambient_credentials.to_string()),
        ..Default::default()
    }
}

/// Where the attempt ran, for its manifest and log (the downward API).
fn provenance_env() -> Vec<EnvVar> {
    [
        ("TESSERA_POD_NAME", "metadata.name"),
        ("TESSERA_NODE_NAME", "spec.nodeName"),
    ]
    .into_iter()
    .map(|(name, field)| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
    .collect()
}

fn job_labels(valid: &ValidJob<'_>, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::JOB.into(), labels::job_label_value(&valid.name)),
        (labels::JOB_UID.into(), valid.uid.clone()),
        (labels::ROLE.into(), role.into()),
        (labels::MANAGED_BY.into(), labels::MANAGER.into()),
        ("app.kubernetes.io/name".into(), "tessera-render".into()),
    ])
}

fn base_pod_spec(job: &RenderJob, pool: &RenderPool) -> PodSpec {
    let mut volumes = Vec::new();
    if let Some(config_map) = &job.spec.scene.config_map {
        volumes.push(Volume {
            name: "scene".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(claim) = pool
        .spec
        .storage
        .as_ref()
        .and_then(|s| s.volume_claim.clone())
    {
        volumes.push(Volume {
            name: "storage".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim,
                read_only: Some(false),
            }),
            ..Default::default()
        });
    }
    PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NON_ROOT_UID),
            run_as_group: Some(NON_ROOT_UID),
            fs_group: Some(NON_ROOT_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    }
}

fn base_container(job: &RenderJob, pool: &RenderPool, storage_secret: Option<&str>) -> Container {
    let mut mounts = Vec::new();
    if job.spec.scene.config_map.is_some() {
        mounts.push(VolumeMount {
            name: "scene".into(),
            mount_path: SCENE_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if let Some(storage) = pool
        .spec
        .storage
        .as_ref()
        .filter(|s| s.volume_claim.is_some())
    {
        mounts.push(VolumeMount {
            name: "storage".into(),
            mount_path: storage.mount_path.clone().unwrap_or_else(|| "/data".into()),
            ..Default::default()
        });
    }
    Container {
        image_pull_policy: Some("IfNotPresent".into()),
        env_from: storage_secret.map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A shard must leave a node that stopped answering quickly, so it can run elsewhere.
fn node_lost_tolerations(seconds: i64) -> Vec<Toleration> {
    [
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/not-ready",
    ]
    .into_iter()
    .map(|key| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(seconds),
        ..Default::default()
    })
    .collect()
}

/// Adds "not on these nodes" to the pod's node affinity: hard for `required` (in every
/// required term, since terms are ORed), soft for `preferred`. One requirement per node: the API
/// server allows a single value for `In`/`NotIn` on the `metadata.name` field selector.
fn avoid_nodes(affinity: Option<Affinity>, avoid: &Avoidance) -> Option<Affinity> {
    if avoid.required.is_empty() && avoid.preferred.is_empty() {
        return affinity;
    }
    let not_on = |nodes: &BTreeSet<String>| -> Vec<NodeSelectorRequirement> {
        nodes
            .iter()
            .map(|node| NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec![node.clone()]),
            })
            .collect()
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    if !avoid.required.is_empty() {
        let required = node_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            });
        if required.node_selector_terms.is_empty() {
            required
                .node_selector_terms
                .push(NodeSelectorTerm::default());
        }
        for term in &mut required.node_selector_terms {
            term.match_fields
                .get_or_insert_with(Vec::new)
                .extend(not_on(&avoid.required));
        }
    }
    if !avoid.preferred.is_empty() {
        node_affinity
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(PreferredSchedulingTerm {
                weight: 100,
                preference: NodeSelectorTerm {
                    match_fields: Some(not_on(&avoid.preferred)),
                    ..Default::default()
                },
            });
    }
    Some(affinity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::tests::{job_from_yaml, pool_from_yaml, shard_spec_for};
    use kube::ResourceExt;

    fn pod_for(avoid: &[&str]) -> Pod {
        pod_avoiding(avoid, &[])
    }

    fn pod_avoiding(required: &[&str], preferred: &[&str]) -> Pod {
        let mut job = job_from_yaml();
        job.spec.output = Some(
            serde_json::from_value(serde_json::json!({"secretName": "s3-credentials"})).unwrap(),
        );
        job.spec.retry.as_mut().unwrap().shard_timeout_seconds = Some(600);
        let pool = pool_from_yaml();
        let valid = ValidJob::new(&job, &pool).unwrap();
        let spec = shard_spec_for(&job, 3, 1);
        let set = |nodes: &[&str]| nodes.iter().map(|s| s.to_string()).collect();
        let avoid = Avoidance {
            required: set(required),
            preferred: set(preferred),
        };
        shard_pod(&valid, &spec, &avoid)
    }

    #[test]
    fn a_pool_without_the_ledger_finalizer_makes_pods_without_it_labelled_by_block() {
        let mut job = job_from_yaml();
        job.spec.retry.as_mut().unwrap().shard_timeout_seconds = Some(600);
        let mut pool = pool_from_yaml();
        pool.spec.ledger_finalizer = false;
        let valid = ValidJob::new(&job, &pool).unwrap();
        let pod = shard_pod(&valid, &shard_spec_for(&job, 3, 1), &Avoidance::default());
        assert_eq!(pod.metadata.finalizers, None);
        assert_eq!(pod.labels()[labels::SHARD_BLOCK], "0");
    }

    #[test]
    fn shard_pods_hold_the_ledger_finalizer_a_deadline_and_their_provenance() {
        let pod = pod_for(&[]);
        assert_eq!(
            pod.metadata.finalizers,
            Some(vec![labels::LEDGER_FINALIZER.to_string()])
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let env = spec.containers[0].env.clone().unwrap();
        let field = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value_from.clone())
                .and_then(|v| v.field_ref)
                .map(|f| f.field_path)
        };
        assert_eq!(field("TESSERA_NODE_NAME").as_deref(), Some("spec.nodeName"));
        assert_eq!(field("TESSERA_POD_NAME").as_deref(), Some("metadata.name"));
    }

    #[test]
    fn shard_pods_carry_identity_labels_and_owner() {
        let pod = pod_for(&[]);
        assert_eq!(pod.metadata.name.as_deref(), Some("shot010-3-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("lighting"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[labels::JOB], "shot010");
        assert_eq!(labels[labels::JOB_UID], "uid-1");
        assert_eq!(labels[labels::SHARD], "3");
        assert_eq!(labels[labels::ATTEMPT], "1");
        assert_eq!(labels[labels::ROLE], "shard");
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("RenderJob", "shot010", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn shard_pods_are_placed_on_the_pool_with_gpu_limits() {
        let spec = pod_for(&[]).spec.unwrap();
        assert_eq!(
            spec.node_selector.unwrap()["tessera.dev/node-group"],
            "gpu-a"
        );
        let resources = spec.containers[0].resources.clone().unwrap();
        assert_eq!(
            resources.limits.unwrap()["nvidia.com/gpu"],
            Quantity("1".into())
        );
        assert_eq!(
            resources.requests.unwrap()["memory"],
            Quantity("8Gi".into())
        );
        let tolerations = spec.tolerations.unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t.key.as_deref() == Some("nvidia.com/gpu"))
        );
        let unreachable = tolerations
            .iter()
            .find(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
            .unwrap();
        assert_eq!(unreachable.toleration_seconds, Some(30));
        assert_eq!(spec.affinity, None);
    }

    #[test]
    fn shard_pods_are_restricted_and_tokenless() {
        let spec = pod_for(&[]).spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        let pod_security = spec.security_context.unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        let container = &spec.containers[0];
        let security = container.security_context.clone().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.unwrap().drop.unwrap(),
            vec!["ALL".to_string()]
        );
        assert_eq!(
            container.env_from.as_ref().unwrap()[0]
                .secret_ref
                .as_ref()
                .unwrap()
                .name,
            "s3-credentials"
        );
    }

    #[test]
    fn every_pod_says_whether_ambient_credentials_are_allowed() {
        let env_of = |pod: &Pod| {
            pod.spec.as_ref().unwrap().containers[0]
                .env
                .iter()
                .flatten()
                .find(|e| e.name == AMBIENT_CREDENTIALS_ENV)
                .and_then(|e| e.value.clone())
        };
        let job = job_from_yaml();
        let mut pool = pool_from_yaml();
        for allowed in [false, true] {
            pool.spec.storage.as_mut().unwrap().ambient_credentials = allowed;
            let valid = ValidJob::new(&job, &pool).unwrap();
            let shard = shard_pod(&valid, &shard_spec_for(&job, 0, 0), &Avoidance::default());
            let merge_spec: MergeSpec = serde_json::from_value(serde_json::json!({
                "version": 1, "job": "shot010", "namespace": "lighting", "jobUid": "uid-1",
                "settings": shard_spec_for(&job, 0, 0).settings, "frames": "1-4",
                "framesPerShard": 1, "tilesX": 2, "tilesY": 1, "sampleSplits": 1,
                "attempts": "", "formats": ["exr"], "output": valid.output,
            }))
            .unwrap();
            let merge = merge_pod(&valid, &merge_spec, 0);
            for pod in [&shard, &merge] {
                assert_eq!(
                    env_of(pod).as_deref(),
                    Some(if allowed { "true" } else { "false" })
                );
            }
        }
    }

    #[test]
    fn the_merge_pod_is_sized_from_the_frames_it_holds() {
        let spec = |width: u32, height: u32, frames_per_shard: u32| -> MergeSpec {
            serde_json::from_value(serde_json::json!({
                "version": 1, "job": "j", "namespace": "n", "jobUid": "u",
                "settings": {"scene": "s3://b/s.glb", "width": width, "height": height,
                             "samplesPerPixel": 1, "maxBounces": 1, "seed": 0},
                "frames": "1-10", "framesPerShard": frames_per_shard, "tilesX": 1,
                "tilesY": 1, "sampleSplits": 1, "attempts": "", "formats": ["exr"],
                "output": "s3://b/o",
            }))
            .unwrap()
        };
        let mib = |s: &MergeSpec| merge_memory_bytes(s) >> 20;
        // A preview stays small; 1080p is about half a GiB; 8K chunks of 10 frames need ~12 GiB.
        assert_eq!(mib(&spec(64, 64, 1)), 320);
        assert_eq!(mib(&spec(1920, 1080, 1)), 486);
        assert_eq!(mib(&spec(7680, 4320, 10)), 12_090);
        let pod = merge_pod(
            &ValidJob::new(&job_from_yaml(), &pool_from_yaml()).unwrap(),
            &spec(1920, 1080, 1),
            0,
        );
        // Its merge id is its name after the job's: a delete-collection can name it.
        let id = &pod.metadata.labels.as_ref().unwrap()[labels::MERGE_ID];
        assert_eq!(id, "manifest-0");
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some(labels::pod_name_of_merge("shot010", id).as_str())
        );
        let resources = pod.spec.unwrap().containers[0].resources.clone().unwrap();
        assert_eq!(
            resources.requests.unwrap()["memory"],
            Quantity("487Mi".into())
        );
        assert_eq!(
            resources.limits.unwrap()["memory"],
            Quantity("487Mi".into())
        );
    }

    #[test]
    fn the_shard_spec_travels_as_arguments() {
        let spec = pod_for(&[]).spec.unwrap();
        let args = spec.containers[0].args.clone().unwrap();
        assert_eq!(&args[..2], ["render", "--spec"]);
        let parsed: ShardSpec = serde_json::from_str(&args[2]).unwrap();
        assert_eq!((parsed.shard, parsed.attempt), (3, 1));
    }

    #[test]
    fn retries_avoid_failed_nodes_one_requirement_per_node() {
        let affinity = pod_for(&["gpu-node-2", "gpu-node-1"])
            .spec
            .unwrap()
            .affinity
            .unwrap();
        let node_affinity = affinity.node_affinity.unwrap();
        let required = node_affinity
            .required_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(required.node_selector_terms.len(), 1);
        let fields = required.node_selector_terms[0]
            .match_fields
            .clone()
            .unwrap();
        // The API server allows one value per metadata.name requirement.
        let avoided: Vec<(String, String, Vec<String>)> = fields
            .into_iter()
            .map(|f| (f.key, f.operator, f.values.unwrap()))
            .collect();
        assert_eq!(
            avoided,
            vec![
                (
                    "metadata.name".into(),
                    "NotIn".into(),
                    vec!["gpu-node-1".into()]
                ),
                (
                    "metadata.name".into(),
                    "NotIn".into(),
                    vec!["gpu-node-2".into()]
                ),
            ]
        );
        assert!(
            node_affinity
                .preferred_during_scheduling_ignored_during_execution
                .is_none()
        );
    }

    #[test]
    fn suspect_nodes_are_only_a_preference() {
        let affinity = pod_avoiding(&[], &["gpu-node-9"])
            .spec
            .unwrap()
            .affinity
            .unwrap();
        let node_affinity = affinity.node_affinity.unwrap();
        assert!(
            node_affinity
                .required_during_scheduling_ignored_during_execution
                .is_none()
        );
        let preferred = node_affinity
            .preferred_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(preferred[0].weight, 100);
        let fields = preferred[0].preference.match_fields.clone().unwrap();
        assert_eq!(
            fields[0].values.clone().unwrap(),
            vec!["gpu-node-9".to_string()]
        );
    }
}
