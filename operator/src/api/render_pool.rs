//! `RenderPool`: where and how shards run. Cluster-scoped, owned by the platform team.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A group of GPU nodes that renders shards, and how shard pods run on it.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
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

    /// The render-pod container image.
    #[schemars(length(min = 1))]
    pub image: String,

    /// Most shards of this pool running at once, over all jobs. Unset: limited by the GPU
    /// capacity of the pool's ready nodes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_shards: Option<u32>,

    /// Namespaces whose RenderJobs may use this pool. Unset: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Default output storage for jobs that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// PriorityClass of shard pods, so render work can yield to (or preempt) other workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Seconds a shard pod stays bound to a node that stopped answering before it is evicted
    /// and its shard re-run elsewhere (the pod's toleration of the `unreachable`/`not-ready`
    /// taints). Kubernetes' default of 300 s is long for a render farm.
    #[serde(default = "default_node_lost_seconds")]
    #[schemars(range(min = 0, max = 3600))]
    pub node_lost_toleration_seconds: i64,
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
    #[schemars(length(min = 1), regex(pattern = r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+$"))]
    pub resource_name: String,

    /// GPUs per shard pod.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub count: u32,
}

impl Default for GpuRequest {
    fn default() -> Self {
        Self {
            resource_name: default_gpu_resource(),
            count: 1,
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
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardResources {
    /// CPU per shard pod (request and limit). Default `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory per shard pod (request and limit). Default `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// Object storage for outputs.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Output prefix URL: `s3://bucket/prefix`, `gs://…`, `az://…`, or `file:///path` on a
    /// volume shared by every node.
    #[schemars(regex(pattern = r"^(s3|gs|az|file)://.+$"))]
    pub url: String,

    /// A Secret, in the job's namespace, whose keys become the pods' environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// A PersistentVolumeClaim, in the job's namespace, mounted into shard and merge pods at
    /// `mountPath`; use with `file://` URLs under that path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim: Option<String>,

    /// Where `volumeClaim` is mounted. Default `/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
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
