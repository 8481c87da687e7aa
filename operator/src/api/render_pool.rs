//! `RenderPool`: where and how shards run. Cluster-scoped, owned by the platform team.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_shard::SceneLimits;

use super::validation::{
    ALL_NO_DOT_SEGMENTS, ALL_NO_EMPTY_SEGMENTS, NO_DOT_PATH_SEGMENTS, NO_DOT_SEGMENTS,
    NO_EMPTY_SEGMENTS, POSITIVE_QUANTITY,
};

/// A group of GPU nodes that renders shards, and how shard pods run on it.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tessera.dev",
    version = "v1alpha1",
    kind = "RenderPool",
    shortname = "rpool",
    status = "RenderPoolStatus",
    printcolumn = r#"{"name":"Ready nodes","type":"integer","jsonPath":".status.readyNodes"}"#,
    printcolumn = r#"{"name":"GPUs","type":"integer","jsonPath":".status.gpuCapacity"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.runningShards"}"#,
    printcolumn = r#"{"name":"Queued jobs","type":"integer","jsonPath":".status.queuedJobs"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RenderPoolSpec {
    /// Labels a node must carry to run this pool's shards (for example the node group label, or
    /// `nvidia.com/gpu.product` from the NVIDIA GPU operator). Copied into every shard pod's
    /// nodeSelector; the Kubernetes scheduler places the pods.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,

    /// Extra scheduling constraints copied into every shard pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Tolerations copied into every shard pod, typically for the GPU node group's taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// GPUs each shard pod requests.
    #[serde(default)]
    pub gpu: GpuRequest,

    /// CPU and memory each shard pod requests (and is limited to).
    #[serde(default)]
    pub shard_resources: ShardResources,

    /// The render-pod container image (a reference without whitespace, at most 1024
    /// characters).
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^\s]+$"))]
    pub image: String,

    /// Most shards of this pool running at once, over all jobs. Unset: limited by the GPU
    /// capacity of the pool's ready nodes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_shards: Option<u32>,

    /// Namespaces whose RenderJobs may use this pool. Unset: every namespace. Operators are
    /// `In`, `NotIn` (with values), `Exists` and `DoesNotExist` (without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "namespace_selector_schema")]
    pub namespace_selector: Option<LabelSelector>,

    /// The pool's storage: where its jobs write (each namespace under `<url>/<namespace>/`),
    /// the credentials, the shared volume, the read-only libraries every tenant may read
    /// scenes from, and whether ambient cloud credentials may be used (docs/storage.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// What a render pod of this pool will load from one scene; unset fields keep the
    /// defaults (docs/security.md, "Scene budgets"). Raise them for pools whose nodes have the
    /// memory for larger scenes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_limits: Option<SceneLimitsSpec>,

    /// PriorityClass of shard pods, so render work can yield to (or preempt) other workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub priority_class_name: Option<String>,

    /// Seconds a shard pod stays bound to a node that stopped answering before it is evicted
    /// and its shard re-run elsewhere (the pod's toleration of the `unreachable`/`not-ready`
    /// taints). Kubernetes' default of 300 s is long for a render farm.
    #[serde(default = "default_node_lost_seconds")]
    #[schemars(range(min = 0, max = 3600))]
    pub node_lost_toleration_seconds: i64,

    /// The price of one GPU-hour on this pool, in any currency: the GPU-hour ledger
    /// (`status.usage`) then shows each namespace's cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub price_per_gpu_hour: Option<f64>,

    /// Limits per namespace, for the namespaces each policy's selector picks (the first
    /// policy that matches a namespace applies): concurrent shards, the highest priority a job
    /// may use, and a GPU-hour budget per period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub namespace_policies: Vec<NamespacePolicy>,

    /// Preemption inside the pool: a job waiting for capacity takes the slots of shards of
    /// lower `spec.priority` (the lowest, most recently started first), evicted gracefully
    /// through the Eviction API and run again later without counting as failures. On unless
    /// `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption: Option<PoolPreemption>,

    /// Whether shard pods carry the `tessera.dev/ledger` finalizer until their attempt is in
    /// the job's ledger (default `true`). With it no pod can vanish unaccounted, even one
    /// deleted (by a person or PodGC) while the operator is down, at one more API write per
    /// shard (the finalizer's removal). `false` halves the operator's writes for farms of
    /// many short shards: a pod deleted while the operator runs is still accounted from its
    /// deletion event; one deleted while it is down is run again, its GPU time unaccounted.
    #[serde(default = "yes")]
    pub ledger_finalizer: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolPreemption {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Evictions at most, per minute, over the pool.
    #[serde(default = "default_evictions_per_minute")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_per_minute: u32,
}

