//! Fetching a glTF scene by URL (or plain path) through [`Storage`]; external buffers and
//! images are resolved relative to the scene's URL in the same store.

use crate::error::{Error, Result};
use crate::gltf_scene::GltfAsset;
use crate::storage::{self, Storage};

pub fn load(storage: &Storage, url: &str) -> Result<GltfAsset> {
    let bytes = match storage.get_opt(url) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Error::bad_scene(url, "no such file or object")),
        Err(Error::BadSpec(reason)) => return Err(Error::bad_scene(url, reason)),
        Err(e) => return Err(e),
    };
    let mut resolve = |uri: &str| -> Result<Vec<u8>> {
        let target = storage::join(url, uri)?;
        match storage.get_opt(&target) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(Error::bad_scene(
                url,
                format!("external file {uri:?} not found at {target}"),
            )),
            Err(e) => Err(e),
        }
    };
    let asset = GltfAsset::parse(url, &bytes, &mut resolve)?;
    tracing::info!(
        scene = url,
        bytes = bytes.len(),
        animated = asset.is_animated(),
        "scene loaded"
    );
    Ok(asset)
}
