//! End-to-end harness for Tessera on a real control plane (docs/architecture.md §11).
//!
//! - [`node_agent`]: fake GPU nodes that run pods as local processes, with fault injection.
//! - [`harness`]: the control plane, kubectl and bounded waits, shared by the test binaries.

pub mod harness;
pub mod node_agent;
