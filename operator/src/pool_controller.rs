//! RenderPool status: nodes, capacity, running shards, queued jobs, suspect nodes.
//!
//! `pool_capacity` and `pool_status` are pure; `reconcile_pool` is the thin shell that reads
//! the shared caches and writes status by server-side apply when it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::api::{RenderJob, RenderPool, RenderPoolStatus, ShardCounts, SuspectNode};
use crate::controller::{Context, FIELD_MANAGER};
use crate::labels;
use crate::{Error, Result};

/// What a pool can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolCapacity {
    pub matching_nodes: u32,
    pub ready_nodes: u32,
    pub gpus: u32,
    /// Shards that fit at once.
    pub shards: u32,
}

/// Whether a node is Ready and schedulable.
pub fn node_is_ready(node: &Node) -> bool {
    let schedulable = !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}

fn matches_pool(pool: &RenderPool, node: &Node) -> bool {
    let labels = node.labels();
    pool.spec
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// Names of the pool's Ready, schedulable nodes.
pub fn ready_nodes<'a>(
    pool: &RenderPool,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> BTreeSet<String> {
    nodes
        .into_iter()
        .filter(|n| matches_pool(pool, n) && node_is_ready(n))
        .map(|n| n.name_any())
        .collect()
}

/// Capacity from the nodes: ready matching nodes, their allocatable GPUs, and how many
/// shards fit (per node, so a half-free node does not count as room), capped by the pool.
pub fn pool_capacity<'a>(
    pool: &RenderPool,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> PoolCapacity {
    let per_shard = pool.spec.gpu.count.max(1);
    let mut capacity = PoolCapacity::default();
    for node in nodes.into_iter().filter(|n| matches_pool(pool, n)) {
        capacity.matching_nodes += 1;
        if !node_is_ready(node) {
            continue;
        }
        capacity.ready_nodes += 1;
        let gpus: u32 = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(&pool.spec.gpu.resource_name))
            .and_then(|q| q.0.parse().ok())
            .unwrap_or(0);
        capacity.gpus += gpus;
        capacity.shards += gpus / per_shard;
    }
    if let Some(cap) = pool.spec.max_concurrent_shards {
        capacity.shards = capacity.shards.min(cap);
    }
    capacity
}

/// Nodes where shards of at least two jobs of this pool failed: suspects for every job.
pub fn suspect_nodes<'a>(jobs: impl IntoIterator<Item = &'a RenderJob>) -> Vec<SuspectNode> {
    let mut by_node: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for job in jobs {
        for failures in job.status.iter().flat_map(|s| &s.node_failures) {
            let entry = by_node.entry(failures.node.clone()).or_default();
            entry.0 += 1;
            entry.1 += failures.failures;
        }
    }
    by_node
        .into_iter()
        .filter(|(_, (jobs, _))| *jobs >= 2)
        .map(|(node, (failed_jobs, failed_shards))| SuspectNode {
            node,
            failed_jobs,
            failed_shards,
        })
        .collect()
}

/// Jobs of the pool that are neither finished nor suspended.
pub fn jobs_of_pool<'a>(
    pool: &'a str,
    jobs: &'a [Arc<RenderJob>],
) -> impl Iterator<Item = &'a Arc<RenderJob>> + 'a {
    jobs.iter()
        .filter(move |j| j.spec.pool == pool)
        .filter(|j| {
            !matches!(
                j.status.as_ref().and_then(|s| s.phase),
                Some(crate::api::JobPhase::Complete | crate::api::JobPhase::Failed)
            )
        })
}

/// Shard pods of the pool that hold a slot: not finished, and either not yet scheduled or on a
/// Ready node. A pod stuck terminating on a lost node holds nothing: its node no longer counts
/// as capacity, and counting the pod too would starve the shards that must run elsewhere.
pub fn active_shard_pods<'a>(
    pool: &'a str,
    pods: &'a [Arc<Pod>],
    node_ready: &'a dyn Fn(&str) -> bool,
) -> impl Iterator<Item = &'a Arc<Pod>> + 'a {
    let pool_label = labels::job_label_value(pool);
    pods.iter().filter(move |p| {
        let l = p.labels();
        let finished = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let on_live_node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(node_ready);
        l.get(labels::POOL) == Some(&pool_label)
            && l.get(labels::ROLE).map(String::as_str) == Some(labels::ROLE_SHARD)
            && !finished
            && on_live_node
    })
}

pub fn pool_status(
    pool: &RenderPool,
    capacity: PoolCapacity,
    running: u32,
    jobs: &[&RenderJob],
) -> RenderPoolStatus {
    let queued = jobs
        .iter()
        .filter(|j| j.status.as_ref().is_some_and(|s| s.shards.waiting > 0))
        .count() as u32;
    RenderPoolStatus {
        matching_nodes: capacity.matching_nodes,
        ready_nodes: capacity.ready_nodes,
        gpu_capacity: capacity.gpus,
        shard_capacity: capacity.shards,
        running_shards: running,
        queued_jobs: queued,
        suspect_nodes: suspect_nodes(jobs.iter().copied()),
        conditions: Vec::new(),
        observed_generation: pool.metadata.generation,
    }
}

