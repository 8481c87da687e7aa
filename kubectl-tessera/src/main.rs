//! `kubectl-tessera`: the command line and the API calls; the logic is in the library
//! (docs/kubectl-plugin.md). Every error is one line on stderr; exit codes are in
//! `kubectl_tessera::wait::exit`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kubectl_tessera::logs::{self, Location};
use kubectl_tessera::manifest::{self, JobInput};
use kubectl_tessera::rerun;
use kubectl_tessera::view;
use kubectl_tessera::wait::{self, Finished, exit};
use tessera_operator::api::{RenderJob, RenderPool};
use tessera_operator::labels;

/// Tessera RenderJobs from a terminal or a CI step.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-tessera",
    bin_name = "kubectl tessera",
    version,
    about,
    propagate_version = true
)]
struct Cli {
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a RenderJob from a scene and flags (print it with --dry-run).
    Submit(SubmitArgs),
    /// A job's phase, progress, conditions and frames → shards → state.
    Status(StatusArgs),
    /// A shard attempt's log: from its pod, else from storage.
    Logs(LogsArgs),
    /// Wait for a job: exit 0 on Complete, 1 on Failed, 124 on timeout.
    Wait(WaitArgs),
    /// Render part of a job again: its failed shards, or some frames (spec.rerender).
    Rerun(RerunArgs),
    /// Copy a frame's latest image: the merged frame once done, else its preview.
    Preview(PreviewArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
struct SubmitArgs {
    /// The glTF scene's storage URL (s3://, gs://, az://, https:// S3/Azure host, file:///).
    #[arg(long)]
    scene: String,
    /// Frames in render-farm syntax: 1-100, 1-100x2, 1,5,10-20.
    #[arg(long)]
    frames: String,
    /// The RenderPool (default: $TESSERA_POOL, else the cluster's only pool).
    #[arg(long, env = "TESSERA_POOL")]
    pool: Option<String>,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080", value_parser = manifest::parse_size)]
    resolution: (u32, u32),
    /// Samples per pixel.
    #[arg(long, visible_alias = "samples-per-pixel", default_value_t = 128)]
    spp: u32,
    /// Tiles per frame, COLUMNSxROWS; each tile is its own shard.
    #[arg(long, default_value = "1x1", value_parser = manifest::parse_size)]
    tiles: (u32, u32),
    /// Sample ranges per pixel rendered by separate shards.
    #[arg(long, default_value_t = 1)]
    sample_splits: u32,
    /// Consecutive frames one shard renders.
    #[arg(long, default_value_t = 1)]
    frames_per_shard: u32,
    /// The camera to render through (default: the scene's first).
    #[arg(long)]
    camera: Option<String>,
    /// The job's name (default: the scene's file name plus a random suffix, chosen by the
    /// API server).
    #[arg(long)]
    name: Option<String>,
    /// Output prefix URL (default: the pool's storage, `<storage>/<namespace>/<job>`).
    #[arg(long, value_name = "URL")]
    output_url: Option<String>,
    /// Priority among jobs competing for the pool (-1000 to 1000).
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Print the manifest instead of creating it; contacts no cluster.
    #[arg(long)]
    dry_run: bool,
    /// Print the manifest (--dry-run, default yaml) or the created job in this format.
    #[arg(short = 'o', long = "output", value_enum)]
    format: Option<Format>,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// The RenderJob.
    job: String,
    /// Machine-readable output instead of the table.
    #[arg(short = 'o', long = "output", value_enum)]
    format: Option<Format>,
}

#[derive(Args, Debug)]
struct LogsArgs {
    /// The RenderJob.
    job: String,
    /// The shard (`kubectl tessera status` lists them).
    #[arg(long, required_unless_present = "frame", conflicts_with = "frame")]
    shard: Option<u32>,
    /// The attempt (default: the shard's current attempt).
    #[arg(long)]
    attempt: Option<u32>,
    /// Every shard of this frame (all its tiles and sample splits).
    #[arg(long, allow_negative_numbers = true)]
    frame: Option<i64>,
}

#[derive(Args, Debug)]
struct WaitArgs {
    /// The RenderJob.
    job: String,
    /// Give up after this long (30m, 1h30m, 90s; 0: no limit) and exit 124.
    #[arg(long, default_value = "0", value_parser = timeout_arg)]
    timeout: Duration,
    /// Do not print progress lines on stderr while waiting.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct RerunArgs {
    /// The RenderJob.
    job: String,
    /// Every shard that failed for good (after fixing the scene, say).
    #[arg(long, required_unless_present = "frames", conflicts_with = "frames")]
    failed: bool,
    /// These frames, in render-farm syntax (12-14, 1,5,10-20): every shard of them.
    #[arg(long)]
    frames: Option<String>,
    /// A new scene URL to render from (the fixed scene), set in the same update.
    #[arg(long)]
    scene: Option<String>,
}

#[derive(Args, Debug)]
struct PreviewArgs {
    /// The RenderJob.
    job: String,
    /// The frame.
    #[arg(long, allow_negative_numbers = true)]
    frame: i64,
    /// Where to write the PNG (default: ./<job>.<frame>.png).
    #[arg(long, value_name = "PATH")]
    to: Option<PathBuf>,
}

/// `--timeout`: a duration, zero for no limit.
fn timeout_arg(text: &str) -> Result<Duration, String> {
    wait::parse_timeout(text).map(Option::unwrap_or_default)
}

/// Why a command stopped: its exit code and one line for stderr.
#[derive(Debug)]
struct Fail {
    code: i32,
    message: String,
}

impl Fail {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

type Result<T, E = Fail> = std::result::Result<T, E>;

/// An error and its sources on one line (`cannot connect: tcp connect error: refused`).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text.replace('\n', " ")
}

/// A failed API call, said plainly: the server's own message, or why it could not be reached.
fn api_fail(code: i32, what: &str, error: kube::Error) -> Fail {
    match error {
        kube::Error::Api(status) if status.code == 404 && !names_object(&status) => Fail::new(
            code,
            format!(
                "{what}: {} (is Tessera installed? the RenderJob CRD comes with it)",
                status.message
            ),
        ),
        kube::Error::Api(status) => Fail::new(code, format!("{what}: {}", status.message)),
        other => Fail::new(
            code,
            format!("{what}: cannot reach the API server: {}", chain(&other)),
        ),
    }
}

/// Whether a 404 is about a named object (rather than its resource type being unknown).
fn names_object(status: &kube::core::Status) -> bool {
    status.details.as_ref().is_some_and(|d| !d.name.is_empty())
}

/// The client and namespace the flags, KUBECONFIG and the context choose.
async fn connect(cli: &Cli) -> Result<(Client, String)> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match (&cli.kubeconfig, &cli.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                Fail::new(
                    exit::FAILED,
                    format!("kubeconfig {}: {}", path.display(), chain(&e)),
                )
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Fail::new(exit::FAILED, format!("kubeconfig: {}", chain(&e))))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Fail::new(exit::FAILED, format!("kubeconfig: {}", chain(&e))))?,
        (None, None) => Config::infer().await.map_err(|e| {
            Fail::new(
                exit::FAILED,
                format!(
                    "no cluster to talk to (set KUBECONFIG or --kubeconfig): {}",
                    chain(&e)
                ),
            )
        })?,
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)
        .map_err(|e| Fail::new(exit::FAILED, format!("kubeconfig: {}", chain(&e))))?;
    Ok((client, namespace))
}

