//! `render-pod`: the render pod's command line (see docs/renderer.md).
//!
//! Exit codes follow `tessera_shard::contract::exit`: 0 ok, 1 transient (storage, GPU), 2 usage,
//! 3 bad input (scene or spec), 4 invalid shard outputs (merge), 5 no GPU adapter.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use render_pod::commands::local::{self, LocalJob};
use render_pod::commands::merge::{self, FrameDestination};
use render_pod::commands::read_spec;
use render_pod::commands::render::ShardRenderer;
use render_pod::error::{Error, Result};
use render_pod::gpu::GpuContext;
use render_pod::log_tail::LogTail;
use render_pod::storage::Storage;
use render_pod::{environment, scene_source};
use tessera_shard::contract::{
    Aov, EnvironmentSettings, LOG_FILE, MergeSpec, RenderSettings, ShardSpec,
};

#[derive(Parser)]
#[command(
    name = "render-pod",
    version,
    about = "Tessera render pod: GPU path tracer, shard renderer and merger"
)]
struct Cli {
    /// Log format: text or json (env RENDER_POD_LOG_FORMAT). Levels via RUST_LOG (default info).
    #[arg(
        long,
        global = true,
        env = "RENDER_POD_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct SpecSource {
    /// The spec as JSON.
    #[arg(long)]
    spec: Option<String>,
    /// A file holding the spec JSON.
    #[arg(long)]
    spec_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Render one shard (ShardSpec) and write its EXRs and manifest.json.
    Render {
        #[command(flatten)]
        source: SpecSource,
        /// Where to write the error that stopped the render, so that the pod's termination
        /// message (and the job's lastFailure) is that error rather than a tail of the log.
        #[arg(
            long,
            env = "TESSERA_TERMINATION_LOG",
            default_value = "/dev/termination-log"
        )]
        termination_log: PathBuf,
    },
    /// Verify all shards of a job (MergeSpec) and merge them into frames.
    Merge {
        #[command(flatten)]
        source: SpecSource,
        /// Where to write the InvalidShards JSON when shard outputs are bad (the process node
        /// agent of the e2e tests sets TESSERA_TERMINATION_LOG).
        #[arg(
            long,
            env = "TESSERA_TERMINATION_LOG",
            default_value = "/dev/termination-log"
        )]
        termination_log: PathBuf,
    },
    /// Plan, render and merge a whole job on this machine.
    Local(LocalArgs),
}

#[derive(Args)]
struct LocalArgs {
    /// glTF 2.0 scene (.gltf or .glb): a path or URL.
    #[arg(long)]
    scene: String,
    /// Frames in render-farm syntax (1-100, 1-100x2, 1,5,10-20).
    #[arg(long, default_value = "1")]
    frames: String,
    #[arg(long)]
    width: u32,
    #[arg(long)]
    height: u32,
    /// Samples per pixel.
    #[arg(long)]
    spp: u32,
    /// Bounces after the camera hit (light sampled at every vertex).
    #[arg(long, default_value_t = 4)]
    max_bounces: u32,
    /// Constant environment radiance, linear R,G,B.
    #[arg(long, default_value = "0,0,0", value_parser = parse_rgb)]
    background: [f32; 3],
    /// An equirectangular environment map (Radiance .hdr or OpenEXR, path or URL) lighting
    /// the scene instead of the constant background.
    #[arg(long)]
    environment: Option<String>,
    /// Radiance multiplier of --environment.
    #[arg(
        long,
        default_value_t = 1.0,
        requires = "environment",
        allow_negative_numbers = true
    )]
    environment_strength: f32,
    /// Turn of --environment about the scene's up axis, degrees counter-clockwise from above.
    #[arg(
        long,
        default_value_t = 0.0,
        requires = "environment",
        allow_negative_numbers = true
    )]
    environment_rotation: f32,
    /// Motion blur: the shutter interval in frames (0 < S ≤ 1), centred on each frame; an
    /// animated scene's samples then see it at times across the interval.
    #[arg(long, default_value_t = 0.0)]
    motion_blur: f32,
    /// Compositing passes written into each frame's EXR beside the beauty pass, comma
    /// separated: depth, normal, albedo, object-id, material-id.
    #[arg(long, value_delimiter = ',', value_parser = parse_aov)]
    aovs: Vec<Aov>,
    /// Tiles per frame, XxY.
    #[arg(long, default_value = "1x1", value_parser = parse_tiles)]
    tiles: (u32, u32),
    #[arg(long, default_value_t = 1)]
    sample_splits: u32,
    #[arg(long, default_value_t = 1)]
    frames_per_shard: u32,
    /// Camera name (camera or node name); default: the first camera.
    #[arg(long)]
    camera: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (path or URL).
    #[arg(long)]
    out: String,
}

fn parse_rgb(text: &str) -> std::result::Result<[f32; 3], String> {
    let parts: Vec<f32> = text
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    match parts[..] {
        [r, g, b] if parts.iter().all(|v| v.is_finite() && *v >= 0.0) => Ok([r, g, b]),
        _ => Err("expected three non-negative numbers R,G,B".into()),
    }
}

fn parse_aov(name: &str) -> std::result::Result<Aov, String> {
    Ok(
        match name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "depth" => Aov::Depth,
            "normal" => Aov::Normal,
            "albedo" => Aov::Albedo,
            "objectid" => Aov::ObjectId,
            "materialid" => Aov::MaterialId,
            _ => {
                return Err(format!(
                    "{name:?}: expected depth, normal, albedo, object-id or material-id"
                ));
            }
        },
    )
}

