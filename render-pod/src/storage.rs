//! Object storage through `object_store`. Which URL reaches which store:
//!
//! | URL | store | feature | configuration |
//! |---|---|---|---|
//! | plain path, `file:///…` | local file system | always | none |
//! | `s3://`, `s3a://`, S3 `https://` hosts | Amazon S3 (and S3-compatible) | `aws` | `AWS_*` variables |
//! | `gs://bucket/…` | Google Cloud Storage | `gcp` | `GoogleCloudStorageBuilder::from_env()`: `GOOGLE_*` (+ `SERVICE_ACCOUNT`) |
//! | `az://`, `azure://`, `adl://`, `abfs(s)://`, Azure `https://` hosts | Azure Blob Storage | `azure` | `MicrosoftAzureBuilder::from_env()`: `AZURE_*` (+ `IDENTITY_ENDPOINT`) |
//!
//! Anything else (an unknown scheme, plain `http(s)://`, a scheme whose feature this build lacks)
//! is [`Error::BadSpec`], i.e. exit code 3 (`BAD_INPUT`). The async clients run on a private
//! current-thread tokio runtime; stores are cached per scheme + authority.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload};
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

/// The kind of store a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `file://` and plain paths.
    Local,
    /// `memory://` (process-local, for tests).
    Memory,
    /// `s3://`, `s3a://`, `https://…amazonaws.com`, `https://…r2.cloudflarestorage.com`.
    S3,
    /// `gs://`.
    Gcs,
    /// `az://`, `azure://`, `adl://`, `abfs://`, `abfss://`, `https://…(blob|dfs).core.windows.net`.
    Azure,
}

impl Backend {
    /// The render-pod cargo feature that enables this backend, when this build lacks it.
    fn missing_feature(self) -> Option<&'static str> {
        match self {
            Backend::Local | Backend::Memory => None,
            Backend::S3 => (!cfg!(feature = "aws")).then_some("aws"),
            Backend::Gcs => (!cfg!(feature = "gcp")).then_some("gcp"),
            Backend::Azure => (!cfg!(feature = "azure")).then_some("azure"),
        }
    }
}

const SUPPORTED: &str = "supported: plain paths, file://, s3://, gs://, az://, azure://, adl://, \
                         abfs://, abfss://";

/// Which store `url` selects and the object path inside it, without building a client (no
/// network, no credentials). Unknown schemes and disabled backends are [`Error::BadSpec`].
pub fn select(url: &Url) -> Result<(Backend, Path)> {
    let unsupported =
        |why: String| Error::BadSpec(format!("unsupported storage URL \"{url}\": {why}"));
    let (scheme, path) =
        ObjectStoreScheme::parse(url).map_err(|e| unsupported(format!("{e} ({SUPPORTED})")))?;
    let backend = match scheme {
        ObjectStoreScheme::Local => Backend::Local,
        ObjectStoreScheme::Memory => Backend::Memory,
        ObjectStoreScheme::AmazonS3 => Backend::S3,
        ObjectStoreScheme::GoogleCloudStorage => Backend::Gcs,
        ObjectStoreScheme::MicrosoftAzure => Backend::Azure,
        _ => {
            return Err(unsupported(format!(
                "scheme {:?} is not an object store ({SUPPORTED})",
                url.scheme()
            )));
        }
    };
    if let Some(feature) = backend.missing_feature() {
        return Err(unsupported(format!(
            "this render-pod was built without the `{feature}` feature"
        )));
    }
    // URLs are percent-encoded; object keys and file names are not.
    let path = Path::parse(path.as_ref()).map_err(|e| unsupported(e.to_string()))?;
    let path = Path::from_url_path(path.as_ref()).unwrap_or(path);
    Ok((backend, path))
}

/// The variable the operator sets on every pod: `true` only when the pool opted in to ambient
/// cloud credentials (instance metadata, IRSA, Workload Identity). Absent (a workstation running
/// `render-pod local`): allowed.
pub const AMBIENT_CREDENTIALS_ENV: &str = "TESSERA_AMBIENT_CREDENTIALS";

