//! RenderPool status, as pure functions of its capacity, slot holders and jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{RenderJob, RenderPool, RenderPoolStatus, ShardCounts, SuspectNode};
use crate::pool::nodes::PoolCapacity;

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
        // The ledger is the reconciler's (pool/usage.rs).
        usage: Vec::new(),
        archived_jobs: Vec::new(),
    }
}

/// Whether `new` may wait for the pool's next status write: it differs from `old` only in
/// figures that change with every pod (running shards, queued jobs, the GPU-hour ledger). A
/// thousand nodes' status updates reconcile the pool every few seconds, and each write
/// wakes every watcher of the pool. Nodes, capacity, suspects and conditions are written at
/// once; the ledger that budgets read waits at most [`crate::context::STATUS_BATCH_WINDOW`].
pub fn may_wait(old: &RenderPoolStatus, new: &RenderPoolStatus) -> bool {
    let mut same = new.clone();
    same.running_shards = old.running_shards;
    same.queued_jobs = old.queued_jobs;
    same.usage = old.usage.clone();
    same == *old
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_figures_may_wait_nodes_and_conditions_may_not() {
        let status = |value: serde_json::Value| -> RenderPoolStatus {
            serde_json::from_value(value).unwrap()
        };
        let old = status(
            json!({"readyNodes": 10, "shardCapacity": 80, "runningShards": 3,
            "usage": [{"namespace": "a", "gpuSeconds": 10.0, "shards": 1}]}),
        );
        assert!(may_wait(
            &old,
            &status(json!({"readyNodes": 10, "shardCapacity": 80,
            "runningShards": 7, "queuedJobs": 2,
            "usage": [{"namespace": "a", "gpuSeconds": 30.0, "shards": 3}]}))
        ));
        assert!(!may_wait(
            &old,
            &status(json!({"readyNodes": 9, "shardCapacity": 72,
            "runningShards": 3, "usage": [{"namespace": "a", "gpuSeconds": 10.0, "shards": 1}]}))
        ));
        let mut suspect = old.clone();
        suspect.suspect_nodes.push(SuspectNode {
            node: "n1".into(),
            failed_jobs: 2,
            failed_shards: 2,
        });
        assert!(!may_wait(&old, &suspect));
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
