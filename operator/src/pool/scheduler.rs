//! The pool scheduler: one book per RenderPool, behind its own lock, holding what admission
//! needs beyond the pod index — each job's latest demand and the pod creates in flight.
//!
//! A job's reconcile takes its pool's lock, registers its demand, computes its grant
//! ([`crate::admission::admit`]: capacity, priority, fair share across namespaces, FIFO),
//! records the creates it decided as expected, and releases the lock before any API write.
//! Jobs of other pools never wait for it. A job's demand comes from its own reconcile, never
//! from another job's status, so a hand-edited status cannot skew anyone's admission.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;

use crate::admission::{self, Demand};
use crate::labels;
use crate::pool::index::{Holder, IndexedPod};
use crate::pool::preemption::{Candidate, EvictionBudget, victims};

/// How long a created pod counts as in flight before the watch must have delivered it; one
/// that never shows up was refused or deleted.
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

/// A job's claim, as its last reconcile stated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDemand {
    pub namespace: String,
    pub name: String,
    pub priority: i32,
    pub created: Timestamp,
    /// Shards ready to start now.
    pub ready: u32,
    /// The namespace's cap on concurrent shards on this pool (its namespace policy).
    pub namespace_cap: Option<u32>,
    /// The job's own cap on concurrent shards (its Kueue admission).
    pub job_cap: Option<u32>,
}

/// One pool's admission state.
#[derive(Debug, Default)]
pub struct PoolBook {
    /// By job UID.
    demands: BTreeMap<String, JobDemand>,
    /// Created (or being created) shard pods not yet in the pod index: key → (job UID, since).
    expected: HashMap<ObjectRef<Pod>, (String, Instant)>,
    /// Pods this book asked to leave (preemption), until they show as terminating or gone.
    evicting: HashMap<ObjectRef<Pod>, Instant>,
    evictions: EvictionBudget,
}

impl PoolBook {
    /// Registers `uid`'s demand and answers how many shards it may start now. `holders`:
    /// slot holders per job UID from the pod index; `indexed`: whether the pod index holds a
    /// pod (an expectation ends when it does); `alive`: whether a job UID still exists.
    pub fn admit(
        &mut self,
        uid: &str,
        demand: JobDemand,
        capacity: u32,
        holders: &BTreeMap<String, Holder>,
        indexed: &dyn Fn(&ObjectRef<Pod>) -> bool,
        alive: &dyn Fn(&str, &JobDemand) -> bool,
    ) -> u32 {
        let now = Instant::now();
        self.expected.retain(|key, (_, since)| {
            now.duration_since(*since) < EXPECTATION_TTL && !indexed(key)
        });
        self.demands.retain(|job, d| job == uid || alive(job, d));
        self.demands.insert(uid.to_string(), demand);

        let mut in_flight: BTreeMap<&str, u32> = BTreeMap::new();
        for (job, _) in self.expected.values() {
            *in_flight.entry(job.as_str()).or_default() += 1;
        }
        let active = |job: &str| {
            holders.get(job).map_or(0, |h| h.slots) + in_flight.get(job).copied().unwrap_or(0)
        };
        let mut demands: Vec<Demand> = self
            .demands
            .iter()
            .map(|(job, d)| Demand {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                priority: d.priority,
                created: d.created,
                active: active(job),
                // What Kueue admitted bounds the job's pods, those in flight included.
                ready: d
                    .job_cap
                    .map_or(d.ready, |cap| d.ready.min(cap.saturating_sub(active(job)))),
                namespace_cap: d.namespace_cap,
            })
            .collect();
        // Slots held by jobs that have not stated a demand since this operator started.
        for (job, holder) in holders
            .iter()
            .filter(|(job, _)| !self.demands.contains_key(*job))
        {
            demands.push(Demand {
                namespace: holder.namespace.clone(),
                name: format!("uid:{job}"),
                priority: i32::MIN,
                created: Timestamp::UNIX_EPOCH,
                active: holder.slots,
                ready: 0,
                namespace_cap: None,
            });
        }
        let own = &self.demands[uid];
        let grants = admission::admit(capacity, &demands);
        grants
            .get(&(own.namespace.clone(), own.name.clone()))
            .copied()
            .unwrap_or(0)
    }

    /// Counts these pods as holding slots until the pod index has them.
    pub fn expect(&mut self, uid: &str, pods: impl IntoIterator<Item = ObjectRef<Pod>>) {
        let now = Instant::now();
        for key in pods {
            self.expected.insert(key, (uid.to_string(), now));
        }
    }

    /// A pod created (or being created) that the pod index does not hold yet.
    pub fn is_expected(&self, key: &ObjectRef<Pod>) -> bool {
        self.expected.contains_key(key)
    }

    /// A create that did not happen (refused) holds nothing.
    pub fn forget(&mut self, key: &ObjectRef<Pod>) {
        self.expected.remove(key);
    }

