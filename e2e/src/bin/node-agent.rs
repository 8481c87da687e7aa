//! `node-agent`: registers fake GPU nodes (and CPU nodes) and runs their pods as local
//! processes until SIGTERM. See `tessera_e2e::node_agent` for what it emulates.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tessera_e2e::node_agent::{Agent, AgentConfig, ClusterAccess, NodeSpec};

#[derive(Parser)]
#[command(about = "Fake Kubernetes nodes that run pods as local processes")]
struct Args {
    /// GPU nodes to register, named gpu-node-1..N.
    #[arg(long, default_value_t = 3)]
    gpu_nodes: u32,
    /// GPUs per GPU node (`nvidia.com/gpu` capacity).
    #[arg(long, default_value_t = 2)]
    gpus_per_node: u32,
    /// CPU-only nodes, named cpu-node-1..M.
    #[arg(long, default_value_t = 1)]
    cpu_nodes: u32,
    /// Label that puts the GPU nodes into a RenderPool's node group.
    #[arg(long, default_value = "tessera.dev/node-group=gpu-a")]
    pool_label: String,
    /// Image prefix to local binary, e.g. `ghcr.io/tessera-dev/render-pod=/path/to/render-pod` (repeatable).
    #[arg(long = "image", value_parser = parse_image)]
    images: Vec<(String, PathBuf)>,
    /// Where pod sandboxes (logs, termination messages) go.
    #[arg(long, default_value = "/tmp/tessera-node-agent")]
    work_dir: PathBuf,
    /// Seconds between heartbeats (Lease renewals).
    #[arg(long, default_value_t = 5)]
    heartbeat_seconds: u64,
}

fn parse_image(text: &str) -> Result<(String, PathBuf), String> {
    let (prefix, path) = text.split_once('=').ok_or("expected PREFIX=PATH")?;
    Ok((prefix.to_string(), PathBuf::from(path)))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let Some((key, value)) = args.pool_label.split_once('=') else {
        eprintln!("node-agent: --pool-label must be KEY=VALUE");
        return std::process::ExitCode::from(2);
    };
    let mut nodes: Vec<NodeSpec> = (1..=args.gpu_nodes)
        .map(|i| NodeSpec::gpu(&format!("gpu-node-{i}"), (key, value), args.gpus_per_node))
        .collect();
    nodes.extend((1..=args.cpu_nodes).map(|i| NodeSpec::cpu(&format!("cpu-node-{i}"))));
    let config = AgentConfig {
        nodes,
        images: args.images,
        work_dir: args.work_dir,
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
        extra_env: Vec::new(),
        // Pods that mount their ServiceAccount token reach the API server this agent uses.
        cluster_access: std::env::var_os("KUBECONFIG")
            .and_then(|path| ClusterAccess::from_kubeconfig(std::path::Path::new(&path)).ok()),
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("node-agent: no cluster: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let agent = match Agent::start(client, config).await {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("node-agent: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { futures::future::pending::<()>().await } } => {}
    }
    agent.shutdown().await;
    std::process::ExitCode::SUCCESS
}
