//! What a render pod will load: budgets checked before anything is allocated, so a small hostile
//! file fails its shard as bad input (exit 3) within seconds instead of exhausting the node.
//!
//! The defaults suit a render node with 32 GiB or more of memory; a pool raises them in
//! `spec.sceneLimits` (docs/security.md lists each limit). Every field is optional in JSON so a
//! spec that names none gets the defaults, and a newer operator's extra fields are ignored.

use serde::{Deserialize, Serialize};

/// Budgets for one scene (and for the merge: the frames it holds at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SceneLimits {
    /// Bytes of the `.gltf`/`.glb` file itself.
    pub max_scene_bytes: u64,
    /// Bytes of all buffers together (GLB chunk, data URIs and external files).
    pub max_buffer_bytes: u64,
    /// Nodes in the document.
    pub max_nodes: u64,
    /// Mesh instances after the node forest is walked (a mesh under N nodes counts N times).
    pub max_instances: u64,
    /// Vertices read over all instances (every primitive's POSITION count, per instance).
    pub max_vertices: u64,
    /// Triangles over all instances.
    pub max_triangles: u64,
    /// Pixels of one image (width × height), read from its header before decoding.
    pub max_image_pixels: u64,
    /// Decoded texture bytes over all images (RGBA8).
    pub max_texture_bytes: u64,
    /// Keyframes over all animation samplers.
    pub max_keyframes: u64,
}

impl SceneLimits {
    pub const DEFAULT: SceneLimits = SceneLimits {
        max_scene_bytes: 1 << 30,
        max_buffer_bytes: 4 << 30,
        max_nodes: 1_000_000,
        max_instances: 1_000_000,
        max_vertices: 100_000_000,
        max_triangles: 20_000_000,
        max_image_pixels: 16384 * 16384,
        max_texture_bytes: 4 << 30,
        max_keyframes: 10_000_000,
    };

    /// `(name, value)` of every limit, for documentation and error messages.
    pub fn entries(&self) -> [(&'static str, u64); 9] {
        [
            ("maxSceneBytes", self.max_scene_bytes),
            ("maxBufferBytes", self.max_buffer_bytes),
            ("maxNodes", self.max_nodes),
            ("maxInstances", self.max_instances),
            ("maxVertices", self.max_vertices),
            ("maxTriangles", self.max_triangles),
            ("maxImagePixels", self.max_image_pixels),
            ("maxTextureBytes", self.max_texture_bytes),
            ("maxKeyframes", self.max_keyframes),
        ]
    }
}

impl Default for SceneLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_the_defaults() {
        let limits: SceneLimits = serde_json::from_str(r#"{"maxTriangles": 5}"#).unwrap();
        assert_eq!(limits.max_triangles, 5);
        assert_eq!(limits.max_nodes, SceneLimits::DEFAULT.max_nodes);
        let json = serde_json::to_value(SceneLimits::DEFAULT).unwrap();
        for (name, value) in SceneLimits::DEFAULT.entries() {
            assert_eq!(json[name], value, "{name}");
        }
    }
}
