//! The one write to a job's Workload that a pass decided. Status writes are JSON merge
//! patches of the status subresource carrying the resourceVersion they were computed from:
//! Kueue writes the same conditions, so a stale decision is refused (409) and the next pass
//! decides again.

use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::api::Workload;
use super::gate::{POD_SET, WorkloadWrite};
use crate::Result;

pub async fn write(client: &Client, namespace: &str, write: &WorkloadWrite) -> Result<()> {
    let api: Api<Workload> = Api::namespaced(client.clone(), namespace);
    let (name, result) = match write {
        WorkloadWrite::Create(workload) => (
            workload.metadata.name.clone().unwrap_or_default(),
            api.create(&PostParams::default(), workload).await.map(drop),
        ),
        WorkloadWrite::Delete { name } => (
            name.clone(),
            api.delete(name, &DeleteParams::background())
                .await
                .map(drop),
        ),
        WorkloadWrite::ReleaseQuota {
            name,
            resource_version,
            conditions,
        } => {
            let patch = json!({
                "metadata": {"resourceVersion": resource_version},
                "status": {"admission": null, "conditions": conditions},
            });
            (name.clone(), patch_status(&api, name, patch).await)
        }
        WorkloadWrite::Reclaimable { name, count } => {
            let patch = json!({"status": {"reclaimablePods": [{"name": POD_SET, "count": count}]}});
            (name.clone(), patch_status(&api, name, patch).await)
        }
        WorkloadWrite::Finish {
            name,
            resource_version,
            conditions,
        } => {
            let patch = json!({
                "metadata": {"resourceVersion": resource_version},
                "status": {"conditions": conditions},
            });
            (name.clone(), patch_status(&api, name, patch).await)
        }
    };
    match result {
        Ok(()) => {
            tracing::info!(workload = %name, write = write.kind(), "wrote Workload");
            Ok(())
        }
        // Already created, already gone, or Kueue moved first: the next pass looks again.
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn patch_status(
    api: &Api<Workload>,
    name: &str,
    patch: serde_json::Value,
) -> kube::Result<()> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
}

impl WorkloadWrite {
    fn kind(&self) -> &'static str {
        match self {
            WorkloadWrite::Create(_) => "create",
            WorkloadWrite::Delete { .. } => "delete",
            WorkloadWrite::ReleaseQuota { .. } => "release quota",
            WorkloadWrite::Reclaimable { .. } => "reclaimable pods",
            WorkloadWrite::Finish { .. } => "finish",
        }
    }
}
