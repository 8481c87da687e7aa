//! The crate's one error type and its mapping to the pod's exit codes
//! ([`tessera_shard::contract::exit`]), which tell the operator whether a retry can help.

use tessera_shard::contract::{InvalidShards, exit};

/// Everything that can stop a render or a merge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec (JSON or command line) is malformed or inconsistent.
    #[error("bad spec: {0}")]
    BadSpec(String),
    /// The scene could not be read or is not a renderable glTF 2.0 scene.
    #[error("bad scene {url}: {reason}")]
    BadScene { url: String, reason: String },
    /// The scene needs a bigger buffer than the device allows.
    #[error(
        "scene too large for this GPU: {what} needs {bytes} bytes, the device allows {limit} \
         (max_storage_buffer_binding_size / max_buffer_size)"
    )]
    SceneTooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
    /// No Vulkan adapter on this node.
    #[error(
        "no GPU adapter found: {0} (is a Vulkan ICD installed? on CPU-only machines install mesa-vulkan-drivers for lavapipe)"
    )]
    NoAdapter(String),
    /// The device failed (lost, out of memory, validation error).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Object storage failed; usually transient.
    #[error("storage error at {url}: {source}")]
    Storage {
        url: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// An image could not be encoded or decoded.
    #[error("image error: {0}")]
    Image(String),
    /// Merge only: some shard outputs are missing or corrupt.
    #[error("invalid shard outputs {}: {}", .0.shards, .0.reason)]
    InvalidShards(InvalidShards),
    /// Merge only: a frame chunk's merge record is missing or from other shard attempts
    /// (the manifest step ran before, or raced with, a chunk merge); merging again fixes it.
    #[error("merge record out of date: {0}")]
    StaleRecord(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadSpec(_) | Error::BadScene { .. } | Error::SceneTooLarge { .. } => {
                exit::BAD_INPUT
            }
            Error::NoAdapter(_) => exit::NO_ADAPTER,
            Error::InvalidShards(_) => exit::INVALID_SHARDS,
            Error::Gpu(_)
            | Error::Storage { .. }
            | Error::Image(_)
            | Error::StaleRecord(_)
            | Error::Io(_) => exit::TRANSIENT,
        }
    }

    /// A short kind label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::BadSpec(_) => "bad_spec",
            Error::BadScene { .. } => "bad_scene",
            Error::SceneTooLarge { .. } => "scene_too_large",
            Error::NoAdapter(_) => "no_adapter",
            Error::Gpu(_) => "gpu",
            Error::Storage { .. } => "storage",
            Error::Image(_) => "image",
            Error::InvalidShards(_) => "invalid_shards",
            Error::StaleRecord(_) => "stale_record",
            Error::Io(_) => "io",
        }
    }

    pub(crate) fn storage(url: impl Into<String>, source: object_store::Error) -> Self {
        Error::Storage {
            url: url.into(),
            source: Box::new(source),
        }
    }

    pub fn bad_scene(url: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::BadScene {
            url: url.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_contract_exit_codes() {
        assert_eq!(Error::BadSpec("x".into()).exit_code(), exit::BAD_INPUT);
        assert_eq!(Error::bad_scene("u", "r").exit_code(), exit::BAD_INPUT);
        assert_eq!(Error::NoAdapter("x".into()).exit_code(), exit::NO_ADAPTER);
        assert_eq!(Error::Gpu("lost".into()).exit_code(), exit::TRANSIENT);
        let storage = Error::storage(
            "file:///x",
            object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            },
        );
        assert_eq!(storage.exit_code(), exit::TRANSIENT);
    }
}