    /// Whether [`PoolBook::preempt`] could evict anything for `uid`, a job of `priority`: a job
    /// of lower priority holds slots and the minute's eviction budget is not spent. Most passes
    /// of a busy pool answer no, and then the pool's pods (thousands) are not listed.
    pub fn may_preempt(
        &mut self,
        uid: &str,
        priority: i32,
        holders: &BTreeMap<String, Holder>,
        per_minute: u32,
    ) -> bool {
        let lower_holds = holders
            .keys()
            .any(|job| job != uid && self.demands.get(job).is_some_and(|d| d.priority < priority));
        lower_holds && self.evictions.allowed(per_minute, Instant::now()) > 0
    }

    /// The shard pods to evict so that `uid`, a job of `priority` that could start `wanted`
    /// more shards, gets their slots (pool/preemption.rs), from the pods holding the pool's
    /// slots. Slots already being freed (lower-priority pods terminating, or asked to) count
    /// first; the pool's eviction budget bounds the rest, and is spent.
    pub fn preempt(
        &mut self,
        uid: &str,
        priority: i32,
        wanted: usize,
        slot_pods: &[IndexedPod],
        per_minute: u32,
    ) -> Vec<Candidate> {
        let now = Instant::now();
        let priority_of = |job: &str| self.demands.get(job).map(|d| d.priority);
        self.evicting.retain(|key, since| {
            now.duration_since(*since) < EXPECTATION_TTL
                && slot_pods.iter().any(|p| &p.key() == key && !p.terminating)
        });
        let freeing = slot_pods
            .iter()
            .filter(|p| p.terminating && priority_of(&p.owner).is_some_and(|q| q < priority))
            .count()
            + self.evicting.len();
        let candidates: Vec<Candidate> = slot_pods
            .iter()
            .filter(|p| p.owner != uid && !p.terminating && !self.evicting.contains_key(&p.key()))
            .filter_map(|p| {
                Some(Candidate {
                    namespace: p.namespace.clone(),
                    pod: p.name.clone(),
                    job_uid: p.owner.clone(),
                    priority: priority_of(&p.owner)?,
                    started: p.started,
                })
            })
            .collect();
        let allowed = self.evictions.allowed(per_minute, now);
        let chosen = victims(
            priority,
            wanted.saturating_sub(freeing),
            candidates,
            allowed,
        );
        self.evictions.spend(chosen.len(), now);
        for victim in &chosen {
            self.evicting
                .insert(ObjectRef::new(&victim.pod).within(&victim.namespace), now);
        }
        chosen
    }

    /// A job that wants nothing more (finished, suspended, deleted).
    pub fn withdraw(&mut self, uid: &str) {
        self.demands.remove(uid);
    }
}

/// Every pool's book, each behind its own lock.
#[derive(Default)]
pub struct Scheduler {
    books: Mutex<HashMap<String, Arc<Mutex<PoolBook>>>>,
}

impl Scheduler {
    /// The book of `pool` (created on first use).
    pub fn book(&self, pool: &str) -> Arc<Mutex<PoolBook>> {
        let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        books.entry(pool.to_string()).or_default().clone()
    }

