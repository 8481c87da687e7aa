//! `/metrics`, `/healthz` and `/readyz`.
//!
//! `/healthz` answers while the process runs. `/readyz` answers 200 once the caches are synced
//! (leader or standby alike: a standby is ready to take over), else 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Health {
    pub ready: Arc<AtomicBool>,
    pub leading: Arc<AtomicBool>,
    pub metrics: Metrics,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> String {
    health.metrics.render()
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    match (
        health.ready.load(Ordering::Relaxed),
        health.leading.load(Ordering::Relaxed),
    ) {
        (true, true) => (StatusCode::OK, "ready (leader)"),
        (true, false) => (StatusCode::OK, "ready (standby)"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "caches not synced"),
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}
