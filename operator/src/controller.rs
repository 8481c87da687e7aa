//! The RenderJob reconcile shell: observe → assess → admit → decide → apply → update status.
//!
//! Only this module (and `pool_controller`) talk to the API. Every decision is made by the pure
//! functions in `observe`, `admission` and `decide`. Pods are read from one shared reflector
//! (never listed per reconcile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use crate::admission::{self, Demand};
use crate::api::{RenderJob, RenderPool};
use crate::decide::{self, DecideInput, Decision};
use crate::metrics::Metrics;
use crate::observe;
use crate::pool_controller::{self, node_is_ready};
use crate::{Error, Result, labels};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tessera-operator";

/// Pods created but not yet seen in the cache; counted as active so that a stale cache cannot
/// over-admit. Entries expire: a pod that never shows up was refused or deleted.
#[derive(Default)]
pub struct Expectations {
    created: Mutex<HashMap<String, (String, Instant)>>,
}

const EXPECTATION_TTL: Duration = Duration::from_secs(30);

impl Expectations {
    pub fn expect(&self, pod_key: String, pool: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.insert(pod_key, (pool.to_string(), Instant::now()));
        }
    }

    /// Expected pods of `pool` that the cache does not hold yet.
    pub fn pending_in_pool(&self, pool: &str, pods: &Store<Pod>) -> u32 {
        let Ok(mut created) = self.created.lock() else {
            return 0;
        };
        created.retain(|key, (_, at)| {
            at.elapsed() < EXPECTATION_TTL
                && key
                    .split_once('/')
                    .is_none_or(|(ns, name)| pods.get(&ObjectRef::new(name).within(ns)).is_none())
        });
        created.values().filter(|(p, _)| p == pool).count() as u32
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub jobs: Store<RenderJob>,
    pub pods: Store<Pod>,
    pub pools: Store<RenderPool>,
    pub nodes: Store<Node>,
    pub namespaces: Store<Namespace>,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub expectations: Expectations,
    /// Admission and pod creation for a pool happen under this lock, so two jobs reconciled
    /// at once cannot both take the last free slot.
    pub admission: tokio::sync::Mutex<()>,
}

/// Fails start-up loudly when the CRDs are missing or RBAC does not allow listing them.
pub async fn check_crds(client: &Client) -> Result<()> {
    let params = ListParams::default().limit(1);
    Api::<RenderJob>::all(client.clone())
        .list(&params)
        .await
        .map_err(|source| Error::CrdMissing {
            crd: "renderjobs.tessera.dev".into(),
            source: Box::new(source),
        })?;
    Api::<RenderPool>::all(client.clone())
        .list(&params)
        .await
        .map_err(|source| Error::CrdMissing {
            crd: "renderpools.tessera.dev".into(),
            source: Box::new(source),
        })?;
    Ok(())
}

/// Whether the pool admits jobs from the job's namespace.
fn namespace_allowed(pool: &RenderPool, namespace: &str, namespaces: &Store<Namespace>) -> bool {
    let Some(selector) = &pool.spec.namespace_selector else {
        return true;
    };
    let Ok(selector) = kube::core::Selector::try_from(selector.clone()) else {
        return false;
    };
    namespaces
        .get(&ObjectRef::new(namespace))
        .is_some_and(|ns| selector.matches(ns.labels()))
}

fn owned_by<'a>(uid: &'a str, pods: &'a [Arc<Pod>]) -> impl Iterator<Item = &'a Pod> + 'a {
    pods.iter()
        .filter(move |p| p.labels().get(labels::JOB_UID).map(String::as_str) == Some(uid))
        .map(|p| p.as_ref())
}