fn print_object<T: serde::Serialize>(value: &T, format: Format) -> Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value).map(|s| s + "\n").ok(),
        Format::Yaml => serde_yaml::to_string(value).ok(),
    };
    let text = text.ok_or_else(|| Fail::new(exit::FAILED, "cannot serialise the output"))?;
    print!("{text}");
    Ok(())
}

async fn submit(cli: &Cli, args: &SubmitArgs) -> Result<()> {
    let usage = |message: String| Fail::new(exit::USAGE, message);
    let mut input = JobInput::new(&args.scene, &args.frames, "");
    input.resolution = args.resolution;
    input.samples_per_pixel = args.spp;
    input.tiles = args.tiles;
    input.sample_splits = args.sample_splits;
    input.frames_per_shard = args.frames_per_shard;
    input.camera = args.camera.clone();
    input.name = args.name.clone();
    input.output = args.output_url.clone();
    input.priority = args.priority;

    if args.dry_run {
        input.namespace = cli.namespace.clone();
        input.pool = args.pool.clone().ok_or_else(|| {
            usage("--pool (or TESSERA_POOL) is needed with --dry-run: no cluster is asked".into())
        })?;
        let manifest = manifest::build(&input).map_err(usage)?;
        let text = manifest::render(&manifest, args.format == Some(Format::Json))
            .map_err(|e| Fail::new(exit::FAILED, e))?;
        print!("{text}");
        return Ok(());
    }

    // Check the flags before asking the cluster anything.
    input.pool = args.pool.clone().unwrap_or_else(|| "pool".into());
    manifest::build(&input).map_err(usage)?;
    let (client, namespace) = connect(cli).await?;
    input.namespace = Some(namespace.clone());
    input.pool = match &args.pool {
        Some(pool) => pool.clone(),
        None => only_pool(&client).await?,
    };
    let manifest = manifest::build(&input).map_err(usage)?;
    let job: RenderJob = serde_json::from_value(manifest)
        .map_err(|e| Fail::new(exit::FAILED, format!("the manifest: {e}")))?;
    let api: Api<RenderJob> = Api::namespaced(client, &namespace);
    let created = api
        .create(&PostParams::default(), &job)
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 409 => Fail::new(
                exit::FAILED,
                format!(
                    "renderjob {:?} already exists in namespace {namespace:?}: choose another --name, \
                     or leave it out for a generated one",
                    args.name.as_deref().unwrap_or_default()
                ),
            ),
            other => api_fail(
                exit::FAILED,
                &format!("creating the renderjob in namespace {namespace:?}"),
                other,
            ),
        })?;
    match args.format {
        Some(format) => print_object(&created, format)?,
        None => println!("{}", created.metadata.name.unwrap_or_default()),
    }
    Ok(())
}

