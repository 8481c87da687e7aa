//! Platform controls on a shared pool: per-namespace policies (a cap on concurrent shards, a
//! maximum priority, a GPU-hour budget) and the GPU-hour ledger, which survives pod deletion,
//! operator restarts and job deletion.

use kube::api::{Patch, PatchParams};
use tessera_operator::api::{NamespaceUsage, RenderPool};

use super::*;

fn labelled_namespace(env: &Env, name: &str, policy: &str) -> Result<(), String> {
    env.kubectl_apply(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"tessera.dev/e2e-policy": policy}}}))
        .map(drop)
}

async fn patch_pool(env: &Env, spec: serde_json::Value) -> Result<(), String> {
    let api: Api<RenderPool> = Api::all(env.client.clone());
    api.patch(
        POOL,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": spec })),
    )
    .await
    .map(drop)
    .map_err(|e| format!("patching pool {POOL}: {e}"))
}

async fn usage_of(env: &Env, namespace: &str) -> Option<NamespaceUsage> {
    let api: Api<RenderPool> = Api::all(env.client.clone());
    let pool = api.get(POOL).await.ok()?;
    pool.status?
        .usage
        .into_iter()
        .find(|u| u.namespace == namespace)
}

/// A condition of the job: (status, reason, message).
pub fn condition(job: &RenderJob, type_: &str) -> Option<(String, String, String)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The policies of this scenario: namespaces labelled `capped` run at most 2 shards at once and
/// at most priority 10; those labelled `budgeted` have 0.002 GPU-hours (7.2 GPU-seconds) a
/// month. The pool prices a GPU-hour at 3.
fn policies(budget_hours: f64) -> serde_json::Value {
    json!({
        "pricePerGpuHour": 3.0,
        "namespacePolicies": [
            {"namespaceSelector": {"matchLabels": {"tessera.dev/e2e-policy": "capped"}},
             "maxConcurrentShards": 2, "maxPriority": 10},
            {"namespaceSelector": {"matchLabels": {"tessera.dev/e2e-policy": "budgeted"}},
             "gpuHourBudget": {"hours": budget_hours, "period": "Month"}},
        ],
    })
}

pub fn namespace_policies_and_the_gpu_hour_ledger(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        patch_pool(env, policies(0.002)).await?;
        let outcome = scenario(env).await;
        // The pool is shared with the other scenarios: its policies go, whatever happened.
        patch_pool(
            env,
            json!({"pricePerGpuHour": null, "namespacePolicies": null}),
        )
        .await?;
        outcome
    })
}

