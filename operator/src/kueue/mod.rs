//! Kueue integration (docs/architecture.md §6a): a RenderJob labelled
//! `kueue.x-k8s.io/queue-name: <LocalQueue>` renders only what Kueue admits. The operator
//! speaks Kueue's Workload API as Kueue documents it for external controllers: one Workload
//! per job, created by the operator ([`gate`] decides, [`job`] fits it into a job's pass,
//! [`write`] writes); jobs without the label never touch Kueue. [`api`] holds the few Kueue
//! types read and written.

pub mod api;
pub mod gate;
pub mod job;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

pub use api::{ResourceFlavor, Workload};
pub use gate::{Kueue, QueueGate, QueueNote, WorkloadWrite, gate, workload_name};
pub use write::write;

/// The label naming a job's LocalQueue, as on every Kueue-managed workload.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// The LocalQueue a job names, if any.
pub fn queue_of(job: &impl ResourceExt) -> Option<&str> {
    job.labels()
        .get(QUEUE_LABEL)
        .map(String::as_str)
        .filter(|q| !q.is_empty())
}

/// Whether the API server serves Kueue's Workloads and the operator may list them; asked
/// once at start-up (installing Kueue later needs an operator restart).
pub async fn served(client: &Client) -> bool {
    let listed = Api::<Workload>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await;
    match listed {
        Ok(_) => true,
        Err(error) => {
            tracing::info!(%error, "Kueue's Workload API is not available: jobs that name a LocalQueue wait");
            false
        }
    }
}

/// The operator's view of Kueue: whether it is served, and the Workload and ResourceFlavor
/// caches.
#[derive(Clone)]
pub struct KueueCache {
    pub served: bool,
    /// Set once the Workload cache holds every Workload.
    pub listed: Arc<AtomicBool>,
    pub workloads: Store<Workload>,
    pub flavors: Store<ResourceFlavor>,
}

impl KueueCache {
    /// Kueue not served: caches that stay empty.
    pub fn unavailable() -> Self {
        Self {
            served: false,
            listed: Arc::default(),
            workloads: kube::runtime::reflector::store().0,
            flavors: kube::runtime::reflector::store().0,
        }
    }

    /// The job's Workload, if the cache can say.
    pub fn workload_of(&self, namespace: &str, job: &str, uid: &str) -> Lookup {
        if !self.served {
            return Lookup::Unavailable;
        }
        if !self.listed.load(Ordering::Relaxed) {
            return Lookup::Listing;
        }
        let key = ObjectRef::new(&workload_name(job, uid)).within(namespace);
        Lookup::Listed(self.workloads.get(&key))
    }

    pub fn flavor(&self, name: &str) -> Option<api::ResourceFlavorSpec> {
        self.flavors
            .get(&ObjectRef::new(name))
            .map(|f| f.spec.clone())
    }
}

/// [`KueueCache::workload_of`]: owns the Workload a [`Kueue`] borrows.
pub enum Lookup {
    Unavailable,
    Listing,
    Listed(Option<Arc<Workload>>),
}

impl Lookup {
    pub fn as_kueue(&self) -> Kueue<'_> {
        match self {
            Lookup::Unavailable => Kueue::Unavailable,
            Lookup::Listing => Kueue::Listing,
            Lookup::Listed(workload) => Kueue::Listed(workload.as_deref()),
        }
    }
}
