//! A pool's nodes: which match, which are Ready, and how many shards fit.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

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

/// The nodes as a pass reads them, built once per change of the node cache rather than once
/// per pass: which nodes are Ready, and each pool's capacity and Ready nodes. At 1,000 nodes
/// and 20 jobs each passing about once a second, building these per pass was a quarter of the
/// operator's CPU; the node cache changes seldom (KWOK's and kubelets' heartbeats are Leases).
#[derive(Default)]
pub struct NodeViews {
    /// Bumped after the node cache applied an event.
    generation: AtomicU64,
    current: Mutex<Option<(u64, Arc<NodeView>)>>,
}

impl NodeViews {
    /// The node cache has applied an event: the next view is built anew. Called after the
    /// reflector's write, so a view is never kept under a generation newer than its nodes.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The view of `nodes` (the node cache this tracks) as of its latest change.
    pub fn view(&self, nodes: &Store<Node>) -> Arc<NodeView> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((built, view)) = current.as_ref()
            && *built == generation
        {
            return view.clone();
        }
        let view = Arc::new(NodeView::of(nodes.state()));
        *current = Some((generation, view.clone()));
        view
    }
}

/// The node cache at one moment.
pub struct NodeView {
    nodes: Vec<Arc<Node>>,
    ready: HashSet<String>,
    pools: Mutex<HashMap<PoolKey, Arc<PoolNodeView>>>,
}

/// A pool's name and spec generation.
type PoolKey = (String, Option<i64>);

/// One pool's nodes in a [`NodeView`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PoolNodeView {
    pub capacity: PoolCapacity,
    /// Names of the pool's Ready, schedulable nodes.
    pub ready: Arc<BTreeSet<String>>,
}

impl NodeView {
    pub fn of(nodes: Vec<Arc<Node>>) -> Self {
        let ready = nodes
            .iter()
            .filter(|n| node_is_ready(n))
            .map(|n| n.name_any())
            .collect();
        Self {
            nodes,
            ready,
            pools: Mutex::default(),
        }
    }

    /// Whether the named node is in the cache, Ready and schedulable.
    pub fn is_ready(&self, name: &str) -> bool {
        self.ready.contains(name)
    }

    /// The pool's capacity and Ready nodes.
    pub fn pool(&self, pool: &RenderPool) -> Arc<PoolNodeView> {
        let key = (pool.name_any(), pool.metadata.generation);
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools
            .entry(key)
            .or_insert_with(|| {
                let nodes = || self.nodes.iter().map(|n| n.as_ref());
                Arc::new(PoolNodeView {
                    capacity: pool_capacity(pool, nodes()),
                    ready: Arc::new(ready_nodes(pool, nodes())),
                })
            })
            .clone()
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
    fn a_node_view_is_kept_until_the_node_cache_changes() {
        let (store, mut writer) = kube::runtime::reflector::store::<Node>();
        let views = NodeViews::default();
        for n in [node("a", "gpu-a", true, 4), node("b", "gpu-a", false, 4)] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(n));
            views.changed();
        }
        let view = views.view(&store);
        assert!(view.is_ready("a"));
        assert!(!view.is_ready("b"), "NotReady");
        assert!(!view.is_ready("gone"), "not in the cache");
        let mut pool = pool_from_yaml();
        assert_eq!(view.pool(&pool).capacity.shards, 4);
        assert_eq!(*view.pool(&pool).ready, BTreeSet::from(["a".to_string()]));
        // The same view until the cache says it changed.
        assert!(Arc::ptr_eq(&view, &views.view(&store)));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(node(
            "a", "gpu-a", true, 4,
        )));
        views.changed();
        let later = views.view(&store);
        assert!(!later.is_ready("a"));
        assert_eq!(later.pool(&pool).capacity.shards, 0);
        // A pool whose spec changed (a new generation) is counted again.
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(node(
            "c", "gpu-a", true, 8,
        )));
        views.changed();
        let view = views.view(&store);
        assert_eq!(view.pool(&pool).capacity.shards, 8);
        pool.spec.gpu.count = 2;
        pool.metadata.generation = Some(2);
        assert_eq!(view.pool(&pool).capacity.shards, 4);
    }
}
