//! The contract shared by the Tessera operator and the render pod.
//!
//! Everything both sides must agree on lives here and nowhere else: the frame-list syntax, the
//! shard plan (shard `i` ↔ frames × tile × sample range), the compact index sets used in status,
//! the JSON specs the operator hands to pods, the manifests pods write, and the exit codes.
//! It is pure: no Kubernetes client, no GPU, no I/O.

/// Serializes a type as its `Display` form and deserializes it with its `parse`: the compact
/// string forms used in status (`0-41,43-99`, `17:2,40-45:1`).
macro_rules! serde_as_string {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod attempt_map;
pub mod contract;
pub mod frames;
pub mod index_set;
pub mod limits;
pub mod plan;

pub use attempt_map::AttemptMap;
pub use frames::{FrameList, FrameListError};
pub use index_set::IndexSet;
pub use limits::SceneLimits;
pub use plan::{PlanError, PlanInput, SampleRange, Shard, ShardPlan, TileRect};
