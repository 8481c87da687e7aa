//! `submit`: a RenderJob manifest from a scene URL and flags. Pure: no cluster is contacted.
//!
//! The manifest carries only what the flags set (the API server fills in the defaults), and
//! is checked here the way the operator will check it: it must deserialize into the
//! `RenderJob` type and plan (`tessera_operator::job_plan::plan`: frame syntax, tiles within
//! the image, sample splits within the samples, at most 100,000 shards).

use serde_json::{Map, Value, json};
use tessera_operator::api::RenderJob;

/// What `submit` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    pub scene: String,
    pub frames: String,
    pub pool: String,
    pub resolution: (u32, u32),
    pub samples_per_pixel: u32,
    pub tiles: (u32, u32),
    pub sample_splits: u32,
    pub frames_per_shard: u32,
    pub camera: Option<String>,
    /// `metadata.name`; without it the manifest has a `generateName` from the scene's file
    /// name (for `kubectl create`, not `kubectl apply`).
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub output: Option<String>,
    pub priority: Option<i32>,
}

impl JobInput {
    /// The defaults of every optional flag.
    pub fn new(scene: &str, frames: &str, pool: &str) -> Self {
        Self {
            scene: scene.into(),
            frames: frames.into(),
            pool: pool.into(),
            resolution: (1920, 1080),
            samples_per_pixel: 128,
            tiles: (1, 1),
            sample_splits: 1,
            frames_per_shard: 1,
            camera: None,
            name: None,
            namespace: None,
            output: None,
            priority: None,
        }
    }
}

/// `WIDTHxHEIGHT` (`1920x1080`, `4x4`), both at least 1.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parse = |part: &str| part.trim().parse::<u32>().ok().filter(|n| *n > 0);
    match text.split_once(['x', 'X']) {
        Some((w, h)) => match (parse(w), parse(h)) {
            (Some(w), Some(h)) => Ok((w, h)),
            _ => Err(format!(
                "{text:?} is not WIDTHxHEIGHT with two whole numbers of at least 1 (e.g. 1920x1080)"
            )),
        },
        None => Err(format!("{text:?} is not WIDTHxHEIGHT (e.g. 1920x1080)")),
    }
}

/// A Kubernetes object name (DNS-1123 subdomain): lower-case letters, digits, `-` and `.`,
/// starting and ending with a letter or digit, at most 253 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || name.len() > 253
        || !name.chars().all(ok_char)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        return Err(format!(
            "{name:?} is not a valid name: lower-case letters, digits, '-' and '.', starting and \
             ending with a letter or digit, at most 253 characters"
        ));
    }
    Ok(())
}

/// The `generateName` prefix for a scene: its file name without extension, made a valid
/// name (`file:///scenes/Shot 010.glb` → `shot-010-`).
pub fn generate_name(scene: &str) -> String {
    let file = scene
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let stem = file
        .strip_suffix(".gltf")
        .or_else(|| file.strip_suffix(".glb"))
        .unwrap_or(file);
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    // No runs of '-', no '-' at either end; room for the 5 random characters.
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name: String = name.trim_matches('-').chars().take(40).collect();
    let name = name.trim_end_matches('-');
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        "render-".into()
    } else {
        format!("{name}-")
    }
}

/// The RenderJob manifest, checked. Errors name the flag.
pub fn build(input: &JobInput) -> Result<Value, String> {
    let mut metadata = Map::new();
    match &input.name {
        Some(name) => {
            check_name(name).map_err(|e| format!("--name: {e}"))?;
            metadata.insert("name".into(), json!(name));
        }
        None => {
            metadata.insert("generateName".into(), json!(generate_name(&input.scene)));
        }
    }
    if let Some(namespace) = &input.namespace {
        check_name(namespace).map_err(|e| format!("--namespace: {e}"))?;
        metadata.insert("namespace".into(), json!(namespace));
    }
    check_name(&input.pool).map_err(|e| format!("--pool: {e}"))?;

    let mut spec = Map::new();
    spec.insert("pool".into(), json!(input.pool));
    spec.insert("scene".into(), json!({"url": input.scene}));
    if let Some(camera) = &input.camera {
        spec.insert("camera".into(), json!(camera));
    }
    spec.insert("frames".into(), json!(input.frames));
    spec.insert(
        "resolution".into(),
        json!({"width": input.resolution.0, "height": input.resolution.1}),
    );
    spec.insert("samplesPerPixel".into(), json!(input.samples_per_pixel));
    spec.insert(
        "sharding".into(),
        json!({
            "framesPerShard": input.frames_per_shard,
            "tiles": {"columns": input.tiles.0, "rows": input.tiles.1},
            "sampleSplits": input.sample_splits,
        }),
    );
    if let Some(output) = &input.output {
        spec.insert("output".into(), json!({"url": output}));
    }
    if let Some(priority) = input.priority {
        spec.insert("priority".into(), json!(priority));
    }
    let manifest = json!({
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "RenderJob",
        "metadata": metadata,
        "spec": spec,
    });
    check(&manifest)?;
    Ok(manifest)
}

/// What the operator would refuse before rendering, said in terms of the flags.
fn check(manifest: &Value) -> Result<(), String> {
    let job: RenderJob = serde_json::from_value(manifest.clone())
        .map_err(|e| format!("the manifest does not fit the RenderJob type: {e}"))?;
    for (flag, url) in [
        ("--scene", job.spec.scene.url.as_deref()),
        (
            "--output",
            job.spec.output.as_ref().and_then(|o| o.url.as_deref()),
        ),
    ] {
        if let Some(url) = url {
            check_url(url).map_err(|e| format!("{flag}: {e}"))?;
        }
    }
    tessera_operator::job_plan::plan(&job.spec).map_err(|e| {
        // The plan's messages name spec fields; say which flags they come from.
        let text = e.to_string();
        let flags = if text.starts_with("spec.frames") {
            "--frames"
        } else {
            "--tiles/--sample-splits/--frames-per-shard/--resolution/--spp"
        };
        format!("{flags}: {text}")
    })?;
    Ok(())
}

