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
    /// The Secret whose keys become the pods' environment: the job's, else the pool's.
    pub storage_secret: Option<String>,
    /// Whether pods may fall back to ambient cloud credentials (the pool opted in).
    pub ambient_credentials: bool,
}

impl<'a> ValidJob<'a> {
    pub fn new(job: &'a RenderJob, pool: &'a RenderPool) -> Result<Self, SpecError> {
        let identity = |field: &'static str, value: &Option<String>| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or(SpecError::Metadata(field))
        };
        let name = identity("metadata.name", &job.metadata.name)?;
        let namespace = identity("metadata.namespace", &job.metadata.namespace)?;
        let uid = identity("metadata.uid", &job.metadata.uid)?;
        let plan = job_plan::plan(&job.spec)?;
        // Storage confinement: where it reads and writes, with whose credentials.
        let storage = job_plan::confine(job, pool)?;
        Ok(Self {
            name,
            namespace,
            uid,
            plan,
            settings: job_plan::render_settings(
                &job.spec,
                pool,
                storage.scene,
                storage.environment,
            ),
            output: storage.output,
            policy: job.spec.retry.clone().unwrap_or_default(),
            storage_secret: storage.secret,
            ambient_credentials: storage.ambient_credentials,
            job,
            pool,
        })
    }

    /// Shards in the plan.
    pub fn shard_count(&self) -> u32 {
        self.plan.len()
    }
}
