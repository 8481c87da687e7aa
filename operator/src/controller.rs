//! The RenderJob reconcile shell (docs/architecture.md, "The reconcile pipeline"):
//! observe → settle → assess → admit → decide → apply → update status.
//!
//! Only this module and `pool::reconcile` talk to the API. Every decision is made by the pure
//! functions in `observe`, `ledger`, `decide` and `admission`. A job finds its own pods through
//! the pod index (never by scanning the cache), and admission happens under its pool's lock,
//! which is released before any API write.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use crate::api::{RenderJob, RenderPool};
use crate::conditions::{self, CREATE_REFUSED};
use crate::context::{Context, FIELD_MANAGER, Refusals};
use crate::decide::depends::{self, DependencyState, FrameGate, FramesHeld};
use crate::decide::{
    self, DecideInput, Decision, EventNote, Gate, JobState, Planned, ValidJob, rerender,
};
use crate::issued::Write;
use crate::job_plan::SpecError;
use crate::job_usage;
use crate::kueue::{self, KueueCache};
use crate::ledger::{Ledger, Settled};
use crate::metrics::Metrics;
use crate::observe::{self, Observed};
use crate::pool::index::PodIndex;
use crate::pool::nodes::NodeViews;
use crate::pool::policy;
use crate::pool::scheduler::{self, JobDemand, Scheduler};
use crate::pool::status::suspects_of;
use crate::status;
use crate::{Error, Result, labels};

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
        let uid = job.uid().ok_or(Error::MissingField("metadata.uid"))?;
        if job.meta().deletion_timestamp.is_some() {
            // Being deleted (foreground): let its pods go, or the deletion waits on them.
            ctx.scheduler.withdraw_elsewhere(&uid, None);
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
            for key in ctx.index.pods_of(&uid, &namespace) {
                if ctx.pods.get(&key).is_some_and(|p| has_ledger_finalizer(&p)) {
                    release_pod(&api, &key.name).await?;
                }
            }
            if job_usage::has_usage_finalizer(&job) {
                job_usage::archive_usage(&job, &ctx).await?;
                job_usage::set_usage_finalizer(&job, &ctx, false).await?;
            }
            return Ok(Action::await_change());
        }
        if !job_usage::has_usage_finalizer(&job) {
            // The write changes the job's resourceVersion: the next reconcile decides.
            job_usage::set_usage_finalizer(&job, &ctx, true).await?;
            return Ok(Action::await_change());
        }
        let now = Timestamp::now();
        let pool = ctx
            .pools
            .get(&ObjectRef::new(&job.spec.pool))
            .filter(|p| namespace_allowed(p, &namespace, &ctx.namespaces));
        forget_accounted_departures(&job, &uid, &namespace, &ctx.index);
        let Pass {
            mut decision,
            settled,
        } = pass(&job, pool.as_deref(), &ctx.caches(), now);
        let outcome = apply(&namespace, &uid, &decision, &ctx).await?;
        note_refusals(&mut decision, &outcome, &uid, &job, now, &ctx.refusals);
        finish(&job, &namespace, decision, &settled, &ctx).await
    }
    .instrument(span)
    .await
}

/// Departed shard pods whose attempt the job's recorded ledger holds need no remembering.
fn forget_accounted_departures(job: &RenderJob, uid: &str, namespace: &str, index: &PodIndex) {
    let departed = index.departed_of(uid, namespace);
    if departed.is_empty() {
        return;
    }
    let recorded = Ledger::from_status(&job.status.clone().unwrap_or_default());
    let accounted: Vec<String> = departed
        .iter()
        .filter(|pod| {
            let label = |key: &str| pod.labels().get(key).and_then(|v| v.parse::<u32>().ok());
            matches!((label(labels::SHARD), label(labels::ATTEMPT)),
                (Some(shard), Some(attempt)) if recorded.is_settled(shard, attempt))
        })
        .map(|pod| pod.name_any())
        .collect();
    index.forget_departed(uid, &accounted);
}

/// What one reconcile of a job reads besides the job and its pool.
pub struct Caches<'a> {
    pub pods: &'a Store<Pod>,
    pub nodes: &'a Store<Node>,
    pub jobs: &'a Store<RenderJob>,
    pub namespaces: &'a Store<Namespace>,
    pub index: &'a PodIndex,
    pub scheduler: &'a Scheduler,
    pub node_views: &'a NodeViews,
    pub refusals: &'a Refusals,
    pub kueue: &'a KueueCache,
}

impl Context {
    pub fn caches(&self) -> Caches<'_> {
        Caches {
            pods: &self.pods,
            nodes: &self.nodes,
            jobs: &self.jobs,
            namespaces: &self.namespaces,
            index: &self.index,
            scheduler: &self.scheduler,
            node_views: &self.node_views,
            refusals: &self.refusals,
            kueue: &self.kueue,
        }
    }
}

/// The decision of one pass and what it settled.
pub struct Pass {
    pub decision: Decision,
    pub settled: Vec<Settled>,
}

