//! Prometheus metrics (DESIGN §9), served on `/metrics`.

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Shards by state, per pool and namespace.
    pub shards: IntGaugeVec,
    /// Shards waiting for capacity, per pool.
    pub queue_depth: IntGaugeVec,
    /// Seconds a finished shard attempt ran, per pool and outcome.
    pub shard_duration: HistogramVec,
    /// GPU-seconds per namespace and job (finished attempts).
    pub gpu_seconds: CounterVec,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub pods_created: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let shards = IntGaugeVec::new(
            Opts::new("tessera_shards", "Shards by state per pool and namespace"),
            &["pool", "namespace", "state"],
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new("tessera_queue_depth", "Shards waiting for pool capacity"),
            &["pool"],
        )?;
        let shard_duration = HistogramVec::new(
            HistogramOpts::new(
                "tessera_shard_duration_seconds",
                "Run time of finished shard attempts",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 16)?),
            &["pool", "outcome"],
        )?;
        let gpu_seconds = CounterVec::new(
            Opts::new(
                "tessera_gpu_seconds_total",
                "GPU time of finished shard attempts",
            ),
            &["namespace", "job"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("tessera_reconcile_duration_seconds", "Reconcile time")
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["kind"],
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "tessera_reconcile_errors_total",
                "Failed reconciles by error kind",
            ),
            &["kind", "error"],
        )?;
        let pods_created = IntCounterVec::new(
            Opts::new("tessera_pods_created_total", "Pods created by role"),
            &["role"],
        )?;
        registry.register(Box::new(shards.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(shard_duration.clone()))?;
        registry.register(Box::new(gpu_seconds.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(pods_created.clone()))?;
        Ok(Self {
            registry,
            shards,
            queue_depth,
            shard_duration,
            gpu_seconds,
            reconcile_duration,
            reconcile_errors,
            pods_created,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = encoder.encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
