//! `tessera-plan FILE`: prints the shard plan of a RenderJob manifest without a cluster —
//! how many shards, and which frames, pixels and samples each one renders, with the pod name of
//! its first attempt. Refuses an unplannable spec with the same message the operator would put
//! in the job's `Accepted` condition.

use std::process::ExitCode;

use clap::Parser;
use tessera_operator::api::RenderJob;
use tessera_operator::{job_plan, labels};

#[derive(Parser)]
#[command(about = "Print the shard plan of a RenderJob manifest")]
struct Args {
    /// RenderJob YAML (`-` for standard input).
    file: String,
    /// Shards to list (the summary always covers all of them).
    #[arg(long, default_value_t = 20)]
    limit: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tessera-plan: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let text = if args.file == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("reading standard input: {e}"))?
    } else {
        std::fs::read_to_string(&args.file).map_err(|e| format!("reading {}: {e}", args.file))?
    };
    let job: RenderJob =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: not a RenderJob: {e}", args.file))?;
    let plan = job_plan::plan(&job.spec).map_err(|e| e.to_string())?;
    let name = job.metadata.name.clone().unwrap_or_else(|| "job".into());
    let input = plan.input();
    println!(
        "RenderJob {name}: {} frames ({}), {}x{} px, {} spp",
        input.frames.len(),
        input.frames,
        input.width,
        input.height,
        input.samples_per_pixel
    );
    println!(
        "{} shards = {} frame chunks x {}x{} tiles x {} sample splits",
        plan.len(),
        plan.frame_chunks(),
        input.tiles_x,
        input.tiles_y,
        input.sample_splits
    );
    println!(
        "{:>6}  {:<24} {:<20} {:<22} {:<10}",
        "SHARD", "POD", "FRAMES", "TILE (x,y wxh)", "SAMPLES"
    );
    for shard in plan.shards().take(args.limit as usize) {
        let frames = match shard.frames.as_slice() {
            [one] => one.to_string(),
            [first, .., last] => format!("{first}..{last} ({})", shard.frames.len()),
            [] => String::new(),
        };
        let tile = shard.tile;
        println!(
            "{:>6}  {:<24} {:<20} {:<22} {:<10}",
            shard.index,
            labels::shard_pod_name(&name, shard.index, 0),
            frames,
            format!("{},{} {}x{}", tile.x, tile.y, tile.width, tile.height),
            format!(
                "{}..{}",
                shard.samples.start,
                shard.samples.start + shard.samples.count
            )
        );
    }
    if plan.len() > args.limit {
        println!("   ... {} more (--limit)", plan.len() - args.limit);
    }
    Ok(())
}