/// One reconcile pass up to the API writes: the job's own pods from the index, observe,
/// settle, assess, admit (under the pool's lock) and decide. No I/O; the only state it
/// changes is the pool scheduler's book. `pool` is `None` when the job's RenderPool does not
/// exist or does not admit its namespace.
pub fn pass(
    job: &RenderJob,
    pool: Option<&RenderPool>,
    caches: &Caches<'_>,
    now: Timestamp,
) -> Pass {
    let namespace = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let gpu_resource = pool
        .map(|p| p.spec.gpu.resource_name.clone())
        .unwrap_or_else(|| "nvidia.com/gpu".into());
    let nodes = caches.node_views.view(caches.nodes);
    let node_ready = |name: &str| nodes.is_ready(name);
    let own_pods: Vec<Arc<Pod>> = caches
        .index
        .pods_of(&uid, &namespace)
        .iter()
        .filter_map(|key| caches.pods.get(key))
        .collect();
    let departed = caches.index.departed_of(&uid, &namespace);
    let observed = observe::observe_with_departed(
        own_pods.iter().map(|p| p.as_ref()),
        departed.iter().map(|p| p.as_ref()),
        &node_ready,
        &gpu_resource,
    );
    let pool_name = pool.map(|p| p.name_any());
    caches
        .scheduler
        .withdraw_elsewhere(&uid, pool_name.as_deref());
    let unplanned = |state| Pass {
        decision: decide::decide(DecideInput {
            job,
            state,
            observed: &observed,
            grant: 0,
            dependencies: Gate::Open,
            frames_held: None,
            policy: Default::default(),
            now,
        }),
        settled: Vec::new(),
    };
    let Some(pool) = pool else {
        return unplanned(JobState::NoPool);
    };
    let valid = match ValidJob::new(job, pool) {
        Ok(valid) => valid,
        Err(error) => return unplanned(JobState::Invalid(error)),
    };
    // A pending re-render rewrites the recorded status first: the rest of the pass sees its
    // shards as not rendered and their frames as not merged.
    let rewritten: RenderJob;
    let recorded = job.status.clone().unwrap_or_default();
    let (job, valid, rerendered) = match rerender::apply(
        job.spec.rerender.as_ref(),
        &valid.plan,
        &recorded,
        job.metadata.generation,
        now,
    ) {
        None => (job, valid, None),
        Some(status) => {
            let record = status.rerenders.last().cloned();
            rewritten = RenderJob {
                status: Some(status),
                ..job.clone()
            };
            match ValidJob::new(&rewritten, pool) {
                Ok(valid) => (&rewritten, valid, record),
                Err(error) => return unplanned(JobState::Invalid(error)),
            }
        }
    };
    // The pool's policy for the job's namespace: its priority, budget and concurrency cap.
    let mut verdict = namespace_verdict(pool, job, caches.namespaces);
    if let Some(message) = &verdict.refused {
        return unplanned(JobState::Invalid(SpecError::PriorityAboveLimit(
            message.clone(),
        )));
    }
    let recorded = job.status.clone().unwrap_or_default();
    let mut ledger = Ledger::from_status(&recorded);
    let settled = ledger.settle(
        &observed,
        valid.shard_count(),
        &recorded.succeeded_shards,
        now,
    );
    let pool_nodes = decide::PoolNodes {
        ready: nodes.pool(pool).ready.clone(),
        suspects: suspects_of(pool),
    };
    let mut assessment = decide::assess(&valid, &observed, &ledger, &pool_nodes, now);
    // Frame by frame: shards whose frames are not merged yet in a dependency wait.
    let (dependencies, frame_gate) = dependency_gate(valid.job, caches.jobs);
    let held = frame_gate.hold_back(&mut assessment.ready, &valid.plan);
    let frames_held = (!frame_gate.waiting_on.is_empty()).then(|| FramesHeld {
        shards: held,
        message: frame_gate.message(held),
    });
    // A job that names a Kueue LocalQueue runs what Kueue admits.
    let queue = kueue::job::gate_for(&valid, &observed, verdict.priority, caches.kueue, now);
    if let Some(queue) = &queue {
        verdict.queue_cap = Some(queue.admitted);
        verdict.queue = queue.note.clone();
    }
    let planned = Planned {
        job: &valid,
        assessment: &assessment,
        ledger: &ledger,
        settled: &settled,
    };
    let mut decision = admit_and_decide(
        planned,
        &observed,
        (dependencies, frames_held, verdict),
        now,
        caches,
    );
    if let Some(queue) = queue {
        kueue::job::follow(&mut decision, queue, &observed, &valid.namespace);
    }
    if let Some(record) = rerendered {
        decision.events.push(EventNote {
            warning: false,
            reason: "Rerender".into(),
            note: format!(
                "spec.rerender generation {}: shards {} render again (frames {})",
                record.generation,
                if record.shards.is_empty() {
                    "none".to_string()
                } else {
                    record.shards.to_string()
                },
                if record.frames.is_empty() {
                    "none"
                } else {
                    &record.frames
                },
            ),
        });
    }
    Pass { decision, settled }
}

/// The pool's namespace policy applied to the job, with its namespace's usage from the pool's
/// status (written by the pool reconciler).
fn namespace_verdict(
    pool: &RenderPool,
    job: &RenderJob,
    namespaces: &Store<Namespace>,
) -> policy::Verdict {
    let namespace = job.namespace().unwrap_or_default();
    let labels = namespaces
        .get(&ObjectRef::new(&namespace))
        .map(|ns| ns.labels().clone())
        .unwrap_or_default();
    let usage = pool
        .status
        .as_ref()
        .and_then(|s| s.usage.iter().find(|u| u.namespace == namespace));
    policy::verdict(
        policy::policy_for(pool, &labels),
        &namespace,
        job.spec.priority,
        usage,
    )
}