/// The storage URL schemes the API server accepts (`spec.scene.url`'s pattern).
fn check_url(url: &str) -> Result<(), String> {
    const SCHEMES: [&str; 10] = [
        "s3", "s3a", "gs", "az", "azure", "adl", "abfs", "abfss", "https", "file",
    ];
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("file") if url.starts_with("file:///") => Ok(()),
        Some("file") => Err(format!("{url:?}: a file URL is file:///absolute/path")),
        Some(s) if SCHEMES.contains(&s) => Ok(()),
        _ => Err(format!(
            "{url:?} is not a storage URL: s3://, gs://, az://, https:// (S3 or Azure host) or file:///"
        )),
    }
}

/// The manifest as YAML (one document) or JSON.
pub fn render(manifest: &Value, json: bool) -> Result<String, String> {
    if json {
        serde_json::to_string_pretty(manifest)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    } else {
        serde_yaml::to_string(manifest).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> JobInput {
        JobInput::new("s3://shots/010/shot010.glb", "1-100", "l40s")
    }

    #[test]
    fn a_manifest_carries_exactly_the_flags_and_fits_the_type() {
        let mut input = input();
        input.name = Some("shot010".into());
        input.namespace = Some("lighting".into());
        input.resolution = (1280, 720);
        input.samples_per_pixel = 256;
        input.tiles = (4, 4);
        input.sample_splits = 2;
        input.frames_per_shard = 5;
        input.camera = Some("CamMain".into());
        let manifest = build(&input).unwrap();
        assert_eq!(
            manifest,
            json!({
                "apiVersion": "tessera.dev/v1alpha1",
                "kind": "RenderJob",
                "metadata": {"name": "shot010", "namespace": "lighting"},
                "spec": {
                    "pool": "l40s",
                    "scene": {"url": "s3://shots/010/shot010.glb"},
                    "camera": "CamMain",
                    "frames": "1-100",
                    "resolution": {"width": 1280, "height": 720},
                    "samplesPerPixel": 256,
                    "sharding": {"framesPerShard": 5, "tiles": {"columns": 4, "rows": 4},
                                 "sampleSplits": 2},
                }
            })
        );
        let job: RenderJob = serde_json::from_value(manifest).unwrap();
        let plan = tessera_operator::job_plan::plan(&job.spec).unwrap();
        assert_eq!(plan.len(), 20 * 16 * 2);
    }

    #[test]
    fn without_a_name_the_scene_names_it_and_without_a_namespace_kubectl_chooses() {
        let manifest = build(&JobInput::new(
            "file:///scenes/Shot 010_v2.gltf",
            "1",
            "gpu-a",
        ))
        .unwrap();
        assert_eq!(
            manifest["metadata"],
            json!({"generateName": "shot-010-v2-"})
        );
        assert_eq!(generate_name("s3://b/.glb"), "render-");
        assert_eq!(generate_name("s3://b/x/cbox.glb"), "cbox-");
        let long = generate_name(&format!("s3://b/{}.glb", "a".repeat(100)));
        assert!(long.len() <= 41, "{long}");
    }

    #[test]
    fn the_yaml_is_what_kubectl_reads() {
        let mut input = input();
        input.name = Some("shot010".into());
        let yaml = render(&build(&input).unwrap(), false).unwrap();
        assert!(
            yaml.starts_with("apiVersion: tessera.dev/v1alpha1\n"),
            "{yaml}"
        );
        assert!(yaml.contains("frames: 1-100\n"), "{yaml}");
        let back: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, build(&input).unwrap());
        let json = render(&build(&input).unwrap(), true).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, build(&input).unwrap());
    }

    #[test]
    fn what_the_operator_would_refuse_is_refused_naming_the_flag() {
        type Change = Box<dyn Fn(&mut JobInput)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|i| i.frames = "10-1".into()), "--frames"),
            (Box::new(|i| i.frames = "a-b".into()), "--frames"),
            (Box::new(|i| i.tiles = (4000, 1)), "--tiles"),
            (Box::new(|i| i.sample_splits = 512), "--sample-splits"),
            (
                Box::new(|i| {
                    i.frames = "1-100000".into();
                    i.tiles = (4, 4)
                }),
                "at most 100000",
            ),
            (Box::new(|i| i.name = Some("Shot_010".into())), "--name"),
            (Box::new(|i| i.pool = "".into()), "--pool"),
            (Box::new(|i| i.scene = "http://x/y.glb".into()), "--scene"),
            (Box::new(|i| i.scene = "file://rel/y.glb".into()), "--scene"),
            (Box::new(|i| i.output = Some("/abs".into())), "--output"),
        ];
        for (change, expected) in cases {
            let mut input = input();
            change(&mut input);
            let error = build(&input).unwrap_err();
            assert!(error.contains(expected), "{input:?}: {error}");
        }
    }

    #[test]
    fn sizes_parse_and_bad_ones_say_the_form() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert_eq!(parse_size("4X4"), Ok((4, 4)));
        for bad in ["4", "0x4", "4x", "x4", "-1x4", "4x4x4", "ax4"] {
            assert!(
                parse_size(bad).unwrap_err().contains("WIDTHxHEIGHT"),
                "{bad}"
            );
        }
    }
}