/// The cluster's only RenderPool, when `--pool` is not given.
async fn only_pool(client: &Client) -> Result<String> {
    let pools: Api<RenderPool> = Api::all(client.clone());
    let list = pools
        .list(&ListParams::default())
        .await
        .map_err(|e| api_fail(exit::FAILED, "listing renderpools", e))?;
    let names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    match names.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(Fail::new(
            exit::USAGE,
            "no RenderPool in the cluster: ask your platform team for one, then pass --pool",
        )),
        many => Err(Fail::new(
            exit::USAGE,
            format!(
                "pass --pool: the cluster has {} pools ({})",
                many.len(),
                many.join(", ")
            ),
        )),
    }
}

async fn get_job(
    api: &Api<RenderJob>,
    name: &str,
    namespace: &str,
    code: i32,
) -> Result<RenderJob> {
    api.get(name).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 404 && names_object(&status) => Fail::new(
            code,
            format!("renderjob {name:?} not found in namespace {namespace:?}"),
        ),
        other => api_fail(
            code,
            &format!("reading renderjob {namespace}/{name}"),
            other,
        ),
    })
}

async fn status(cli: &Cli, args: &StatusArgs) -> Result<()> {
    let (client, namespace) = connect(cli).await?;
    let api: Api<RenderJob> = Api::namespaced(client, &namespace);
    let job = get_job(&api, &args.job, &namespace, exit::FAILED).await?;
    let view = view::status_view(&job, jiff::Timestamp::now()).map_err(|e| {
        Fail::new(
            exit::FAILED,
            format!("renderjob {namespace}/{}: {e}", args.job),
        )
    })?;
    match args.format {
        Some(format) => print_object(&view, format),
        None => {
            print!("{}", view::render_table(&view));
            Ok(())
        }
    }
}

