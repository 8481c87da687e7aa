//! `traversal`: BVH builders × layouts measured on fixed ray sets (bench/render/traversal/README.md).
//!
//! Prints one JSON document on stdout — the same bytes on every run with the same arguments
//! on the same machine — and build times, which vary, on stderr. `--hits DIR` also writes the
//! triangles, the rays and every tree's hits for the driver's check against Embree.

mod gpu;
mod measure;
mod rays;
mod scenes;
mod trees;

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    about = "BVH builders and layouts on fixed ray sets: steps, tests and bytes read per ray"
)]
struct Args {
    /// A glTF scene, as NAME=PATH (repeatable).
    #[arg(long = "scene", value_parser = parse_scene)]
    scenes: Vec<(String, String)>,
    /// Also the generated scene of overlapping boxes, with this many boxes (0: not).
    #[arg(long, default_value_t = 20_000)]
    boxes: usize,
    /// Rays per set: a square of a multiple of 8 (the camera image is its root squared).
    #[arg(long, default_value_t = 1 << 18)]
    rays: usize,
    /// Write triangles, rays and every tree's hits here, for the Embree check.
    #[arg(long)]
    hits: Option<PathBuf>,
    /// Also cast every set through every tree on the GPU (the render pod's adapter) and write
    /// rays per second and the agreement with the CPU's hits to this JSON file (timings vary
    /// from run to run: not on stdout).
    #[arg(long)]
    gpu: Option<PathBuf>,
}

fn parse_scene(s: &str) -> Result<(String, String), String> {
    let (name, path) = s.split_once('=').ok_or("expected NAME=PATH")?;
    Ok((name.to_string(), path.to_string()))
}

fn write_f32(path: &Path, values: impl Iterator<Item = f32>) {
    let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn main() {
    let args = Args::parse();
    let mut scenes = Vec::new();
    for (name, path) in &args.scenes {
        match scenes::load_gltf(name, path) {
            Ok(scene) => scenes.push(scene),
            Err(e) => {
                eprintln!("traversal: {name} ({path}): {e}");
                std::process::exit(2);
            }
        }
    }
    if args.boxes > 0 {
        scenes.push(scenes::boxes(args.boxes, 2017));
    }
    let caster = args.gpu.as_ref().map(|_| {
        gpu::GpuCaster::new().unwrap_or_else(|e| {
            eprintln!("traversal: no GPU adapter: {e}");
            std::process::exit(2);
        })
    });
    let mut gpu_report = Vec::new();
    let mut report = Vec::new();
    for scene in &scenes {
        let tris = &scene.triangles;
        eprintln!("{}: {} triangles", scene.name, tris.len());
        let trees = trees::build_all(tris);
        for t in &trees {
            eprintln!(
                "  build {:<32} {:>9.1} ms",
                t.name,
                t.build_time.as_secs_f64() * 1e3
            );
        }
        let trees::Layout::Binary(first) = &trees[0].layout else {
            unreachable!("ours/binary comes first")
        };
        let sets = rays::ray_sets(scene, first, args.rays);
        let dir = args.hits.as_ref().map(|d| d.join(&scene.name));
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).expect("hits directory");
            write_f32(
                &dir.join("triangles.f32"),
                tris.iter().flatten().flat_map(|p| p.to_array()),
            );
        }
        let structure: Vec<Value> = trees
            .iter()
            .map(|t| json!({ "tree": t.name, "structure": measure::structure(t, tris.len()) }))
            .collect();
        let mut per_set = Vec::new();
        for set in &sets {
            let results: Vec<Vec<(i64, measure::Count)>> = trees
                .iter()
                .map(|t| measure::trace_all(t, tris, set))
                .collect();
            let reference: Vec<i64> = results[0].iter().map(|r| r.0).collect();
            if let Some(dir) = &dir {
                write_f32(
                    &dir.join(format!("{}.rays.f32", set.name)),
                    set.rays.iter().flat_map(|r| {
                        let (o, d) = (r.origin, r.dir);
                        [o.x, o.y, o.z, d.x, d.y, d.z, r.tmax.min(f32::MAX)]
                    }),
                );
                for (tree, result) in trees.iter().zip(&results) {
                    let hits: Vec<u8> = result
                        .iter()
                        .flat_map(|r| (r.0 as i32).to_le_bytes())
                        .collect();
                    let file = format!("{}.{}.hits.i32", set.name, tree.name.replace('/', "_"));
                    std::fs::write(dir.join(file), hits).expect("hits file");
                }
            }
            if let Some(caster) = &caster {
                for (tree, result) in trees.iter().zip(&results) {
                    let cpu: Vec<i64> = result.iter().map(|r| r.0).collect();
                    let figures = caster.measure(tree, tris, set, &cpu);
                    eprintln!("  gpu {} {}: {figures}", set.name, tree.name);
                    gpu_report.push(json!({
                        "scene": scene.name, "set": set.name, "tree": tree.name, "figures": figures,
                    }));
                }
            }
            let by_tree: Vec<Value> = trees
                .iter()
                .zip(&results)
                .map(|(t, r)| json!({ "tree": t.name, "figures": measure::figures(r, &reference) }))
                .collect();
            per_set.push(json!({
                "set": set.name,
                "any_hit": set.any_hit,
                "rays": set.rays.len(),
                "trees": by_tree,
            }));
            eprintln!("  traced {}", set.name);
        }
        report.push(json!({
            "scene": scene.name,
            "triangles": tris.len(),
            "trees": structure,
            "ray_sets": per_set,
        }));
    }
    let doc = json!({
        "rays_per_set": args.rays,
        "scenes": report,
    });
    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    if let (Some(path), Some(caster)) = (&args.gpu, &caster) {
        let gpu =
            json!({ "adapter": caster.adapter(), "rays_per_set": args.rays, "casts": gpu_report });
        let text = serde_json::to_string_pretty(&gpu).expect("json");
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