async fn scenario(env: &mut Env) -> Outcome {
    // A namespace capped at 2 concurrent shards, asking for priority 50 (clamped to 10).
    labelled_namespace(env, "capped", "capped")?;
    env.set_script("wide", json!({"sleepMs": 700}))?;
    env.job("capped", "wide", "1-8", json!({"priority": 50}))
        .await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "capped");
    let jobs: Api<RenderJob> = Api::namespaced(env.client.clone(), "capped");
    let (mut peak, mut limited, mut clamped) = (0usize, None, None);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        ticks.tick().await;
        ensure!(
            tokio::time::Instant::now() < deadline,
            "wide did not complete in 90 s"
        );
        let running = pods
            .list(&ListParams::default().labels("tessera.dev/role=shard"))
            .await
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .filter(|p| {
                matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Pending" | "Running")
                ) && p.metadata.deletion_timestamp.is_none()
            })
            .count();
        peak = peak.max(running);
        let job = jobs.get("wide").await.map_err(|e| e.to_string())?;
        if let Some(c) = condition(&job, "PolicyLimited").filter(|c| c.0 == "True") {
            limited.get_or_insert(c);
        }
        if let Some(c) = condition(&job, "PriorityClamped").filter(|c| c.0 == "True") {
            clamped.get_or_insert(c);
        }
        if condition(&job, "Complete").is_some_and(|c| c.0 == "True") {
            break;
        }
    }
    ensure!(
        peak <= 2,
        "namespace capped ran {peak} shards at once; its cap is 2"
    );
    let (_, reason, message) = limited.ok_or("no PolicyLimited condition while capped")?;
    ensure!(
        reason == "ConcurrentShardLimit" && message.contains("its policy allows 2 at once"),
        "PolicyLimited: {reason}: {message}"
    );
    let (_, _, message) = clamped.ok_or("no PriorityClamped condition")?;
    ensure!(message.contains("runs at 10"), "PriorityClamped: {message}");

    // A namespace with 7.2 GPU-seconds a month: once they are used, new shards wait with the
    // figures; raising the budget lets them run.
    labelled_namespace(env, "budgeted", "budgeted")?;
    // Two shards of 4.5 s start at once: at least 8 GPU-seconds (pod timestamps have whole
    // seconds) once they end, neither held back half-way.
    env.set_script("spend", json!({"sleepMs": 4500}))?;
    env.job("budgeted", "spend", "1-2", json!({})).await?;
    env.wait_condition("budgeted", "spend", "Complete", Duration::from_secs(90))
        .await?;
    let spent = eventually("the budget spent", Duration::from_secs(60), || async {
        usage_of(env, "budgeted")
            .await
            .filter(|u| u.period_gpu_seconds >= 7.2)
    })
    .await?;
    env.job("budgeted", "later", "1-2", json!({})).await?;
    let message = eventually(
        "later held by the budget",
        Duration::from_secs(60),
        || async {
            let job = env.render_job("budgeted", "later").await.ok()?;
            condition(&job, "PolicyLimited")
                .filter(|c| c.0 == "True" && c.1 == "GPUHourBudgetSpent")
                .map(|c| c.2)
        },
    )
    .await?;
    ensure!(
        message.contains("of its 0.002 GPU-hours this Month") && env.renders("later").is_empty(),
        "PolicyLimited: {message}; renders {:?}",
        env.renders("later")
    );
    patch_pool(env, policies(1.0)).await?;
    env.wait_condition("budgeted", "later", "Complete", Duration::from_secs(90))
        .await?;

    // The ledger: each namespace's figures are the sum of its jobs' ledgers, priced.
    let wide = env.render_job("capped", "wide").await?;
    let wide_seconds = wide.status.as_ref().map_or(0.0, |s| s.gpu_seconds);
    let usage = eventually("the capped ledger", Duration::from_secs(60), || async {
        usage_of(env, "capped")
            .await
            .filter(|u| (u.gpu_seconds - wide_seconds).abs() < 0.01 && u.shards == 8)
    })
    .await?;
    let cost = usage.cost.unwrap_or_default();
    ensure!(
        (cost - wide_seconds / 3600.0 * 3.0).abs() < 0.001,
        "cost {cost} for {wide_seconds} GPU-seconds at 3 a GPU-hour"
    );
    // Every pod deleted, the operator restarted: the same figures.
    for namespace in ["capped", "budgeted"] {
        let api: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
    }
    env.kill_operator("operator-a");
    env.start_operator("operator-a")?;
    // Deleting the job moves its figures into the pool's ledger: they stay.
    jobs.delete("wide", &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    eventually("wide deleted", Duration::from_secs(60), || async {
        jobs.get_opt("wide").await.ok()?.is_none().then_some(())
    })
    .await?;
    let after = eventually(
        "the ledger after the deletion",
        Duration::from_secs(60),
        || async {
            usage_of(env, "capped")
                .await
                // The archive write and the pool reconciler's total land apart: wait for both.
                .filter(|u| {
                    (u.archived_gpu_seconds - wide_seconds).abs() < 0.01
                        && (u.gpu_seconds - usage.gpu_seconds).abs() < 0.01
                })
        },
    )
    .await?;
    ensure!(
        (after.gpu_seconds - usage.gpu_seconds).abs() < 0.01 && after.shards == usage.shards,
        "the ledger changed: {usage:?} -> {after:?}"
    );
    let port = env
        .ports
        .get("operator-a")
        .copied()
        .ok_or("no operator port")?;
    let metrics = eventually("the ledger's metrics", Duration::from_secs(60), || async {
        let (_, body) = http_get(&format!("127.0.0.1:{port}"), "/metrics")?;
        body.lines()
            .find(|l| {
                l.starts_with("tessera_pool_usage_gpu_seconds{")
                    && l.contains("namespace=\"capped\"")
            })
            .map(String::from)
    })
    .await?;
    let exported: f64 = metrics
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or(format!("metric line {metrics}"))?;
    ensure!(
        (exported - after.gpu_seconds).abs() < 0.01,
        "tessera_pool_usage_gpu_seconds {exported} vs the pool's {}",
        after.gpu_seconds
    );
    println!(
        "    capped: peak 2 shards, priority 50 clamped to 10; budgeted: held at {:.1} of 7.2 GPU-seconds, resumed when raised; ledger capped {:.1} GPU-s, cost {:.4}, unchanged after deleting pods, restarting and deleting the job",
        spent.period_gpu_seconds, after.gpu_seconds, cost
    );
    Ok(())
}

