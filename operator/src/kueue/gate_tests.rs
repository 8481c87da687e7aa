use serde_json::json;

use super::*;

fn job(shards_left: u32, active_pods: u32) -> QueuedJob<'static> {
    QueuedJob {
        queue: "q",
        name: "shot010",
        namespace: "lighting",
        uid: "0b1c2d3e-aaaa-bbbb",
        owner: None,
        template: PodTemplateSpec::default(),
        priority: 7,
        shards_left,
        active_pods,
        finished: None,
    }
}

fn workload(count: i32, status: serde_json::Value) -> Workload {
    let mut w: Workload = serde_json::from_value(json!({
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
        "metadata": {"name": "renderjob-shot010-0b1c2d3e", "namespace": "lighting",
                     "resourceVersion": "42", "generation": 1},
        "spec": {"queueName": "q", "podSets": [{"name": "render", "count": count, "minCount": 1,
                 "template": {"spec": {"containers": []}}}]},
        "status": status,
    }))
    .unwrap();
    w.metadata.generation = Some(1);
    w
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-30T00:00:00Z"})
}

fn admitted(count: i32) -> serde_json::Value {
    json!({
        "conditions": [condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq-a"),
                       condition("Admitted", "True", "Admitted", "The workload is admitted")],
        "admission": {"clusterQueue": "cq-a", "podSetAssignments": [
            {"name": "render", "flavors": {"nvidia.com/gpu": "h200", "cpu": "default"}, "count": count}]},
    })
}

