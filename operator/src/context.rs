//! What every reconcile shares: the client, the watch caches, the pod index, the pool
//! scheduler, metrics and the event publisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Client;
use kube::runtime::reflector::Store;

use crate::api::{RenderJob, RenderPool};
use crate::metrics::Metrics;
use crate::pool::index::PodIndex;
use crate::pool::scheduler::Scheduler;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tessera-operator";

pub struct Context {
    pub client: Client,
    pub jobs: Store<RenderJob>,
    pub pods: Store<Pod>,
    pub pools: Store<RenderPool>,
    pub nodes: Store<Node>,
    pub namespaces: Store<Namespace>,
    pub metrics: Metrics,
    pub events: crate::events::EventPublisher,
    pub index: Arc<PodIndex>,
    pub scheduler: Arc<Scheduler>,
    /// What passes read of the nodes, rebuilt when the node cache changes.
    pub node_views: Arc<crate::pool::nodes::NodeViews>,
    pub refusals: Refusals,
    pub kueue: crate::kueue::KueueCache,
    /// Pod writes issued a moment ago, not issued again before the watch shows them.
    pub issued: crate::issued::Issued,
    pub status_writes: StatusWrites,
    /// Set when the operator is asked to stop: a pass in the middle of thousands of creates
    /// stops issuing them (the next leader creates what is missing), so that shutdown takes
    /// seconds, not the minute such a pass takes at the API server's pace.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Jobs whose succeeded pods are being collected in the background (`controller.rs`).
    pub collecting: crate::issued::InFlight,
}

/// A job's status write that may wait (`status::may_wait`: figures, attempts that ended
/// plainly) is held until [`STATUS_BATCH_WINDOW`] after the job's last write, or only until
/// this long after it once it carries [`SETTLED_BATCH`] settled attempts; a phase, condition,
/// race or re-render is written at once.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Settled attempts that make a waiting status write due at [`PROGRESS_INTERVAL`]: a job
/// settling dozens of shards a second writes its ledger every 2 s, at most 1/32 of a write per
/// shard.
pub const SETTLED_BATCH: usize = 32;

/// The longest a waiting status write is held: how stale `kubectl get renderjob` counts may
/// be. Twenty jobs sharing a pool each settle about one shard a second, so a write per job
/// every 10 s is a tenth of a write per shard.
pub const STATUS_BATCH_WINDOW: Duration = Duration::from_secs(10);

/// When each job's (and pool's) status was last written, by UID.
#[derive(Default)]
pub struct StatusWrites {
    last_write: Mutex<HashMap<String, Instant>>,
}

impl StatusWrites {
    /// How long a status write that may wait still waits, given how many attempts it
    /// settles, or `None`: write it now.
    pub fn wait(&self, uid: &str, settled: usize) -> Option<Duration> {
        let last_write = self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        let last = last_write.get(uid)?;
        let window = if settled >= SETTLED_BATCH {
            PROGRESS_INTERVAL
        } else {
            STATUS_BATCH_WINDOW
        };
        window.checked_sub(last.elapsed()).filter(|d| !d.is_zero())
    }

    pub fn written(&self, uid: &str) {
        let mut last_write = self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        // Objects not written for a while (finished, deleted) need no entry.
        last_write.retain(|_, at| at.elapsed() < Duration::from_secs(600));
        last_write.insert(uid.to_string(), Instant::now());
    }
}

/// Pod creates the API server refused, per job UID: the job backs off before it tries again.
#[derive(Default)]
pub struct Refusals {
    jobs: Mutex<HashMap<String, (u32, Instant)>>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Refusals {
    /// Records a refusal; answers how long the job waits before it tries again.
    pub fn refused(&self, uid: &str) -> Duration {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let (count, until) = jobs.entry(uid.to_string()).or_insert((0, Instant::now()));
        *count = count.saturating_add(1);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << (*count - 1).min(10))
            .min(MAX_BACKOFF);
        *until = Instant::now() + wait;
        wait
    }

    /// Creates went through: the job no longer backs off.
    pub fn cleared(&self, uid: &str) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// Time left before the job may try creating pods again.
    pub fn backing_off(&self, uid: &str) -> Option<Duration> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let (_, until) = jobs.get(uid)?;
        until.checked_duration_since(Instant::now())
    }
}
