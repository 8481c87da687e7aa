//! From a RenderJob's spec to its shard plan and the settings every pod shares.

use tessera_shard::contract::{EnvironmentSettings, ImageFormat, RenderSettings};
use tessera_shard::{FrameList, PlanInput, SceneLimits, ShardPlan};

use crate::api::{
    OutputFormat, RenderJob, RenderJobSpec, RenderPool, SceneLimitsSpec, StorageSpec,
};
use crate::storage_url::StorageUrl;

/// Why a spec that passed the API server's checks still cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.frames: {0}")]
    Frames(#[from] tessera_shard::FrameListError),
    #[error("spec.sharding: {0}")]
    Plan(#[from] tessera_shard::PlanError),
    #[error("spec.scene: {0}")]
    Scene(String),
    #[error("spec.output.url: the job names no output URL and pool {pool} has no storage")]
    NoOutput { pool: String },
    #[error("{0} is missing")]
    Metadata(&'static str),
    /// A URL the operator refuses (docs/security.md, "Storage confinement").
    #[error("{field}: {url:?} {reason}")]
    InvalidUrl {
        field: &'static str,
        url: String,
        reason: String,
    },
    /// An output outside the job's namespace area while it uses the pool's credentials.
    #[error("spec.output.url: {0}")]
    OutputOutsideNamespace(String),
    /// A scene outside the namespace area and the shared libraries while it uses the pool's
    /// credentials.
    #[error("spec.scene.url: {0}")]
    SceneOutsideNamespace(String),
    /// An environment map outside what the job may read, as for the scene.
    #[error("spec.environment.url: {0}")]
    EnvironmentOutsideNamespace(String),
    /// The pool's storage cannot be used safely; fixing the RenderPool fixes the job.
    #[error("RenderPool {pool}: {message}")]
    PoolStorage { pool: String, message: String },
    /// The pool's namespace policy refuses the job's priority (`priorityAboveMax: Refuse`).
    #[error("{0}")]
    PriorityAboveLimit(String),
}

impl SpecError {
    /// The PascalCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecError::Frames(_) => "InvalidFrames",
            SpecError::Plan(_) => "InvalidSharding",
            SpecError::Scene(_) => "InvalidScene",
            SpecError::NoOutput { .. } => "NoOutputStorage",
            SpecError::Metadata(_) => "InvalidMetadata",
            SpecError::InvalidUrl { .. } => "InvalidURL",
            SpecError::OutputOutsideNamespace(_) => "OutputOutsideNamespace",
            SpecError::SceneOutsideNamespace(_) => "SceneOutsideNamespace",
            SpecError::EnvironmentOutsideNamespace(_) => "EnvironmentOutsideNamespace",
            SpecError::PoolStorage { .. } => "InvalidPoolStorage",
            SpecError::PriorityAboveLimit(_) => "PriorityAboveLimit",
        }
    }
}

/// The shard plan of a spec.
pub fn plan(spec: &RenderJobSpec) -> Result<ShardPlan, SpecError> {
    let frames = FrameList::parse(&spec.frames)?;
    Ok(ShardPlan::new(PlanInput {
        frames,
        width: spec.resolution.width,
        height: spec.resolution.height,
        samples_per_pixel: spec.samples_per_pixel,
        frames_per_shard: spec.sharding.frames_per_shard,
        tiles_x: spec.sharding.tiles.columns,
        tiles_y: spec.sharding.tiles.rows,
        sample_splits: spec.sharding.sample_splits,
    })?)
}

/// Where a ConfigMap scene is mounted in pods.
pub const SCENE_MOUNT: &str = "/scene";