async fn logs_command(cli: &Cli, args: &LogsArgs) -> Result<()> {
    let (client, namespace) = connect(cli).await?;
    let jobs: Api<RenderJob> = Api::namespaced(client.clone(), &namespace);
    let job = get_job(&jobs, &args.job, &namespace, exit::FAILED).await?;
    let name = format!("renderjob {namespace}/{}", args.job);
    let plan = tessera_operator::job_plan::plan(&job.spec).map_err(|e| {
        Fail::new(
            exit::FAILED,
            format!("{name}: its spec cannot be planned: {e}"),
        )
    })?;
    let shards: Vec<u32> = match (args.shard, args.frame) {
        (Some(shard), _) if shard < plan.len() => vec![shard],
        (Some(shard), _) => {
            return Err(Fail::new(
                exit::USAGE,
                format!(
                    "--shard {shard}: {name} has shards 0 to {}",
                    plan.len().saturating_sub(1)
                ),
            ));
        }
        (None, Some(frame)) => logs::shards_of_frame(&plan, frame)
            .map_err(|e| Fail::new(exit::USAGE, format!("--frame: {e}")))?
            .collect(),
        (None, None) => return Err(Fail::new(exit::USAGE, "pass --shard N or --frame F")),
    };
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let selector = format!(
        "{}={uid},{}={}",
        labels::JOB_UID,
        labels::ROLE,
        labels::ROLE_SHARD
    );
    // The job's shard pods, listed once; none when listing is not allowed.
    let job_pods = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            eprintln!(
                "note: cannot list the job's pods ({}); reading logs from storage",
                api_fail(0, "pods", e).message
            );
            Vec::new()
        }
    };
    let pod_label = |pod: &Pod, key: &str| -> Option<u32> {
        pod.metadata.labels.as_ref()?.get(key)?.parse().ok()
    };
    let mut failures = 0;
    for &shard in &shards {
        let seen = job_pods
            .iter()
            .filter(|p| pod_label(p, labels::SHARD) == Some(shard))
            .filter_map(|p| pod_label(p, labels::ATTEMPT))
            .max()
            .unwrap_or(0);
        let attempt = args
            .attempt
            .unwrap_or_else(|| logs::current_attempt(&job, shard).max(seen));
        if shards.len() > 1 {
            println!("==> shard {shard} attempt {attempt} <==");
        }
        let pod = job_pods.iter().find(|p| {
            pod_label(p, labels::SHARD) == Some(shard)
                && pod_label(p, labels::ATTEMPT) == Some(attempt)
        });
        if let Some(pod_name) = pod.and_then(|p| p.metadata.name.clone()) {
            let params = LogParams {
                container: Some("render".into()),
                ..Default::default()
            };
            match tokio::time::timeout(Duration::from_secs(30), pods.logs(&pod_name, &params)).await
            {
                Ok(Ok(text)) => {
                    print!("{text}");
                    if !text.is_empty() && !text.ends_with('\n') {
                        println!();
                    }
                    continue;
                }
                Ok(Err(e)) => eprintln!(
                    "note: pod {pod_name}'s log is not available ({}); reading the copy in storage",
                    api_fail(0, "logs", e).message
                ),
                Err(_) => eprintln!(
                    "note: pod {pod_name}'s log did not come within 30 s; reading the copy in storage"
                ),
            }
        }
        if let Err(message) = storage_log(&job, shard, attempt) {
            eprintln!("error: shard {shard} attempt {attempt}: {message}");
            failures += 1;
        }
    }
    if failures > 0 {
        return Err(Fail::new(
            exit::FAILED,
            format!("{failures} of {} logs could not be read", shards.len()),
        ));
    }
    Ok(())
}

/// Prints the log tail the render pod wrote to storage, when this machine can read it.
fn storage_log(job: &RenderJob, shard: u32, attempt: u32) -> Result<(), String> {
    let url = logs::log_url(job, shard, attempt)?;
    match logs::location(&url) {
        Location::Local(path) => match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                print!("{text}");
                if !text.is_empty() && !text.ends_with('\n') {
                    println!();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "no log at {url} (the attempt has not run, did not reach storage, or \
                 the pool's volume is not mounted on this machine)"
            )),
            Err(e) => Err(format!("reading {url}: {e}")),
        },
        Location::ObjectStore(url) => Err(format!(
            "no pod left; the log is in object storage at {url}, which kubectl tessera does not \
             read: use {}",
            logs::reader_hint(&url).replace("URL", &url)
        )),
    }
}