    /// The jobs a freed slot of the pool labelled `pool_label` may go to, woken at once rather
    /// than at their next capacity recheck: of the jobs that last asked for slots, those of
    /// the highest priority, the first in line of each namespace (admission's order: the
    /// slot goes to one of them). `(namespace, name)`.
    pub fn waiting_in(&self, pool_label: &str) -> Vec<(String, String)> {
        let books: Vec<Arc<Mutex<PoolBook>>> = {
            let books = self.books.lock().unwrap_or_else(|e| e.into_inner());
            books
                .iter()
                .filter(|(pool, _)| labels::job_label_value(pool) == pool_label)
                .map(|(_, book)| book.clone())
                .collect()
        };
        let waiting: Vec<JobDemand> = books
            .iter()
            .flat_map(|book| {
                lock(book)
                    .demands
                    .values()
                    .filter(|d| d.ready > 0)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        let Some(top) = waiting.iter().map(|d| d.priority).max() else {
            return Vec::new();
        };
        let mut first: BTreeMap<&str, &JobDemand> = BTreeMap::new();
        for d in waiting.iter().filter(|d| d.priority == top) {
            let entry = first.entry(d.namespace.as_str()).or_insert(d);
            if (d.created, &d.name) < (entry.created, &entry.name) {
                *entry = d;
            }
        }
        first
            .values()
            .map(|d| (d.namespace.clone(), d.name.clone()))
            .collect()
    }

    /// Removes `uid`'s demand from every pool but `keep` (a job moved to another pool).
    pub fn withdraw_elsewhere(&self, uid: &str, keep: Option<&str>) {
        let books: Vec<(String, Arc<Mutex<PoolBook>>)> = {
            let books = self.books.lock().unwrap_or_else(|e| e.into_inner());
            books.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (pool, book) in books {
            if Some(pool.as_str()) != keep {
                lock(&book).withdraw(uid);
            }
        }
    }
}

/// Locks a book; a poisoned lock (a panic elsewhere) still holds consistent data.
pub fn lock(book: &Mutex<PoolBook>) -> MutexGuard<'_, PoolBook> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(ns: &str, name: &str, priority: i32, ready: u32) -> JobDemand {
        JobDemand {
            namespace: ns.into(),
            name: name.into(),
            priority,
            created: Timestamp::from_second(1).unwrap(),
            ready,
            namespace_cap: None,
            job_cap: None,
        }
    }

    fn holder(ns: &str, slots: u32) -> Holder {
        Holder {
            namespace: ns.into(),
            slots,
        }
    }

    #[test]
    fn a_freed_slot_wakes_the_first_in_line_of_each_namespace_at_the_top_priority() {
        let scheduler = Scheduler::default();
        let none = BTreeMap::new();
        let long = "a-pool-with-a-name-longer-than-a-label-value-may-be-so-it-is-hashed";
        for (pool, uid, (ns, job, priority, ready), created) in [
            ("gpu-a", "u1", ("a", "first", 5, 3), 1),
            ("gpu-a", "u2", ("a", "second", 5, 3), 2),
            ("gpu-a", "u3", ("b", "other-team", 5, 1), 3),
            ("gpu-a", "u4", ("c", "content", 5, 0), 0),
            ("gpu-a", "u5", ("c", "lower", 0, 9), 0),
            ("gpu-b", "u6", ("a", "elsewhere", 5, 5), 0),
            (long, "u7", ("a", "long", 0, 1), 0),
        ] {
            let d = JobDemand {
                created: Timestamp::from_second(created).unwrap(),
                ..demand(ns, job, priority, ready)
            };
            let book = scheduler.book(pool);
            lock(&book).admit(uid, d, 0, &none, &|_| false, &|_, _| true);
        }
        let names = |pool: &str| -> Vec<String> {
            scheduler
                .waiting_in(pool)
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        };
        // Not the second of a's jobs, not c's (nothing to start, or a lower priority), not
        // another pool's.
        assert_eq!(names("gpu-a"), ["first", "other-team"]);
        assert_eq!(names(&labels::job_label_value(long)), ["long"]);
        assert!(names("gpu-c").is_empty());
    }

    #[test]
    fn a_job_cap_counts_its_pods_in_flight_and_frees_the_rest() {
        let mut book = PoolBook::default();
        let none = BTreeMap::new();
        let capped = JobDemand {
            job_cap: Some(3),
            ..demand("a", "queued", 0, 10)
        };
        assert_eq!(
            book.admit("u1", capped.clone(), 8, &none, &|_| false, &|_, _| true),
            3
        );
        book.expect(
            "u1",
            (0..2).map(|i| ObjectRef::new(&format!("q-{i}")).within("a")),
        );
        // Two of its three are in flight: one more, whatever the pool has free.
        assert_eq!(
            book.admit("u1", capped, 8, &none, &|_| false, &|_, _| true),
            1
        );
        // The slots it may not use go to others: 8 less 2 in flight less the 1 it may start.
        assert_eq!(
            book.admit(
                "u2",
                demand("b", "k1", 0, 10),
                8,
                &none,
                &|_| false,
                &|_, _| true
            ),
            5
        );
    }

    #[test]
    fn in_flight_creates_hold_slots_until_the_index_has_them() {
        let mut book = PoolBook::default();
        let none = BTreeMap::new();
        let grant = book.admit(
            "u1",
            demand("a", "j1", 0, 10),
            4,
            &none,
            &|_| false,
            &|_, _| true,
        );
        assert_eq!(grant, 4);
        let keys: Vec<ObjectRef<Pod>> = (0..4)
            .map(|i| ObjectRef::new(&format!("j1-{i}-0")).within("a"))
            .collect();
        book.expect("u1", keys.clone());
        // Another job of the pool, before the watch delivered those pods: nothing is free.
        let grant = book.admit(
            "u2",
            demand("b", "k1", 0, 10),
            4,
            &none,
            &|_| false,
            &|_, _| true,
        );
        assert_eq!(grant, 0);
        // The watch delivered them (now counted by the index as holders).
        let holders = BTreeMap::from([("u1".to_string(), holder("a", 4))]);
        let grant = book.admit(
            "u2",
            demand("b", "k1", 0, 10),
            4,
            &holders,
            &|_| true,
            &|_, _| true,
        );
        assert_eq!(grant, 0);
        book.forget(&keys[0]);
    }

    #[test]
    fn a_job_s_demand_is_its_own_never_read_from_others_status() {
        let mut book = PoolBook::default();
        let none = BTreeMap::new();
        // A high-priority job registers a huge demand, then is deleted.
        book.admit(
            "u1",
            demand("a", "big", 100, u32::MAX),
            8,
            &none,
            &|_| false,
            &|_, _| true,
        );
        let grant = book.admit(
            "u2",
            demand("b", "k1", 0, 8),
            8,
            &none,
            &|_| false,
            &|uid, _| uid != "u1",
        );
        assert_eq!(grant, 8);
    }

    fn slot_pod(owner: &str, name: &str, started: i64, terminating: bool) -> IndexedPod {
        IndexedPod {
            namespace: "ns".into(),
            name: name.into(),
            owner: owner.into(),
            owner_name: owner.into(),
            finalizer: true,
            pool: Some("p".into()),
            shard: true,
            node: Some("n".into()),
            phase_terminal: false,
            pending: false,
            terminating,
            started: Some(Timestamp::from_second(started).unwrap()),
        }
    }

    #[test]
    fn preemption_is_considered_only_when_a_lower_job_holds_slots_and_budget_is_left() {
        let mut book = PoolBook::default();
        for (uid, name, priority) in [("low", "bg", 0), ("high", "urgent", 100)] {
            book.admit(
                uid,
                demand("ns", name, priority, 1),
                0,
                &BTreeMap::new(),
                &|_| false,
                &|_, _| true,
            );
        }
        let holding = |jobs: &[&str]| -> BTreeMap<String, Holder> {
            jobs.iter()
                .map(|job| {
                    let holder = Holder {
                        namespace: "ns".into(),
                        slots: 2,
                    };
                    (job.to_string(), holder)
                })
                .collect()
        };
        assert!(book.may_preempt("high", 100, &holding(&["low", "high"]), 3));
        // Only itself, or only jobs not below it, hold slots: nothing to take.
        assert!(!book.may_preempt("high", 100, &holding(&["high"]), 3));
        assert!(!book.may_preempt("low", 0, &holding(&["high"]), 3));
        // The minute's budget spent: nothing either.
        book.evictions.spend(3, Instant::now());
        assert!(!book.may_preempt("high", 100, &holding(&["low"]), 3));
    }

    #[test]
    fn preemption_takes_the_newest_low_priority_pods_once_within_the_budget() {
        let mut book = PoolBook::default();
        let none = BTreeMap::new();
        for (uid, name, priority) in [
            ("low", "bg", 0),
            ("mid", "mid", 50),
            ("high", "urgent", 100),
        ] {
            book.admit(
                uid,
                demand("ns", name, priority, 1),
                0,
                &none,
                &|_| false,
                &|_, _| true,
            );
        }
        let pods = vec![
            slot_pod("low", "bg-0-0", 10, false),
            slot_pod("low", "bg-1-0", 30, false),
            slot_pod("mid", "mid-0-0", 40, false),
            slot_pod("high", "urgent-0-0", 50, false),
        ];
        let names = |v: Vec<Candidate>| v.into_iter().map(|c| c.pod).collect::<Vec<_>>();
        // Two slots wanted: the two low-priority pods, newest first; never its own.
        assert_eq!(
            names(book.preempt("high", 100, 2, &pods, 10)),
            ["bg-1-0", "bg-0-0"]
        );
        // The next pass: those two are being evicted already, so nothing more is taken.
        assert!(book.preempt("high", 100, 2, &pods, 10).is_empty());
        // Once they terminate, they still count as slots being freed.
        let terminating = vec![
            slot_pod("low", "bg-0-0", 10, true),
            slot_pod("low", "bg-1-0", 30, true),
            pods[2].clone(),
            pods[3].clone(),
        ];
        assert!(book.preempt("high", 100, 2, &terminating, 10).is_empty());
        // One more slot wanted: the mid-priority pod, within a budget of 3 a minute.
        assert_eq!(
            names(book.preempt("high", 100, 3, &terminating, 3)),
            ["mid-0-0"]
        );
        // The budget is spent: nothing until the minute has passed.
        let mut fresh = PoolBook::default();
        fresh.admit(
            "low",
            demand("ns", "bg", 0, 1),
            0,
            &none,
            &|_| false,
            &|_, _| true,
        );
        fresh.evictions.spend(3, Instant::now());
        assert!(fresh.preempt("high", 100, 1, &pods, 3).is_empty());
    }

    #[test]
    fn holders_without_a_demand_still_use_capacity() {
        let mut book = PoolBook::default();
        let holders = BTreeMap::from([("old".to_string(), holder("a", 6))]);
        let grant = book.admit(
            "u2",
            demand("b", "k1", 0, 8),
            8,
            &holders,
            &|_| true,
            &|_, _| true,
        );
        assert_eq!(grant, 2);
    }
}