/// What `spec.dependsOn` allows, from the job cache: each dependency's state and any cycle
/// through this job; and the frame-by-frame dependencies still rendering.
fn dependency_gate(job: &RenderJob, jobs: &Store<RenderJob>) -> (Gate, FrameGate) {
    if job.spec.depends_on.is_empty() {
        return (Gate::Open, FrameGate::default());
    }
    let namespace = job.namespace().unwrap_or_default();
    let get = |name: &str| jobs.get(&ObjectRef::new(name).within(&namespace));
    let states: Vec<(String, DependencyState)> = job
        .spec
        .depends_on
        .iter()
        .map(|d| {
            let state = DependencyState::of(get(&d.name).as_deref(), d.frame_by_frame);
            (d.name.clone(), state)
        })
        .collect();
    let depends_on = |name: &str| -> Vec<String> {
        get(name)
            .map(|j| j.spec.depends_on.iter().map(|d| d.name.clone()).collect())
            .unwrap_or_default()
    };
    let cycle = depends::find_cycle(&job.name_any(), &depends_on, 1024);
    (
        depends::gate(&states, cycle.as_deref()),
        FrameGate::of(&states),
    )
}

/// Shard pods one pass creates at most: 256, or 5 % of the job's shards if more (a pass costs
/// time in proportion to the job's shards, so a big job takes bigger steps). The rest of the
/// grant goes to the next pass, which the creates' watch events wake. A pass that created a
/// job's whole grant (thousands of pods on a large pool) held that job's status and clean-up
/// for a minute on a saturated API server, and kept slots granted from a view of the pool that
/// had long changed: 20 jobs from 5 namespaces got shares up to 20 % off fair, 1 % with steps.
fn shard_starts_per_pass(shard_count: u32) -> u32 {
    (shard_count / 20).max(256)
}

/// Admission and the decision, under the pool's lock: the grant, the pure decision, and the
/// creates it decided recorded as in flight. The lock is released before any API write.
fn admit_and_decide(
    planned: Planned<'_>,
    observed: &Observed,
    (dependencies, frames_held, verdict): (Gate, Option<FramesHeld>, policy::Verdict),
    now: Timestamp,
    caches: &Caches<'_>,
) -> Decision {
    let (valid, assessment) = (planned.job, planned.assessment);
    let job = valid.job;
    let pool_name = valid.pool.name_any();
    let nodes = caches.node_views.view(caches.nodes);
    let capacity = nodes.pool(valid.pool).capacity.shards;
    let node_ready = |name: &str| nodes.is_ready(name);
    let holders = caches
        .index
        .slot_holders(&labels::job_label_value(&pool_name), &node_ready);
    let finished = job.status.as_ref().is_some_and(|s| {
        conditions::is_true(&s.conditions, conditions::COMPLETE)
            || conditions::is_true(&s.conditions, conditions::FAILED)
    });
    let backing_off = caches.refusals.backing_off(&valid.uid).is_some();
    // Pods that cannot start (a missing Secret, a bad image) ask for no more slots.
    let stuck = decide::blocked(valid, observed, now).is_some_and(|b| b.stops_creates);
    // A job waiting for its dependencies asks for no slots either.
    let started = job.status.as_ref().is_some_and(|s| s.start_time.is_some());
    let gated = !started && dependencies != Gate::Open;
    // A namespace whose GPU-hour budget is spent starts no new shard.
    let spent = verdict.budget_spent.is_some();
    let wants = !(job.spec.suspend || finished || backing_off || stuck || gated || spent);
    // Speculative re-runs ask for slots too; the grant serves ready shards first.
    let mut ready = if wants {
        (assessment.ready.len() + assessment.speculative.len()) as u32
    } else {
        0
    };
    if let Some(cap) = verdict.queue_cap {
        // Shards Kueue has not admitted wait for Kueue, not for the pool's lower priorities.
        ready = ready.min(cap.saturating_sub(kueue::job::active_shards(observed)));
    }
    let demand = JobDemand {
        namespace: valid.namespace.clone(),
        name: valid.name.clone(),
        priority: verdict.priority,
        namespace_cap: verdict.max_concurrent_shards,
        job_cap: verdict.queue_cap,
        created: job.creation_timestamp().map(|t| t.0).unwrap_or_default(),
        ready,
    };
    let alive = |uid: &str, demand: &JobDemand| {
        caches
            .jobs
            .get(&ObjectRef::new(&demand.name).within(&demand.namespace))
            .is_some_and(|j| j.uid().as_deref() == Some(uid))
    };
    let mut verdict = verdict;
    if let Some(cap) = verdict.max_concurrent_shards {
        let held: u32 = holders
            .values()
            .filter(|h| h.namespace == valid.namespace)
            .map(|h| h.slots)
            .sum();
        if held >= cap && demand.ready > 0 {
            verdict.cap_reached = Some(format!(
                "namespace {} runs {held} shards on pool {pool_name}; its policy allows {cap} at once",
                valid.namespace
            ));
        }
    }
    let book = caches.scheduler.book(&pool_name);
    let mut book = scheduler::lock(&book);
    let (priority, ready) = (demand.priority, demand.ready);
    let grant = book.admit(
        &valid.uid,
        demand,
        capacity,
        &holders,
        // A pass sees the pods the index lists *and* the cache holds (`pass`); while a watch
        // relists, the index has new pods at once and the cache only at the relist's end.
        // Until a pass can see its pod, the create is still expected: ending it earlier made
        // the pass create the pod again, answered 409.
        &|key| caches.index.contains(key) && caches.pods.get(key).is_some(),
        &alive,
    );
    tracing::debug!(pool = %pool_name, capacity, grant, "admission");
    // Shards that could start but got no slot take those of lower-priority jobs, unless the
    // namespace's own cap is what holds them back.
    let preemption = valid.pool.spec.preemption.clone().unwrap_or_default();
    let unserved = (assessment.ready.len() as u32)
        .min(ready)
        .saturating_sub(grant);
    let evict = if preemption.enabled
        && unserved > 0
        && verdict.cap_reached.is_none()
        && book.may_preempt(&valid.uid, priority, &holders, preemption.max_per_minute)
    {
        let pods = caches
            .index
            .slot_pods(&labels::job_label_value(&pool_name), &node_ready);
        book.preempt(
            &valid.uid,
            priority,
            unserved as usize,
            &pods,
            preemption.max_per_minute,
        )
    } else {
        Vec::new()
    };
    let mut decision = decide::decide(DecideInput {
        job,
        state: JobState::Planned(planned),
        observed,
        grant: grant.min(shard_starts_per_pass(valid.shard_count())),
        dependencies,
        frames_held,
        policy: verdict,
        now,
    });
    // Pods created a moment ago that the watch has not delivered yet look missing to this
    // pass: creating them again would only be answered 409.
    decision
        .create
        .retain(|p| !book.is_expected(&ObjectRef::new(&p.name_any()).within(&valid.namespace)));
    book.expect(
        &valid.uid,
        decision
            .create
            .iter()
            .filter(|p| is_shard_pod(p))
            .map(|p| ObjectRef::new(&p.name_any()).within(&valid.namespace)),
    );
    if !evict.is_empty() {
        let pods: Vec<String> = evict
            .iter()
            .map(|v| format!("{}/{}", v.namespace, v.pod))
            .collect();
        decision.events.push(EventNote {
            warning: false,
            reason: "Preempting".into(),
            note: format!(
                "evicting {} of lower priority for this job (priority {priority}): {}",
                pods.len(),
                pods.join(", ")
            ),
        });
    }
    decision.evict = evict
        .into_iter()
        .map(|v| {
            (
                v.namespace,
                v.pod,
                format!(
                    "job {}/{} (priority {priority})",
                    valid.namespace, valid.name
                ),
            )
        })
        .collect();
    decision
}

