//! The RenderPool reconciler: reads the pool's nodes, slot holders and jobs from the shared
//! caches and the pod index, and writes the pool's status (server-side apply, only when it
//! changed) and its capacity metrics.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::api::{RenderJob, RenderPool};
use crate::context::{Context, FIELD_MANAGER};
use crate::pool::policy::policy_for;
use crate::pool::status::{jobs_of_pool, may_wait, pool_status, shards_by_namespace};
use crate::pool::usage::{JobUsage, Pricing, usage};
use crate::{Error, Result, labels};

pub async fn reconcile_pool(pool: Arc<RenderPool>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&["RenderPool"])
        .start_timer();
    let name = pool
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let nodes = ctx.node_views.view(&ctx.nodes);
    let capacity = nodes.pool(&pool).capacity;
    let node_ready = |name: &str| nodes.is_ready(name);
    let running: u32 = ctx
        .index
        .slot_holders(&labels::job_label_value(&name), &node_ready)
        .values()
        .map(|h| h.slots)
        .sum();
    let all_jobs = ctx.jobs.state();
    let jobs: Vec<&RenderJob> = jobs_of_pool(&name, &all_jobs).map(|j| j.as_ref()).collect();
    let old = pool.status.clone().unwrap_or_default();
    let mut status = pool_status(&pool, capacity, running, &jobs);
    // The GPU-hour ledger: every job of the pool, finished or not, plus the deleted ones'.
    let live: Vec<JobUsage> = all_jobs
        .iter()
        .filter(|j| j.spec.pool == name)
        .map(|j| JobUsage::of(j))
        .collect();
    let period_of = |namespace: &str| {
        let labels = ctx
            .namespaces
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone())
            .unwrap_or_default();
        policy_for(&pool, &labels)
            .and_then(|p| p.gpu_hour_budget.as_ref())
            .map(|b| b.period)
    };
    status.usage = usage(
        &old,
        &live,
        pricing(&pool),
        &period_of,
        jiff::Timestamp::now(),
    );
    status.archived_jobs = old.archived_jobs.clone();
    ctx.metrics.set_pool_usage(&name, &status.usage);
    // Start from the old conditions so an unchanged condition keeps its transition time.
    status.conditions = old.conditions.clone();
    crate::conditions::set(
        &mut status.conditions,
        "Ready",
        capacity.shards > 0,
        if capacity.shards > 0 {
            "CapacityAvailable"
        } else {
            "NoCapacity"
        },
        format!(
            "{} of {} matching nodes ready, {} GPUs",
            capacity.ready_nodes, capacity.matching_nodes, capacity.gpus
        ),
        pool.metadata.generation,
        jiff::Timestamp::now(),
    );
    ctx.metrics
        .set_pool_shards(&name, &shards_by_namespace(&jobs));
    ctx.metrics.set_pool_capacity(&name, &status);
    if status != old {
        let uid = pool.metadata.uid.clone().unwrap_or_default();
        if may_wait(&old, &status)
            && let Some(wait) = ctx.status_writes.wait(&uid, 0)
        {
            return Ok(Action::requeue(wait));
        }
        write_status(&ctx.client, &pool, &status).await?;
        ctx.status_writes.written(&uid);
    }
    Ok(Action::requeue(Duration::from_secs(15)))
}

/// Writes a pool's status by server-side apply, conditional on the resourceVersion it was
/// computed from: the ledger's archived figures are written by job deletions too
/// (operator/src/job_usage.rs), and a stale copy must not overwrite them.
pub async fn write_status(
    client: &kube::Client,
    pool: &RenderPool,
    status: &crate::api::RenderPoolStatus,
) -> Result<()> {
    let body = serde_json::json!({
        "apiVersion": RenderPool::api_version(&()),
        "kind": RenderPool::kind(&()),
        "metadata": {"resourceVersion": pool.metadata.resource_version},
        "status": status,
    });
    Api::<RenderPool>::all(client.clone())
        .patch_status(
            &pool.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(())
}

/// How the pool counts and prices GPU time.
pub fn pricing(pool: &RenderPool) -> Pricing {
    Pricing {
        shares_per_gpu: pool.spec.gpu.shares_per_gpu,
        price_per_gpu_hour: pool.spec.price_per_gpu_hour,
    }
}