impl Default for PoolPreemption {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_minute: default_evictions_per_minute(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_evictions_per_minute() -> u32 {
    10
}

/// What a namespace's jobs may use of the pool.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// The namespaces this policy governs; absent: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "namespace_selector_schema")]
    pub namespace_selector: Option<LabelSelector>,
    /// Shard pods of each such namespace running on the pool at once (all its jobs together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_concurrent_shards: Option<u32>,
    /// The highest `spec.priority` a job may use; see `priorityAboveMax`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1000, max = 1000))]
    pub max_priority: Option<i32>,
    /// A job asking for more than `maxPriority`: `Clamp` (it runs at `maxPriority`; condition
    /// `PriorityClamped`) or `Refuse` (it fails with reason `PriorityAboveLimit`).
    #[serde(default)]
    pub priority_above_max: PriorityAboveMax,
    /// GPU-hours each such namespace may use per period; once spent, its jobs start no new
    /// shard (condition `PolicyLimited`, reason `GPUHourBudgetSpent`, with the figures) until
    /// the budget is raised or the period rolls over. Shards running go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_hour_budget: Option<GpuHourBudget>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PriorityAboveMax {
    #[default]
    Clamp,
    Refuse,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuHourBudget {
    #[schemars(range(min = 0.0, max = 100000000.0))]
    pub hours: f64,
    /// Calendar periods in UTC: `Day`, `Week` (from Monday) or `Month`.
    pub period: BudgetPeriod,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BudgetPeriod {
    Day,
    Week,
    Month,
}

fn default_node_lost_seconds() -> i64 {
    30
}

/// GPUs per shard pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// The extended resource name of the GPU (`nvidia.com/gpu`, or a MIG profile such as
    /// `nvidia.com/mig-1g.10gb`).
    #[serde(default = "default_gpu_resource")]
    #[schemars(
        length(min = 1, max = 317),
        regex(pattern = r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+$")
    )]
    pub resource_name: String,

    /// GPUs per shard pod.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub count: u32,

    /// Time-sliced GPUs: how many shares of one physical GPU the device plugin advertises as
    /// `resourceName` (its `replicas`). The GPU-hour ledger counts a share as 1/sharesPerGpu
    /// of a GPU.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub shares_per_gpu: u32,
}

impl Default for GpuRequest {
    fn default() -> Self {
        Self {
            resource_name: default_gpu_resource(),
            count: 1,
            shares_per_gpu: 1,
        }
    }
}

fn default_gpu_resource() -> String {
    "nvidia.com/gpu".into()
}

fn one() -> u32 {
    1
}

/// CPU and memory per shard pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardResources {
    /// CPU per shard pod (request and limit), a positive quantity. Default `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(POSITIVE_QUANTITY).message("spec.shardResources.cpu must be a positive quantity such as 2 or 500m"))]
    pub cpu: Option<Quantity>,
    /// Memory per shard pod (request and limit), a positive quantity. Default `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(POSITIVE_QUANTITY).message("spec.shardResources.memory must be a positive quantity such as 8Gi"))]
    pub memory: Option<Quantity>,
}

