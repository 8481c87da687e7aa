//! `tessera-operator`: runs the RenderJob and RenderPool controllers against the cluster in
//! the current kubeconfig (or the in-cluster service account).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use tessera_operator::telemetry::{self, LogFormat};
use tessera_operator::{controller, http, leader, metrics::Metrics, permissions};
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Kubernetes operator that turns GPU nodes into a render farm"
)]
struct Args {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "TESSERA_LOG_FORMAT")]
    log_format: LogFormat,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "TESSERA_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Compete for a Lease and act only while holding it (run two replicas for HA).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "TESSERA_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "default", env = "POD_NAMESPACE")]
    lease_namespace: String,
    /// Seconds a lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!(%error, "tessera-operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(args: Args) -> tessera_operator::Result<()> {
    let client = kube::Client::try_default().await?;
    permissions::check(&client, &args.lease_namespace, args.leader_election).await?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let metrics = Metrics::new()?;
    let health = http::Health {
        ready: Arc::new(AtomicBool::new(false)),
        leading: Arc::new(AtomicBool::new(false)),
        metrics: metrics.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(http::serve(args.http_addr, health.clone(), {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }));

    let signal = shutdown_signal();
    tokio::pin!(signal);
    let result = if args.leader_election {
        let mut leadership = leader::compete(
            client.clone(),
            &args.lease_namespace,
            &identity,
            args.lease_seconds,
        )
        .await?;
        // A standby is ready (its server answers) but not leading.
        health.ready.store(true, Ordering::Relaxed);
        info!(%identity, "waiting to lead");
        tokio::select! {
            acquired = leadership.acquired() => acquired?,
            _ = &mut signal => {
                leadership.release().await;
                let _ = stop_tx.send(true);
                return Ok(());
            }
        }
        info!(%identity, "leading");
        health.leading.store(true, Ordering::Relaxed);
        health.ready.store(false, Ordering::Relaxed);
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<bool>();
        let controllers = controller::run(
            client,
            metrics,
            identity.clone(),
            health.ready.clone(),
            async move {
                let _ = lost_rx.await;
            },
        );
        tokio::pin!(controllers);
        let outcome = tokio::select! {
            result = &mut controllers => result,
            _ = leadership.lost() => {
                warn!("lost the lease; stopping at once");
                std::process::exit(1);
            }
            _ = &mut signal => {
                info!("shutting down");
                let _ = lost_tx.send(true);
                let result = controllers.await;
                leadership.release().await;
                result
            }
        };
        outcome
    } else {
        health.leading.store(true, Ordering::Relaxed);
        controller::run(
            client,
            metrics,
            identity,
            health.ready.clone(),
            shutdown_signal(),
        )
        .await
    };
    let _ = stop_tx.send(true);
    let _ = server.await;
    result
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "tessera".into())
}
