//! Object storage through `object_store`: `file://` always, `s3://` with the `aws` feature
//! (credentials and region from the standard `AWS_*` environment variables). Plain paths are
//! local files. The async client runs on a private current-thread tokio runtime; stores are
//! cached per scheme + authority.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::error::{Error, Result};

/// Turns a URL or a plain (relative or absolute) path into a URL.
pub fn to_url(location: &str) -> Result<Url> {
    if location.contains("://") {
        return Url::parse(location)
            .map_err(|e| Error::BadSpec(format!("bad URL {location:?}: {e}")));
    }
    let absolute = std::path::absolute(location)
        .map_err(|e| Error::BadSpec(format!("bad path {location:?}: {e}")))?;
    Url::from_file_path(&absolute).map_err(|_| Error::BadSpec(format!("bad path {location:?}")))
}

/// `base` joined with a relative reference (glTF URIs are relative to the scene file).
pub fn join(base: &str, relative: &str) -> Result<String> {
    let base = to_url(base)?;
    base.join(relative)
        .map(String::from)
        .map_err(|e| Error::BadSpec(format!("cannot resolve {relative:?} against {base}: {e}")))
}

pub struct Storage {
    runtime: tokio::runtime::Runtime,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Storage {
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Storage {
            runtime,
            stores: Mutex::new(HashMap::new()),
        })
    }

    fn resolve(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let url = to_url(location)?;
        let key = url[..url::Position::BeforePath].to_string();
        let options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .collect();
        let (store, path) = object_store::parse_url_opts(&url, options).map_err(|e| match e {
            object_store::Error::Generic { .. } | object_store::Error::InvalidPath { .. } => {
                Error::BadSpec(format!("unsupported storage URL {location:?}: {e}"))
            }
            other => Error::storage(location, other),
        })?;
        // URLs are percent-encoded; object keys and file names are not.
        let path = Path::from_url_path(path.as_ref()).unwrap_or(path);
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| Error::BadSpec("storage cache poisoned".into()))?;
        let store = stores
            .entry(key)
            .or_insert_with(|| Arc::from(store))
            .clone();
        Ok((store, path))
    }

    /// The object's bytes; `Ok(None)` when it does not exist.
    pub fn get_opt(&self, location: &str) -> Result<Option<Vec<u8>>> {
        let (store, path) = self.resolve(location)?;
        let result = self.runtime.block_on(async {
            let got = store.get(&path).await?;
            got.bytes().await
        });
        match result {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(location, e)),
        }
    }

    pub fn get(&self, location: &str) -> Result<Vec<u8>> {
        self.get_opt(location)?.ok_or_else(|| {
            Error::storage(
                location,
                object_store::Error::NotFound {
                    path: location.to_string(),
                    source: "no such object".into(),
                },
            )
        })
    }

    pub fn put(&self, location: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path) = self.resolve(location)?;
        self.runtime
            .block_on(store.put(&path, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| Error::storage(location, e))
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_and_plain_paths_round_trip() {
        let dir = std::env::temp_dir().join(format!("render-pod-storage-{}", std::process::id()));
        let storage = Storage::new().unwrap();
        let url = Url::from_file_path(dir.join("a/b.bin"))
            .unwrap()
            .to_string();
        storage.put(&url, b"hello".to_vec()).unwrap();
        assert_eq!(storage.get(&url).unwrap(), b"hello");
        let plain = dir.join("a/b.bin").to_string_lossy().to_string();
        assert_eq!(storage.get(&plain).unwrap(), b"hello");
        assert_eq!(storage.get_opt(&format!("{url}.missing")).unwrap(), None);
        assert_eq!(
            join(&url, "c%20d.png").unwrap(),
            format!("{}c%20d.png", url.trim_end_matches("b.bin"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        assert_eq!(
            sha256_hex(b"test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