/// The settings shared by every shard and the merge: `scene` and `environment` are the URLs
/// pods read (from [`confine`]), the scene budgets are the pool's.
pub fn render_settings(
    spec: &RenderJobSpec,
    pool: &RenderPool,
    scene: String,
    environment: Option<String>,
) -> RenderSettings {
    let background = match spec.background.as_deref() {
        Some([r, g, b]) => [*r, *g, *b],
        _ => [0.0; 3],
    };
    RenderSettings {
        scene,
        camera: spec.camera.clone(),
        width: spec.resolution.width,
        height: spec.resolution.height,
        samples_per_pixel: spec.samples_per_pixel,
        max_bounces: spec.max_bounces,
        background,
        environment: spec.environment.as_ref().zip(environment).map(|(e, url)| {
            EnvironmentSettings {
                url,
                strength: e.strength,
                rotation_degrees: e.rotation_degrees,
            }
        }),
        aovs: {
            let mut aovs: Vec<_> = spec.aovs.iter().map(|a| a.contract()).collect();
            aovs.sort();
            aovs.dedup();
            aovs
        },
        shutter: spec.motion_blur.map_or(0.0, |m| m.shutter),
        seed: spec.seed,
        limits: scene_limits(pool),
    }
}

/// The pool's scene budgets, the defaults where it sets none.
pub fn scene_limits(pool: &RenderPool) -> SceneLimits {
    pool.spec
        .scene_limits
        .as_ref()
        .map(SceneLimitsSpec::resolve)
        .unwrap_or_default()
}

/// Where a job reads and writes, and with which credentials, once confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStorage {
    /// The output prefix, normalised, without a trailing slash.
    pub output: String,
    /// The scene URL as pods read it.
    pub scene: String,
    /// The environment map's URL, when the job has one.
    pub environment: Option<String>,
    /// The Secret whose keys become the pods' environment: the job's, else the pool's.
    pub secret: Option<String>,
    /// Whether the job brings credentials of its own (a Secret other than the pool's).
    pub own_credentials: bool,
    /// Whether pods may fall back to ambient cloud credentials (the pool's
    /// `storage.ambientCredentials`).
    pub ambient_credentials: bool,
}

fn parse_url(field: &'static str, url: &str) -> Result<StorageUrl, SpecError> {
    StorageUrl::parse(url).map_err(|e| SpecError::InvalidUrl {
        field,
        url: url.chars().take(256).collect(),
        reason: e.0,
    })
}

/// The pool's storage, checked: its URL and its shared read-only prefixes, none of which may
/// overlap the tenants' area.
fn pool_storage(
    pool_name: &str,
    storage: &StorageSpec,
) -> Result<(StorageUrl, Vec<StorageUrl>), SpecError> {
    let invalid = |message: String| SpecError::PoolStorage {
        pool: pool_name.to_string(),
        message,
    };
    let url = StorageUrl::parse(&storage.url)
        .map_err(|e| invalid(format!("spec.storage.url {:?} {e}", storage.url)))?;
    let mut shared = Vec::new();
    for (i, prefix) in storage.shared_read_prefixes.iter().enumerate() {
        let field = format!("spec.storage.sharedReadPrefixes[{i}]");
        let parsed =
            StorageUrl::parse(prefix).map_err(|e| invalid(format!("{field} {prefix:?} {e}")))?;
        if parsed.may_overlap(&url) {
            return Err(invalid(format!(
                "{field} {prefix:?} overlaps spec.storage.url {url}, where every namespace's \
                 jobs write: a shared library must lie beside the tenants' area"
            )));
        }
        shared.push(parsed);
    }
    Ok((url, shared))
}

