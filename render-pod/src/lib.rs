//! Tessera's render pod: a GPU path tracer (WGSL compute on wgpu) for glTF 2.0 scenes, the
//! shard renderer and the merger of the pod contract ([`tessera_shard::contract`]).
//!
//! Modules, one job each: [`math`], [`scene`] (renderer scene), [`gltf_scene`] (glTF loading), [`gltf_check`] (limits and structure, before loading),
//! [`gltf_support`] (which extensions and features render; refusals and warnings),
//! [`bvh`] (binned-SAH BVH), [`wide_bvh`] (compressed 8-wide BVH), [`sampling`] and [`bsdf`] (pure math mirrored by the shader),
//! [`gpu`] (device context, scene upload, tile rendering), [`image_io`] (EXR/PNG),
//! [`storage`] (object_store), [`scene_source`], [`commands`] (render, merge, local).
//! See docs/renderer.md.

pub mod bsdf;
pub mod bvh;
pub mod commands;
pub mod deform;
pub mod environment;
pub mod error;
pub mod gltf_check;
pub mod gltf_scene;
pub mod gltf_support;
pub mod gpu;
pub mod image_io;
pub mod log_tail;
pub mod math;
pub mod motion;
pub mod passes;
pub mod sampling;
pub mod scene;
pub mod scene_source;
pub mod storage;
pub mod wide_bvh;

pub use error::{Error, Result};