/// Whether `vars` (the process environment) configure credentials for `backend` themselves,
/// rather than leaving the client to fall back to the node's or pod's cloud identity.
pub fn has_explicit_credentials(backend: Backend, vars: &HashMap<String, String>) -> bool {
    let set = |key: &str| vars.get(key).is_some_and(|v| !v.is_empty());
    let yes = |key: &str| {
        vars.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    match backend {
        Backend::Local | Backend::Memory => true,
        Backend::S3 => {
            (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY")) || yes("AWS_SKIP_SIGNATURE")
        }
        Backend::Gcs => {
            [
                "GOOGLE_SERVICE_ACCOUNT",
                "GOOGLE_SERVICE_ACCOUNT_PATH",
                "GOOGLE_SERVICE_ACCOUNT_KEY",
                "GOOGLE_APPLICATION_CREDENTIALS",
                "GOOGLE_BEARER_TOKEN",
            ]
            .iter()
            .any(|k| set(k))
                || yes("GOOGLE_SKIP_SIGNATURE")
        }
        Backend::Azure => {
            [
                "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_ACCESS_KEY",
                "AZURE_STORAGE_MASTER_KEY",
                "AZURE_STORAGE_SAS_KEY",
                "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_STORAGE_TOKEN",
                "AZURE_CLIENT_SECRET",
            ]
            .iter()
            .any(|k| set(k))
                || yes("AZURE_STORAGE_USE_EMULATOR")
                || yes("AZURE_SKIP_SIGNATURE")
        }
    }
}

/// Refuses a cloud store without explicit credentials when ambient ones are not allowed, so a
/// job never reads or writes with the node's identity by accident.
fn check_credentials(backend: Backend, location: &str) -> Result<()> {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let ambient_allowed = vars
        .get(AMBIENT_CREDENTIALS_ENV)
        .is_none_or(|v| v.eq_ignore_ascii_case("true"));
    if ambient_allowed || has_explicit_credentials(backend, &vars) {
        return Ok(());
    }
    Err(Error::BadSpec(format!(
        "no credentials for {location:?}: the pool's or job's Secret sets none for {backend:?} \
         storage, and the pool does not allow ambient cloud credentials \
         (RenderPool spec.storage.ambientCredentials)"
    )))
}

/// Builds the client for `url`, configured from the process environment.
fn build_store(backend: Backend, url: &Url) -> object_store::Result<Box<dyn ObjectStore>> {
    match backend {
        Backend::Local | Backend::Memory | Backend::S3 => {
            // Only AWS_* variables reach the S3 client (and nothing reaches the others).
            let options: Vec<(String, String)> = std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .collect();
            object_store::parse_url_opts(url, options).map(|(store, _)| store)
        }
        #[cfg(feature = "gcp")]
        Backend::Gcs => Ok(Box::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        )),
        #[cfg(feature = "azure")]
        Backend::Azure => Ok(Box::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(object_store::Error::NotSupported {
            source: format!("{other:?} storage is not enabled in this build").into(),
        }),
    }
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
        let (backend, path) = select(&url)?;
        let key = url[..url::Position::BeforePath].to_string();
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| Error::BadSpec("storage cache poisoned".into()))?;
        if let Some(store) = stores.get(&key) {
            return Ok((store.clone(), path));
        }
        check_credentials(backend, location)?;
        // Builder errors are configuration errors (a missing account or bucket, an unreadable
        // key file, a malformed container name): retrying cannot help.
        let store: Arc<dyn ObjectStore> = build_store(backend, &url)
            .map_err(|e| match e {
                object_store::Error::Generic { .. }
                | object_store::Error::InvalidPath { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::UnknownConfigurationKey { .. } => Error::BadSpec(format!(
                    "cannot configure {backend:?} storage for {location:?}: {e}"
                )),
                other => Error::storage(location, other),
            })?
            .into();
        stores.insert(key, store.clone());
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

    /// The object's size; `Ok(None)` when it does not exist.
    pub fn size(&self, location: &str) -> Result<Option<u64>> {
        let (store, path) = self.resolve(location)?;
        match self.runtime.block_on(store.head(&path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(location, e)),
        }
    }

    /// The object's bytes if it holds at most `max` bytes: its size is read first, then exactly
    /// that range, so an oversized object is refused without being read. `Ok(None)`: no object.
    pub fn get_bounded(&self, location: &str, max: u64) -> Result<Option<Bounded>> {
        let Some(size) = self.size(location)? else {
            return Ok(None);
        };
        if size > max {
            return Ok(Some(Bounded::TooLarge(size)));
        }
        Ok(self.get_prefix(location, size)?.map(Bounded::Bytes))
    }

    /// The first `length` bytes of the object (a ranged read), which must hold at least that
    /// many; `Ok(None)`: no object.
    pub fn get_prefix(&self, location: &str, length: u64) -> Result<Option<Vec<u8>>> {
        if length == 0 {
            return Ok(self.size(location)?.map(|_| Vec::new()));
        }
        let (store, path) = self.resolve(location)?;
        let bytes = match self.runtime.block_on(store.get_range(&path, 0..length)) {
            Ok(bytes) => bytes.to_vec(),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage(location, e)),
        };
        if bytes.len() as u64 != length {
            // Replaced or truncated while we read it: a retry reads a consistent object.
            return Err(Error::storage(
                location,
                object_store::Error::Generic {
                    store: "render-pod",
                    source: format!("asked for {length} bytes, got {}", bytes.len()).into(),
                },
            ));
        }
        Ok(Some(bytes))
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

/// What [`Storage::get_bounded`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Bounded {
    Bytes(Vec<u8>),
    /// The object's size, over the bound; nothing was read.
    TooLarge(u64),
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

    fn selected(location: &str) -> (Backend, String) {
        let (backend, path) = select(&to_url(location).unwrap()).unwrap();
        (backend, path.to_string())
    }

    #[test]
    fn urls_select_their_store_and_object_path() {
        let cases = [
            ("file:///data/t/a.exr", Backend::Local, "data/t/a.exr"),
            (
                "s3://bucket/p/frame_0001.exr",
                Backend::S3,
                "p/frame_0001.exr",
            ),
            ("s3a://bucket/p/m.json", Backend::S3, "p/m.json"),
            (
                "gs://bucket/tessera/ns/job/m.json",
                Backend::Gcs,
                "tessera/ns/job/m.json",
            ),
            ("gs://bucket/c%20d.png", Backend::Gcs, "c d.png"),
            ("az://renders/ns/job/f.exr", Backend::Azure, "ns/job/f.exr"),
            ("azure://renders/ns/f.exr", Backend::Azure, "ns/f.exr"),
            ("adl://renders/ns/f.exr", Backend::Azure, "ns/f.exr"),
            ("abfs://renders/ns/f.exr", Backend::Azure, "ns/f.exr"),
            ("abfss://renders/ns/f.exr", Backend::Azure, "ns/f.exr"),
            (
                "abfss://renders@acct.dfs.core.windows.net/ns/f.exr",
                Backend::Azure,
                "ns/f.exr",
            ),
            (
                "https://acct.blob.core.windows.net/renders/ns/f.exr",
                Backend::Azure,
                "ns/f.exr",
            ),
            ("memory:///x/y", Backend::Memory, "x/y"),
        ];
        for (url, backend, path) in cases {
            if let Some(feature) = backend.missing_feature() {
                let err = select(&to_url(url).unwrap()).unwrap_err().to_string();
                assert!(
                    err.contains(&format!("without the `{feature}` feature")),
                    "{err}"
                );
                continue;
            }
            assert_eq!(selected(url), (backend, path.to_string()), "{url}");
        }
        let plain = std::env::temp_dir().join("a b.exr");
        let (backend, path) = selected(plain.to_str().unwrap());
        assert_eq!(backend, Backend::Local);
        assert!(path.ends_with("a b.exr"), "{path}");
    }

    #[test]
    #[cfg(all(feature = "gcp", feature = "azure"))]
    fn relative_scene_references_stay_in_the_bucket() {
        for base in [
            "gs://bucket/scenes/shot.gltf",
            "az://renders/scenes/shot.gltf",
            "abfss://renders@acct.dfs.core.windows.net/scenes/shot.gltf",
        ] {
            let joined = join(base, "tex/wood%20grain.png").unwrap();
            assert_eq!(joined, base.replace("shot.gltf", "tex/wood%20grain.png"));
            let (backend, path) = selected(&joined);
            assert_eq!(backend, selected(base).0);
            assert_eq!(path, "scenes/tex/wood grain.png");
        }
    }

    #[test]
    fn unknown_schemes_are_bad_input_with_a_clear_message() {
        use tessera_shard::contract::exit;
        for url in [
            "ftp://host/scene.gltf",
            "hdfs://namenode/out",
            "http://example.com/scene.gltf",
            "https://example.com/scene.gltf",
        ] {
            let err = select(&to_url(url).unwrap()).unwrap_err();
            assert!(matches!(err, Error::BadSpec(_)), "{url}: {err}");
            assert_eq!(err.exit_code(), exit::BAD_INPUT, "{url}");
            let msg = err.to_string();
            assert!(msg.contains("unsupported storage URL"), "{msg}");
            assert!(msg.contains("gs://") && msg.contains("az://"), "{msg}");
            // The same through the storage layer.
            let storage = Storage::new().unwrap();
            let err = storage.get_opt(url).unwrap_err();
            assert_eq!(err.exit_code(), exit::BAD_INPUT, "{url}: {err}");
        }
    }

    #[test]
    #[cfg(feature = "azure")]
    fn a_malformed_azure_container_is_bad_input() {
        // The builder rejects it before it looks at any credentials: no network, no env.
        let storage = Storage::new().unwrap();
        let err = storage.get_opt("az://not.a.container/x").unwrap_err();
        assert_eq!(
            err.exit_code(),
            tessera_shard::contract::exit::BAD_INPUT,
            "{err}"
        );
        assert!(err.to_string().contains("Azure"), "{err}");
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        assert_eq!(
            sha256_hex(b"test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
