//! Parse, don't validate: a RenderJob and its pool turned once into a [`ValidJob`], a type
//! that cannot hold an impossible state (a plan or an error, never both; a real name,
//! namespace and UID, never a defaulted one).

use tessera_shard::ShardPlan;
use tessera_shard::contract::RenderSettings;

use crate::api::{RenderJob, RenderPool, RetryPolicy};
use crate::job_plan::{self, SpecError};

/// A job that can be rendered on its pool.
#[derive(Debug, Clone)]
pub struct ValidJob<'a> {
    pub job: &'a RenderJob,
    pub pool: &'a RenderPool,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub plan: ShardPlan,
    pub settings: RenderSettings,
    /// The output prefix URL, without a trailing slash.
    pub output: String,
    pub policy: RetryPolicy,
    pub storage_secret: Option<String>,
}

impl<'a> ValidJob<'a> {
    pub fn new(job: &'a RenderJob, pool: &'a RenderPool) -> Result<Self, SpecError> {
        let identity = |field: &'static str, value: &Option<String>| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or(SpecError::Metadata(field))
        };
        Ok(Self {
            name: identity("metadata.name", &job.metadata.name)?,
            namespace: identity("metadata.namespace", &job.metadata.namespace)?,
            uid: identity("metadata.uid", &job.metadata.uid)?,
            plan: job_plan::plan(&job.spec)?,
            settings: job_plan::render_settings(&job.spec)?,
            output: job_plan::output_prefix(job, pool)?,
            policy: job.spec.retry.clone().unwrap_or_default(),
            storage_secret: job_plan::storage_secret(job, pool),
            job,
            pool,
        })
    }

    /// Shards in the plan.
    pub fn shard_count(&self) -> u32 {
        self.plan.len()
    }
}
