//! Pod writes this operator issued a moment ago, so that a reconcile running on a cache that
//! has not yet seen them does not issue them again: under load the watch lags the writes by
//! seconds, and every pod event of a job triggers its reconcile, which would delete the same
//! pods again (404), release them again and delete their blocks again — API requests for
//! nothing. An entry lapses after [`ISSUED_TTL`]: by then the watch has shown the write, or
//! issuing it again is right. A create is forgotten as soon as the watch shows its pod
//! ([`Issued::forget_shown`]): a pod of the same name may be wanted again once that one is gone
//! (a re-rendered frame's merge).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ISSUED_TTL: Duration = Duration::from_secs(30);

/// What was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Write {
    /// Delete a pod.
    Delete,
    /// Drop a pod's ledger finalizer.
    Release,
    /// Delete the succeeded pods of a job's shard block, or its finished merge pods by id.
    Collect,
    /// Create a pod that holds no shard slot (merge, manifest): shard pod creates are the
    /// pool book's expectations (`pool/scheduler.rs`).
    Create,
}

#[derive(Default)]
pub struct Issued {
    writes: Mutex<HashMap<(Write, String, String), Instant>>,
}

impl Issued {
    /// Of `targets` (pod names, or blocks) in `scope` (a namespace, or a job UID), those not
    /// issued within the TTL, now recorded as issued.
    pub fn fresh<T: ToString + Clone>(&self, write: Write, scope: &str, targets: &[T]) -> Vec<T> {
        self.fresh_at(write, scope, targets, usize::MAX, Instant::now())
    }

    /// As [`Issued::fresh`], at most `limit` of them; the rest stay unissued.
    pub fn fresh_up_to<T: ToString + Clone>(
        &self,
        write: Write,
        scope: &str,
        targets: &[T],
        limit: usize,
    ) -> Vec<T> {
        self.fresh_at(write, scope, targets, limit, Instant::now())
    }

    fn fresh_at<T: ToString + Clone>(
        &self,
        write: Write,
        scope: &str,
        targets: &[T],
        limit: usize,
        now: Instant,
    ) -> Vec<T> {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.retain(|_, at| now.duration_since(*at) < ISSUED_TTL);
        let mut fresh = Vec::new();
        for target in targets {
            if fresh.len() == limit {
                break;
            }
            let key = (write, scope.to_string(), target.to_string());
            if let std::collections::hash_map::Entry::Vacant(entry) = writes.entry(key) {
                entry.insert(now);
                fresh.push(target.clone());
            }
        }
        fresh
    }

    /// Forgets the writes of `write` in `scope` whose target `shown(target)` says the watch
    /// has delivered: a pod created and seen may later go and be wanted again under its name
    /// (a re-rendered frame's merge), and that create is a new one.
    pub fn forget_shown(&self, write: Write, scope: &str, shown: impl Fn(&str) -> bool) {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.retain(|(w, s, target), _| !(*w == write && s == scope && shown(target)));
    }

    /// Writes that failed: the next reconcile issues them again.
    pub fn failed<T: ToString>(&self, write: Write, scope: &str, targets: &[T]) {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        for t in targets {
            writes.remove(&(write, scope.to_string(), t.to_string()));
        }
    }
}

/// Jobs (by UID) with a background write in flight: at most one each.
#[derive(Default)]
pub struct InFlight {
    jobs: Mutex<HashSet<String>>,
}

impl InFlight {
    /// Claims `uid` for a write; `false` while an earlier one is still in flight.
    pub fn claim(&self, uid: &str) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.insert(uid.to_string())
    }

    /// The write of `uid` ended.
    pub fn release(&self, uid: &str) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_issued_once_within_the_ttl() {
        let issued = Issued::default();
        let t0 = Instant::now();
        let pods = ["a".to_string(), "b".to_string()];
        assert_eq!(
            issued.fresh_at(Write::Delete, "ns", &pods, usize::MAX, t0),
            pods
        );
        let again = issued.fresh_at(
            Write::Delete,
            "ns",
            &pods,
            usize::MAX,
            t0 + Duration::from_secs(1),
        );
        assert!(again.is_empty());
        // Another kind of write, or another namespace, is another write.
        assert_eq!(
            issued
                .fresh_at(Write::Release, "ns", &pods[..1], usize::MAX, t0)
                .len(),
            1
        );
        assert_eq!(
            issued
                .fresh_at(Write::Delete, "other", &pods[..1], usize::MAX, t0)
                .len(),
            1
        );
        // A failed write is issued again at once; the rest after the TTL.
        issued.failed(Write::Delete, "ns", &pods[..1]);
        assert_eq!(
            issued.fresh_at(Write::Delete, "ns", &pods, usize::MAX, t0),
            ["a"]
        );
        let later = t0 + ISSUED_TTL + Duration::from_secs(1);
        assert_eq!(
            issued.fresh_at(Write::Delete, "ns", &pods, usize::MAX, later),
            pods
        );
    }

    #[test]
    fn a_limited_pass_issues_the_first_unissued_targets_and_leaves_the_rest() {
        let issued = Issued::default();
        let t0 = Instant::now();
        let blocks = [0u32, 1, 2, 3, 4];
        assert_eq!(
            issued.fresh_at(Write::Collect, "uid", &blocks, 2, t0),
            [0, 1]
        );
        // Asked again within the TTL: the ones issued are skipped, the next are issued.
        assert_eq!(
            issued.fresh_at(Write::Collect, "uid", &blocks, 2, t0),
            [2, 3]
        );
        // Asking again does not extend an entry: it lapses a TTL after it was issued.
        let later = t0 + ISSUED_TTL;
        assert_eq!(
            issued.fresh_at(Write::Collect, "uid", &blocks, 9, later),
            blocks
        );
    }

    #[test]
    fn one_background_write_per_job_at_a_time() {
        let in_flight = InFlight::default();
        assert!(in_flight.claim("u1"));
        assert!(!in_flight.claim("u1"));
        assert!(in_flight.claim("u2"));
        in_flight.release("u1");
        assert!(in_flight.claim("u1"));
    }

    #[test]
    fn a_create_the_watch_has_shown_can_be_issued_again() {
        let issued = Issued::default();
        let t0 = Instant::now();
        let pods = ["merge-1-0".to_string(), "merge-2-0".to_string()];
        assert_eq!(
            issued.fresh_at(Write::Create, "ns", &pods, usize::MAX, t0),
            pods
        );
        issued.forget_shown(Write::Create, "ns", |pod| pod == "merge-1-0");
        // Shown, then gone, and wanted again: issued. Not shown yet: still held back.
        assert_eq!(
            issued.fresh_at(Write::Create, "ns", &pods, usize::MAX, t0),
            ["merge-1-0"]
        );
    }
}
