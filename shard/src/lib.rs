//! The contract shared by the Tessera operator and the render pod.
//!
//! Everything both sides must agree on lives here and nowhere else: the frame-list syntax, the
//! shard plan (shard `i` ↔ frames × tile × sample range), the compact index sets used in status,
//! the JSON specs the operator hands to pods, the manifests pods write, and the exit codes.
//! It is pure: no Kubernetes client, no GPU, no I/O.

pub mod attempt_map;
pub mod contract;
pub mod frames;
pub mod index_set;
pub mod plan;

pub use attempt_map::AttemptMap;
pub use frames::{FrameList, FrameListError};
pub use index_set::IndexSet;
pub use plan::{PlanError, PlanInput, SampleRange, Shard, ShardPlan, TileRect};
