//! `kubectl tessera`: a kubectl plugin for Tessera RenderJobs (docs/kubectl-plugin.md).
//!
//! The pure parts live here, each with its tests: [`manifest`] (`submit`), [`view`]
//! (`status`), [`logs`] (where a shard attempt's log is), [`wait`] (when a job is finished,
//! and the exit codes), [`rerun`] (`rerun` and `preview`). `main.rs` is the command line and the API calls.

pub mod logs;
pub mod manifest;
pub mod rerun;
pub mod view;
pub mod wait;