/// The pool's shard slots now.
/// The pool's slots, once its status counts its nodes (at once, but for the first scenario of
/// a fresh environment).
async fn pool_capacity(env: &Env) -> Result<u32, String> {
    let api: Api<RenderPool> = Api::all(env.client.clone());
    eventually("the pool's capacity", Duration::from_secs(60), || async {
        let pool = api.get(POOL).await.ok()?;
        pool.status.map(|s| s.shard_capacity).filter(|c| *c > 0)
    })
    .await
}

/// When the fake render pod started `shard`'s `attempt` of `job`.
fn started(env: &Env, job: &str, shard: u32, attempt: u32) -> Option<std::time::SystemTime> {
    std::fs::metadata(env.fake_log.join(format!("{job}.render.{shard}.{attempt}")))
        .ok()?
        .modified()
        .ok()
}

/// A priority-100 job arriving at a pool full of priority-0 shards starts at once: the most
/// recently started low-priority shards are evicted (recorded as preempted, not failed) and
/// finish later. With preemption off, the same arrival waits for a slot.
pub fn a_higher_priority_job_preempts_lower_priority_shards(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let slots = pool_capacity(env).await?;
        ensure!(slots >= 2, "the pool has {slots} slots");
        let (waited_on, waited_off) =
            (preemption_round(env, "bg", "urgent", slots, true).await?, {
                patch_pool(env, json!({"preemption": {"enabled": false}})).await?;
                let waited = preemption_round(env, "bg-off", "urgent-off", slots, false).await;
                patch_pool(env, json!({"preemption": null})).await?;
                waited?
            });
        ensure!(
            waited_on < Duration::from_secs(5) && waited_off >= Duration::from_secs(5),
            "urgent started {waited_on:?} after arriving with preemption, {waited_off:?} without"
        );
        println!(
            "    on {slots} slots: the priority-100 job started {:.1} s after arriving with preemption, {:.1} s without",
            waited_on.as_secs_f64(),
            waited_off.as_secs_f64()
        );
        Ok(())
    })
}

