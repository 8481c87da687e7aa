//! End-to-end harness for Tessera on a real control plane (DESIGN §8).
//!
//! - [`node_agent`]: fake GPU nodes that run pods as local processes, with fault injection.

pub mod node_agent;
