//! The Tessera operator: turns a pool of GPU nodes into a render farm.
//!
//! Layout (one job per module):
//! - [`api`]: the CRD types.
//! - pure steps: [`job_plan`] (spec → shard plan), [`observe`] (pods → shard states),
//!   [`admission`] (pool capacity → shards each job may start), [`decide`] (the reconcile
//!   decision), [`pods`] (pod builder), [`status`] (conditions, progress, ETA).
//! - the edges: [`controller`] (the reconcile shell, API writes), [`pool_controller`],
//!   [`metrics`], [`http`], [`leader`], [`permissions`] (the RBAC it needs, checked at
//!   start-up), [`telemetry`].

pub mod admission;
pub mod api;
pub mod conditions;
pub mod controller;
pub mod decide;
pub mod error;
pub mod http;
pub mod job_plan;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod permissions;
pub mod pods;
pub mod pool_controller;
pub mod status;
pub mod telemetry;

pub use error::{Error, Result};
