//! The pod index: what the pod watch stream says about every managed pod, kept as small keys
//! so that a job finds its own pods and a pool its slot holders without scanning the cache.
//!
//! Fed from the pod watch stream's events (`apply_event`); it owns the one definition of
//! "holds a slot" ([`holds_slot`]). A pod belongs to the RenderJob that *controls* it (its
//! controller owner reference), never to a label: the reconcile of a job also checks the
//! namespace, so a pod cannot be attributed to a job across namespaces.
//!
//! It also remembers *departed* shard pods: the last state of a shard pod the watch saw
//! deleted, until the job's recorded ledger holds its attempt. Pods without the ledger
//! finalizer (a pool with `ledgerFinalizer: false`) can be deleted, by a person or PodGC,
//! before the operator accounted them; their deletion event still carries how they ended.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::labels;

/// What the index keeps of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPod {
    pub namespace: String,
    pub name: String,
    /// UID and name of the RenderJob that controls the pod.
    pub owner: String,
    pub owner_name: String,
    /// The pod still carries the ledger finalizer.
    pub finalizer: bool,
    /// The pool label (shard pods only).
    pub pool: Option<String>,
    pub shard: bool,
    pub node: Option<String>,
    pub phase_terminal: bool,
    pub pending: bool,
    pub terminating: bool,
    /// When the pod started (its status' startTime).
    pub started: Option<jiff::Timestamp>,
}

impl IndexedPod {
    /// Reads a pod; `None` for pods no RenderJob controls.
    pub fn of(pod: &Pod) -> Option<Self> {
        let owner = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "RenderJob")?;
        let labels = pod.labels();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        Some(Self {
            namespace: pod.namespace()?,
            name: pod.name_any(),
            owner: owner.uid.clone(),
            owner_name: owner.name.clone(),
            finalizer: pod
                .finalizers()
                .iter()
                .any(|f| f == labels::LEDGER_FINALIZER),
            pool: labels.get(labels::POOL).cloned(),
            shard: labels.get(labels::ROLE).map(String::as_str) == Some(labels::ROLE_SHARD),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase_terminal: matches!(phase, Some("Succeeded" | "Failed")),
            pending: matches!(phase, None | Some("Pending")),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            started: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0),
        })
    }

    pub fn key(&self) -> ObjectRef<Pod> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

/// Whether a pod holds one of its pool's slots: a shard pod that has not ended, is not a
/// deleted pod that never ran, and is either unscheduled or on a Ready node (a node that
/// stopped answering no longer counts as capacity, so its pods hold nothing either).
pub fn holds_slot(pod: &IndexedPod, node_ready: &dyn Fn(&str) -> bool) -> bool {
    may_hold_slot(pod) && pod.node.as_deref().is_none_or(node_ready)
}

/// The part of [`holds_slot`] that does not depend on nodes.
fn may_hold_slot(pod: &IndexedPod) -> bool {
    pod.shard && !pod.phase_terminal && !(pod.terminating && pod.pending)
}

/// One pool's pods that may hold a slot ([`may_hold_slot`]), kept so that counting its
/// holders costs O(jobs + nodes), not O(pods): every pass of every job of the pool counts them,
/// and at 8,000 running pods a scan of the pods was a quarter of the operator's CPU.
#[derive(Default)]
struct PoolSlots {
    pods: HashSet<ObjectRef<Pod>>,
    /// Per controlling job UID: its namespace and how many of `pods` it controls.
    owners: HashMap<String, Holder>,
    /// The scheduled ones among `pods`, per node: only those on a node that is not Ready hold
    /// nothing, and they are found without visiting the rest.
    on_node: HashMap<String, HashSet<ObjectRef<Pod>>>,
}