fn parse_tiles(text: &str) -> std::result::Result<(u32, u32), String> {
    let (x, y) = text
        .split_once(['x', 'X'])
        .ok_or("expected XxY, e.g. 4x4")?;
    Ok((
        x.trim().parse().map_err(|e| format!("{x:?}: {e}"))?,
        y.trim().parse().map_err(|e| format!("{y:?}: {e}"))?,
    ))
}

/// Logs to stderr, and keeps the tail for `log.txt` beside a shard's manifest.
fn init_logging(format: &str) -> LogTail {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wgpu_core=warn,wgpu_hal=warn,naga=warn")
    });
    let tail = LogTail::default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(tail.clone())
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    tail
}

/// Where a shard's log tail goes once the command ends, whatever the outcome.
struct LogDestination {
    storage: Storage,
    location: String,
}

fn run(cli: Cli, log_destination: &mut Option<LogDestination>) -> Result<()> {
    match cli.command {
        Command::Render {
            source,
            termination_log,
        } => render_shard(&source, log_destination).inspect_err(|e| {
            write_termination_message(&termination_log, &e.to_string());
        }),
        Command::Merge {
            source,
            termination_log,
        } => {
            let spec: MergeSpec = read_spec(source.spec.as_deref(), source.spec_file.as_deref())?;
            let storage = Storage::new()?;
            match merge::merge(&storage, &spec, &FrameDestination::Contract) {
                Err(Error::InvalidShards(invalid)) => {
                    merge::write_termination_log(&termination_log, &invalid);
                    Err(Error::InvalidShards(invalid))
                }
                other => other,
            }
        }
        Command::Local(args) => {
            let job = LocalJob {
                scene: args.scene.clone(),
                frames: args.frames,
                settings: RenderSettings {
                    scene: args.scene,
                    camera: args.camera,
                    width: args.width,
                    height: args.height,
                    samples_per_pixel: args.spp,
                    max_bounces: args.max_bounces,
                    background: args.background,
                    environment: args.environment.map(|url| EnvironmentSettings {
                        url,
                        strength: args.environment_strength,
                        rotation_degrees: args.environment_rotation,
                    }),
                    shutter: args.motion_blur,
                    aovs: {
                        let mut aovs = args.aovs.clone();
                        aovs.sort();
                        aovs.dedup();
                        aovs
                    },
                    seed: args.seed,
                    limits: Default::default(),
                },
                tiles: args.tiles,
                sample_splits: args.sample_splits,
                frames_per_shard: args.frames_per_shard,
                out: args.out.clone(),
            };
            let storage = Storage::new()?;
            let prepared = local::prepare(&storage, &job)?;
            let ctx = GpuContext::new()?;
            let show_progress = std::io::stderr().is_terminal();
            let summary = local::run(&ctx, &storage, &prepared, &mut |p| {
                if show_progress {
                    eprint!(
                        "\rshard {}/{}  {:5.1} %",
                        p.shard,
                        p.shards,
                        100.0 * p.fraction
                    );
                    let _ = std::io::stderr().flush();
                }
            })?;
            if show_progress {
                eprintln!();
            }
            // The CLI's one-line summary (stdout, machine-greppable).
            println!(
                "rendered {} frame(s) {}x{} at {} spp in {} shard(s): {:.2} s total, {:.2} s rendering, {:.3} Msamples/s on {} -> {}",
                summary.frames,
                args.width,
                args.height,
                args.spp,
                summary.shards,
                summary.seconds,
                summary.render_seconds,
                summary.samples_per_second() / 1e6,
                summary.adapter,
                args.out
            );
            Ok(())
        }
    }
}

/// `render`: one shard, from its spec to its manifest.
fn render_shard(source: &SpecSource, log_destination: &mut Option<LogDestination>) -> Result<()> {
    let spec: ShardSpec = read_spec(source.spec.as_deref(), source.spec_file.as_deref())?;
    render_pod::commands::render::validate(&spec)?;
    let place = render_pod::commands::render::provenance(None);
    tracing::info!(
        job = %spec.job,
        shard = spec.shard,
        attempt = spec.attempt,
        pod = place.pod.as_deref().unwrap_or("?"),
        node = place.node.as_deref().unwrap_or("?"),
        "render-pod {} starting",
        env!("CARGO_PKG_VERSION")
    );
    *log_destination = Storage::new().ok().map(|storage| LogDestination {
        storage,
        location: format!("{}/{LOG_FILE}", spec.shard_prefix()),
    });
    let storage = Storage::new()?;
    let asset = scene_source::load(&storage, &spec.settings.scene, &spec.settings.limits)?;
    let environment = spec
        .settings
        .environment
        .as_ref()
        .map(|e| environment::load(&storage, e, &spec.settings.limits))
        .transpose()?;
    let ctx = GpuContext::new()?;
    ShardRenderer::new(&ctx, &storage, &asset, environment.as_ref())
        .render_shard(&spec, &mut |_, _| {})?;
    Ok(())
}

/// Best effort: Kubernetes reads at most 4 KiB of the termination message.
fn write_termination_message(path: &std::path::Path, message: &str) {
    let mut end = message.len().min(4096);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(e) = std::fs::write(path, &message[..end]) {
        tracing::debug!(path = %path.display(), error = %e, "no termination log written");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tail = init_logging(&cli.log_format);
    let mut log_destination = None;
    let outcome = run(cli, &mut log_destination);
    if let Err(e) = &outcome {
        tracing::error!(kind = e.label(), exit_code = e.exit_code(), "{e}");
    }
    // Best effort: a pod that cannot reach its storage still exits with its own code.
    if let Some(destination) = log_destination
        && let Err(error) = destination
            .storage
            .put(&destination.location, tail.contents())
    {
        eprintln!("render-pod: could not write the log tail: {error}");
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("render-pod: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
