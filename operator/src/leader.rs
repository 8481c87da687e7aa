//! Leader election through a `coordination.k8s.io` Lease, so that two replicas never both act.
//!
//! A replica runs its controllers only while it holds the lease. If it loses the lease it
//! stops acting at once and exits (client-go's default): the Deployment restarts it as a
//! clean standby, and no reconcile can run on behalf of a leader that is no longer one.

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::{Error, Result};

pub const LEASE_NAME: &str = "tessera-operator";

/// A held (or sought) lease: `is_leader` flips as the lease is won or lost.
pub struct Leadership {
    pub is_leader: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

/// Starts competing for the lease in `namespace` as `identity`.
pub async fn compete(
    client: Client,
    namespace: &str,
    identity: &str,
    lease_seconds: u64,
) -> Result<Leadership> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(lease_seconds)
        .with_grace(lease_seconds / 3)
        .with_field_manager(crate::context::FIELD_MANAGER)
        .build()
        .await
        .map_err(|e| Error::Lease(e.to_string()))?;
    let (is_leader, task) = manager.watch().await;
    Ok(Leadership { is_leader, task })
}

impl Leadership {
    /// Waits until this replica leads.
    pub async fn acquired(&mut self) -> Result<()> {
        self.is_leader
            .wait_for(|leading| *leading)
            .await
            .map(|_| ())
            .map_err(|e| Error::Lease(e.to_string()))
    }

    /// Resolves when this replica stops leading.
    pub async fn lost(&mut self) {
        let _ = self.is_leader.wait_for(|leading| !*leading).await;
    }

    /// Gives the lease up on shutdown so that a standby takes over at once.
    pub async fn release(self) {
        drop(self.is_leader);
        if let Ok(Ok(manager)) = self.task.await {
            let _ = manager.release().await;
        }
    }
}