impl PoolSlots {
    fn insert(&mut self, key: &ObjectRef<Pod>, pod: &IndexedPod) {
        if !self.pods.insert(key.clone()) {
            return;
        }
        self.owners
            .entry(pod.owner.clone())
            .or_insert_with(|| Holder {
                namespace: pod.namespace.clone(),
                slots: 0,
            })
            .slots += 1;
        if let Some(node) = &pod.node {
            self.on_node
                .entry(node.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    fn remove(&mut self, key: &ObjectRef<Pod>, pod: &IndexedPod) {
        if !self.pods.remove(key) {
            return;
        }
        if let Some(holder) = self.owners.get_mut(&pod.owner) {
            holder.slots -= 1;
            if holder.slots == 0 {
                self.owners.remove(&pod.owner);
            }
        }
        if let Some(node) = &pod.node {
            remove_from(&mut self.on_node, node, key);
        }
    }
}

#[derive(Default)]
struct Inner {
    pods: HashMap<ObjectRef<Pod>, IndexedPod>,
    by_owner: HashMap<String, HashSet<ObjectRef<Pod>>>,
    by_pool: HashMap<String, PoolSlots>,
    /// Keys seen since the watch restarted (a relist); the rest are dropped at its end.
    relisting: Option<HashSet<ObjectRef<Pod>>>,
    /// Deleted shard pods' last state, per controlling job UID (see the module's note).
    departed: HashMap<String, HashMap<ObjectRef<Pod>, Arc<Pod>>>,
}

impl Inner {
    fn upsert(&mut self, pod: IndexedPod) {
        let key = pod.key();
        self.remove(&key);
        self.by_owner
            .entry(pod.owner.clone())
            .or_default()
            .insert(key.clone());
        // Only pods that may hold a slot: an ended pod never holds one again, so a pool's
        // set stays as small as its running work however many finished pods the cache holds.
        if let Some(pool) = pod.pool.clone().filter(|_| may_hold_slot(&pod)) {
            self.by_pool.entry(pool).or_default().insert(&key, &pod);
        }
        if let Some(seen) = &mut self.relisting {
            seen.insert(key.clone());
        }
        self.pods.insert(key, pod);
    }

    /// The pool whose slot the pod may hold now.
    fn slot_pool(&self, key: &ObjectRef<Pod>) -> Option<String> {
        let pool = self.pods.get(key)?.pool.clone()?;
        self.by_pool
            .get(&pool)
            .is_some_and(|slots| slots.pods.contains(key))
            .then_some(pool)
    }

    fn remove(&mut self, key: &ObjectRef<Pod>) {
        let Some(old) = self.pods.remove(key) else {
            return;
        };
        remove_from(&mut self.by_owner, &old.owner, key);
        if let Some(pool) = &old.pool
            && let Some(slots) = self.by_pool.get_mut(pool)
        {
            slots.remove(key, &old);
            if slots.pods.is_empty() {
                self.by_pool.remove(pool);
            }
        }
    }
}

fn remove_from(
    map: &mut HashMap<String, HashSet<ObjectRef<Pod>>>,
    group: &str,
    key: &ObjectRef<Pod>,
) {
    if let Some(keys) = map.get_mut(group) {
        keys.remove(key);
        if keys.is_empty() {
            map.remove(group);
        }
    }
}

/// Slot holders of one pool, per controlling job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub namespace: String,
    pub slots: u32,
}

/// The index itself, shared by every reconcile.
#[derive(Default)]
pub struct PodIndex {
    inner: RwLock<Inner>,
}

impl PodIndex {
    /// Applies one event of the pod watch stream.
    /// Answers the pool label of a slot this event freed (a shard pod that held one ended or
    /// went), if any.
    pub fn apply_event(&self, event: &watcher::Event<Pod>) -> Option<String> {
        let Ok(mut inner) = self.inner.write() else {
            return None;
        };
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let key = ObjectRef::from_obj(pod);
                let held = inner.slot_pool(&key);
                match IndexedPod::of(pod) {
                    Some(indexed) => inner.upsert(indexed),
                    None => inner.remove(&key),
                }
                return held.filter(|_| inner.slot_pool(&key).is_none());
            }
            watcher::Event::Delete(pod) => {
                let key = ObjectRef::from_obj(pod);
                let held = inner.slot_pool(&key);
                inner.remove(&key);
                if let Some(indexed) = IndexedPod::of(pod).filter(|p| p.shard) {
                    inner
                        .departed
                        .entry(indexed.owner)
                        .or_default()
                        .insert(key, Arc::new(pod.clone()));
                }
                return held;
            }
            watcher::Event::Init => inner.relisting = Some(HashSet::new()),
            watcher::Event::InitDone => {
                if let Some(seen) = inner.relisting.take() {
                    let gone: Vec<ObjectRef<Pod>> = inner
                        .pods
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        inner.remove(&key);
                    }
                }
            }
        }
        None
    }

    /// Pods controlled by the job with this UID in `namespace`.
    pub fn pods_of(&self, uid: &str, namespace: &str) -> Vec<ObjectRef<Pod>> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        let mut keys: Vec<ObjectRef<Pod>> = inner
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|k| k.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect();
        keys.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        keys
    }

    /// The last state of the job's departed shard pods in `namespace`.
    pub fn departed_of(&self, uid: &str, namespace: &str) -> Vec<Arc<Pod>> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        let mut pods: Vec<Arc<Pod>> = inner
            .departed
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.namespace.as_deref() == Some(namespace))
            .map(|(_, p)| p.clone())
            .collect();
        pods.sort_unstable_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        pods
    }

    /// Forgets departed pods of a job: their attempts are in its recorded ledger.
    pub fn forget_departed(&self, uid: &str, names: &[String]) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if let Some(pods) = inner.departed.get_mut(uid) {
            pods.retain(|k, _| !names.contains(&k.name));
            if pods.is_empty() {
                inner.departed.remove(uid);
            }
        }
    }

    /// Forgets the departed pods of jobs that are gone (`job_exists(namespace, name, uid)`).
    pub fn forget_departed_of_deleted_jobs(&self, job_exists: &dyn Fn(&str, &str, &str) -> bool) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        inner.departed.retain(|uid, pods| {
            pods.values().next().is_some_and(|pod| {
                let owner = pod
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))
                    .map(|o| o.name.clone())
                    .unwrap_or_default();
                job_exists(&pod.namespace().unwrap_or_default(), &owner, uid)
            })
        });
    }

    /// Whether the index holds this pod (the watch has delivered it).
    pub fn contains(&self, key: &ObjectRef<Pod>) -> bool {
        self.inner.read().is_ok_and(|i| i.pods.contains_key(key))
    }

    /// The pool's slot holders per controlling job UID (see [`holds_slot`]).
    pub fn slot_holders(
        &self,
        pool_label: &str,
        node_ready: &dyn Fn(&str) -> bool,
    ) -> BTreeMap<String, Holder> {
        let Ok(inner) = self.inner.read() else {
            return BTreeMap::new();
        };
        let Some(slots) = inner.by_pool.get(pool_label) else {
            return BTreeMap::new();
        };
        let mut holders: BTreeMap<String, Holder> = slots
            .owners
            .iter()
            .map(|(owner, holder)| (owner.clone(), holder.clone()))
            .collect();
        // A node that stopped answering is no capacity: its pods hold nothing.
        for (_, keys) in slots.on_node.iter().filter(|(node, _)| !node_ready(node)) {
            for pod in keys.iter().filter_map(|key| inner.pods.get(key)) {
                if let Some(holder) = holders.get_mut(&pod.owner) {
                    holder.slots -= 1;
                }
            }
        }
        holders.retain(|_, holder| holder.slots > 0);
        holders
    }

    /// The pods holding the pool's slots.
    pub fn slot_pods(
        &self,
        pool_label: &str,
        node_ready: &dyn Fn(&str) -> bool,
    ) -> Vec<IndexedPod> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        inner
            .by_pool
            .get(pool_label)
            .into_iter()
            .flat_map(|slots| &slots.pods)
            .filter_map(|key| inner.pods.get(key))
            .filter(|p| holds_slot(p, node_ready))
            .cloned()
            .collect()
    }

    /// Pods holding the ledger finalizer whose RenderJob is gone (`job_exists(namespace,
    /// name, uid)` says no): nothing will account them any more, so they are let go.
    pub fn orphans(&self, job_exists: &dyn Fn(&str, &str, &str) -> bool) -> Vec<ObjectRef<Pod>> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        let mut orphans = Vec::new();
        for keys in inner.by_owner.values() {
            let pods: Vec<&IndexedPod> = keys.iter().filter_map(|k| inner.pods.get(k)).collect();
            let Some(first) = pods.first() else { continue };
            if job_exists(&first.namespace, &first.owner_name, &first.owner) {
                continue;
            }
            orphans.extend(pods.iter().filter(|p| p.finalizer).map(|p| p.key()));
        }
        orphans
    }

    /// Managed pods in the index.
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.pods.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ns: &str, owner: &str, node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns,
                "labels": {"tessera.dev/pool": "gpu-a", "tessera.dev/role": "shard"},
                "ownerReferences": [{"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
                    "name": "j", "uid": owner, "controller": true}]},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn pods_belong_to_their_controller_in_their_namespace() {
        let index = PodIndex::default();
        index.apply_event(&watcher::Event::Apply(pod(
            "a", "ns1", "uid-1", None, "Pending",
        )));
        index.apply_event(&watcher::Event::Apply(pod(
            "b", "ns2", "uid-1", None, "Pending",
        )));
        let mut stray = pod("c", "ns1", "uid-1", None, "Pending");
        stray.metadata.owner_references = None; // a label alone does not make it the job's
        index.apply_event(&watcher::Event::Apply(stray));
        let names: Vec<String> = index
            .pods_of("uid-1", "ns1")
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["a"]);
        index.apply_event(&watcher::Event::Delete(pod(
            "a", "ns1", "uid-1", None, "Pending",
        )));
        assert!(index.pods_of("uid-1", "ns1").is_empty());
    }

    #[test]
    fn an_event_says_once_which_pool_got_a_slot_back() {
        let index = PodIndex::default();
        let at = |phase: &str| watcher::Event::Apply(pod("a", "ns", "u", Some("n1"), phase));
        assert_eq!(index.apply_event(&at("Pending")), None);
        assert_eq!(index.apply_event(&at("Running")), None);
        assert_eq!(
            index.apply_event(&at("Succeeded")).as_deref(),
            Some("gpu-a")
        );
        // Later updates of the ended pod (its finalizer released) and its deletion free nothing.
        assert_eq!(index.apply_event(&at("Succeeded")), None);
        let gone = watcher::Event::Delete(pod("a", "ns", "u", Some("n1"), "Succeeded"));
        assert_eq!(index.apply_event(&gone), None);
        // A running pod deleted outright frees its slot.
        index.apply_event(&watcher::Event::Apply(pod(
            "b",
            "ns",
            "u",
            Some("n1"),
            "Running",
        )));
        let gone = watcher::Event::Delete(pod("b", "ns", "u", Some("n1"), "Running"));
        assert_eq!(index.apply_event(&gone).as_deref(), Some("gpu-a"));
    }

    #[test]
    fn one_definition_of_holding_a_slot() {
        let index = PodIndex::default();
        for p in [
            pod("running", "ns", "u1", Some("alive"), "Running"),
            pod("unscheduled", "ns", "u1", None, "Pending"),
            pod("stuck", "ns", "u2", Some("lost"), "Running"),
            pod("done", "ns", "u2", Some("alive"), "Succeeded"),
        ] {
            index.apply_event(&watcher::Event::Apply(p));
        }
        let mut deleted = pod(
            "deleted-before-running",
            "ns",
            "u2",
            Some("alive"),
            "Pending",
        );
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        index.apply_event(&watcher::Event::Apply(deleted));
        let holders = index.slot_holders("gpu-a", &|node| node == "alive");
        assert_eq!(holders.len(), 1);
        assert_eq!(holders["u1"].slots, 2);
    }

    /// The counts kept per pool agree with [`holds_slot`] applied to every pod, through pods
    /// being scheduled, moved, ended, deleted and relisted, and nodes going and coming back.
    #[test]
    fn kept_slot_counts_agree_with_a_scan_of_every_pod() {
        let index = PodIndex::default();
        let phases = ["Pending", "Running", "Succeeded", "Failed"];
        let nodes = [None, Some("n1"), Some("n2"), Some("n3")];
        // A fixed linear congruential sequence: many interleavings, the same on every run.
        let mut state: u64 = 7;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for step in 0..2_000 {
            let name = format!("p{}", next(40));
            let owner = format!("u{}", next(4));
            let mut p = pod(
                &name,
                "ns",
                &owner,
                nodes[next(4) as usize],
                phases[next(4) as usize],
            );
            if next(8) == 0 {
                p.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        jiff::Timestamp::UNIX_EPOCH,
                    ));
            }
            let event = match next(10) {
                0 => watcher::Event::Delete(p),
                1 if step % 7 == 0 => watcher::Event::Init,
                2 => watcher::Event::InitDone,
                3 => watcher::Event::InitApply(p),
                _ => watcher::Event::Apply(p),
            };
            index.apply_event(&event);
            let down = format!("n{}", next(4));
            let ready = |node: &str| node != down;
            let inner = index.inner.read().unwrap();
            let mut scanned: BTreeMap<String, Holder> = BTreeMap::new();
            for pod in inner.pods.values().filter(|p| holds_slot(p, &ready)) {
                let holder = scanned.entry(pod.owner.clone()).or_default();
                holder.namespace = pod.namespace.clone();
                holder.slots += 1;
            }
            drop(inner);
            assert_eq!(index.slot_holders("gpu-a", &ready), scanned, "step {step}");
        }
    }

    #[test]
    fn pods_of_a_deleted_job_are_orphans() {
        let index = PodIndex::default();
        let mut held = pod("a", "ns", "gone", None, "Succeeded");
        held.metadata.finalizers = Some(vec![labels::LEDGER_FINALIZER.into()]);
        index.apply_event(&watcher::Event::Apply(held));
        index.apply_event(&watcher::Event::Apply(pod(
            "b",
            "ns",
            "gone",
            None,
            "Succeeded",
        )));
        let mut alive = pod("c", "ns", "alive", None, "Running");
        alive.metadata.finalizers = Some(vec![labels::LEDGER_FINALIZER.into()]);
        index.apply_event(&watcher::Event::Apply(alive));
        let orphans = index.orphans(&|_, _, uid| uid == "alive");
        assert_eq!(orphans, [ObjectRef::new("a").within("ns")]);
    }

    #[test]
    fn a_deleted_shard_pod_is_remembered_until_forgotten() {
        let index = PodIndex::default();
        let done = pod("a", "ns", "u1", Some("n1"), "Succeeded");
        index.apply_event(&watcher::Event::Apply(done.clone()));
        index.apply_event(&watcher::Event::Delete(done));
        let departed = index.departed_of("u1", "ns");
        assert_eq!(departed.len(), 1);
        assert_eq!(
            departed[0].status.as_ref().unwrap().phase.as_deref(),
            Some("Succeeded")
        );
        assert!(index.departed_of("u1", "other").is_empty());
        assert!(index.pods_of("u1", "ns").is_empty());
        index.forget_departed("u1", &["a".to_string()]);
        assert!(index.departed_of("u1", "ns").is_empty());

        index.apply_event(&watcher::Event::Delete(pod(
            "b", "ns", "u2", None, "Running",
        )));
        index.forget_departed_of_deleted_jobs(&|_, _, uid| uid == "u2");
        assert_eq!(index.departed_of("u2", "ns").len(), 1);
        index.forget_departed_of_deleted_jobs(&|_, _, _| false);
        assert!(index.departed_of("u2", "ns").is_empty());
    }

    #[test]
    fn a_relist_drops_pods_that_are_gone() {
        let index = PodIndex::default();
        index.apply_event(&watcher::Event::Apply(pod(
            "old", "ns", "u1", None, "Pending",
        )));
        index.apply_event(&watcher::Event::Init);
        index.apply_event(&watcher::Event::InitApply(pod(
            "new", "ns", "u1", None, "Pending",
        )));
        index.apply_event(&watcher::Event::InitDone);
        let names: Vec<String> = index
            .pods_of("u1", "ns")
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["new"]);
        assert_eq!(index.len(), 1);
    }
}