/// Pod creates the API server refused in this pass (quota, admission webhook, policy).
#[derive(Debug, Default)]
struct ApplyOutcome {
    created: usize,
    refused: Option<(String, String)>,
}

/// Creates, releases and deletes pods. `AlreadyExists` on create and `NotFound` on delete are
/// success: names are deterministic, so a repeat is harmless. A create the API server refuses
/// stops the creates of this pass; the ones not made are no longer expected.
async fn apply(
    namespace: &str,
    uid: &str,
    decision: &Decision,
    ctx: &Arc<Context>,
) -> Result<ApplyOutcome> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let mut outcome = ApplyOutcome::default();
    // Merge and manifest pods hold no slot, so the pool's book does not expect them: the same
    // lag is met by remembering their creates as issued.
    let others: Vec<String> = decision
        .create
        .iter()
        .filter(|p| !is_shard_pod(p))
        .map(|p| p.name_any())
        .collect();
    ctx.issued.forget_shown(Write::Create, namespace, |name| {
        ctx.pods
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    });
    let fresh = ctx.issued.fresh(Write::Create, namespace, &others);
    let creates: Vec<Pod> = decision
        .create
        .iter()
        .filter(|p| is_shard_pod(p) || fresh.contains(&p.name_any()))
        .cloned()
        .collect();
    // Slow start, as the Job controller does: batches of 1, 2, 4, … creates at once, so a
    // refusal (a quota) costs a few requests, not hundreds, and a healthy pass is not serial.
    let mut pending: &[Pod] = &creates;
    let mut batch = 1;
    let mut failure = None;
    let stopping = || ctx.stopping.load(std::sync::atomic::Ordering::Relaxed);
    while !pending.is_empty() && outcome.refused.is_none() && failure.is_none() && !stopping() {
        let (now, later) = pending.split_at(batch.min(pending.len()));
        pending = later;
        // The pass decided on the pods it saw when it began; a create of the previous pass
        // that the watch delivered since (a pass of hundreds of creates lasts seconds, and
        // the watch lags them) is not made again: it could only be answered 409.
        let now: Vec<&Pod> = now
            .iter()
            .filter(|pod| {
                let key = ObjectRef::new(&pod.name_any()).within(namespace);
                ctx.pods.get(&key).is_none()
            })
            .collect();
        // Owned futures: the controller's future must not borrow across these awaits.
        let creates = now.iter().map(|&pod| {
            let (api, pod) = (api.clone(), pod.clone());
            async move { api.create(&PostParams::default(), &pod).await }
        });
        let results = futures::future::join_all(creates).await;
        for (pod, result) in now.iter().zip(results) {
            let pod_name = pod.name_any();
            match result {
                Ok(_) => {
                    let role = pod.labels().get(labels::ROLE).cloned().unwrap_or_default();
                    ctx.metrics.pods_created.with_label_values(&[&role]).inc();
                    outcome.created += 1;
                    info!(pod = %pod_name, "created pod");
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(kube::Error::Api(status)) if is_refusal(status.code) => {
                    warn!(pod = %pod_name, message = %status.message, "pod create refused");
                    forget(ctx, pod, namespace);
                    outcome
                        .refused
                        .get_or_insert((pod_name, status.message.clone()));
                }
                Err(error) => {
                    forget(ctx, pod, namespace);
                    failure.get_or_insert(error);
                }
            }
        }
        batch = (batch * 2).min(MAX_PARALLEL_WRITES);
    }
    for pod in pending {
        forget(ctx, pod, namespace); // not created this pass
    }
    if let Some(error) = failure {
        return Err(error.into());
    }
    if outcome.created > 0 && outcome.refused.is_none() {
        ctx.refusals.cleared(uid);
    }
    let release = ctx
        .issued
        .fresh(Write::Release, namespace, &decision.release);
    let releases = release.iter().cloned().map(|name| {
        let api = api.clone();
        async move { release_pod(&api, &name).await }
    });
    let released = futures::stream::iter(releases)
        .buffer_unordered(MAX_PARALLEL_WRITES)
        .try_collect::<Vec<()>>()
        .await;
    if released.is_err() {
        ctx.issued.failed(Write::Release, namespace, &release);
    }
    released?;
    for (victim_namespace, pod, by) in &decision.evict {
        preempt_pod(&ctx.client, victim_namespace, pod, by).await?;
    }
    if let Some(write) = &decision.workload {
        kueue::write(&ctx.client, namespace, write).await?;
    }
    let delete = ctx.issued.fresh(Write::Delete, namespace, &decision.delete);
    let deletes = delete.iter().cloned().map(|name| {
        let api = api.clone();
        async move { delete_pod(&api, &name).await }
    });
    let deleted = futures::stream::iter(deletes)
        .buffer_unordered(MAX_PARALLEL_WRITES)
        .try_collect::<Vec<()>>()
        .await;
    if deleted.is_err() {
        ctx.issued.failed(Write::Delete, namespace, &delete);
    }
    deleted?;
    if !decision.collect_blocks.is_empty() && ctx.collecting.claim(uid) {
        let collect = ctx.issued.fresh_up_to(
            Write::Collect,
            uid,
            &decision.collect_blocks,
            MAX_BLOCKS_PER_PASS,
        );
        tokio::spawn(collect_in_background(
            ctx.clone(),
            api.clone(),
            uid.to_string(),
            collect,
        ));
    }
    let scope = format!("{uid}/merges");
    let merges = ctx
        .issued
        .fresh(Write::Collect, &scope, &decision.collect_merges);
    for ids in merges.chunks(MAX_MERGES_PER_REQUEST) {
        if let Err(error) = collect_merges(&ctx.client, &api, uid, ids).await {
            ctx.issued.failed(Write::Collect, &scope, &merges);
            return Err(error);
        }
    }
    Ok(outcome)
}