/// Where the job may read and write (docs/security.md, "Storage confinement"). Pure.
///
/// - Every URL is parsed and must be in normal form ([`StorageUrl`]).
/// - A job that names a Secret of its own (`spec.output.secretName`, other than the pool's
///   `storage.secretName`) may use any object-store URL for its output and scene.
/// - Otherwise it uses the pool's credentials, and then its output must lie under
///   `<pool storage>/<namespace>/` (default `<pool storage>/<namespace>/<job>`), and its scene
///   under `<pool storage>/<namespace>/` or one of the pool's `storage.sharedReadPrefixes`.
/// - `file://` URLs are confined in every case: a pod reaches files through the pool's volume,
///   which no Secret changes.
pub fn confine(job: &RenderJob, pool: &RenderPool) -> Result<JobStorage, SpecError> {
    let namespace = job
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(SpecError::Metadata("metadata.namespace"))?;
    let name = job
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(SpecError::Metadata("metadata.name"))?;
    let pool_name = job.spec.pool.as_str();
    let storage = pool.spec.storage.as_ref();
    let (pool_url, shared) = match storage {
        Some(storage) => {
            let (url, shared) = pool_storage(pool_name, storage)?;
            (Some(url), shared)
        }
        None => (None, Vec::new()),
    };
    // The namespace's area: `<pool storage>/<namespace>`.
    let area = match &pool_url {
        Some(url) => Some(url.child(namespace).map_err(|e| SpecError::PoolStorage {
            pool: pool_name.to_string(),
            message: format!("spec.storage.url {url} cannot hold namespace {namespace}: {e}"),
        })?),
        None => None,
    };
    let pool_secret = storage.and_then(|s| s.secret_name.clone());
    let job_secret = job.spec.output.as_ref().and_then(|o| o.secret_name.clone());
    // Naming the pool's own Secret is still using the pool's credentials.
    let own_credentials = job_secret.is_some() && job_secret != pool_secret;
    let secret = job_secret.or(pool_secret);
    let area_text = |area: &Option<StorageUrl>| match area {
        Some(area) => format!("{area}/"),
        None => format!("(RenderPool {pool_name} has no storage)"),
    };

    let output = match job.spec.output.as_ref().and_then(|o| o.url.as_deref()) {
        Some(url) => {
            let url = parse_url("spec.output.url", url)?;
            let allowed = (own_credentials && !url.is_file())
                || area
                    .as_ref()
                    .is_some_and(|area| url.is_strictly_under(area));
            if !allowed {
                let why = if url.is_file() {
                    "file:// outputs always lie under it, since pods reach files through the pool's volume"
                } else {
                    "that is the only place jobs of this namespace may write with the pool's credentials; write under it, or name a Secret of your own in spec.output.secretName"
                };
                return Err(SpecError::OutputOutsideNamespace(format!(
                    "{url} is not under {}: {why}",
                    area_text(&area)
                )));
            }
            url
        }
        None => {
            let area = area.as_ref().ok_or_else(|| SpecError::NoOutput {
                pool: pool_name.to_string(),
            })?;
            // A Kubernetes name is always a valid segment; anything else is no real job.
            area.child(name)
                .map_err(|_| SpecError::Metadata("metadata.name"))?
        }
    };

    // What the job reads (its scene, its environment map): under the namespace's area or a
    // shared library, unless it brings credentials of its own.
    let readable = |url: &StorageUrl| {
        (own_credentials && !url.is_file())
            || area
                .as_ref()
                .is_some_and(|area| url.is_strictly_under(area))
            || shared.iter().any(|prefix| url.is_strictly_under(prefix))
    };
    let not_readable = |url: &StorageUrl, what: &str| {
        let libraries = if shared.is_empty() {
            format!(
                "a shared library (RenderPool {pool_name} lists none in spec.storage.sharedReadPrefixes)"
            )
        } else {
            format!(
                "RenderPool {pool_name}'s shared libraries {}",
                shared
                    .iter()
                    .map(|p| format!("{p}/"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let why = if url.is_file() {
            format!("file:// {what}s always must, since pods reach files through the pool's volume")
        } else {
            format!(
                "with the pool's credentials a job reads only these; copy the {what} there, or name a Secret of your own in spec.output.secretName"
            )
        };
        format!(
            "{url} is neither under {} nor under {libraries}: {why}",
            area_text(&area)
        )
    };
    let scene = match (&job.spec.scene.url, &job.spec.scene.config_map) {
        (Some(url), None) => {
            let url = parse_url("spec.scene.url", url)?;
            if !readable(&url) {
                return Err(SpecError::SceneOutsideNamespace(not_readable(
                    &url, "scene",
                )));
            }
            url.to_string()
        }
        (None, Some(key)) => format!("file://{SCENE_MOUNT}/{}", key.key),
        _ => {
            return Err(SpecError::Scene(
                "set exactly one of scene.url and scene.configMap".into(),
            ));
        }
    };
    let environment = match &job.spec.environment {
        Some(environment) => {
            let url = parse_url("spec.environment.url", &environment.url)?;
            if !readable(&url) {
                return Err(SpecError::EnvironmentOutsideNamespace(not_readable(
                    &url,
                    "environment map",
                )));
            }
            Some(url.to_string())
        }
        None => None,
    };
    Ok(JobStorage {
        output: output.to_string(),
        scene,
        environment,
        secret,
        own_credentials,
        ambient_credentials: storage.is_some_and(|s| s.ambient_credentials),
    })
}

pub fn formats(spec: &RenderJobSpec) -> Vec<ImageFormat> {
    let formats = spec
        .output
        .as_ref()
        .map(|o| o.formats.clone())
        .unwrap_or_else(|| vec![OutputFormat::Exr, OutputFormat::Png]);
    formats
        .into_iter()
        .map(|format| match format {
            OutputFormat::Exr => ImageFormat::Exr,
            OutputFormat::Png => ImageFormat::Png,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pool(storage: Value) -> RenderPool {
        serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": "gpu-a"},
            "spec": {"image": "render-pod:1", "storage": storage}
        }))
        .unwrap()
    }

    fn s3_pool() -> RenderPool {
        pool(
            json!({"url": "s3://renders/tessera/", "secretName": "render-s3",
            "sharedReadPrefixes": ["s3://assets/library", "file:///library"]}),
        )
    }

    fn job(namespace: &str, name: &str, spec: Value) -> RenderJob {
        let mut full = json!({"pool": "gpu-a", "scene": {"url": "s3://renders/tessera/lighting/scenes/a.glb"},
            "frames": "1", "resolution": {"width": 8, "height": 8}, "samplesPerPixel": 1});
        full.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": name, "namespace": namespace, "uid": "u"}, "spec": full
        }))
        .unwrap()
    }

    fn confined(spec: Value) -> Result<JobStorage, SpecError> {
        confine(&job("lighting", "shot010", spec), &s3_pool())
    }

    #[test]
    fn by_default_a_job_writes_under_its_namespace_with_the_pools_secret() {
        let storage = confined(json!({})).unwrap();
        assert_eq!(storage.output, "s3://renders/tessera/lighting/shot010");
        assert_eq!(storage.scene, "s3://renders/tessera/lighting/scenes/a.glb");
        assert_eq!(storage.secret.as_deref(), Some("render-s3"));
        assert!(!storage.own_credentials && !storage.ambient_credentials);
        let storage =
            confined(json!({"output": {"url": "s3://renders/tessera/lighting/deliveries/v2/"}}))
                .unwrap();
        assert_eq!(
            storage.output,
            "s3://renders/tessera/lighting/deliveries/v2"
        );
    }

    #[test]
    fn with_the_pools_credentials_another_namespaces_prefix_is_refused() {
        for url in [
            "s3://renders/tessera/comp/shot010",
            "s3://renders/tessera/lighting",
            "s3://renders/tessera/lighting-b/x",
            "s3://renders/other",
            "s3a://renders/tessera/lighting/x",
            "gs://renders/tessera/lighting/x",
        ] {
            let error = confined(json!({"output": {"url": url}})).unwrap_err();
            assert_eq!(error.reason(), "OutputOutsideNamespace", "{url}");
            let message = error.to_string();
            assert!(
                message.starts_with("spec.output.url:")
                    && message.contains("s3://renders/tessera/lighting/")
                    && message.contains("spec.output.secretName"),
                "{message}"
            );
        }
        // Naming the pool's own Secret is still the pool's credentials.
        let error = confined(
            json!({"output": {"url": "s3://renders/tessera/comp/x", "secretName": "render-s3"}}),
        )
        .unwrap_err();
        assert_eq!(error.reason(), "OutputOutsideNamespace");
    }

    #[test]
    fn an_environment_map_is_read_where_a_scene_may_be_and_reaches_the_settings() {
        let job = job(
            "lighting",
            "shot010",
            json!({"environment": {"url": "s3://assets/library/hdri/sky.exr", "strength": 2.5,
                "rotationDegrees": -30.0}}),
        );
        let storage = confine(&job, &s3_pool()).unwrap();
        assert_eq!(
            storage.environment.as_deref(),
            Some("s3://assets/library/hdri/sky.exr")
        );
        let settings = render_settings(&job.spec, &s3_pool(), storage.scene, storage.environment);
        assert!(settings.aovs.is_empty());
        let environment = settings.environment.unwrap();
        assert_eq!(environment.url, "s3://assets/library/hdri/sky.exr");
        assert_eq!(
            (environment.strength, environment.rotation_degrees),
            (2.5, -30.0)
        );
        assert!(confined(json!({})).unwrap().environment.is_none());
        for url in [
            "s3://renders/tessera/comp/sky.hdr",
            "file:///elsewhere/sky.hdr",
            "s3://other-bucket/sky.hdr",
        ] {
            let error = confined(json!({"environment": {"url": url}})).unwrap_err();
            assert_eq!(error.reason(), "EnvironmentOutsideNamespace", "{url}");
            let message = error.to_string();
            assert!(
                message.starts_with("spec.environment.url: ")
                    && message.contains("environment map"),
                "{message}"
            );
        }
        // With a Secret of its own a job reads any object store, never files elsewhere.
        let own = json!({"output": {"url": "s3://deliveries/x", "secretName": "mine"}});
        let mut spec = own.clone();
        spec["environment"] = json!({"url": "gs://vendor/sky.hdr"});
        assert!(confined(spec.clone()).is_ok());
        spec["environment"] = json!({"url": "file:///elsewhere/sky.hdr"});
        assert_eq!(
            confined(spec).unwrap_err().reason(),
            "EnvironmentOutsideNamespace"
        );
        let error = confined(json!({"environment": {"url": "s3://renders/tessera/lighting/a?b"}}))
            .unwrap_err();
        assert!(
            error.to_string().starts_with("spec.environment.url"),
            "{error}"
        );
    }

    fn job_spec(spec: Value) -> RenderJobSpec {
        job("lighting", "shot010", spec).spec
    }

    #[test]
    fn compositing_passes_reach_the_settings_once_each_in_a_fixed_order() {
        use tessera_shard::contract::Aov;
        let job = job(
            "lighting",
            "shot010",
            json!({"aovs": ["MaterialId", "Depth", "Normal", "Depth"]}),
        );
        let storage = confine(&job, &s3_pool()).unwrap();
        let settings = render_settings(&job.spec, &s3_pool(), storage.scene, None);
        assert_eq!(settings.aovs, [Aov::Depth, Aov::Normal, Aov::MaterialId]);
        assert_eq!(settings.shutter, 0.0);
        let blurred = job_spec(json!({"motionBlur": {}}));
        assert_eq!(
            render_settings(&blurred, &s3_pool(), String::new(), None).shutter,
            0.5
        );
        let blurred = job_spec(json!({"motionBlur": {"shutter": 0.25}}));
        assert_eq!(
            render_settings(&blurred, &s3_pool(), String::new(), None).shutter,
            0.25
        );
    }

    #[test]
    fn urls_not_in_normal_form_are_refused_whoever_the_credentials_are() {
        for (spec, field) in [
            (
                json!({"output": {"url": "s3://renders/tessera/lighting/../comp/x"}}),
                "spec.output.url",
            ),
            (
                json!({"output": {"url": "s3://renders/tessera/lighting/%2e%2e/comp", "secretName": "mine"}}),
                "spec.output.url",
            ),
            (
                json!({"output": {"url": "s3://renders/tessera/lighting//x"}}),
                "spec.output.url",
            ),
            (
                json!({"scene": {"url": "s3://renders/tessera/lighting/a.glb?versionId=3"}}),
                "spec.scene.url",
            ),
            (
                json!({"scene": {"url": "https://example.com/a.glb"}, "output": {"secretName": "mine"}}),
                "spec.scene.url",
            ),
            (
                json!({"scene": {"url": "s3://me@renders/a.glb"}, "output": {"secretName": "mine"}}),
                "spec.scene.url",
            ),
        ] {
            let error = confined(spec.clone()).unwrap_err();
            assert_eq!(error.reason(), "InvalidURL", "{spec}");
            assert!(error.to_string().starts_with(field), "{error}");
        }
    }

    #[test]
    fn a_job_with_its_own_secret_chooses_its_object_store_urls_but_not_files() {
        let storage = confined(json!({"scene": {"url": "gs://vendor/scene.glb"},
            "output": {"url": "s3://deliveries/shot010", "secretName": "shot010-s3"}}))
        .unwrap();
        assert_eq!(storage.output, "s3://deliveries/shot010");
        assert_eq!(storage.scene, "gs://vendor/scene.glb");
        assert_eq!(storage.secret.as_deref(), Some("shot010-s3"));
        assert!(storage.own_credentials);
        let error =
            confined(json!({"output": {"url": "file:///data/other", "secretName": "mine"}}))
                .unwrap_err();
        assert_eq!(error.reason(), "OutputOutsideNamespace");
        assert!(error.to_string().contains("pool's volume"), "{error}");
        let error = confined(
            json!({"scene": {"url": "file:///etc/scene.gltf"}, "output": {"secretName": "mine"}}),
        )
        .unwrap_err();
        assert_eq!(error.reason(), "SceneOutsideNamespace");
    }

    #[test]
    fn scenes_come_from_the_namespace_area_the_shared_libraries_or_a_config_map() {
        for url in [
            "s3://renders/tessera/lighting/scenes/a.glb",
            "s3://assets/library/chars/hero.glb",
            "file:///library/cbox.gltf",
        ] {
            let storage = confined(json!({"scene": {"url": url}})).unwrap();
            assert_eq!(storage.scene, url);
        }
        let storage =
            confined(json!({"scene": {"configMap": {"name": "scenes", "key": "a.glb"}}})).unwrap();
        assert_eq!(storage.scene, "file:///scene/a.glb");
        for url in [
            "s3://renders/tessera/comp/scenes/a.glb",
            "s3://assets/library",
            "s3://assets/library-private/a.glb",
            "s3://assets/a.glb",
        ] {
            let error = confined(json!({"scene": {"url": url}})).unwrap_err();
            assert_eq!(error.reason(), "SceneOutsideNamespace", "{url}");
            let message = error.to_string();
            assert!(
                message.starts_with("spec.scene.url:")
                    && message.contains("s3://assets/library/")
                    && message.contains("s3://renders/tessera/lighting/"),
                "{message}"
            );
        }
    }

    #[test]
    fn two_jobs_of_one_name_in_two_namespaces_never_share_a_prefix() {
        let pool = s3_pool();
        let a = confine(
            &job(
                "team-a",
                "shot",
                json!({"scene": {"url": "s3://assets/library/a.glb"}}),
            ),
            &pool,
        )
        .unwrap();
        let b = confine(
            &job(
                "team-b",
                "shot",
                json!({"scene": {"url": "s3://assets/library/a.glb"}}),
            ),
            &pool,
        )
        .unwrap();
        assert_eq!(a.output, "s3://renders/tessera/team-a/shot");
        assert_eq!(b.output, "s3://renders/tessera/team-b/shot");
        let (a, b) = (
            StorageUrl::parse(&a.output).unwrap(),
            StorageUrl::parse(&b.output).unwrap(),
        );
        assert!(!a.may_overlap(&b));
    }

    #[test]
    fn a_pool_whose_libraries_overlap_the_tenants_area_is_refused() {
        for shared in [
            "s3://renders/tessera",
            "s3://renders",
            "s3://renders/tessera/lighting/scenes",
            "s3a://renders/tessera/comp",
            "https://renders.s3.amazonaws.com/tessera/comp",
        ] {
            let pool = pool(json!({"url": "s3://renders/tessera", "sharedReadPrefixes": [shared]}));
            let error = confine(&job("lighting", "shot010", json!({})), &pool).unwrap_err();
            assert_eq!(error.reason(), "InvalidPoolStorage", "{shared}");
            assert!(
                error
                    .to_string()
                    .contains("spec.storage.sharedReadPrefixes[0]"),
                "{error}"
            );
        }
        let pool = pool(json!({"url": "s3://renders/../tessera"}));
        let error = confine(&job("lighting", "shot010", json!({})), &pool).unwrap_err();
        assert_eq!(error.reason(), "InvalidPoolStorage");
    }

    #[test]
    fn without_pool_storage_only_a_job_with_its_own_secret_has_an_output() {
        let bare: RenderPool = serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": "gpu-a"},
            "spec": {"image": "render-pod:1"}
        }))
        .unwrap();
        let scene = json!({"url": "s3://mine/a.glb"});
        let error = confine(&job("lighting", "j", json!({"scene": scene})), &bare).unwrap_err();
        assert_eq!(error.reason(), "NoOutputStorage");
        let error = confine(
            &job(
                "lighting",
                "j",
                json!({"scene": scene, "output": {"url": "s3://mine/out"}}),
            ),
            &bare,
        )
        .unwrap_err();
        assert_eq!(error.reason(), "OutputOutsideNamespace");
        assert!(error.to_string().contains("has no storage"), "{error}");
        let storage = confine(
            &job(
                "lighting",
                "j",
                json!({"scene": scene, "output": {"url": "s3://mine/out", "secretName": "mine"}}),
            ),
            &bare,
        )
        .unwrap();
        assert_eq!(
            (storage.output.as_str(), storage.secret.as_deref()),
            ("s3://mine/out", Some("mine"))
        );
    }

    #[test]
    fn the_pools_scene_limits_reach_the_settings_and_ambient_credentials_are_opt_in() {
        let mut pool = pool(json!({"url": "s3://renders/tessera", "ambientCredentials": true}));
        pool.spec.scene_limits = Some(serde_json::from_value(json!({"maxTriangles": 5})).unwrap());
        let job = job("lighting", "shot010", json!({}));
        let storage = confine(&job, &pool).unwrap();
        assert!(storage.ambient_credentials);
        let settings = render_settings(&job.spec, &pool, storage.scene, storage.environment);
        assert_eq!(settings.limits.max_triangles, 5);
        assert_eq!(settings.limits.max_nodes, SceneLimits::DEFAULT.max_nodes);
        pool.spec.scene_limits = None;
        assert_eq!(scene_limits(&pool), SceneLimits::DEFAULT);
    }

    #[test]
    fn the_scene_limits_field_mirrors_the_contract() {
        let all = SceneLimitsSpec {
            max_scene_bytes: Some(1),
            max_buffer_bytes: Some(2),
            max_nodes: Some(3),
            max_instances: Some(4),
            max_vertices: Some(5),
            max_triangles: Some(6),
            max_image_pixels: Some(7),
            max_texture_bytes: Some(8),
            max_keyframes: Some(9),
        };
        let spec = serde_json::to_value(&all).unwrap();
        let resolved = all.resolve();
        for (name, value) in resolved.entries() {
            assert_eq!(spec[name], value, "{name}");
        }
        assert_eq!(spec.as_object().unwrap().len(), resolved.entries().len());
    }
}
