//! The Tessera operator: turns a pool of GPU nodes into a render farm.
//!
//! Layout (one job per module):
//! - [`api`]: the CRD types.
//! - pure steps: [`job_plan`] (spec → shard plan), [`observe`] (pods → attempt states),
//!   [`ledger`] (ended attempts → the accounted history in status), [`admission`] (pool
//!   capacity → shards each job may start), [`decide`] (validate, assess and decide by
//!   phase), [`pods`] (pod builder), [`status`] (progress, ETA), [`storage_url`]
//!   (storage URLs in normal form, and what lies under what).
//! - the pool boundary: [`pool`] (the pod index, capacity, the per-pool scheduler, namespace
//!   policies, the GPU-hour ledger, the RenderPool reconciler).
//! - [`kueue`]: jobs that name a Kueue LocalQueue render what Kueue admits (its Workload API).
//! - the edges: [`controller`] (the RenderJob reconcile shell, API writes), [`job_usage`]
//!   (a job's figures moved into its pool's ledger before it goes), [`context`],
//!   [`metrics`], [`http`], [`leader`], [`permissions`] (the RBAC it needs, checked at
//!   start-up), [`telemetry`].

pub mod admission;
pub mod api;
pub mod conditions;
pub mod context;
pub mod controller;
pub mod decide;
pub mod error;
pub mod events;
pub mod http;
pub mod issued;
pub mod job_plan;
pub mod job_usage;
pub mod kueue;
pub mod labels;
pub mod leader;
pub mod ledger;
pub mod metrics;
pub mod observe;
pub mod permissions;
pub mod pods;
pub mod pool;
pub mod status;
pub mod storage_url;
pub mod telemetry;

pub use error::{Error, Result};