async fn wait_command(cli: &Cli, args: &WaitArgs) -> Result<()> {
    let (client, namespace) = connect(cli).await?;
    let api: Api<RenderJob> = Api::namespaced(client, &namespace);
    let name = format!("renderjob {namespace}/{}", args.job);
    let first = get_job(&api, &args.job, &namespace, exit::UNKNOWN).await?;
    let watch = async {
        let mut last_line = String::new();
        let mut latest = Some(first);
        let mut stream = Box::pin(kube::runtime::watcher::watch_object(api.clone(), &args.job));
        loop {
            match &latest {
                None => {
                    return Err(Fail::new(
                        exit::UNKNOWN,
                        format!("{name} was deleted while waiting"),
                    ));
                }
                Some(job) => {
                    if let Some(end) = wait::finished(job) {
                        return Ok((end, job.clone()));
                    }
                    let line = wait::progress_line(job);
                    if !args.quiet && line != last_line {
                        eprintln!("{name}: {line}");
                        last_line = line;
                    }
                }
            }
            match stream.next().await {
                Some(Ok(job)) => latest = job,
                // The watcher starts again on its own; a short pause keeps a broken
                // connection from spinning.
                Some(Err(_)) => tokio::time::sleep(Duration::from_secs(1)).await,
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    };
    let outcome = match (!args.timeout.is_zero()).then_some(args.timeout) {
        Some(limit) => match tokio::time::timeout(limit, watch).await {
            Ok(outcome) => outcome?,
            Err(_) => {
                let now = api.get(&args.job).await.ok();
                return Err(Fail::new(
                    exit::TIMEOUT,
                    format!(
                        "timed out after {} waiting for {name} ({})",
                        view::human_duration(limit.as_secs() as i64),
                        now.as_ref()
                            .map(wait::progress_line)
                            .unwrap_or_else(|| "its state unknown".into())
                    ),
                ));
            }
        },
        None => watch.await?,
    };
    match outcome {
        (Finished::Complete { reason, message }, job) => {
            println!("{name} Complete ({reason}): {message}");
            if let Some(output) = job.status.and_then(|s| s.output) {
                println!("frames: {}", output.frames);
            }
            Ok(())
        }
        (Finished::Failed { reason, message }, _) => Err(Fail::new(
            exit::FAILED,
            format!("{name} Failed: {reason}: {message}"),
        )),
    }
}

/// Raises `spec.rerender.generation` with the selection, in one merge patch that names the
/// resourceVersion read (a concurrent rerun is refused, not lost).
async fn rerun_command(cli: &Cli, args: &RerunArgs) -> Result<()> {
    if let Some(frames) = &args.frames {
        tessera_shard::FrameList::parse(frames)
            .map_err(|e| Fail::new(exit::USAGE, format!("--frames {frames:?}: {e}")))?;
    }
    let (client, namespace) = connect(cli).await?;
    let api: Api<RenderJob> = Api::namespaced(client, &namespace);
    let job = get_job(&api, &args.job, &namespace, exit::FAILED).await?;
    let patch = rerun::patch(
        &job,
        args.failed,
        args.frames.as_deref(),
        args.scene.as_deref(),
    );
    let generation = patch["spec"]["rerender"]["generation"].clone();
    api.patch(&args.job, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            api_fail(
                exit::FAILED,
                &format!("updating renderjob {namespace}/{}", args.job),
                e,
            )
        })?;
    let what = match &args.frames {
        Some(frames) => format!("frames {frames}"),
        None => "the failed shards".into(),
    };
    println!(
        "renderjob {namespace}/{}: rerender generation {generation} requested ({what}); \
         follow it with: kubectl tessera wait {}",
        args.job, args.job
    );
    Ok(())
}

/// Copies the frame's merged PNG when the frame is done, else its latest preview.
async fn preview_command(cli: &Cli, args: &PreviewArgs) -> Result<()> {
    let (client, namespace) = connect(cli).await?;
    let api: Api<RenderJob> = Api::namespaced(client, &namespace);
    let job = get_job(&api, &args.job, &namespace, exit::FAILED).await?;
    let url = rerun::image_url(&job, args.frame).map_err(|e| {
        Fail::new(
            exit::FAILED,
            format!("renderjob {namespace}/{}: {e}", args.job),
        )
    })?;
    let to = args
        .to
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.{:04}.png", args.job, args.frame)));
    match logs::location(&url.url) {
        Location::Local(path) => {
            std::fs::copy(&path, &to).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "not written yet (or the pool's volume is not mounted on this machine)".into()
                } else {
                    e.to_string()
                };
                Fail::new(exit::FAILED, format!("{}: {why}", url.url))
            })?;
            println!("{} ({}) -> {}", url.url, url.kind, to.display());
            Ok(())
        }
        Location::ObjectStore(remote) => Err(Fail::new(
            exit::FAILED,
            format!(
                "the {} is in object storage at {remote}, which kubectl tessera does not read: use {}",
                url.kind,
                logs::reader_hint(&remote).replace("URL", &remote)
            ),
        )),
    }
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Submit(args) => submit(&cli, args).await,
        Command::Status(args) => status(&cli, args).await,
        Command::Logs(args) => logs_command(&cli, args).await,
        Command::Wait(args) => wait_command(&cli, args).await,
        Command::Rerun(args) => rerun_command(&cli, args).await,
        Command::Preview(args) => preview_command(&cli, args).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version exit 0, usage errors 2, with clap's own text.
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(exit::FAILED as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("error: {}", fail.message);
            ExitCode::from(fail.code as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-tessera").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_well_formed_and_every_command_parses() {
        Cli::command().debug_assert();
        let cli = parse(&[
            "wait",
            "j",
            "--timeout",
            "1h30m",
            "-n",
            "ns",
            "--context",
            "c",
        ])
        .unwrap();
        let Command::Wait(wait) = &cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(wait.timeout, Duration::from_secs(5400));
        assert_eq!(
            (cli.namespace.as_deref(), cli.context.as_deref()),
            (Some("ns"), Some("c"))
        );
        let Command::Wait(wait) = parse(&["wait", "j"]).unwrap().command else {
            panic!()
        };
        assert!(wait.timeout.is_zero());
        let Command::Submit(submit) = parse(&[
            "submit",
            "--scene",
            "s3://b/s.glb",
            "--frames",
            "1-10",
            "--tiles",
            "4x2",
            "--resolution",
            "640x480",
            "--priority",
            "-5",
            "--dry-run",
            "-o",
            "json",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(
            (submit.tiles, submit.resolution, submit.priority),
            ((4, 2), (640, 480), Some(-5))
        );
        assert_eq!(submit.format, Some(Format::Json));
        let Command::Logs(logs) = parse(&["logs", "j", "--frame", "-3"]).unwrap().command else {
            panic!()
        };
        assert_eq!((logs.frame, logs.shard), (Some(-3), None));
        let Command::Status(status) = parse(&["status", "j", "-o", "yaml"]).unwrap().command else {
            panic!()
        };
        assert_eq!(status.format, Some(Format::Yaml));
    }

    #[test]
    fn usage_errors_are_clap_errors_with_exit_code_2() {
        for args in [
            vec!["wait"],
            vec!["wait", "j", "--timeout", "soon"],
            vec!["logs", "j"],
            vec!["logs", "j", "--shard", "1", "--frame", "2"],
            vec!["submit", "--scene", "s3://b/s.glb"],
            vec![
                "submit",
                "--scene",
                "s3://b/s.glb",
                "--frames",
                "1",
                "--tiles",
                "4",
            ],
            vec!["status", "j", "-o", "xml"],
        ] {
            let error = parse(&args).unwrap_err();
            assert_eq!(error.exit_code(), exit::USAGE, "{args:?}");
        }
    }
}
