//! Fetching a glTF scene by URL (or plain path) through [`Storage`], within the job's
//! [`SceneLimits`]. External buffers and images are confined to the scene's own directory
//! (prefix) in the same store: a reference must be a relative path without `..`, and on a file
//! system it must not leave that directory through a symbolic link. Every object is sized before
//! it is read, and buffers are read only up to their declared length.

use tessera_shard::SceneLimits;
use url::Url;

use crate::error::{Error, Result};
use crate::gltf_scene::{self, External, GltfAsset};
use crate::storage::{self, Backend, Bounded, Storage};

pub fn load(storage: &Storage, url: &str, limits: &SceneLimits) -> Result<GltfAsset> {
    let bytes = match storage.get_bounded(url, limits.max_scene_bytes) {
        Ok(Some(Bounded::Bytes(bytes))) => bytes,
        Ok(Some(Bounded::TooLarge(size))) => {
            return Err(Error::bad_scene(
                url,
                format!(
                    "the scene file has {size} bytes, over the limit of {} \
                     (sceneLimits.maxSceneBytes)",
                    limits.max_scene_bytes
                ),
            ));
        }
        Ok(None) => return Err(Error::bad_scene(url, "no such file or object")),
        Err(Error::BadSpec(reason)) => return Err(Error::bad_scene(url, reason)),
        Err(e) => return Err(e),
    };
    let mut resolve = |uri: &str, external: External| -> Result<Vec<u8>> {
        let target = reference(url, uri).map_err(|why| Error::bad_scene(url, why))?;
        let missing =
            || Error::bad_scene(url, format!("external file {uri:?} not found at {target}"));
        match external {
            External::Buffer { length } => {
                let size = storage.size(&target)?.ok_or_else(missing)?;
                if size < length {
                    return Err(Error::bad_scene(
                        url,
                        format!(
                            "external buffer {uri:?} has {size} bytes, the file declares {length}"
                        ),
                    ));
                }
                storage.get_prefix(&target, length)?.ok_or_else(missing)
            }
            External::Image { max_bytes } => match storage.get_bounded(&target, max_bytes)? {
                Some(Bounded::Bytes(bytes)) => Ok(bytes),
                Some(Bounded::TooLarge(size)) => Err(Error::bad_scene(
                    url,
                    format!(
                        "external image {uri:?} has {size} bytes, over the {max_bytes} left \
                         of sceneLimits.maxBufferBytes"
                    ),
                )),
                None => Err(missing()),
            },
        }
    };
    let asset =
        gltf_scene::contain_panics(url, || GltfAsset::parse(url, &bytes, limits, &mut resolve))?;
    tracing::info!(
        scene = url,
        bytes = bytes.len(),
        animated = asset.is_animated(),
        "scene loaded"
    );
    for warning in asset.warnings() {
        tracing::warn!(scene = url, "{warning}");
    }
    Ok(asset)
}

/// The location of `uri` (a glTF buffer or image reference) relative to the scene at `scene`,
/// or why it is refused: only relative paths that stay in the scene's directory, in the same
/// store, are allowed; on a local file system symbolic links must not lead out of it either.
pub fn reference(scene: &str, uri: &str) -> std::result::Result<String, String> {
    let refuse = |why: &str| {
        Err(format!(
            "external reference {uri:?} refused: {why} (only data: URIs and relative paths \
             inside the scene's directory are allowed)"
        ))
    };
    if uri.is_empty() {
        return refuse("it is empty");
    }
    if uri.chars().any(|c| c.is_control() || c == '\\') {
        return refuse("it holds control characters or backslashes");
    }
    if uri.starts_with('/') {
        return refuse("it is an absolute path");
    }
    if Url::parse(uri).is_ok() || uri.split('/').next().is_some_and(|s| s.contains(':')) {
        return refuse("it names a scheme or store of its own");
    }
    if uri.contains('?') || uri.contains('#') {
        return refuse("it has a query or fragment");
    }
    for segment in uri.split('/') {
        let lower = segment.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        if segment.is_empty() {
            return refuse("it has an empty path segment");
        }
        if decoded == ".." {
            return refuse("it climbs out of the scene's directory with \"..\"");
        }
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
            return refuse("it hides a separator or NUL in percent-encoding");
        }
    }
    let base = storage::to_url(scene).map_err(|e| e.to_string())?;
    let target = base
        .join(uri)
        .map_err(|e| format!("external reference {uri:?}: {e}"))?;
    let directory = &base.as_str()[..base.as_str().rfind('/').map_or(0, |i| i + 1)];
    let store = |u: &Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_string),
            u.port(),
        )
    };
    if !target.as_str().starts_with(directory) || store(&target) != store(&base) {
        return refuse("it resolves outside the scene's directory");
    }
    if storage::select(&target).is_ok_and(|(backend, _)| backend == Backend::Local) {
        inside_by_real_path(directory, &target)
            .map_err(|why| format!("external reference {uri:?} refused: {why}"))?;
    }
    Ok(target.to_string())
}