/// Merge ids named in one delete-collection request (its label selector, in the URL).
const MAX_MERGES_PER_REQUEST: usize = 64;

/// Blocks named in one delete-collection request (its label selector): 4 × 256 pods, so that
/// neither the API server's answer nor the burst of deletion events is large.
const MAX_BLOCKS_PER_REQUEST: usize = 4;
/// Blocks collected by one background collection; the deletion events of its pods wake the
/// job's next pass.
const MAX_BLOCKS_PER_PASS: usize = 4 * MAX_BLOCKS_PER_REQUEST;

/// Collects blocks of the job's succeeded pods, one request after another, while the job's
/// passes go on: on a busy API server a request deletes a thousand pods in 10–25 s, and a
/// pass that waited for four of them left the job's slots idle for up to a minute (100,000
/// shards on 1,000 nodes: creates stopped while the pool drained from 8,000 running pods to
/// 4,200). One collection per job is in flight at a time; a failed one is issued again by a
/// later pass.
async fn collect_in_background(ctx: Arc<Context>, api: Api<Pod>, uid: String, blocks: Vec<u32>) {
    for (i, chunk) in blocks.chunks(MAX_BLOCKS_PER_REQUEST).enumerate() {
        if let Err(error) = collect_blocks(&ctx.client, &api, &uid, chunk).await {
            warn!(%error, "could not delete the succeeded shard pods of blocks");
            // The blocks of earlier requests are collected; the rest are issued again.
            ctx.issued
                .failed(Write::Collect, &uid, &blocks[i * MAX_BLOCKS_PER_REQUEST..]);
            break;
        }
    }
    ctx.collecting.release(&uid);
}

/// Deletes the succeeded shard pods of these blocks of the job (`decide/cleanup.rs`), all in
/// one request: the job's UID, the blocks and the phase select exactly those pods. The API
/// server answers with every pod it deleted; asked for metadata only, and read as text that
/// is dropped, that answer costs ~1 KiB a pod instead of a full `Pod` each.
async fn collect_blocks(
    client: &kube::Client,
    api: &Api<Pod>,
    uid: &str,
    blocks: &[u32],
) -> Result<()> {
    let listed: Vec<String> = blocks.iter().map(u32::to_string).collect();
    let selector = job_pods_selector(uid, labels::ROLE_SHARD, labels::SHARD_BLOCK, &listed);
    delete_succeeded(client, api, &selector).await?;
    info!(blocks = %listed.join(","), "deleted the succeeded shard pods of blocks");
    Ok(())
}

/// Deletes finished merge pods of the job, named by their merge ids, in one request.
async fn collect_merges(
    client: &kube::Client,
    api: &Api<Pod>,
    uid: &str,
    ids: &[String],
) -> Result<()> {
    let selector = job_pods_selector(uid, labels::ROLE_MERGE, labels::MERGE_ID, ids);
    delete_succeeded(client, api, &selector).await?;
    info!(merges = %ids.join(","), "deleted finished merge pods");
    Ok(())
}

/// The job's pods of `role` whose `label` is one of `values`.
fn job_pods_selector(uid: &str, role: &str, label: &str, values: &[String]) -> String {
    format!(
        "{}={uid},{}={role},{label} in ({})",
        labels::JOB_UID,
        labels::ROLE,
        values.join(",")
    )
}

