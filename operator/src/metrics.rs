//! Prometheus metrics (docs/architecture.md §10), served on `/metrics`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::api::{NamespaceUsage, RenderPoolStatus, ShardCounts};
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const SHARD_STATES: [&str; 4] = ["succeeded", "failed", "active", "waiting"];

#[derive(Clone)]
pub struct Metrics {
    /// The namespaces each pool last reported shards for, so a namespace whose jobs all
    /// finished drops out of `tessera_shards` instead of keeping its last counts.
    shard_namespaces: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
    pub registry: Registry,
    /// Shards by state, per pool and namespace.
    pub shards: IntGaugeVec,
    /// Shards waiting for capacity, per pool.
    pub queue_depth: IntGaugeVec,
    /// Seconds a finished shard attempt ran, per pool and outcome.
    pub shard_duration: HistogramVec,
    /// GPU-seconds per namespace and job (finished attempts).
    pub gpu_seconds: CounterVec,
    pub shards_rendered: IntCounterVec,
    pub pool_usage_gpu_seconds: GaugeVec,
    pub pool_usage_shards: GaugeVec,
    pub pool_usage_cost: GaugeVec,
    pub pool_period_gpu_seconds: GaugeVec,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub pods_created: IntCounterVec,
    /// Per pool, from its status: ready matching nodes, their GPUs, shard slots, running shards.
    pub pool_ready_nodes: IntGaugeVec,
    pub pool_gpus: IntGaugeVec,
    pub pool_shard_capacity: IntGaugeVec,
    pub pool_running_shards: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let shards = IntGaugeVec::new(
            Opts::new(
                "tessera_shards",
                "Shards of unfinished jobs by state, per pool and namespace",
            ),
            &["pool", "namespace", "state"],
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "tessera_queue_depth",
                "Shards of the pool's unfinished jobs waiting to start",
            ),
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
                "GPU time of finished shard attempts, as they are accounted",
            ),
            &["pool", "namespace"],
        )?;
        let shards_rendered = IntCounterVec::new(
            Opts::new(
                "tessera_shards_rendered_total",
                "Shard attempts that succeeded, as they are accounted",
            ),
            &["pool", "namespace"],
        )?;
        let usage_gauge =
            |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &["pool", "namespace"]);
        let pool_usage_gpu_seconds = usage_gauge(
            "tessera_pool_usage_gpu_seconds",
            "The pool's GPU-hour ledger: GPU-seconds per namespace, all time, deleted jobs included (survives restarts)",
        )?;
        let pool_usage_shards = usage_gauge(
            "tessera_pool_usage_shards",
            "The pool's GPU-hour ledger: succeeded shard attempts per namespace, all time",
        )?;
        let pool_usage_cost = usage_gauge(
            "tessera_pool_usage_cost",
            "The pool's GPU-hour ledger: cost per namespace at the pool's pricePerGpuHour",
        )?;
        let pool_period_gpu_seconds = usage_gauge(
            "tessera_pool_period_gpu_seconds",
            "GPU-seconds per namespace in its current budget period",
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("tessera_reconcile_duration_seconds", "Reconcile time").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ],
            ),
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
        let pool_gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["pool"]);
        let pool_ready_nodes = pool_gauge(
            "tessera_pool_ready_nodes",
            "Ready, schedulable nodes matching the pool's nodeSelector",
        )?;
        let pool_gpus = pool_gauge("tessera_pool_gpus", "GPUs of the pool's ready nodes")?;
        let pool_shard_capacity = pool_gauge(
            "tessera_pool_shard_capacity",
            "Shards the pool can run at once (GPUs / GPUs per shard, capped)",
        )?;
        let pool_running_shards = pool_gauge(
            "tessera_pool_running_shards",
            "Shard pods pending or running on the pool's live nodes",
        )?;
        registry.register(Box::new(pool_ready_nodes.clone()))?;
        registry.register(Box::new(pool_gpus.clone()))?;
        registry.register(Box::new(pool_shard_capacity.clone()))?;
        registry.register(Box::new(pool_running_shards.clone()))?;
        registry.register(Box::new(shards.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(shard_duration.clone()))?;
        registry.register(Box::new(gpu_seconds.clone()))?;
        registry.register(Box::new(shards_rendered.clone()))?;
        registry.register(Box::new(pool_usage_gpu_seconds.clone()))?;
        registry.register(Box::new(pool_usage_shards.clone()))?;
        registry.register(Box::new(pool_usage_cost.clone()))?;
        registry.register(Box::new(pool_period_gpu_seconds.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(pods_created.clone()))?;
        Ok(Self {
            shard_namespaces: Arc::default(),
            registry,
            shards,
            queue_depth,
            shard_duration,
            gpu_seconds,
            shards_rendered,
            pool_usage_gpu_seconds,
            pool_usage_shards,
            pool_usage_cost,
            pool_period_gpu_seconds,
            reconcile_duration,
            reconcile_errors,
            pods_created,
            pool_ready_nodes,
            pool_gpus,
            pool_shard_capacity,
            pool_running_shards,
        })
    }

    /// Sets a pool's `tessera_shards` (one writer: the pool reconciler) and `tessera_queue_depth`.
    pub fn set_pool_shards(&self, pool: &str, totals: &BTreeMap<String, ShardCounts>) {
        let mut last = self
            .shard_namespaces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let seen = last.entry(pool.to_string()).or_default();
        for gone in seen.iter().filter(|ns| !totals.contains_key(*ns)) {
            for state in SHARD_STATES {
                let _ = self.shards.remove_label_values(&[pool, gone, state]);
            }
        }
        *seen = totals.keys().cloned().collect();
        for (namespace, counts) in totals {
            for (state, count) in [
                ("succeeded", counts.succeeded),
                ("failed", counts.failed),
                ("active", counts.active),
                ("waiting", counts.waiting),
            ] {
                self.shards
                    .with_label_values(&[pool, namespace, state])
                    .set(i64::from(count));
            }
        }
        let waiting: u32 = totals.values().map(|c| c.waiting).sum();
        self.queue_depth
            .with_label_values(&[pool])
            .set(i64::from(waiting));
    }

    /// Sets a pool's capacity gauges from its status.
    pub fn set_pool_capacity(&self, pool: &str, status: &RenderPoolStatus) {
        for (gauge, value) in [
            (&self.pool_ready_nodes, status.ready_nodes),
            (&self.pool_gpus, status.gpu_capacity),
            (&self.pool_shard_capacity, status.shard_capacity),
            (&self.pool_running_shards, status.running_shards),
        ] {
            gauge.with_label_values(&[pool]).set(i64::from(value));
        }
    }

    /// The pool's GPU-hour ledger, one series per namespace that used it (a bounded set: the
    /// namespaces of the cluster).
    pub fn set_pool_usage(&self, pool: &str, usage: &[NamespaceUsage]) {
        for entry in usage {
            let labels = [pool, entry.namespace.as_str()];
            self.pool_usage_gpu_seconds
                .with_label_values(&labels)
                .set(entry.gpu_seconds);
            self.pool_usage_shards
                .with_label_values(&labels)
                .set(entry.shards as f64);
            if let Some(cost) = entry.cost {
                self.pool_usage_cost.with_label_values(&labels).set(cost);
            }
            if entry.period_start.is_some() {
                self.pool_period_gpu_seconds
                    .with_label_values(&labels)
                    .set(entry.period_gpu_seconds);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(active: u32, waiting: u32) -> ShardCounts {
        ShardCounts {
            active,
            waiting,
            ..Default::default()
        }
    }

    #[test]
    fn a_namespace_whose_jobs_finished_drops_out_of_the_shard_gauge() {
        let metrics = Metrics::new().unwrap();
        let both = BTreeMap::from([
            ("a".to_string(), counts(2, 3)),
            ("b".to_string(), counts(1, 0)),
        ]);
        metrics.set_pool_shards("gpu", &both);
        assert_eq!(
            metrics
                .shards
                .with_label_values(&["gpu", "a", "waiting"])
                .get(),
            3
        );
        assert_eq!(metrics.queue_depth.with_label_values(&["gpu"]).get(), 3);
        metrics.set_pool_shards("gpu", &BTreeMap::from([("b".to_string(), counts(1, 1))]));
        let text = metrics.render();
        assert!(!text.contains("namespace=\"a\""), "{text}");
        assert!(
            text.contains("tessera_shards{namespace=\"b\",pool=\"gpu\",state=\"waiting\"} 1"),
            "{text}"
        );
        assert_eq!(metrics.queue_depth.with_label_values(&["gpu"]).get(), 1);
    }
}
