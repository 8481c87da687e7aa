//! The pool scheduling boundary (docs/architecture.md, "The pool boundary").
//!
//! - [`index`]: the pod index fed by the pod watch stream — a job's own pods, a pool's slot
//!   holders, and the one definition of "holds a slot";
//! - [`nodes`]: a pool's matching and Ready nodes and its capacity;
//! - [`scheduler`]: one book per pool behind its own lock — demands and in-flight creates —
//!   where admission reserves slots;
//! - [`policy`]: the pool's limits per namespace (concurrent shards, priority, GPU-hour budget);
//! - [`usage`]: the GPU-hour ledger per namespace;
//! - [`preemption`]: which lower-priority shards a waiting job evicts;
//! - [`status`] and [`reconcile`]: the RenderPool's status.
//!
//! The job controller uses this module; this module never uses the job controller.

pub mod index;
pub mod nodes;
pub mod policy;
pub mod preemption;
pub mod reconcile;
pub mod scheduler;
pub mod status;
pub mod usage;
