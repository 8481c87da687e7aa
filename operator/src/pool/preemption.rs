//! Preemption inside a pool: a job that waits for capacity with a higher `spec.priority` than
//! shards that hold the pool's slots takes their slots. The victims are the lowest-priority,
//! most recently started shards (they lose the least work), at most `maxPerMinute` a pool; they
//! are evicted through the Eviction API (grace period and PodDisruptionBudgets hold) and their
//! attempt ends as a disruption — run again later, never counted as a failure. Pure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use jiff::Timestamp;

/// A shard pod holding one of the pool's slots, and its job's (effective) priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub namespace: String,
    pub pod: String,
    pub job_uid: String,
    pub priority: i32,
    pub started: Option<Timestamp>,
}

/// The shards to evict so that a job of `priority` wanting `wanted` more slots gets them:
/// lower-priority ones only, lowest priority first, then the most recently started (a pod
/// not started yet first of all), at most `allowed`.
pub fn victims(
    priority: i32,
    wanted: usize,
    mut candidates: Vec<Candidate>,
    allowed: usize,
) -> Vec<Candidate> {
    candidates.retain(|c| c.priority < priority);
    candidates.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| {
                b.started
                    .unwrap_or(Timestamp::MAX)
                    .cmp(&a.started.unwrap_or(Timestamp::MAX))
            })
            .then_with(|| a.pod.cmp(&b.pod))
    });
    candidates.truncate(wanted.min(allowed));
    candidates
}

/// A pool's eviction budget: at most `per_minute` evictions in any minute.
#[derive(Debug, Default)]
pub struct EvictionBudget {
    recent: VecDeque<Instant>,
}

impl EvictionBudget {
    /// Evictions allowed now.
    pub fn allowed(&mut self, per_minute: u32, now: Instant) -> usize {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        (per_minute as usize).saturating_sub(self.recent.len())
    }

    pub fn spend(&mut self, count: usize, now: Instant) {
        self.recent.extend(std::iter::repeat_n(now, count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(pod: &str, priority: i32, started: Option<i64>) -> Candidate {
        Candidate {
            namespace: "ns".into(),
            pod: pod.into(),
            job_uid: "u".into(),
            priority,
            started: started.map(|s| Timestamp::from_second(s).unwrap()),
        }
    }

    #[test]
    fn the_lowest_priority_most_recently_started_shards_go_first() {
        let candidates = vec![
            candidate("old-low", 0, Some(100)),
            candidate("new-low", 0, Some(200)),
            candidate("mid", 5, Some(300)),
            candidate("pending-low", 0, None),
            candidate("equal", 10, Some(400)),
        ];
        let chosen: Vec<String> = victims(10, 3, candidates.clone(), 10)
            .into_iter()
            .map(|c| c.pod)
            .collect();
        assert_eq!(chosen, ["pending-low", "new-low", "old-low"]);
        // Never a shard of equal or higher priority, and never more than allowed.
        assert_eq!(victims(10, 9, candidates.clone(), 10).len(), 4);
        assert_eq!(victims(10, 9, candidates.clone(), 1).len(), 1);
        assert!(victims(0, 9, candidates, 10).is_empty());
    }

    #[test]
    fn the_budget_refills_after_a_minute() {
        let start = Instant::now();
        let mut budget = EvictionBudget::default();
        assert_eq!(budget.allowed(3, start), 3);
        budget.spend(2, start);
        assert_eq!(budget.allowed(3, start + Duration::from_secs(30)), 1);
        assert_eq!(budget.allowed(3, start + Duration::from_secs(61)), 3);
    }
}