pub async fn reconcile_job(job: Arc<RenderJob>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = job
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = job.name_any();
    let span = info_span!("reconcile", job = %name, namespace = %namespace);
    async move {
        let _timer = ctx
            .metrics
            .reconcile_duration
            .with_label_values(&["RenderJob"])
            .start_timer();
        if job.meta().deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let uid = job.uid().ok_or(Error::MissingField("metadata.uid"))?;
        let now = Timestamp::now();
        let pool = ctx.pools.get(&ObjectRef::new(&job.spec.pool));
        let pool = pool.filter(|p| namespace_allowed(p, &namespace, &ctx.namespaces));
        let gpu_resource = pool
            .as_ref()
            .map(|p| p.spec.gpu.resource_name.clone())
            .unwrap_or_else(|| "nvidia.com/gpu".into());
        let pool_nodes = decide::PoolNodes {
            ready: pool
                .as_deref()
                .map(|p| {
                    pool_controller::ready_nodes(p, ctx.nodes.state().iter().map(|n| n.as_ref()))
                })
                .unwrap_or_default(),
            suspects: pool
                .as_deref()
                .map(pool_controller::suspects_of)
                .unwrap_or_default(),
        };

        let pods = ctx.pods.state();
        let node_ready = |node: &str| {
            ctx.nodes
                .get(&ObjectRef::new(node))
                .is_some_and(|n| node_is_ready(&n))
        };
        let observed = observe::observe(owned_by(&uid, &pods), &node_ready, &gpu_resource);
        let assessment = decide::assess(&job, &observed, &pool_nodes, now);

        let _admission = ctx.admission.lock().await;
        let grant = match &pool {
            Some(pool) => grant_for(&job, pool, &assessment, &ctx, &pods),
            None => 0,
        };
        let decision = decide::decide(DecideInput {
            job: &job,
            pool: pool.as_deref(),
            observed: &observed,
            assessment: &assessment,
            grant,
            now,
        });
        apply(&job, &namespace, &decision, &ctx).await?;
        drop(_admission);

        record_finished_shards(&job, &observed, &decision, &ctx);
        update_status(&job, &namespace, &decision, &ctx).await?;
        publish_events(&job, &decision, &ctx).await;
        if decision.delete_job {
            info!("ttlSecondsAfterFinished passed; deleting the RenderJob");
            Api::<RenderJob>::namespaced(ctx.client.clone(), &namespace)
                .delete(&name, &DeleteParams::background())
                .await?;
            return Ok(Action::await_change());
        }
        // The safety net: look again even if no event arrives.
        Ok(Action::requeue(
            decision.requeue_after.unwrap_or(Duration::from_secs(300)),
        ))
    }
    .instrument(span)
    .await
}

/// This job's share of its pool's free slots (see `admission`). The other jobs' demand comes
/// from their status and the pod cache; this job's from its fresh assessment.
fn grant_for(
    job: &RenderJob,
    pool: &RenderPool,
    assessment: &decide::Assessment,
    ctx: &Context,
    pods: &[Arc<Pod>],
) -> u32 {
    let pool_name = pool.name_any();
    let nodes = ctx.nodes.state();
    let capacity = pool_controller::pool_capacity(pool, nodes.iter().map(|n| n.as_ref())).shards;
    let mut active_by_job: HashMap<String, u32> = HashMap::new();
    let node_ready = |node: &str| {
        ctx.nodes
            .get(&ObjectRef::new(node))
            .is_some_and(|n| node_is_ready(&n))
    };
    for pod in pool_controller::active_shard_pods(&pool_name, pods, &node_ready) {
        if let Some(uid) = pod.labels().get(labels::JOB_UID) {
            *active_by_job.entry(uid.clone()).or_default() += 1;
        }
    }
    let in_flight = ctx.expectations.pending_in_pool(&pool_name, &ctx.pods);
    let jobs = ctx.jobs.state();
    let mut demands: Vec<Demand> = pool_controller::jobs_of_pool(&pool_name, &jobs)
        .filter(|other| other.uid() != job.uid() && !other.spec.suspend)
        .map(|other| Demand {
            namespace: other.namespace().unwrap_or_default(),
            name: other.name_any(),
            priority: other.spec.priority,
            created: other.creation_timestamp().map(|t| t.0).unwrap_or_default(),
            active: other
                .uid()
                .and_then(|u| active_by_job.get(&u).copied())
                .unwrap_or(0),
            ready: other.status.as_ref().map(|s| s.shards.waiting).unwrap_or(0),
        })
        .collect();
    let own_active = job
        .uid()
        .and_then(|u| active_by_job.get(&u).copied())
        .unwrap_or(0);
    demands.push(Demand {
        namespace: job.namespace().unwrap_or_default(),
        name: job.name_any(),
        priority: job.spec.priority,
        created: job.creation_timestamp().map(|t| t.0).unwrap_or_default(),
        active: own_active + in_flight,
        ready: if job.spec.suspend {
            0
        } else {
            assessment.ready.len() as u32
        },
    });
    let grants = admission::admit(capacity, &demands);
    tracing::debug!(pool = %pool_name, capacity, in_flight, ?demands, ?grants, "admission");
    grants
        .get(&(job.namespace().unwrap_or_default(), job.name_any()))
        .copied()
        .unwrap_or(0)
}