/// The shard counts of unfinished jobs, summed per namespace.
pub fn shards_by_namespace(jobs: &[&RenderJob]) -> BTreeMap<String, ShardCounts> {
    let mut totals: BTreeMap<String, ShardCounts> = BTreeMap::new();
    for job in jobs {
        let Some(status) = &job.status else { continue };
        let total = totals
            .entry(job.namespace().unwrap_or_default())
            .or_default();
        total.succeeded += status.shards.succeeded;
        total.failed += status.shards.failed;
        total.active += status.shards.active;
        total.waiting += status.shards.waiting;
    }
    totals
}

/// The suspect nodes recorded on a pool's status.
pub fn suspects_of(pool: &RenderPool) -> BTreeSet<String> {
    pool.status
        .iter()
        .flat_map(|s| &s.suspect_nodes)
        .map(|s| s.node.clone())
        .collect()
}

pub async fn reconcile_pool(pool: Arc<RenderPool>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&["RenderPool"])
        .start_timer();
    let name = pool
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let nodes = ctx.nodes.state();
    let capacity = pool_capacity(&pool, nodes.iter().map(|n| n.as_ref()));
    let pods = ctx.pods.state();
    let node_ready = |node: &str| {
        ctx.nodes
            .get(&kube::runtime::reflector::ObjectRef::new(node))
            .is_some_and(|n| node_is_ready(&n))
    };
    let running = active_shard_pods(&name, &pods, &node_ready).count() as u32;
    let all_jobs = ctx.jobs.state();
    let jobs: Vec<&RenderJob> = jobs_of_pool(&name, &all_jobs).map(|j| j.as_ref()).collect();
    let old = pool.status.clone().unwrap_or_default();
    let mut status = pool_status(&pool, capacity, running, &jobs);
    // Start from the old conditions so an unchanged condition keeps its transition time.
    status.conditions = old.conditions.clone();
    crate::conditions::set(
        &mut status.conditions,
        "Ready",
        capacity.shards > 0,
        if capacity.shards > 0 {
            "CapacityAvailable"
        } else {
            "NoCapacity"
        },
        format!(
            "{} of {} matching nodes ready, {} GPUs",
            capacity.ready_nodes, capacity.matching_nodes, capacity.gpus
        ),
        pool.metadata.generation,
        jiff::Timestamp::now(),
    );
    ctx.metrics
        .set_pool_shards(&name, &shards_by_namespace(&jobs));
    ctx.metrics.set_pool_capacity(&name, &status);
    if status != old {
        let api: Api<RenderPool> = Api::all(ctx.client.clone());
        let body = serde_json::json!({
            "apiVersion": RenderPool::api_version(&()),
            "kind": RenderPool::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    }
    Ok(Action::requeue(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::tests::pool_from_yaml;
    use serde_json::json;

    fn node(name: &str, group: &str, ready: bool, gpus: u32) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"tessera.dev/node-group": group}},
            "status": {"allocatable": {"nvidia.com/gpu": gpus.to_string()},
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    #[test]
    fn capacity_counts_ready_matching_nodes_only() {
        let mut pool = pool_from_yaml();
        let nodes = [
            node("a", "gpu-a", true, 4),
            node("b", "gpu-a", false, 4),
            node("c", "cpu", true, 0),
            node("d", "gpu-a", true, 3),
        ];
        let capacity = pool_capacity(&pool, &nodes);
        assert_eq!(
            capacity,
            PoolCapacity {
                matching_nodes: 3,
                ready_nodes: 2,
                gpus: 7,
                shards: 7
            }
        );
        pool.spec.gpu.count = 2;
        assert_eq!(pool_capacity(&pool, &nodes).shards, 3); // 4/2 + 3/2
        pool.spec.max_concurrent_shards = Some(1);
        assert_eq!(pool_capacity(&pool, &nodes).shards, 1);
    }

    #[test]
    fn pods_on_lost_nodes_hold_no_slot() {
        let pod = |name: &str, node: Option<&str>, phase: &str| -> Arc<Pod> {
            Arc::new(serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"tessera.dev/pool": "gpu-a", "tessera.dev/role": "shard"}},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase},
            })).unwrap())
        };
        let pods = vec![
            pod("running", Some("alive"), "Running"),
            pod("unscheduled", None, "Pending"),
            pod("stuck", Some("lost"), "Running"),
            pod("done", Some("alive"), "Succeeded"),
        ];
        let ready = |node: &str| node == "alive";
        let names: Vec<String> = active_shard_pods("gpu-a", &pods, &ready)
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["running", "unscheduled"]);
    }

    #[test]
    fn nodes_failing_two_jobs_are_suspects() {
        let job = |failures: serde_json::Value| -> RenderJob {
            let mut j = crate::decide::tests::job_from_yaml();
            j.status = Some(serde_json::from_value(json!({"nodeFailures": failures})).unwrap());
            j
        };
        let jobs = [
            job(json!([{"node": "n1", "failures": 2}, {"node": "n2", "failures": 1}])),
            job(json!([{"node": "n1", "failures": 1}])),
        ];
        let suspects = suspect_nodes(jobs.iter());
        assert_eq!(
            suspects,
            vec![SuspectNode {
                node: "n1".into(),
                failed_jobs: 2,
                failed_shards: 3
            }]
        );
    }
}
