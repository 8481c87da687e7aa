//! A RenderJob's figures outlive it: the job carries the finalizer `tessera.dev/usage` from its
//! first reconcile, and before it goes its GPU-seconds and shards are moved into its pool's
//! GPU-hour ledger (`pool/usage.rs`, `archive`), then the finalizer is dropped. Both writes are
//! conditional on the resourceVersion read, and the pool remembers the UIDs it archived, so a
//! crash between them neither loses nor doubles a job's figures.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::Result;
use crate::api::{RenderJob, RenderPool};
use crate::context::Context;
use crate::labels::USAGE_FINALIZER;
use crate::pool::reconcile::{pricing, write_status};
use crate::pool::usage::{JobUsage, archive};

pub fn has_usage_finalizer(job: &RenderJob) -> bool {
    job.finalizers().iter().any(|f| f == USAGE_FINALIZER)
}

/// Adds (or removes) the usage finalizer, keeping every other finalizer, in one merge patch
/// conditional on the job's resourceVersion.
pub async fn set_usage_finalizer(job: &RenderJob, ctx: &Context, keep: bool) -> Result<()> {
    let namespace = job.namespace().unwrap_or_default();
    let mut finalizers: Vec<String> = job
        .finalizers()
        .iter()
        .filter(|f| *f != USAGE_FINALIZER)
        .cloned()
        .collect();
    if keep {
        finalizers.push(USAGE_FINALIZER.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": job.resource_version()},
    });
    let api: Api<RenderJob> = Api::namespaced(ctx.client.clone(), &namespace);
    match api
        .patch(
            &job.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Moves the job's figures into its pool's ledger, unless the pool holds them already or the
/// pool is gone (its ledger with it). The pool is read from the API server, not the cache: a
/// cache not yet filled after a restart must not pass for a deleted pool.
pub async fn archive_usage(job: &RenderJob, ctx: &Context) -> Result<()> {
    let api: Api<RenderPool> = Api::all(ctx.client.clone());
    let Some(pool) = api.get_opt(&job.spec.pool).await? else {
        return Ok(());
    };
    let recorded = pool.status.clone().unwrap_or_default();
    let Some(status) = archive(&recorded, &JobUsage::of(job), pricing(&pool)) else {
        return Ok(());
    };
    write_status(&ctx.client, &pool, &status).await?;
    tracing::info!(pool = %pool.name_any(), job = %job.name_any(), "job's usage moved into the pool's ledger");
    Ok(())
}
