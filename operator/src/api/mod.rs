//! The `tessera.dev/v1alpha1` API: `RenderPool` (cluster-scoped) and `RenderJob` (namespaced).
//!
//! Every field's doc comment becomes its `kubectl explain` text. The API server enforces the
//! bounds, patterns and CEL rules written here, so most bad manifests never reach the operator.

pub mod render_job;
pub mod render_pool;

pub use render_job::*;
pub use render_pool::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD this operator serves, in install order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![RenderPool::crd(), RenderJob::crd()]
}
