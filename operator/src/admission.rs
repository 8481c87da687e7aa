//! Admission: which jobs may start how many shards on a shared pool right now.
//!
//! Order (docs/architecture.md §6): higher priority first; among jobs of equal priority, the pool is shared
//! fairly across namespaces (each free slot goes to the namespace holding the fewest slots,
//! counting what it already runs); within a namespace, first come first served (oldest job
//! first, then by name for a stable order). Pure: the same inputs give the same grants, so
//! every job's reconcile computes the same answer from the shared caches.

use std::collections::BTreeMap;

use jiff::Timestamp;

/// One job's claim on a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub namespace: String,
    pub name: String,
    pub priority: i32,
    pub created: Timestamp,
    /// Shard pods it runs now (pending or running).
    pub active: u32,
    /// Shards ready to start now (not running, not backing off, not done).
    pub ready: u32,
    /// The most shard pods the job's namespace may run on the pool at once (its pool's
    /// namespace policy).
    pub namespace_cap: Option<u32>,
}

/// `(namespace, name)` → shards the job may start now.
pub type Grants = BTreeMap<(String, String), u32>;

/// Shares the pool's free slots among the demands.
pub fn admit(capacity: u32, demands: &[Demand]) -> Grants {
    let running: u32 = demands.iter().map(|d| d.active).sum();
    let mut free = capacity.saturating_sub(running);
    let mut grants: Grants = demands
        .iter()
        .map(|d| ((d.namespace.clone(), d.name.clone()), 0))
        .collect();

    // Slots held per namespace, counting every priority level: fairness is about the pool.
    let mut held: BTreeMap<&str, u32> = BTreeMap::new();
    let mut caps: BTreeMap<&str, u32> = BTreeMap::new();
    for d in demands {
        *held.entry(d.namespace.as_str()).or_default() += d.active;
        if let Some(cap) = d.namespace_cap {
            let entry = caps.entry(d.namespace.as_str()).or_insert(cap);
            *entry = (*entry).min(cap);
        }
    }
    let under_cap = |held: &BTreeMap<&str, u32>, ns: &str| {
        caps.get(ns)
            .is_none_or(|cap| held.get(ns).copied().unwrap_or(0) < *cap)
    };

    let mut levels: Vec<i32> = demands.iter().map(|d| d.priority).collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();

    for level in levels {
        // FIFO queue of jobs per namespace at this level.
        let mut queues: BTreeMap<&str, Vec<&Demand>> = BTreeMap::new();
        for d in demands
            .iter()
            .filter(|d| d.priority == level && d.ready > 0)
        {
            queues.entry(d.namespace.as_str()).or_default().push(d);
        }
        for queue in queues.values_mut() {
            queue.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
            queue.reverse(); // pop() takes the oldest
        }
        while free > 0 {
            // The namespace with waiting work that holds the fewest slots (ties: by name).
            let Some(namespace) = queues
                .iter()
                .filter(|(ns, queue)| !queue.is_empty() && under_cap(&held, ns))
                .min_by_key(|(ns, _)| (held.get(**ns).copied().unwrap_or(0), **ns))
                .map(|(ns, _)| *ns)
            else {
                break;
            };
            let queue = queues.get_mut(namespace).expect("namespace has a queue");
            let job = *queue.last().expect("queue is not empty");
            let key = (job.namespace.clone(), job.name.clone());
            let granted = grants.get_mut(&key).expect("every demand has a grant");
            *granted += 1;
            if *granted == job.ready {
                queue.pop();
            }
            *held.entry(namespace).or_default() += 1;
            free -= 1;
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(
        ns: &str,
        name: &str,
        priority: i32,
        created_s: i64,
        active: u32,
        ready: u32,
    ) -> Demand {
        Demand {
            namespace: ns.into(),
            name: name.into(),
            priority,
            created: Timestamp::from_second(created_s).unwrap(),
            active,
            ready,
            namespace_cap: None,
        }
    }

    fn grant(grants: &Grants, ns: &str, name: &str) -> u32 {
        grants[&(ns.to_string(), name.to_string())]
    }

    #[test]
    fn a_namespace_cap_bounds_its_jobs_together_and_frees_the_rest() {
        let mut a1 = demand("a", "j1", 0, 1, 1, 10);
        let mut a2 = demand("a", "j2", 0, 2, 0, 10);
        a1.namespace_cap = Some(3);
        a2.namespace_cap = Some(3);
        let b = demand("b", "j3", 0, 3, 0, 10);
        let grants = admit(10, &[a1, a2, b]);
        // a holds 1 and may hold 3: 2 more between its jobs; b takes what is left.
        assert_eq!(grant(&grants, "a", "j1") + grant(&grants, "a", "j2"), 2);
        assert_eq!(grant(&grants, "b", "j3"), 7);
    }

    #[test]
    fn capacity_bounds_everything() {
        let grants = admit(4, &[demand("a", "j1", 0, 1, 3, 10)]);
        assert_eq!(grant(&grants, "a", "j1"), 1);
        let grants = admit(4, &[demand("a", "j1", 0, 1, 6, 10)]);
        assert_eq!(grant(&grants, "a", "j1"), 0);
        let grants = admit(100, &[demand("a", "j1", 0, 1, 0, 7)]);
        assert_eq!(grant(&grants, "a", "j1"), 7);
    }

    #[test]
    fn higher_priority_goes_first() {
        let grants = admit(
            5,
            &[
                demand("a", "low", 0, 1, 0, 10),
                demand("b", "high", 10, 2, 0, 3),
            ],
        );
        assert_eq!(grant(&grants, "b", "high"), 3);
        assert_eq!(grant(&grants, "a", "low"), 2);
    }

    #[test]
    fn equal_priority_is_shared_fairly_across_namespaces() {
        let grants = admit(
            9,
            &[
                demand("a", "j1", 0, 1, 0, 100),
                demand("a", "j2", 0, 2, 0, 100),
                demand("b", "k1", 0, 3, 0, 100),
            ],
        );
        // 9 slots, two namespaces: 5 and 4 (ties go to the first name), a's all to its oldest job.
        assert_eq!(grant(&grants, "a", "j1"), 5);
        assert_eq!(grant(&grants, "a", "j2"), 0);
        assert_eq!(grant(&grants, "b", "k1"), 4);
    }

    #[test]
    fn fairness_counts_slots_already_held() {
        let grants = admit(
            10,
            &[
                demand("a", "j1", 0, 1, 6, 100),
                demand("b", "k1", 0, 2, 0, 100),
            ],
        );
        assert_eq!(grant(&grants, "b", "k1"), 4);
        assert_eq!(grant(&grants, "a", "j1"), 0);
    }

    #[test]
    fn fifo_within_a_namespace_then_the_next_job() {
        let grants = admit(
            6,
            &[
                demand("a", "new", 0, 9, 0, 5),
                demand("a", "old", 0, 1, 0, 2),
            ],
        );
        assert_eq!(grant(&grants, "a", "old"), 2);
        assert_eq!(grant(&grants, "a", "new"), 4);
    }

    #[test]
    fn the_answer_does_not_depend_on_input_order() {
        let mut demands = vec![
            demand("a", "j1", 0, 1, 1, 5),
            demand("b", "k1", 5, 2, 0, 2),
            demand("c", "m1", 0, 3, 0, 5),
            demand("a", "j2", 0, 1, 0, 5),
        ];
        let first = admit(8, &demands);
        demands.reverse();
        assert_eq!(admit(8, &demands), first);
        assert_eq!(first.values().sum::<u32>(), 7);
    }
}