/// On a file system, the target's real path (symbolic links resolved) must lie inside the
/// scene directory's real path. A target that does not exist passes here and is reported
/// missing when it is read.
fn inside_by_real_path(directory: &str, target: &Url) -> std::result::Result<(), String> {
    let (Ok(dir), Ok(file)) = (
        Url::parse(directory)
            .and_then(|u| u.to_file_path().map_err(|_| url::ParseError::EmptyHost)),
        target.to_file_path(),
    ) else {
        return Ok(());
    };
    let (Ok(dir), Ok(real)) = (std::fs::canonicalize(dir), std::fs::canonicalize(&file)) else {
        return Ok(());
    };
    if real.starts_with(&dir) {
        Ok(())
    } else {
        Err(format!(
            "it leads out of the scene's directory through a symbolic link (to {})",
            real.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_references_inside_the_directory_resolve() {
        for (scene, uri, want) in [
            ("s3://b/ns/shot/a.gltf", "a.bin", "s3://b/ns/shot/a.bin"),
            (
                "s3://b/ns/shot/a.gltf",
                "tex/wood%20grain.png",
                "s3://b/ns/shot/tex/wood%20grain.png",
            ),
            (
                "s3://b/ns/shot/a.gltf",
                "./tex/x.png",
                "s3://b/ns/shot/tex/x.png",
            ),
            ("gs://b/a.gltf", "x.bin", "gs://b/x.bin"),
        ] {
            assert_eq!(reference(scene, uri).as_deref(), Ok(want), "{uri}");
        }
    }

    #[test]
    fn references_that_leave_the_directory_are_refused_by_name() {
        for uri in [
            "../b.bin",
            "tex/../../b.bin",
            "%2e%2e/b.bin",
            ".%2E/b.bin",
            "/etc/passwd",
            "file:///etc/passwd",
            "s3://other-bucket/x.bin",
            "https://example.com/x.bin",
            "//other-host/x.bin",
            "c:/windows/x.bin",
            "tex%2f..%2f..%2fx.bin",
            "a\\..\\b.bin",
            "x.bin?versionId=1",
            "a//b.bin",
            "",
        ] {
            let err = reference("s3://b/ns/shot/a.gltf", uri).unwrap_err();
            assert!(err.contains("refused"), "{uri}: {err}");
            assert!(err.contains(&format!("{uri:?}")), "{uri}: {err}");
        }
    }

    #[test]
    fn symbolic_links_out_of_the_scene_directory_are_refused() {
        let root = std::env::temp_dir().join(format!("scene-source-{}", std::process::id()));
        let scene_dir = root.join("scene");
        std::fs::create_dir_all(&scene_dir).unwrap();
        std::fs::write(root.join("secret.bin"), b"secret").unwrap();
        std::fs::write(scene_dir.join("inside.bin"), b"ok").unwrap();
        std::os::unix::fs::symlink(root.join("secret.bin"), scene_dir.join("link.bin")).unwrap();
        std::os::unix::fs::symlink(scene_dir.join("inside.bin"), scene_dir.join("ok.bin")).unwrap();
        let scene = scene_dir.join("a.gltf");
        let scene = scene.to_str().unwrap();
        let err = reference(scene, "link.bin").unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(reference(scene, "ok.bin").is_ok());
        assert!(reference(scene, "inside.bin").is_ok());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
