//! Mocked-API reconcile tests: the exact requests one reconcile makes, in order.
//!
//! The caches are filled by hand (as the reflectors would), the API is a tower-test mock, and
//! every expected request is asserted by method, path and body. The verifier always runs under
//! a timeout, and after the last expected request the test checks that no other request came.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tessera_operator::api::{RenderJob, RenderPool};
use tessera_operator::context::{Context, Refusals};
use tessera_operator::controller::reconcile_job;
use tessera_operator::events::EventPublisher;
use tessera_operator::metrics::Metrics;
use tessera_operator::pool::index::PodIndex;
use tessera_operator::pool::scheduler::Scheduler;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const JOB_YAML: &str = include_str!("fixtures/renderjob.yaml");
const POOL_YAML: &str = include_str!("fixtures/renderpool.yaml");

fn store_of<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

fn gpu_node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"tessera.dev/node-group": "gpu-a"}},
        "status": {"allocatable": {"nvidia.com/gpu": "1"}, "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn job() -> RenderJob {
    serde_yaml::from_str(JOB_YAML).unwrap()
}

/// A pod of the fixture job as the API server would report it.
fn shard_pod(shard: u32, attempt: u32, phase: &str, exit_code: Option<i32>, node: &str) -> Pod {
    let mut status = json!({"phase": phase, "startTime": "2026-01-15T08:00:00Z"});
    if let Some(code) = exit_code {
        status["containerStatuses"] = json!([{"name": "render", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": "Error",
            "startedAt": "2026-01-15T08:00:00Z", "finishedAt": "2026-01-15T08:00:30Z"}}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("shot010-{shard}-{attempt}"), "namespace": "lighting", "labels": {
            "tessera.dev/job-uid": "uid-1", "tessera.dev/pool": "gpu-a", "tessera.dev/role": "shard",
            "tessera.dev/shard": shard.to_string(), "tessera.dev/attempt": attempt.to_string(),
            "app.kubernetes.io/managed-by": "tessera-operator"},
            "ownerReferences": [{"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
                "name": "shot010", "uid": "uid-1", "controller": true}],
            "finalizers": ["tessera.dev/ledger"]},
        "spec": {"nodeName": node, "containers": [{"name": "render", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": status,
    }))
    .unwrap()
}

fn context(client: Client, job: &RenderJob, pods: Vec<Pod>, nodes: Vec<Node>) -> Arc<Context> {
    let pool: RenderPool = serde_yaml::from_str(POOL_YAML).unwrap();
    let index = PodIndex::default();
    for pod in &pods {
        index.apply_event(&watcher::Event::Apply(pod.clone()));
    }
    Arc::new(Context {
        client: client.clone(),
        jobs: store_of(vec![job.clone()]),
        pods: store_of(pods),
        pools: store_of(vec![pool]),
        nodes: store_of(nodes),
        namespaces: store_of(Vec::<Namespace>::new()),
        metrics: Metrics::new().unwrap(),
        events: EventPublisher::new(client, "tessera-operator", "test"),
        index: Arc::new(index),
        scheduler: Arc::new(Scheduler::default()),
        node_views: Default::default(),
        refusals: Refusals::default(),
        kueue: tessera_operator::kueue::KueueCache::unavailable(),
        issued: Default::default(),
        status_writes: Default::default(),
        stopping: Default::default(),
        collecting: Default::default(),
    })
}

/// Waits for the next request, asserts its method and path, answers `reply` (or echoes the
/// request body), and returns the request body.
async fn expect(handle: &mut Handle, method: Method, path: &str, reply: Option<Value>) -> Value {
    expect_answering(handle, method, path, reply, 200).await
}

/// As `expect`, answering with HTTP status `code`.
async fn expect_answering(
    handle: &mut Handle,
    method: Method,
    path: &str,
    reply: Option<Value>,
    code: u16,
) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
        .expect("the service was dropped");
    assert_eq!(
        request.method(),
        method,
        "expected {method} {path}, got {} {}",
        request.method(),
        request.uri()
    );
    assert_eq!(request.uri().path(), path);
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let answer = reply.unwrap_or_else(|| body.clone());
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    body
}