/// One delete-collection request for the succeeded pods that `selector` selects.
async fn delete_succeeded(client: &kube::Client, api: &Api<Pod>, selector: &str) -> Result<()> {
    let params = ListParams::default()
        .labels(selector)
        .fields("status.phase=Succeeded");
    let mut request = kube::core::Request::new(api.resource_url())
        .delete_collection(&DeleteParams::default(), &params)
        .map_err(kube::Error::BuildRequest)?;
    request.headers_mut().insert(
        ::http::header::ACCEPT,
        ::http::HeaderValue::from_static(METADATA_ONLY),
    );
    client.request_text(request).await?;
    Ok(())
}

/// The answer of a list-shaped request as `PartialObjectMetadataList`, full objects where an
/// API server cannot.
const METADATA_ONLY: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

/// Evicts a shard pod for a higher-priority job: it is first annotated with who preempted it
/// (so its attempt is recorded as `Preempted`), then evicted through the Eviction API, which
/// keeps its grace period and PodDisruptionBudgets. A pod already gone, or an eviction a
/// budget refuses (429), is left for a later pass.
async fn preempt_pod(client: &kube::Client, namespace: &str, pod: &str, by: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let note = serde_json::json!({"metadata": {"annotations": {labels::PREEMPTED_BY: by}}});
    match api
        .patch(pod, &PatchParams::default(), &Patch::Merge(note))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    match api.evict(pod, &kube::api::EvictParams::default()).await {
        Ok(_) => {
            info!(pod = %pod, namespace = %namespace, by = %by, "preempted pod");
            Ok(())
        }
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 429) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Pod writes of one reconcile in flight at once.
const MAX_PARALLEL_WRITES: usize = 16;

async fn delete_pod(api: &Api<Pod>, pod_name: &str) -> Result<()> {
    match api.delete(pod_name, &DeleteParams::default()).await {
        Ok(_) => {
            info!(pod = %pod_name, "deleted pod");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// A refusal is the server saying no to this object (quota, admission webhook, policy,
/// validation), as opposed to a conflict, throttling or an outage, which are retried.
fn is_refusal(code: u16) -> bool {
    matches!(code, 400 | 403 | 422) || (code >= 500 && code != 503 && code != 504)
}

fn is_shard_pod(pod: &Pod) -> bool {
    pod.labels().get(labels::ROLE).map(String::as_str) == Some(labels::ROLE_SHARD)
}

/// A create that did not happen: neither expected by the pool's book nor issued.
fn forget(ctx: &Context, pod: &Pod, namespace: &str) {
    if !is_shard_pod(pod) {
        ctx.issued
            .failed(Write::Create, namespace, &[pod.name_any()]);
        return;
    }
    if let Some(pool) = pod.labels().get(labels::POOL) {
        let book = ctx.scheduler.book(pool);
        scheduler::lock(&book).forget(&ObjectRef::new(&pod.name_any()).within(namespace));
    }
}

fn has_ledger_finalizer(pod: &Pod) -> bool {
    pod.finalizers()
        .iter()
        .any(|f| f == labels::LEDGER_FINALIZER)
}

/// Every few seconds, lets go of pods whose RenderJob is gone (deleted in the background, or
/// by its TTL): no reconcile will account them any more, and their finalizer would keep them.
async fn release_orphans(ctx: Arc<Context>, jobs_listed: Arc<std::sync::atomic::AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        // Before the job cache is filled every job looks deleted.
        if !jobs_listed.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let exists = |namespace: &str, name: &str, uid: &str| {
            ctx.jobs
                .get(&ObjectRef::new(name).within(namespace))
                .is_some_and(|j| j.uid().as_deref() == Some(uid))
        };
        ctx.index.forget_departed_of_deleted_jobs(&exists);
        for key in ctx.index.orphans(&exists) {
            let namespace = key.namespace.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
            if let Err(error) = release_pod(&api, &key.name).await {
                warn!(%error, pod = %key.name, "could not release an orphaned pod");
            }
        }
    }
}

/// Drops the ledger finalizer (strategic merge: only that entry goes).
async fn release_pod(api: &Api<Pod>, pod_name: &str) -> Result<()> {
    let patch = serde_json::json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": [labels::LEDGER_FINALIZER]}
    });
    match api
        .patch(pod_name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// A refused create becomes a condition and an Event naming the server's message, and the job
/// backs off; the first pass whose creates go through clears the condition.
fn note_refusals(
    decision: &mut Decision,
    outcome: &ApplyOutcome,
    uid: &str,
    job: &RenderJob,
    now: Timestamp,
    refusals: &Refusals,
) {
    let generation = job.metadata.generation;
    match &outcome.refused {
        Some((pod, message)) => {
            let wait = refusals.refused(uid);
            let text = format!(
                "the API server refused pod {pod}: {message}; retrying in {} s",
                wait.as_secs()
            );
            let changed = !decision
                .status
                .conditions
                .iter()
                .any(|c| c.type_ == CREATE_REFUSED && c.status == "True" && c.message == text);
            conditions::set(
                &mut decision.status.conditions,
                CREATE_REFUSED,
                true,
                "FailedCreate",
                text.clone(),
                generation,
                now,
            );
            if changed {
                decision.events.push(EventNote {
                    warning: true,
                    reason: "FailedCreate".into(),
                    note: text,
                });
            }
            decision.requeue_after = Some(
                decision
                    .requeue_after
                    .map_or(wait, |r| r.min(wait).max(wait)),
            );
        }
        None if outcome.created > 0
            && conditions::is_true(&decision.status.conditions, CREATE_REFUSED) =>
        {
            conditions::set(
                &mut decision.status.conditions,
                CREATE_REFUSED,
                false,
                "Created",
                "shard pods are being created again",
                generation,
                now,
            );
        }
        None => {}
    }
}

/// The end of every reconcile: metrics for settled attempts, the status write, events, the
/// TTL deletion, and when to look again.
async fn finish(
    job: &RenderJob,
    namespace: &str,
    decision: Decision,
    settled: &[Settled],
    ctx: &Context,
) -> Result<Action> {
    let uid = job.uid().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    // Figures and plainly ended attempts, and written a moment ago: a later write carries
    // them (`settled` holds every attempt ended since the recorded status).
    if decision.status != old
        && status::may_wait(&old, &decision.status)
        && let Some(wait) = ctx.status_writes.wait(&uid, settled.len())
    {
        let done: Vec<&EventNote> = decision
            .events
            .iter()
            .filter(|e| !e.restated_by_next_write())
            .collect();
        publish_events(job, done, ctx).await;
        return Ok(Action::requeue(wait));
    }
    let written = match update_status(job, namespace, &decision, ctx).await {
        Ok(written) => written,
        // The cache was behind the API server: nothing was applied twice; look again soon.
        Err(Error::Kube(error)) if matches!(error.as_ref(), kube::Error::Api(s) if s.code == 409) =>
        {
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
        Err(error) => return Err(error),
    };
    if written {
        ctx.status_writes.written(&uid);
        record_settled(job, settled, &decision, namespace, ctx);
    }
    publish_events(job, &decision.events, ctx).await;
    if decision.delete_job {
        info!("ttlSecondsAfterFinished passed; deleting the RenderJob");
        Api::<RenderJob>::namespaced(ctx.client.clone(), namespace)
            .delete(&job.name_any(), &DeleteParams::background())
            .await?;
        return Ok(Action::await_change());
    }
    // The safety net: look again even if no event arrives.
    Ok(Action::requeue(
        decision.requeue_after.unwrap_or(Duration::from_secs(300)),
    ))
}

/// Metrics of what this pass settled, once the status that holds it is written.
fn record_settled(
    job: &RenderJob,
    settled: &[Settled],
    decision: &Decision,
    namespace: &str,
    ctx: &Context,
) {
    for attempt in settled {
        if let Some(seconds) = attempt.seconds {
            let outcome = if attempt.succeeded {
                "succeeded"
            } else {
                "failed"
            };
            ctx.metrics
                .shard_duration
                .with_label_values(&[&job.spec.pool, outcome])
                .observe(seconds);
        }
    }
    let old = job.status.as_ref().map(|s| s.gpu_seconds).unwrap_or(0.0);
    let added = decision.status.gpu_seconds - old;
    let labels = [job.spec.pool.as_str(), namespace];
    if added > 0.0 && added.is_finite() {
        ctx.metrics
            .gpu_seconds
            .with_label_values(&labels)
            .inc_by(added);
    }
    let succeeded = settled.iter().filter(|s| s.succeeded).count() as u64;
    if succeeded > 0 {
        ctx.metrics
            .shards_rendered
            .with_label_values(&labels)
            .inc_by(succeeded);
    }
}

/// Writes status by server-side apply, and only when it changed. The body carries the
/// resourceVersion the decision was computed from: a status computed from a stale cache is
/// refused (409) instead of applied, so the ledger never counts an attempt twice.
async fn update_status(
    job: &RenderJob,
    namespace: &str,
    decision: &Decision,
    ctx: &Context,
) -> Result<bool> {
    let old = job.status.clone().unwrap_or_default();
    if decision.status == old {
        return Ok(false);
    }
    let mut body = serde_json::json!({
        "apiVersion": RenderJob::api_version(&()),
        "kind": RenderJob::kind(&()),
        "status": decision.status,
    });
    if let Some(version) = job.resource_version() {
        body["metadata"] = serde_json::json!({"resourceVersion": version});
    }
    Api::<RenderJob>::namespaced(ctx.client.clone(), namespace)
        .patch_status(
            &job.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(true)
}

async fn publish_events(
    job: &RenderJob,
    events: impl IntoIterator<Item = &EventNote>,
    ctx: &Context,
) {
    let reference = job.object_ref(&());
    for event in events {
        if let Err(error) = ctx.events.publish(event, &reference).await {
            warn!(%error, reason = %event.reason, "could not publish event");
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

type Watched<K> = futures::stream::BoxStream<'static, std::result::Result<K, watcher::Error>>;

/// The Kueue caches and their watches: the operator's Workloads (their changes wake their
/// jobs) and the ResourceFlavors; streams that never yield when Kueue is not served.
fn kueue_watches(
    client: &Client,
    managed: watcher::Config,
    served: bool,
) -> (
    KueueCache,
    Watched<kueue::Workload>,
    Watched<kueue::ResourceFlavor>,
) {
    if !served {
        let (never_1, never_2) = (futures::stream::pending(), futures::stream::pending());
        return (KueueCache::unavailable(), never_1.boxed(), never_2.boxed());
    }
    let listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (workloads, workload_writer) = reflector::store();
    let workload_events = watcher(Api::<kueue::Workload>::all(client.clone()), managed)
        .default_backoff()
        .reflect(workload_writer)
        .inspect({
            let listed = listed.clone();
            move |event| {
                if matches!(event, Ok(watcher::Event::InitDone)) {
                    listed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .touched_objects()
        .boxed();
    let (flavors, flavor_writer) = reflector::store();
    let flavor_events = watcher(
        Api::<kueue::ResourceFlavor>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(flavor_writer)
    .touched_objects()
    .boxed();
    info!("Kueue's Workload API is served: jobs that name a LocalQueue render what Kueue admits");
    let cache = KueueCache {
        served: true,
        listed,
        workloads,
        flavors,
    };
    (cache, workload_events, flavor_events)
}

/// Reconciles the RenderJob that controls each pod the stream touches (what the controller's
/// `owns_stream` does), until the stream ends.
async fn wake_owners(
    pods: impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<RenderJob>>,
) {
    let mut pods = std::pin::pin!(pods);
    while let Some(event) = pods.next().await {
        let pod = match event {
            Ok(pod) => pod,
            Err(error) => {
                warn!(%error, "pod watch");
                continue;
            }
        };
        let owner = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "RenderJob");
        if let (Some(owner), Some(namespace)) = (owner, pod.namespace()) {
            let _ = wake.unbounded_send(ObjectRef::new(&owner.name).within(&namespace));
        }
    }
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
    let (kueue, workload_events, flavor_events) =
        kueue_watches(&client, managed.clone(), kueue::served(&client).await);

    let (pods, pod_writer) = reflector::store();
    // The pod index sees every event as the cache does, before the reconcile it triggers. A
    // shard pod that ends or goes frees its slot: the jobs of its pool waiting for one are
    // woken now, not at their next capacity recheck.
    let index = Arc::new(PodIndex::default());
    let scheduler = Arc::new(Scheduler::default());
    let (wake, woken) = futures::channel::mpsc::unbounded::<ObjectRef<RenderJob>>();
    // The pod cache holds what a pass reads, no more (`observe::trim_for_cache`): managed
    // fields and the shard spec in every pod's arguments are much of its size, and a
    // thousand-node farm's cache holds tens of thousands.
    let pod_events = watcher(Api::<Pod>::all(client.clone()), managed)
        .default_backoff()
        .modify(observe::trim_for_cache)
        .reflect(pod_writer)
        .inspect({
            let (index, scheduler, wake) = (index.clone(), scheduler.clone(), wake.clone());
            move |event| {
                if let Ok(event) = event
                    && let Some(pool) = index.apply_event(event)
                {
                    for (namespace, name) in scheduler.waiting_in(&pool) {
                        let _ = wake.unbounded_send(ObjectRef::new(&name).within(&namespace));
                    }
                }
            }
        })
        .touched_objects();
    // The pod watch runs in a task of its own: polled by the job controller, as one of its
    // trigger streams, it waited on the reconciles' CPU, the API server closed it as too slow
    // (20 jobs, 8,000 pods running), and the cache fell minutes behind until a full relist.
    tokio::spawn(wake_owners(pod_events, wake));
    let (nodes, node_writer) = reflector::store();
    let node_views = Arc::new(NodeViews::default());
    let node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|node| node.managed_fields_mut().clear())
        .reflect(node_writer)
        .inspect({
            let node_views = node_views.clone();
            move |_| node_views.changed()
        })
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

    // The job cache says when it first holds every job (the controller itself waits on the
    // store, and a store wakes only one waiter), so the orphan sweep never mistakes a job not
    // yet listed for a deleted one.
    let jobs_listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (jobs, job_writer) = reflector::store();
    let job_events = watcher(
        Api::<RenderJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(job_writer)
    .inspect({
        let listed = jobs_listed.clone();
        move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                listed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    })
    .touched_objects();
    let job_controller = Controller::for_stream(job_events, jobs.clone())
        .owns_stream(workload_events)
        .reconcile_on(woken);
    let events = crate::events::EventPublisher::new(client.clone(), FIELD_MANAGER, &identity);
    let ctx = Arc::new(Context {
        client: client.clone(),
        jobs,
        pods: pods.clone(),
        pools: pools.clone(),
        nodes: nodes.clone(),
        namespaces: namespaces.clone(),
        metrics,
        events,
        index,
        scheduler,
        node_views,
        refusals: Refusals::default(),
        kueue,
        issued: Default::default(),
        status_writes: Default::default(),
        stopping: Default::default(),
        collecting: Default::default(),
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
        .run(
            crate::pool::reconcile::reconcile_pool,
            error_policy,
            ctx.clone(),
        )
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
    let orphans = tokio::spawn(release_orphans(ctx.clone(), jobs_listed));
    let flavors = tokio::spawn(flavor_events.for_each(|_| futures::future::ready(())));
    tokio::spawn({
        let (tx, ctx) = (shutdown_tx.clone(), ctx.clone());
        async move {
            shutdown.await;
            ctx.stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tx.send(());
        }
    });
    info!("controllers running");
    tokio::select! {
        _ = futures::future::join(jobs_done, pool_controller) => {}
        _ = namespaces_done => {}
    }
    orphans.abort();
    flavors.abort();
    info!("controllers stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, owner_kind: &str, controller: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "tessera.dev/v1alpha1".into(),
                    kind: owner_kind.into(),
                    name: "shot010".into(),
                    uid: "u1".into(),
                    controller: Some(controller),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_pod_event_wakes_the_render_job_that_controls_it_and_nothing_else() {
        let (wake, woken) = futures::channel::mpsc::unbounded();
        let events = futures::stream::iter(vec![
            Ok(pod("shot010-0-0", "RenderJob", true)),
            Ok(pod("other", "ReplicaSet", true)),
            Ok(pod("adopted", "RenderJob", false)),
        ]);
        wake_owners(events, wake).await;
        let woken: Vec<ObjectRef<RenderJob>> = woken.collect().await;
        assert_eq!(woken, [ObjectRef::new("shot010").within("team")]);
    }
}