/// Creates and deletes pods. `AlreadyExists` on create and `NotFound` on delete are success:
/// names are deterministic, so a repeat is harmless.
async fn apply(job: &RenderJob, namespace: &str, decision: &Decision, ctx: &Context) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for pod in &decision.create {
        let pod_name = pod.name_any();
        let role = pod.labels().get(labels::ROLE).cloned().unwrap_or_default();
        match api.create(&PostParams::default(), pod).await {
            Ok(_) => {
                ctx.metrics.pods_created.with_label_values(&[&role]).inc();
                info!(pod = %pod_name, "created pod");
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error.into()),
        }
        ctx.expectations
            .expect(format!("{namespace}/{pod_name}"), &job.spec.pool);
    }
    for pod_name in &decision.delete {
        match api.delete(pod_name, &DeleteParams::default()).await {
            Ok(_) => info!(pod = %pod_name, "deleted pod"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Observes the run time of shards that succeeded or failed for good since the last status.
fn record_finished_shards(
    job: &RenderJob,
    observed: &observe::Observed,
    decision: &Decision,
    ctx: &Context,
) {
    let old = job.status.clone().unwrap_or_default();
    let newly = |new: &tessera_shard::IndexSet, old: &tessera_shard::IndexSet| -> Vec<u32> {
        new.iter().filter(|s| !old.contains(*s)).collect()
    };
    for (outcome, shards) in [
        (
            "succeeded",
            newly(&decision.status.succeeded_shards, &old.succeeded_shards),
        ),
        (
            "failed",
            newly(&decision.status.failed_shards, &old.failed_shards),
        ),
    ] {
        for shard in shards {
            let attempt = observed.shards.get(&shard).and_then(|a| a.last());
            if let Some(seconds) =
                attempt.and_then(|a| Some(a.finished?.duration_since(a.started?).as_secs_f64()))
            {
                ctx.metrics
                    .shard_duration
                    .with_label_values(&[&job.spec.pool, outcome])
                    .observe(seconds);
            }
        }
    }
}

/// Writes status by server-side apply, and only when it changed.
async fn update_status(
    job: &RenderJob,
    namespace: &str,
    decision: &Decision,
    ctx: &Context,
) -> Result<()> {
    let old = job.status.clone().unwrap_or_default();
    if decision.status == old {
        return Ok(());
    }
    let added_gpu_seconds = decision.status.gpu_seconds - old.gpu_seconds;
    if added_gpu_seconds > 0.0 {
        ctx.metrics
            .gpu_seconds
            .with_label_values(&[namespace, &job.name_any()])
            .inc_by(added_gpu_seconds);
    }
    let body = serde_json::json!({
        "apiVersion": RenderJob::api_version(&()),
        "kind": RenderJob::kind(&()),
        "status": decision.status,
    });
    Api::<RenderJob>::namespaced(ctx.client.clone(), namespace)
        .patch_status(
            &job.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(())
}

async fn publish_events(job: &RenderJob, decision: &Decision, ctx: &Context) {
    let reference = job.object_ref(&());
    for note in &decision.events {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(note.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(%error, reason = %note.reason, "could not publish event");
        }
    }
}

fn error_policy<K: Resource<DynamicType = ()>>(
    _object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&());
    warn!(%error, %kind, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[&kind, error.metric_label()])
        .inc();
    Action::requeue(Duration::from_secs(5))
}

/// Builds the shared caches and runs both controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    metrics: Metrics,
    identity: String,
    ready: Arc<std::sync::atomic::AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    check_crds(&client).await?;
    let managed =
        watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));

    let (pods, pod_writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), managed)
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let (nodes, node_writer) = reflector::store();
    let node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .touched_objects();
    let (namespaces, namespace_writer) = reflector::store();
    let namespace_events = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(namespace_writer)
    .touched_objects();
    let (pools, pool_writer) = reflector::store();
    let pool_events = watcher(
        Api::<RenderPool>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(pool_writer)
    .touched_objects();

    let job_controller = Controller::new(
        Api::<RenderJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns_stream(pod_events);
    let jobs = job_controller.store();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        jobs,
        pods: pods.clone(),
        pools: pools.clone(),
        nodes: nodes.clone(),
        namespaces: namespaces.clone(),
        metrics,
        recorder,
        expectations: Expectations::default(),
        admission: tokio::sync::Mutex::new(()),
    });

    let (shutdown_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let signal = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let jobs_done = job_controller
        .graceful_shutdown_on(signal(&shutdown_tx))
        .run(reconcile_job, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let pool_controller = Controller::for_stream(pool_events, pools.clone())
        .watches_stream(node_events, {
            let pools = pools.clone();
            move |_node: Node| {
                pools
                    .state()
                    .iter()
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(signal(&shutdown_tx))
        .run(pool_controller::reconcile_pool, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let namespaces_done = namespace_events.for_each(|_| futures::future::ready(()));

    // Ready once the caches the reconcilers read are filled. Not the pools store: the pool
    // controller already waits on it, and a store wakes only one waiter (kube-rs DelayedInit),
    // so a second waiter there could sleep forever and /readyz would never answer 200.
    let ready_flag = ready.clone();
    let (pods_r, nodes_r, namespaces_r) = (pods.clone(), nodes.clone(), namespaces.clone());
    tokio::spawn(async move {
        let synced = futures::future::join3(
            pods_r.wait_until_ready(),
            nodes_r.wait_until_ready(),
            namespaces_r.wait_until_ready(),
        )
        .await;
        if synced.0.is_ok() && synced.1.is_ok() && synced.2.is_ok() {
            ready_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            info!("caches synced");
        }
    });
    tokio::spawn({
        let tx = shutdown_tx.clone();
        async move {
            shutdown.await;
            let _ = tx.send(());
        }
    });
    info!("controllers running");
    tokio::select! {
        _ = futures::future::join(jobs_done, pool_controller) => {}
        _ = namespaces_done => {}
    }
    info!("controllers stopped");
    Ok(())
}