/// The pool's storage.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.sharedReadPrefixes) || self.sharedReadPrefixes.all(p, !(p.endsWith('/') ? p : p + '/').startsWith(self.url.endsWith('/') ? self.url : self.url + '/') && !(self.url.endsWith('/') ? self.url : self.url + '/').startsWith(p.endsWith('/') ? p : p + '/'))").message("spec.storage.sharedReadPrefixes must not overlap spec.storage.url, the tenants' area: a shared library lies beside it, neither inside it nor containing it"))]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Storage prefix URL: `s3://bucket/prefix` (also `s3a://`), `gs://…`, `az://…` (also
    /// `azure://`, `adl://`, `abfs(s)://`), `https://` on an S3 or Azure storage host, or
    /// `file:///path` on the shared volume. Jobs of namespace `ns` that bring no Secret of
    /// their own write under `<url>/<ns>/` (by default `<url>/<ns>/<job>`) and nowhere else.
    /// No `.`/`..` or empty path segments, query, fragment or user information.
    #[schemars(
        length(min = 1, max = 2048),
        regex(
            pattern = r"^(file:///|(s3|s3a|gs|az|azure|adl|abfs|abfss|https)://[a-z0-9])[^\s?#\\]*$"
        )
    )]
    #[x_kube(
        validation = Rule::new(NO_DOT_SEGMENTS).message("spec.storage.url must not contain `.` or `..` path segments (also percent-encoded)"),
        validation = Rule::new(NO_EMPTY_SEGMENTS).message("spec.storage.url must not contain empty path segments (`//`)")
    )]
    pub url: String,

    /// A Secret, in the job's namespace, whose keys become the pods' environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, …).
    /// Jobs that use it are confined to `<url>/<namespace>/`. Give each namespace's copy
    /// credentials limited to that prefix where the store allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// A PersistentVolumeClaim, in the job's namespace, mounted into shard and merge pods at
    /// `mountPath`; use with `file://` URLs under that path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub volume_claim: Option<String>,

    /// Where `volumeClaim` is mounted: an absolute path without `.`/`..` segments. Default
    /// `/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/[^\s\\]*$"))]
    #[x_kube(validation = Rule::new(NO_DOT_PATH_SEGMENTS).message("spec.storage.mountPath must not contain `.` or `..` segments"))]
    pub mount_path: Option<String>,

    /// Read-only libraries every tenant may read scenes (and the buffers and textures they
    /// reference) from with the pool's credentials, for example `s3://studio-assets/library`.
    /// Must not overlap `url`. Jobs with a Secret of their own may read any URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 2048),
            regex(
                pattern = r"^(file:///|(s3|s3a|gs|az|azure|adl|abfs|abfss|https)://[a-z0-9])[^\s?#\\]*$"
            )
        )
    )]
    #[x_kube(
        validation = Rule::new(ALL_NO_DOT_SEGMENTS).message("spec.storage.sharedReadPrefixes must not contain `.` or `..` path segments (also percent-encoded)"),
        validation = Rule::new(ALL_NO_EMPTY_SEGMENTS).message("spec.storage.sharedReadPrefixes must not contain empty path segments (`//`)")
    )]
    pub shared_read_prefixes: Vec<String>,

    /// Whether render and merge pods may fall back to ambient cloud credentials (the node's
    /// instance metadata, IRSA, GKE/Azure Workload Identity) when their Secret configures none.
    /// Default false: a pod without explicit credentials fails instead of using the node's
    /// identity. The pods see it as `TESSERA_AMBIENT_CREDENTIALS`.
    #[serde(default)]
    pub ambient_credentials: bool,
}

/// Per-pool scene budgets; each unset field keeps `tessera_shard::SceneLimits`'s default.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SceneLimitsSpec {
    /// Bytes of the `.gltf`/`.glb` file itself. Default 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_scene_bytes: Option<u64>,
    /// Bytes of all buffers together (GLB chunk, data URIs and external files). Default 4 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_buffer_bytes: Option<u64>,
    /// Nodes in the document. Default 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_nodes: Option<u64>,
    /// Mesh instances after the node forest is walked. Default 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_instances: Option<u64>,
    /// Vertices over all instances. Default 100,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_vertices: Option<u64>,
    /// Triangles over all instances. Default 20,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_triangles: Option<u64>,
    /// Pixels of one image (width × height), read from its header before decoding. Default
    /// 16384².
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_image_pixels: Option<u64>,
    /// Decoded texture bytes over all images (RGBA8). Default 4 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_texture_bytes: Option<u64>,
    /// Keyframes over all animation samplers. Default 10,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_keyframes: Option<u64>,
}

