//! Kueue: RenderJobs that name a LocalQueue render only what Kueue admits. Kueue (built from
//! its Go module by e2e/kueue/build.sh) runs against the same control plane; its CRDs are
//! installed before the operator starts, its controller by the first scenario that needs it.

use kube::api::{Patch, PatchParams};
use tessera_operator::kueue::Workload;

use super::platform::condition;
use super::*;

/// Two ClusterQueues of 2 GPUs each in one cohort (4 GPUs in all), one LocalQueue `q` in each
/// of two namespaces; a flavor whose toleration the admitted shard pods must carry.
fn queues() -> Vec<serde_json::Value> {
    let cluster_queue = |name: &str| {
        json!({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {"cohortName": "e2e-farm", "namespaceSelector": {},
                "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
                "resourceGroups": [{"coveredResources": ["nvidia.com/gpu", "cpu", "memory"],
                    "flavors": [{"name": "e2e-flavor", "resources": [
                        {"name": "nvidia.com/gpu", "nominalQuota": 2},
                        {"name": "cpu", "nominalQuota": 100},
                        {"name": "memory", "nominalQuota": "1000Gi"}]}]}]}})
    };
    let local_queue = |namespace: &str, cluster_queue: &str| {
        json!({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
            "metadata": {"name": "q", "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue}})
    };
    vec![
        json!({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
            "metadata": {"name": "e2e-flavor"},
            "spec": {"tolerations": [{"key": "tessera.dev/e2e-flavor", "operator": "Exists"}]}}),
        cluster_queue("e2e-cq-a"),
        cluster_queue("e2e-cq-b"),
        local_queue("kq-a", "e2e-cq-a"),
        local_queue("kq-b", "e2e-cq-b"),
    ]
}

/// Shard pods holding a GPU in the Kueue namespaces now (not finished, not being deleted).
async fn running_shards(env: &Env) -> Result<Vec<Pod>, String> {
    let mut running = Vec::new();
    for namespace in ["kq-a", "kq-b"] {
        let api: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
        let pods = api
            .list(&ListParams::default().labels("tessera.dev/role=shard"))
            .await
            .map_err(|e| e.to_string())?;
        running.extend(pods.items.into_iter().filter(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Pending" | "Running")
            )
        }));
    }
    Ok(running)
}

async fn queued_job(
    env: &Env,
    namespace: &str,
    name: &str,
    frames: &str,
    priority: i32,
) -> Result<(), String> {
    env.namespace(namespace).await?;
    env.kubectl_apply(
        &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"kueue.x-k8s.io/queue-name": "q"}},
        "spec": {"pool": POOL, "scene": {"url": "file:///scenes/cbox.gltf"}, "frames": frames,
                 "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 4,
                 "priority": priority,
                 "retry": {"attemptsPerShard": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0}}}),
    )
    .map(drop)
}