fn no_flavor(_: &str) -> Option<ResourceFlavorSpec> {
    None
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn conditions_of(write: &Option<WorkloadWrite>) -> Vec<(String, String, String)> {
    let conditions = match write {
        Some(WorkloadWrite::ReleaseQuota { conditions, .. })
        | Some(WorkloadWrite::Finish { conditions, .. }) => conditions,
        other => panic!("no conditions in {other:?}"),
    };
    conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

#[test]
fn workload_names_are_short_valid_and_per_job() {
    let name = workload_name(&format!("{}.v2", "a".repeat(250)), "F00D-beef-1234");
    assert!(name.len() <= 63, "{name}");
    assert!(
        name.starts_with("renderjob-aaa") && name.ends_with("-f00dbeef"),
        "{name}"
    );
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_eq!(workload_name("shot.010", "abc"), "renderjob-shot-010-abc");
}

#[test]
fn a_job_without_a_workload_creates_one_and_starts_nothing() {
    let gate = gate(&job(16, 0), Kueue::Listed(None), &no_flavor, now());
    assert_eq!(gate.admitted, 0);
    let Some(WorkloadWrite::Create(w)) = &gate.write else {
        panic!("{:?}", gate.write)
    };
    assert_eq!(
        w.metadata.name.as_deref(),
        Some("renderjob-shot010-0b1c2d3e")
    );
    assert_eq!(w.spec.queue_name.as_deref(), Some("q"));
    assert_eq!(w.spec.priority, Some(7));
    let pod_set = &w.spec.pod_sets[0];
    assert_eq!(
        (pod_set.name.as_str(), pod_set.count, pod_set.min_count),
        ("render", 16, Some(1))
    );
    assert_eq!(gate.note.unwrap().reason, "Queued");
    // Nothing left to render (merging after an operator restart): nothing to queue.
    assert_eq!(
        super::gate(&job(0, 0), Kueue::Listed(None), &no_flavor, now()),
        QueueGate::default()
    );
}

#[test]
fn an_admitted_job_runs_what_kueue_admitted_where_its_flavors_say() {
    let w = workload(16, admitted(4));
    let flavor = |name: &str| {
        (name == "h200").then(|| ResourceFlavorSpec {
            node_labels: [("gpu".to_string(), "h200".to_string())].into(),
            tolerations: vec![Toleration {
                key: Some("gpu".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }],
        })
    };
    let gate = gate(&job(16, 1), Kueue::Listed(Some(&w)), &flavor, now());
    assert_eq!(gate.admitted, 4);
    assert_eq!((gate.stop, gate.write), (None, None));
    assert_eq!(gate.placement.node_selector["gpu"], "h200");
    assert_eq!(gate.placement.tolerations.len(), 1);
    let note = gate.note.unwrap();
    assert!(
        note.admitted && note.message.contains("ClusterQueue cq-a"),
        "{note:?}"
    );
    assert!(note.message.contains("up to 4 shard pods"), "{note:?}");
}

#[test]
fn shards_no_longer_needed_are_reclaimable_only_in_the_tail() {
    let w = workload(16, admitted(4));
    // 5 shards left for 4 admitted pods: the whole admission is still needed; no write.
    let gate_5 = gate(&job(5, 4), Kueue::Listed(Some(&w)), &no_flavor, now());
    assert_eq!(gate_5.write, None);
    // 1 left: 15 of the 16 pods asked for are reclaimable.
    let gate_1 = gate(&job(1, 1), Kueue::Listed(Some(&w)), &no_flavor, now());
    let reclaim = WorkloadWrite::Reclaimable {
        name: "renderjob-shot010-0b1c2d3e".into(),
        count: 15,
    };
    assert_eq!(gate_1.write, Some(reclaim));
    // Once reported, nothing more to write.
    let mut reported = admitted(4);
    reported["reclaimablePods"] = json!([{"name": "render", "count": 15}]);
    let w = workload(16, reported);
    assert_eq!(
        gate(&job(1, 1), Kueue::Listed(Some(&w)), &no_flavor, now()).write,
        None
    );
    // More shards to render again (a corrupt output): the reported count never goes down,
    // the job runs within what is left.
    let mut reported = admitted(4);
    reported["reclaimablePods"] = json!([{"name": "render", "count": 14}]);
    let w = workload(16, reported);
    let again = gate(&job(5, 1), Kueue::Listed(Some(&w)), &no_flavor, now());
    assert_eq!((again.admitted, again.write), (2, None));
    // Every pod reclaimed and shards to render again: a new Workload queues the job again.
    let mut all = admitted(4);
    all["reclaimablePods"] = json!([{"name": "render", "count": 16}]);
    let w = workload(16, all);
    let replaced = gate(&job(2, 0), Kueue::Listed(Some(&w)), &no_flavor, now());
    assert!(
        matches!(replaced.write, Some(WorkloadWrite::Delete { .. })),
        "{replaced:?}"
    );
}

#[test]
fn an_evicted_job_stops_its_pods_then_gives_the_quota_back() {
    let mut status = admitted(4);
    status["conditions"].as_array_mut().unwrap().push(condition(
        "Evicted",
        "True",
        "Preempted",
        "Preempted to accommodate a workload (UID: x)",
    ));
    let w = workload(16, status);
    let running = gate(&job(10, 3), Kueue::Listed(Some(&w)), &no_flavor, now());
    assert_eq!(running.admitted, 0);
    assert_eq!(
        running.write, None,
        "the quota stays until the pods stopped"
    );
    assert!(
        running
            .stop
            .unwrap()
            .starts_with("Kueue: Preempted to accommodate")
    );
    let note = running.note.unwrap();
    assert_eq!((note.admitted, note.reason.as_str()), (false, "Preempted"));

    let stopped = gate(&job(10, 0), Kueue::Listed(Some(&w)), &no_flavor, now());
    assert_eq!(stopped.stop, None);
    let Some(WorkloadWrite::ReleaseQuota {
        resource_version, ..
    }) = &stopped.write
    else {
        panic!("{:?}", stopped.write)
    };
    assert_eq!(resource_version, "42");
    let conditions = conditions_of(&stopped.write);
    for expected in [
        ("QuotaReserved", "False", "Pending"),
        ("Admitted", "False", "NoReservation"),
        ("Evicted", "True", "Preempted"),
        ("Requeued", "True", "Preempted"),
    ] {
        let expected = (expected.0.into(), expected.1.into(), expected.2.into());
        assert!(
            conditions.contains(&expected),
            "{expected:?} in {conditions:?}"
        );
    }
}

#[test]
fn a_reservation_waiting_on_admission_checks_is_kept() {
    let status = json!({
        "conditions": [condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved"),
                       condition("Admitted", "False", "UnsatisfiedChecks", "not all checks ready")],
        "admission": {"clusterQueue": "cq-a", "podSetAssignments": [{"name": "render", "count": 4}]},
    });
    let w = workload(16, status);
    let gate = gate(&job(16, 0), Kueue::Listed(Some(&w)), &no_flavor, now());
    assert_eq!((gate.admitted, gate.stop, gate.write), (0, None, None));
}

#[test]
fn a_pending_workload_says_why_in_kueue_s_words() {
    let status = json!({"conditions": [condition("QuotaReserved", "False", "Pending",
        "couldn't assign flavors to pod set render: insufficient quota for nvidia.com/gpu")]});
    let w = workload(16, status);
    let gate = gate(&job(16, 0), Kueue::Listed(Some(&w)), &no_flavor, now());
    let note = gate.note.unwrap();
    assert!(
        note.message
            .contains("insufficient quota for nvidia.com/gpu"),
        "{note:?}"
    );
    assert_eq!((gate.admitted, gate.write), (0, None));
}

#[test]
fn a_finished_job_finishes_its_workload_once() {
    let finished = QueuedJob {
        finished: Some(true),
        ..job(0, 0)
    };
    let w = workload(16, admitted(4));
    let gate_1 = gate(&finished, Kueue::Listed(Some(&w)), &no_flavor, now());
    assert!(conditions_of(&gate_1.write).contains(&(
        "Finished".into(),
        "True".into(),
        "Succeeded".into()
    )));
    let mut done = admitted(4);
    done["conditions"]
        .as_array_mut()
        .unwrap()
        .push(condition("Finished", "True", "Succeeded", ""));
    let w = workload(16, done.clone());
    assert_eq!(
        gate(&finished, Kueue::Listed(Some(&w)), &no_flavor, now()).write,
        None
    );
    // Rendering again (a re-render): the finished Workload makes way for a new one.
    let again = gate(
        &job(3, 0),
        Kueue::Listed(Some(&workload(16, done))),
        &no_flavor,
        now(),
    );
    assert!(matches!(again.write, Some(WorkloadWrite::Delete { .. })));
    assert_eq!(again.admitted, 0);
}

#[test]
fn without_kueue_a_queued_job_waits_and_says_why() {
    let gate_u = gate(&job(4, 0), Kueue::Unavailable, &no_flavor, now());
    assert_eq!(gate_u.admitted, 0);
    assert_eq!(gate_u.note.unwrap().reason, "KueueUnavailable");
    // While the cache fills, nothing is decided and nothing written.
    assert_eq!(
        gate(&job(4, 2), Kueue::Listing, &no_flavor, now()),
        QueueGate::default()
    );
}