impl SceneLimitsSpec {
    /// The limits a render pod gets: these where set, the defaults elsewhere.
    pub fn resolve(&self) -> SceneLimits {
        let d = SceneLimits::DEFAULT;
        SceneLimits {
            max_scene_bytes: self.max_scene_bytes.unwrap_or(d.max_scene_bytes),
            max_buffer_bytes: self.max_buffer_bytes.unwrap_or(d.max_buffer_bytes),
            max_nodes: self.max_nodes.unwrap_or(d.max_nodes),
            max_instances: self.max_instances.unwrap_or(d.max_instances),
            max_vertices: self.max_vertices.unwrap_or(d.max_vertices),
            max_triangles: self.max_triangles.unwrap_or(d.max_triangles),
            max_image_pixels: self.max_image_pixels.unwrap_or(d.max_image_pixels),
            max_texture_bytes: self.max_texture_bytes.unwrap_or(d.max_texture_bytes),
            max_keyframes: self.max_keyframes.unwrap_or(d.max_keyframes),
        }
    }
}

/// The namespaceSelector's schema: a LabelSelector bounded so that the API server can check
/// it (operators limited to the four a namespace selector understands, values required for
/// `In`/`NotIn` and forbidden for `Exists`/`DoesNotExist`).
fn namespace_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "description": "A label selector over namespaces.",
        "properties": {
            "matchLabels": {
                "type": "object",
                "maxProperties": 64,
                "additionalProperties": {"type": "string", "maxLength": 63},
                "description": "Labels a namespace must carry, ANDed."
            },
            "matchExpressions": {
                "type": "array",
                "maxItems": 32,
                "description": "Label requirements, ANDed.",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string", "minLength": 1, "maxLength": 317},
                        "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                        "values": {
                            "type": "array",
                            "maxItems": 256,
                            "items": {"type": "string", "maxLength": 63}
                        }
                    },
                    "x-kubernetes-validations": [{
                        "rule": "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
                        "message": "spec.namespaceSelector.matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"
                    }]
                }
            }
        }
    })
}

/// What the operator observed of the pool.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderPoolStatus {
    /// Nodes matching the pool's nodeSelector.
    #[serde(default)]
    pub matching_nodes: u32,
    /// Matching nodes that are Ready and schedulable.
    #[serde(default)]
    pub ready_nodes: u32,
    /// GPUs allocatable on the ready nodes.
    #[serde(default)]
    pub gpu_capacity: u32,
    /// Shards the pool can run at once: GPU capacity / GPUs per shard, capped by
    /// maxConcurrentShards.
    #[serde(default)]
    pub shard_capacity: u32,
    /// Shard pods of this pool that are pending or running.
    #[serde(default)]
    pub running_shards: u32,
    /// Jobs with shards waiting for capacity.
    #[serde(default)]
    pub queued_jobs: u32,
    /// Nodes on which shards of two or more jobs have failed recently: render farms call this
    /// bad-worker detection. Jobs avoid these nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspect_nodes: Vec<SuspectNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The GPU-hour ledger, per namespace: what the pool's jobs used, including jobs since
    /// deleted (their figures are moved here before they go).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<NamespaceUsage>,
    /// The UIDs of the jobs whose figures were moved into `usage` last (at most 64): moving a
    /// job's figures twice is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub archived_jobs: Vec<String>,
}

/// One namespace's use of a pool.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceUsage {
    pub namespace: String,
    /// GPU-seconds of every shard attempt that ended (GPUs × wall clock, a time-sliced share
    /// counted as its fraction), all time.
    pub gpu_seconds: f64,
    /// Shard attempts that succeeded, all time.
    pub shards: u64,
    /// `gpuSeconds` / 3600 × the pool's `pricePerGpuHour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Of these, the figures of jobs since deleted.
    #[serde(default)]
    pub archived_gpu_seconds: f64,
    #[serde(default)]
    pub archived_shards: u64,
    /// Where the namespace's budget period began (namespaces with a GPU-hour budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<Time>,
    /// GPU-seconds used since `periodStart`.
    #[serde(default)]
    pub period_gpu_seconds: f64,
    /// `gpuSeconds` when the period began.
    #[serde(default)]
    pub period_baseline_gpu_seconds: f64,
}

/// A node suspected of failing shards.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuspectNode {
    pub node: String,
    /// Jobs that had shards fail on this node.
    pub failed_jobs: u32,
    /// Shard attempts that failed on this node.
    pub failed_shards: u32,
}
