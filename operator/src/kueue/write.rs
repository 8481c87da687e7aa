//! The one write to a job's Workload that a pass decided. Status writes are JSON merge
//! patches of the status subresource; those that rewrite Kueue's conditions carry the
//! resourceVersion they were computed from, so a stale decision is refused (409) and the next
//! pass decides again.

use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::api::Workload;
use super::gate::{POD_SET, WorkloadWrite};
use crate::Result;

pub async fn write(client: &Client, namespace: &str, write: &WorkloadWrite) -> Result<()> {
    let api: Api<Workload> = Api::namespaced(client.clone(), namespace);
    let name = write.name();
    let result = match write {
        WorkloadWrite::Create(workload) => {
            api.create(&PostParams::default(), workload).await.map(drop)
        }
        WorkloadWrite::Delete { .. } => api
            .delete(&name, &DeleteParams::background())
            .await
            .map(drop),
        _ => {
            let patch = Patch::Merge(write.status_patch());
            api.patch_status(&name, &PatchParams::default(), &patch)
                .await
                .map(drop)
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

impl WorkloadWrite {
    fn name(&self) -> String {
        match self {
            WorkloadWrite::Create(workload) => workload.metadata.name.clone().unwrap_or_default(),
            WorkloadWrite::Delete { name }
            | WorkloadWrite::ReleaseQuota { name, .. }
            | WorkloadWrite::Reclaimable { name, .. }
            | WorkloadWrite::Finish { name, .. } => name.clone(),
        }
    }

    /// The merge patch of a status write (`Null` for a create or a delete).
    fn status_patch(&self) -> Value {
        match self {
            WorkloadWrite::ReleaseQuota {
                resource_version,
                conditions,
                ..
            } => json!({
                "metadata": {"resourceVersion": resource_version},
                "status": {"admission": null, "conditions": conditions},
            }),
            WorkloadWrite::Finish {
                resource_version,
                conditions,
                ..
            } => json!({
                "metadata": {"resourceVersion": resource_version},
                "status": {"conditions": conditions},
            }),
            WorkloadWrite::Reclaimable { count, .. } => {
                json!({"status": {"reclaimablePods": [{"name": POD_SET, "count": count}]}})
            }
            WorkloadWrite::Create(_) | WorkloadWrite::Delete { .. } => Value::Null,
        }
    }

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