/// The next request creates a pod in the job's namespace; returns the pod.
async fn expect_pod_create(handle: &mut Handle) -> Value {
    expect(
        handle,
        Method::POST,
        "/api/v1/namespaces/lighting/pods",
        None,
    )
    .await
}

/// The next request applies the job's status; returns the applied body.
async fn expect_status_patch(handle: &mut Handle) -> Value {
    let path = "/apis/tessera.dev/v1alpha1/namespaces/lighting/renderjobs/shot010/status";
    expect(
        handle,
        Method::PATCH,
        path,
        Some(serde_json::to_value(job()).unwrap()),
    )
    .await
}

/// Events are best effort (`operator/src/events.rs` tests their bodies): accept one.
async fn expect_event(handle: &mut Handle, reason: &str) {
    let body = expect(
        handle,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/lighting/events",
        None,
    )
    .await;
    assert_eq!(body["reason"], reason);
}

async fn expect_nothing_more(handle: &mut Handle) {
    let next = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    if let Ok(Some((request, _))) = next {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

/// Runs one reconcile while `verifier` checks its requests; both must succeed.
async fn reconcile_and_verify(
    job: RenderJob,
    ctx: Arc<Context>,
    verifier: tokio::task::JoinHandle<()>,
) -> Action {
    let action = reconcile_job(Arc::new(job), ctx)
        .await
        .expect("reconcile succeeds");
    verifier.await.unwrap();
    action
}

fn mock() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

fn names_of_created(body: &Value) -> String {
    body["metadata"]["name"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_new_job_first_gets_the_usage_finalizer_and_nothing_else() {
    let (client, mut handle) = mock();
    let mut job = job();
    job.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    job.metadata.resource_version = Some("17".into());
    let ctx = context(client, &job, vec![], vec![gpu_node("gpu-node-1")]);
    let answer = serde_json::to_value(&job).unwrap();
    let verifier = tokio::spawn(async move {
        let patch = expect(
            &mut handle,
            Method::PATCH,
            "/apis/tessera.dev/v1alpha1/namespaces/lighting/renderjobs/shot010",
            Some(answer),
        )
        .await;
        assert_eq!(
            patch,
            json!({"metadata": {"finalizers": ["example.com/keep", "tessera.dev/usage"],
                "resourceVersion": "17"}})
        );
        expect_nothing_more(&mut handle).await;
    });
    reconcile_and_verify(job, ctx, verifier).await;
}

#[tokio::test]
async fn first_reconcile_creates_pods_up_to_capacity() {
    let (client, mut handle) = mock();
    let job = job();
    let ctx = context(
        client,
        &job,
        vec![],
        vec![gpu_node("gpu-node-1"), gpu_node("gpu-node-2")],
    );
    let verifier = tokio::spawn(async move {
        let first = expect_pod_create(&mut handle).await;
        assert_eq!(names_of_created(&first), "shot010-0-0");
        assert_eq!(
            first["spec"]["nodeSelector"]["tessera.dev/node-group"],
            "gpu-a"
        );
        assert_eq!(first["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let second = expect_pod_create(&mut handle).await;
        assert_eq!(names_of_created(&second), "shot010-1-0");
        let status = expect_status_patch(&mut handle).await;
        assert_eq!(status["kind"], "RenderJob");
        assert_eq!(status["status"]["phase"], "Rendering");
        assert_eq!(
            status["status"]["shards"],
            json!({"total": 8, "succeeded": 0, "failed": 0, "active": 2, "waiting": 6})
        );
        expect_event(&mut handle, "Rendering").await;
        expect_nothing_more(&mut handle).await;
    });
    reconcile_and_verify(job, ctx, verifier).await;
}

#[tokio::test]
async fn a_failed_pod_gets_a_retry_pod_that_avoids_its_node() {
    let (client, mut handle) = mock();
    let job = job();
    let pods = vec![
        shard_pod(0, 0, "Failed", Some(1), "gpu-node-1"),
        shard_pod(1, 0, "Running", None, "gpu-node-2"),
    ];
    let ctx = context(
        client,
        &job,
        pods,
        vec![gpu_node("gpu-node-1"), gpu_node("gpu-node-2")],
    );
    let verifier = tokio::spawn(async move {
        let retry = expect_pod_create(&mut handle).await;
        assert_eq!(names_of_created(&retry), "shot010-0-1");
        assert_eq!(retry["metadata"]["labels"]["tessera.dev/attempt"], "1");
        let avoid = &retry["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0];
        assert_eq!(
            *avoid,
            json!({"key": "metadata.name", "operator": "NotIn", "values": ["gpu-node-1"]})
        );
        let status = expect_status_patch(&mut handle).await;
        assert_eq!(status["status"]["shardAttempts"], "0:1");
        assert_eq!(status["status"]["lastFailure"]["node"], "gpu-node-1");
        assert_eq!(
            status["status"]["lastFailure"]["log"],
            "file:///data/out/lighting/shot010/uid-1/shards/0/0/log.txt"
        );
        assert_eq!(status["status"]["failedAttempts"], "0:1");
        expect_event(&mut handle, "ShardAttemptFailed").await;
        expect_event(&mut handle, "Rendering").await;
        expect_nothing_more(&mut handle).await;
    });
    reconcile_and_verify(job, ctx, verifier).await;
}

#[tokio::test]
async fn the_last_success_creates_the_merge_pod() {
    let (client, mut handle) = mock();
    let job = job();
    let pods = (0..8)
        .map(|s| shard_pod(s, 0, "Succeeded", Some(0), "gpu-node-1"))
        .collect();
    let ctx = context(client, &job, pods, vec![gpu_node("gpu-node-1")]);
    let verifier = tokio::spawn(async move {
        let merge = expect_pod_create(&mut handle).await;
        assert_eq!(names_of_created(&merge), "shot010-merge-0-0");
        assert_eq!(merge["metadata"]["labels"]["tessera.dev/role"], "merge");
        assert_eq!(
            merge["metadata"]["annotations"]["tessera.dev/merge-step"],
            r#"{"chunks":"0-3"}"#
        );
        assert_eq!(merge["spec"]["containers"][0]["args"][0], "merge");
        let status = expect_status_patch(&mut handle).await;
        assert_eq!(status["status"]["phase"], "Merging");
        assert_eq!(status["status"]["succeededShards"], "0-7");
        expect_event(&mut handle, "Merging").await;
        expect_nothing_more(&mut handle).await;
    });
    reconcile_and_verify(job, ctx, verifier).await;
}

#[tokio::test]
async fn after_a_restart_succeeded_shards_are_not_rendered_again() {
    // A fresh operator: new caches filled only from the API. Shards 0-3 succeeded (two of them
    // recorded only in status, their pods gone), 4-5 run; capacity 2 is used up.
    let (client, mut handle) = mock();
    let mut job = job();
    job.status = Some(
        serde_json::from_value(json!({
        "phase": "Rendering", "succeededShards": "0-1", "startTime": "2026-01-15T08:00:00Z"}))
        .unwrap(),
    );
    let pods = vec![
        shard_pod(2, 0, "Succeeded", Some(0), "gpu-node-1"),
        shard_pod(3, 0, "Succeeded", Some(0), "gpu-node-2"),
        shard_pod(4, 0, "Running", None, "gpu-node-1"),
        shard_pod(5, 0, "Running", None, "gpu-node-2"),
    ];
    let ctx = context(
        client,
        &job,
        pods,
        vec![gpu_node("gpu-node-1"), gpu_node("gpu-node-2")],
    );
    let verifier = tokio::spawn(async move {
        // Frames 1-2 (shards 0-3) are rendered: they merge now; no shard renders again.
        let merge = expect_pod_create(&mut handle).await;
        assert_eq!(names_of_created(&merge), "shot010-merge-0-0");
        let status = expect_status_patch(&mut handle).await;
        assert_eq!(status["status"]["succeededShards"], "0-3");
        assert_eq!(status["status"]["shards"]["active"], 2);
        expect_nothing_more(&mut handle).await;
    });
    reconcile_and_verify(job, ctx, verifier).await;
}

#[tokio::test]
async fn accounted_attempts_are_released_then_deleted_and_status_is_conditional() {
    // Shard 0's success is already in the ledger (settledAttempts): its pod lets go of the
    // finalizer and goes. Shard 1 just succeeded: it is settled now and its pod stays until
    // the status holding it is written. The status patch names the resourceVersion it read.
    let (client, mut handle) = mock();
    let mut job = job();
    job.metadata.resource_version = Some("4711".into());
    job.status = Some(
        serde_json::from_value(
            json!({"phase": "Rendering", "startTime": "2026-01-15T08:00:00Z",
            "succeededShards": "0", "settledAttempts": "0:1"}),
        )
        .unwrap(),
    );
    let pods = vec![
        shard_pod(0, 0, "Succeeded", Some(0), "gpu-node-1"),
        shard_pod(1, 0, "Succeeded", Some(0), "gpu-node-1"),
    ];
    let ctx = context(client, &job, pods, vec![]);
    let verifier = tokio::spawn(async move {
        // Frame 1 (shards 0-1) is rendered: its merge pod first.
        let merge = expect_pod_create(&mut handle).await;
        assert_eq!(names_of_created(&merge), "shot010-merge-0-0");
        let release = expect(
            &mut handle,
            Method::PATCH,
            "/api/v1/namespaces/lighting/pods/shot010-0-0",
            Some(json!({})),
        )
        .await;
        assert_eq!(
            release,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["tessera.dev/ledger"]}})
        );
        expect(
            &mut handle,
            Method::DELETE,
            "/api/v1/namespaces/lighting/pods/shot010-0-0",
            Some(json!({})),
        )
        .await;
        let status = expect_status_patch(&mut handle).await;
        assert_eq!(status["metadata"]["resourceVersion"], "4711");
        // Both shards succeeded: their settled counts are implied, not listed.
        assert_eq!(status["status"].get("settledAttempts"), None);
        assert_eq!(status["status"]["succeededShards"], "0-1");
        assert_eq!(status["status"]["gpuSeconds"], 30.0);
        expect_nothing_more(&mut handle).await;
    });
    reconcile_and_verify(job, ctx, verifier).await;
}

#[tokio::test]
async fn a_refused_create_is_a_condition_and_an_event_naming_the_server_s_reason() {
    let (client, mut handle) = mock();
    let job = job();
    let ctx = context(
        client,
        &job,
        vec![],
        vec![gpu_node("gpu-node-1"), gpu_node("gpu-node-2")],
    );
    let message = "pods \"shot010-0-0\" is forbidden: exceeded quota: gpu-quota, requested: pods=1, used: pods=2, limited: pods=2";
    let verifier = tokio::spawn(async move {
        expect_answering(
            &mut handle,
            Method::POST,
            "/api/v1/namespaces/lighting/pods",
            Some(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": message, "reason": "Forbidden", "code": 403}),
            ),
            403,
        )
        .await;
        // The second create of the pass is not attempted.
        let status = expect_status_patch(&mut handle).await;
        let refused = status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodCreateRefused")
            .cloned()
            .unwrap();
        assert_eq!(refused["status"], "True");
        assert_eq!(refused["reason"], "FailedCreate");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("exceeded quota: gpu-quota"),
            "{refused}"
        );
        expect_event(&mut handle, "Rendering").await;
        expect_event(&mut handle, "FailedCreate").await;
        expect_nothing_more(&mut handle).await;
    });
    // A refusal is not a reconcile error: the job backs off.
    let action = reconcile_and_verify(job, ctx, verifier).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
}