/// Fills the pool with a priority-0 job of 8-second shards, then submits a priority-100 job;
/// returns how long after its arrival the urgent job's first shard started.
async fn preemption_round(
    env: &mut Env,
    background: &str,
    urgent: &str,
    slots: u32,
    preempts: bool,
) -> Result<Duration, String> {
    env.set_script(background, json!({"sleepMs": 8000}))?;
    env.job("preempt", background, &format!("1-{slots}"), json!({}))
        .await?;
    eventually("the pool full", Duration::from_secs(60), || async {
        (env.renders(background).len() == slots as usize).then_some(())
    })
    .await?;
    env.set_script(urgent, json!({"sleepMs": 300}))?;
    let arrived = std::time::SystemTime::now();
    env.job("preempt", urgent, "1-2", json!({"priority": 100}))
        .await?;
    env.wait_condition("preempt", urgent, "Complete", Duration::from_secs(60))
        .await?;
    let first = (0..2)
        .filter_map(|shard| started(env, urgent, shard, 0))
        .min()
        .ok_or("the urgent job never rendered")?;
    let job = env
        .wait_condition("preempt", background, "Complete", Duration::from_secs(120))
        .await?;
    let status = job.status.unwrap_or_default();
    let again: Vec<(u32, u32)> = env
        .renders(background)
        .into_iter()
        .filter(|r| r.1 > 0)
        .collect();
    if preempts {
        // Two slots taken: two shards ran again, as disruptions, no failure counted.
        ensure!(
            status.disrupted_attempts == 2 && status.failed_attempts.is_empty() && again.len() == 2,
            "{background}: disrupted {}, failed {}, rendered again {again:?}",
            status.disrupted_attempts,
            status.failed_attempts
        );
    } else {
        ensure!(
            status.disrupted_attempts == 0 && again.is_empty(),
            "{background} was preempted with preemption off: rendered again {again:?}, disrupted {}, last failure {:?}",
            status.disrupted_attempts,
            status.last_failure
        );
    }
    Ok(first.duration_since(arrived).unwrap_or_default())
}

/// Real renders preempted mid-render: every frame of both jobs is byte-identical to a
/// whole-frame render. The GPU nodes are made 20 s slower per pod so the low-priority shards
/// are still running when the urgent job arrives.
pub fn preempted_real_renders_stay_bit_identical(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        for node in GPU_NODES {
            env.agent().slow_node(node, Some(Duration::from_secs(20)));
        }
        let outcome = preempted_real_renders(env).await;
        for node in GPU_NODES {
            env.agent().slow_node(node, None);
        }
        outcome
    })
}

async fn preempted_real_renders(env: &mut Env) -> Outcome {
    env.namespace("preempt-real").await?;
    let apply = |name: &str, spec: serde_json::Value| {
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": name, "namespace": "preempt-real"}, "spec": spec}),
        )
    };
    // More shards than the pool has slots (2 frames x 3x3 tiles): it is full, shards wait.
    let pools: Api<RenderPool> = Api::all(env.client.clone());
    let slots = pools
        .get(REAL_POOL)
        .await
        .map_err(|e| e.to_string())?
        .status
        .map_or(0, |s| s.shard_capacity) as usize;
    ensure!((1..18).contains(&slots), "the real pool has {slots} slots");
    apply("bg", real_job_spec("1-2", 3))?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "preempt-real");
    eventually("bg filling the pool", Duration::from_secs(60), || async {
        let list = pods
            .list(&ListParams::default().labels("tessera.dev/job=bg,tessera.dev/role=shard"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running >= slots).then_some(())
    })
    .await?;
    let mut urgent = real_job_spec("1", 1);
    urgent["priority"] = json!(100);
    apply("urgent", urgent)?;
    env.wait_condition(
        "preempt-real",
        "urgent",
        "Complete",
        Duration::from_secs(180),
    )
    .await?;
    for node in GPU_NODES {
        env.agent().slow_node(node, None);
    }
    let bg = env
        .wait_condition("preempt-real", "bg", "Complete", Duration::from_secs(300))
        .await?;
    let status = bg.status.unwrap_or_default();
    ensure!(
        status.disrupted_attempts >= 1 && status.failed_attempts.is_empty(),
        "bg: {} attempts preempted, failed {}",
        status.disrupted_attempts,
        status.failed_attempts
    );
    let whole = whole_frame_render(env, "1-2")?;
    for (job, frame) in [("bg", 1), ("bg", 2), ("urgent", 1)] {
        let merged = merged_frame(env, "preempt-real", job, frame);
        let reference = whole.join(format!("frame_{frame:04}.exr"));
        ensure!(
            same_bytes(&merged, &reference)?,
            "{} differs from the whole-frame render after preemption",
            merged.display()
        );
    }
    println!(
        "    {} real shard attempts preempted; bg's 2 frames and urgent's frame equal the whole-frame render byte for byte",
        status.disrupted_attempts
    );
    Ok(())
}
