//! The pod's commands: `render` (one shard), `merge` (a job's shards into frames) and `local`
//! (plan, render and merge a whole job on this machine through the same two code paths).

pub mod local;
pub mod merge;
pub mod render;

use crate::error::{Error, Result};

/// Reads a spec from `--spec JSON` or `--spec-file PATH`.
pub fn read_spec<T: serde::de::DeserializeOwned>(
    json: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<T> {
    let text = match (json, file) {
        (Some(json), None) => json.to_string(),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Error::BadSpec(format!("cannot read spec file {}: {e}", path.display()))
        })?,
        _ => {
            return Err(Error::BadSpec(
                "give exactly one of --spec and --spec-file".into(),
            ));
        }
    };
    serde_json::from_str(&text).map_err(|e| Error::BadSpec(format!("spec JSON: {e}")))
}

/// The object name of a frame inside a shard prefix (`frame_0003.exr`).
pub fn shard_frame_file(frame: i64) -> String {
    format!("frame_{frame:04}.exr")
}