/// A ClusterQueue of 4 GPUs split over two queues: the first job borrows the other queue's
/// idle quota (4 shards at once), a priority-100 job in the other queue takes its quota back
/// (Kueue preempts the first job's Workload: its shards stop as preempted and run later), and
/// no more than 4 shard pods ever run; both complete with no failed attempt.
pub fn kueue_admits_borrows_and_preempts(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.kueue().await?;
        for namespace in ["kq-a", "kq-b"] {
            env.namespace(namespace).await?;
        }
        for object in queues() {
            env.kubectl_apply(&object)?;
        }
        for cluster_queue in ["e2e-cq-a", "e2e-cq-b"] {
            let active = "jsonpath={.status.conditions[?(@.type==\"Active\")].status}";
            eventually(
                &format!("ClusterQueue {cluster_queue} active"),
                Duration::from_secs(60),
                || async {
                    let out = env
                        .kubectl_ok(&["get", "clusterqueue", cluster_queue, "-o", active])
                        .ok()?;
                    (out.trim() == "True").then_some(())
                },
            )
            .await?;
        }

        // wide's first four attempts render until stopped: only a preemption lets the job go
        // on, so urgent cannot be admitted through quota wide gives back in its tail instead.
        env.set_script(
            "wide",
            json!({"sleepMs": 1000, "hang": ["0/0", "1/0", "2/0", "3/0"]}),
        )?;
        env.set_script("urgent", json!({"sleepMs": 500}))?;
        let jobs_a: Api<RenderJob> = Api::namespaced(env.client.clone(), "kq-a");
        let jobs_b: Api<RenderJob> = Api::namespaced(env.client.clone(), "kq-b");
        // Watched, not polled: wide is admitted again soon after its pods stop, so the
        // preempted condition may hold for less than a poll's interval. (A JoinSet stops the
        // watch when dropped.)
        let mut preempted = tokio::task::JoinSet::new();
        preempted.spawn(await_condition(
            jobs_a.clone(),
            "wide",
            |job: Option<&RenderJob>| {
                job.and_then(|j| condition(j, "QueueAdmitted"))
                    .is_some_and(|c| c.0 == "False" && c.1 == "Preempted")
            },
        ));
        queued_job(env, "kq-a", "wide", "1-12", 0).await?;
        let (mut peak, mut borrowed, mut urgent_sent) = (0usize, false, false);
        let mut toleration_checked = false;
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            ticks.tick().await;
            let running = running_shards(env).await?;
            peak = peak.max(running.len());
            if !toleration_checked && let Some(pod) = running.first() {
                let tolerations = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.tolerations.clone())
                    .unwrap_or_default();
                ensure!(
                    tolerations
                        .iter()
                        .any(|t| t.key.as_deref() == Some("tessera.dev/e2e-flavor")),
                    "shard pod {} lacks the admitted flavor's toleration: {tolerations:?}",
                    pod.name_any()
                );
                toleration_checked = true;
            }
            let wide = jobs_a.get("wide").await.map_err(|e| e.to_string())?;
            let wide_running = running
                .iter()
                .filter(|p| p.namespace().as_deref() == Some("kq-a"))
                .count();
            if !urgent_sent && wide_running == 4 {
                // 4 at once: cq-a's 2 GPUs and 2 borrowed from idle cq-b. The pass that
                // created the pods writes the condition after them: await it (nothing can
                // change the admission before urgent is sent).
                let admitted_4 =
                    await_condition(jobs_a.clone(), "wide", |job: Option<&RenderJob>| {
                        job.and_then(|j| condition(j, "QueueAdmitted"))
                            .is_some_and(|c| c.0 == "True" && c.2.contains("up to 4 shard pods"))
                    });
                borrowed = matches!(
                    tokio::time::timeout(Duration::from_secs(30), admitted_4).await,
                    Ok(Ok(Some(_)))
                );
                queued_job(env, "kq-b", "urgent", "1-2", 100).await?;
                urgent_sent = true;
            }
            let complete =
                |job: &RenderJob| condition(job, "Complete").is_some_and(|c| c.0 == "True");
            let urgent_done = match urgent_sent {
                true => jobs_b
                    .get("urgent")
                    .await
                    .map_err(|e| e.to_string())
                    .map(|j| complete(&j))?,
                false => false,
            };
            if complete(&wide) && urgent_done {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "not both complete in 180 s (peak {peak}); wide: {:?}",
                wide.status.as_ref().map(|s| &s.conditions)
            );
        }
        ensure!(
            peak <= 4,
            "{peak} shard pods ran at once under a 4-GPU cohort"
        );
        ensure!(
            borrowed,
            "wide never ran 4 shards on Kueue's admission (borrowing cq-b's quota)"
        );
        let (_, _, message) = preempted
            .try_join_next()
            .ok_or("wide's Workload was never preempted by urgent")?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .and_then(|job| condition(&job, "QueueAdmitted"))
            .unwrap_or_default();
        let wide = jobs_a.get("wide").await.map_err(|e| e.to_string())?;
        let status = wide.status.clone().unwrap_or_default();
        let again: Vec<(u32, u32)> = env
            .renders("wide")
            .into_iter()
            .filter(|r| r.1 > 0)
            .collect();
        ensure!(
            status.failed_attempts.is_empty()
                && status.failed_shards.is_empty()
                && status.disrupted_attempts >= 1
                && !again.is_empty(),
            "wide: failed {} ({}), disrupted {}, rendered again {again:?}",
            status.failed_attempts,
            status.failed_shards,
            status.disrupted_attempts
        );
        // Both Workloads finished: the quota is free again.
        let workloads_a: Api<Workload> = Api::namespaced(env.client.clone(), "kq-a");
        let workloads_b: Api<Workload> = Api::namespaced(env.client.clone(), "kq-b");
        for (api, job) in [
            (&workloads_a, &wide),
            (
                &workloads_b,
                &jobs_b.get("urgent").await.map_err(|e| e.to_string())?,
            ),
        ] {
            let name = tessera_operator::kueue::workload_name(
                &job.name_any(),
                &job.uid().unwrap_or_default(),
            );
            eventually("the Workload finished", Duration::from_secs(30), || async {
                let workload = api.get(&name).await.ok()?;
                workload
                    .status?
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Finished" && c.status == "True")
                    .then_some(())
            })
            .await?;
        }
        println!(
            "    peak {peak} shard pods under 4 GPUs; wide borrowed to 4, was preempted ({message}), re-ran {} shards as disruptions",
            again.len()
        );
        Ok(())
    })
}

/// Deactivating a job's Workload (`spec.active: false`, as a platform admin may) stops its
/// shards as preempted; activating it again lets the job finish.
pub fn a_deactivated_workload_stops_the_job_until_reactivated(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.kueue().await?;
        for object in queues() {
            env.kubectl_apply(&object)?;
        }
        env.set_script("paused", json!({"sleepMs": 2000}))?;
        queued_job(env, "kq-a", "paused", "1-6", 0).await?;
        eventually("paused rendering", Duration::from_secs(60), || async {
            (!env.renders("paused").is_empty()).then_some(())
        })
        .await?;
        let job = env.render_job("kq-a", "paused").await?;
        let name = tessera_operator::kueue::workload_name("paused", &job.uid().unwrap_or_default());
        let workloads: Api<Workload> = Api::namespaced(env.client.clone(), "kq-a");
        let set_active = |active: bool| {
            let workloads = workloads.clone();
            let name = name.clone();
            async move {
                workloads
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"active": active}})),
                    )
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        };
        set_active(false).await?;
        let (_, reason, message) =
            eventually("paused stopped", Duration::from_secs(60), || async {
                let job = env.render_job("kq-a", "paused").await.ok()?;
                let running = running_shards(env).await.ok()?;
                let c = condition(&job, "QueueAdmitted")?;
                (c.0 == "False" && running.iter().all(|p| !p.name_any().starts_with("paused-")))
                    .then_some(c)
            })
            .await?;
        let rendered = env.renders("paused").len();
        set_active(true).await?;
        let job = env
            .wait_condition("kq-a", "paused", "Complete", Duration::from_secs(120))
            .await?;
        let status = job.status.unwrap_or_default();
        ensure!(
            status.failed_attempts.is_empty() && env.renders("paused").len() > rendered,
            "paused: failed {} after reactivation; renders {rendered} then {}",
            status.failed_attempts,
            env.renders("paused").len()
        );
        println!("    deactivated: {reason}: {message}");
        Ok(())
    })
}
