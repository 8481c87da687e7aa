//! A pool's nodes: which match, which are Ready, and how many shards fit.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::RenderPool;

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

/// Whether the named node is in the cache, Ready and schedulable; each node is looked up
/// once per closure. A pass asks for the node of every pod it reads (8,000 running pods on
/// 1,000 nodes at studio scale), and a cache lookup clones the name and hashes it.
pub fn readiness(nodes: &Store<Node>) -> impl Fn(&str) -> bool + '_ {
    let memo = RefCell::new(HashMap::<String, bool>::new());
    move |name: &str| {
        if let Some(&ready) = memo.borrow().get(name) {
            return ready;
        }
        let ready = nodes
            .get(&ObjectRef::new(name))
            .is_some_and(|n| node_is_ready(&n));
        memo.borrow_mut().insert(name.to_string(), ready);
        ready
    }
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
    fn readiness_answers_from_the_cache_and_remembers_each_node() {
        let (store, mut writer) = kube::runtime::reflector::store::<Node>();
        for n in [node("a", "gpu-a", true, 4), node("b", "gpu-a", false, 4)] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(n));
        }
        let ready = readiness(&store);
        assert!(ready("a"));
        assert!(!ready("b"), "NotReady");
        assert!(!ready("gone"), "not in the cache");
        // Asked again within the same pass: the first answer, even if the cache changed.
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(node(
            "a", "gpu-a", true, 4,
        )));
        assert!(ready("a"));
        assert!(!readiness(&store)("a"), "a new pass reads the cache again");
    }
}
