//! End-to-end scenarios on a real control plane (docs/architecture.md §11).
//!
//! One cluster for all scenarios: `testcluster up` (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler built from the Kubernetes Go modules), the process
//! node agent (in this process, so scenarios can inject faults), and `tessera-operator` as a
//! separate process, exactly as a user would run it. Each scenario works in its own namespace
//! and waits on conditions (watches or bounded polls of the API), never on fixed sleeps.
//!
//! Shard pods run `fake-render-pod` here: these scenarios test the operator's behaviour
//! (retries, node loss, restarts, leader election, garbage collection), not pixels.
//!
//! Needs: the `testcluster` binary and `kubectl` (`eval "$(scripts/e2e-tools.sh)"` builds and
//! fetches them and sets TESSERA_TESTCLUSTER / TESSERA_KUBECTL) and the workspace binaries
//! `tessera-operator` and `fake-render-pod` built in the same target directory
//! (`cargo build --workspace --bins`). `scripts/test.sh` does all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use tessera_e2e::ensure;
use tessera_e2e::harness::{
    Cluster, Outcome, Report, Step, bin_dir, block_on, could_not_start, eventually, free_port,
    http_get, repo_root, tool,
};
use tessera_e2e::node_agent::{Agent, AgentConfig, NodeSpec};
use tessera_operator::api::RenderJob;

#[path = "scenarios/kueue.rs"]
mod kueue;
#[path = "scenarios/platform.rs"]
mod platform;
#[path = "scenarios/workflow.rs"]
mod workflow;
use tessera_operator::ledger::Ledger;

type Scenario = Step<Env>;

const POOL: &str = "e2e-gpu";
const IMAGE: &str = "ghcr.io/tessera-dev/render-pod:e2e";
/// A second pool whose pods run the real render-pod (the agent maps the longest image prefix).
const REAL_POOL: &str = "e2e-real";
/// The fake pool again, its shard pods without the ledger finalizer (`ledgerFinalizer: false`).
const LEAN_POOL: &str = "e2e-lean";
const REAL_IMAGE: &str = "ghcr.io/tessera-dev/render-pod:real";
const GPU_NODES: [&str; 3] = ["gpu-node-1", "gpu-node-2", "gpu-node-3"];

struct Env {
    dir: PathBuf,
    bin: PathBuf,
    /// The control plane; its kubectl helpers and client are reachable on `Env` itself.
    cluster: Cluster,
    agent: Option<Agent>,
    operators: Vec<(String, Child)>,
    /// The /metrics, /healthz, /readyz port of each operator, by identity.
    ports: BTreeMap<String, u16>,
    script: PathBuf,
    fake_log: PathBuf,
    /// The S3 server, started by the first scenario that needs it.
    s3: Option<S3Server>,
    /// Kueue's controller, started by the first scenario that needs it (its CRDs are
    /// installed before the operator starts, so the operator serves queued jobs).
    kueue: Option<Child>,
}

/// An S3-compatible server (MinIO, one drive: buckets are the top-level directories of `data`)
/// on a free local port with fixed test credentials.
struct S3Server {
    child: Child,
    port: u16,
    data: PathBuf,
}

const S3_BUCKET: &str = "tessera-e2e";
const S3_ACCESS_KEY: &str = "tessera-e2e-access";
const S3_SECRET_KEY: &str = "tessera-e2e-secret-key-0123456789";

impl Env {
    async fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("tessera-e2e-{}", std::process::id()));
        Self::start_in(dir, &[]).await
    }

    /// A whole environment in `dir`, its kube-controller-manager run with extra flags.
    async fn start_in(dir: PathBuf, controller_manager_args: &[&str]) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cluster = Cluster::start_with(&dir, controller_manager_args).await?;
        let script = dir.join("fake-script.json");
        std::fs::write(&script, "{}").map_err(|e| e.to_string())?;
        let fake_log = dir.join("fake-log");
        let mut env = Env {
            dir,
            bin: bin_dir(),
            cluster,
            agent: None,
            operators: Vec::new(),
            ports: BTreeMap::new(),
            script,
            fake_log,
            s3: None,
            kueue: None,
        };

        env.kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            &repo_root().join("crds").to_string_lossy(),
        ])?;
        env.crds_established(&["renderjobs.tessera.dev", "renderpools.tessera.dev"])
            .await?;
        env.install_kueue_crds().await?;
        let mut nodes: Vec<NodeSpec> = GPU_NODES
            .iter()
            .map(|n| NodeSpec::gpu(n, ("tessera.dev/node-group", "gpu-a"), 2))
            .collect();
        nodes.push(NodeSpec::cpu("cpu-node-1"));
        let agent = Agent::start(
            env.client.clone(),
            AgentConfig {
                nodes,
                images: vec![
                    (
                        "ghcr.io/tessera-dev/render-pod".into(),
                        env.bin.join("fake-render-pod"),
                    ),
                    (REAL_IMAGE.into(), env.bin.join("render-pod")),
                ],
                work_dir: env.dir.join("pods"),
                heartbeat: Duration::from_secs(1),
                extra_env: vec![
                    (
                        "TESSERA_FAKE_SCRIPT".into(),
                        env.script.to_string_lossy().into(),
                    ),
                    (
                        "TESSERA_FAKE_LOG".into(),
                        env.fake_log.to_string_lossy().into(),
                    ),
                ],
                cluster_access: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        env.agent = Some(agent);
        env.start_operator("operator-a")?;
        // Jobs write under <dir>/data/<namespace>/ and read scenes from there or from the
        // shared libraries: the fake scenes, the samples, and <dir>/scenes.
        std::fs::create_dir_all(env.dir.join("scenes")).map_err(|e| e.to_string())?;
        let pool = json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": POOL},
            "spec": {"nodeSelector": {"tessera.dev/node-group": "gpu-a"}, "image": IMAGE,
                     "nodeLostTolerationSeconds": 2, "storage": {
                         "url": format!("file://{}/data", env.dir.display()),
                         "sharedReadPrefixes": ["file:///scenes", "file:///data/scenes",
                             format!("file://{}", samples_dir().display()),
                             format!("file://{}/scenes", env.dir.display())]}}
        });
        env.kubectl_apply(&pool)?;
        let mut real_pool = pool.clone();
        real_pool["metadata"]["name"] = json!(REAL_POOL);
        real_pool["spec"]["image"] = json!(REAL_IMAGE);
        env.kubectl_apply(&real_pool)?;
        let mut lean_pool = pool.clone();
        lean_pool["metadata"]["name"] = json!(LEAN_POOL);
        lean_pool["spec"]["ledgerFinalizer"] = json!(false);
        env.kubectl_apply(&lean_pool)?;
        Ok(env)
    }

    fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("the agent runs")
    }

    fn start_operator(&mut self, identity: &str) -> Result<(), String> {
        let port = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{identity}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new(self.bin.join("tessera-operator"))
            .args([
                "--identity",
                identity,
                "--lease-namespace",
                "default",
                "--lease-seconds",
                "6",
                "--http-addr",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("TESSERA_E2E_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting tessera-operator: {e}"))?;
        self.operators.push((identity.to_string(), child));
        self.ports.insert(identity.to_string(), port);
        Ok(())
    }

    fn kill_operator(&mut self, identity: &str) {
        if let Some(i) = self.operators.iter().position(|(id, _)| id == identity) {
            let (_, mut child) = self.operators.remove(i);
            let _ = child.kill(); // SIGKILL: no chance to clean up or release the lease
            let _ = child.wait();
        }
    }

    /// After each scenario: exactly one operator, `operator-a`, whatever the scenario left.
    fn reset_operators(&mut self) -> Result<(), String> {
        let only_a = self.operators.len() == 1 && self.operators[0].0 == "operator-a";
        if !only_a {
            for identity in self
                .operators
                .iter()
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
            {
                self.kill_operator(&identity);
            }
            self.start_operator("operator-a")?;
        }
        Ok(())
    }

    fn set_script(&self, job: &str, script: serde_json::Value) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.script).unwrap_or_else(|_| "{}".into());
        let mut all: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_default();
        all.insert(job.into(), script);
        std::fs::write(
            &self.script,
            serde_json::to_string(&all).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())
    }

    /// `(shard, attempt)` → the node, of every render the fake render pod ran for `job`
    /// (the operator deletes shard pods once accounted, so the pods no longer say).
    fn render_nodes(&self, job: &str) -> BTreeMap<(u32, u32), String> {
        let prefix = format!("{job}.render.");
        std::fs::read_dir(&self.fake_log)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (shard, attempt) = name.strip_prefix(&prefix)?.split_once('.')?;
                let node = std::fs::read_to_string(e.path()).ok()?;
                Some(((shard.parse().ok()?, attempt.parse().ok()?), node))
            })
            .collect()
    }

    /// Waits until `job` has no shard pods left: every attempt accounted in its status and
    /// its pod deleted (pods of failed attempts excepted, when `keep_failed`).
    async fn shard_pods_gone(&self, namespace: &str, job: &str, keep_failed: bool) -> Outcome {
        eventually(
            "the operator to delete every accounted shard pod",
            Duration::from_secs(60),
            || async {
                let pods = self.pods(namespace, job).await.ok()?;
                pods.iter()
                    .all(|p| {
                        label(p, "tessera.dev/role") != "shard"
                            || (keep_failed
                                && p.status.as_ref().and_then(|s| s.phase.as_deref())
                                    == Some("Failed"))
                    })
                    .then_some(())
            },
        )
        .await
    }

    /// `(shard, attempt)` of every render the fake render pod ran for `job`.
    fn renders(&self, job: &str) -> Vec<(u32, u32)> {
        let prefix = format!("{job}.render.");
        let mut runs: Vec<(u32, u32)> = std::fs::read_dir(&self.fake_log)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (shard, attempt) = name.strip_prefix(&prefix)?.split_once('.')?;
                Some((shard.parse().ok()?, attempt.parse().ok()?))
            })
            .collect();
        runs.sort_unstable();
        runs
    }

    async fn namespace(&self, name: &str) -> Result<(), String> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": name}}))
            .map_err(|e| e.to_string())?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Creates a RenderJob of `shards` one-frame shards in `namespace`.
    async fn job(
        &self,
        namespace: &str,
        name: &str,
        frames: &str,
        extra: serde_json::Value,
    ) -> Result<(), String> {
        self.namespace(namespace).await?;
        let mut spec = json!({
            "pool": POOL, "scene": {"url": "file:///scenes/cbox.gltf"}, "frames": frames,
            "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 4,
            "retry": {"attemptsPerShard": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        self.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}),
        )?;
        Ok(())
    }

    async fn wait_condition(
        &self,
        namespace: &str,
        name: &str,
        condition: &'static str,
        timeout: Duration,
    ) -> Result<RenderJob, String> {
        let api: Api<RenderJob> = Api::namespaced(self.client.clone(), namespace);
        let is_met = move |job: Option<&RenderJob>| {
            job.and_then(|j| j.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == condition && c.status == "True")
            })
        };
        match tokio::time::timeout(timeout, await_condition(api, name, is_met)).await {
            Ok(Ok(Some(job))) => Ok(job),
            Ok(Ok(None)) => Err(format!("{namespace}/{name} was deleted")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                let status = self.kubectl(
                    &[
                        "get",
                        "rj",
                        name,
                        "-n",
                        namespace,
                        "-o",
                        "jsonpath={.status}",
                    ],
                    None,
                );
                Err(format!(
                    "{namespace}/{name} not {condition} after {timeout:?}; status: {}",
                    String::from_utf8_lossy(&status.stdout)
                ))
            }
        }
    }

    async fn pods(&self, namespace: &str, job: &str) -> Result<Vec<Pod>, String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&ListParams::default().labels(&format!("tessera.dev/job={job}")))
            .await
            .map_err(|e| e.to_string())?;
        Ok(list.items)
    }

    /// Starts the S3 server once (TESSERA_S3_SERVER, built by `e2e/s3/build.sh`), with the
    /// bucket `S3_BUCKET` pre-created as a directory of its drive; answers its port and drive.
    async fn s3(&mut self) -> Result<(u16, PathBuf), String> {
        if let Some(s3) = &self.s3 {
            return Ok((s3.port, s3.data.clone()));
        }
        let server = tool("TESSERA_S3_SERVER", repo_root().join("e2e/s3/bin/minio"));
        ensure!(
            server.exists(),
            "{} is missing: run `eval \"$(scripts/e2e-tools.sh)\"` (it builds the S3 server)",
            server.display()
        );
        let data = self.dir.join("s3/data");
        // MinIO takes a top-level directory of a fresh drive as a bucket: no signed
        // CreateBucket request needed.
        std::fs::create_dir_all(data.join(S3_BUCKET)).map_err(|e| e.to_string())?;
        let (port, console_port) = (free_port()?, free_port()?);
        let log = std::fs::File::create(self.dir.join("s3.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&server)
            .arg("server")
            .arg(&data)
            .arg("--address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--console-address")
            .arg(format!("127.0.0.1:{console_port}"))
            .arg("--certs-dir")
            .arg(self.dir.join("s3/certs"))
            .env("MINIO_ROOT_USER", S3_ACCESS_KEY)
            .env("MINIO_ROOT_PASSWORD", S3_SECRET_KEY)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", server.display()))?;
        self.s3 = Some(S3Server {
            child,
            port,
            data: data.clone(),
        });
        eventually("the S3 server", Duration::from_secs(60), || async {
            http_get(&format!("127.0.0.1:{port}"), "/minio/health/ready")
                .is_some_and(|(code, _)| code == 200)
                .then_some(())
        })
        .await?;
        Ok((port, data))
    }

    /// Kueue's controller binary (TESSERA_KUEUE, built by `e2e/kueue/build.sh`); its CRDs lie
    /// in `crds/` beside it.
    fn kueue_binary() -> Result<PathBuf, String> {
        let binary = tool("TESSERA_KUEUE", repo_root().join("e2e/kueue/bin/kueue"));
        ensure!(
            binary.exists(),
            "{} is missing: run `eval \"$(scripts/e2e-tools.sh)\"` (it builds Kueue)",
            binary.display()
        );
        Ok(binary)
    }

    async fn install_kueue_crds(&self) -> Result<(), String> {
        let crds = Self::kueue_binary()?
            .parent()
            .map(|dir| dir.join("crds"))
            .ok_or("the Kueue binary has no directory")?;
        self.kubectl_ok(&["apply", "--server-side", "-f", &crds.to_string_lossy()])?;
        self.crds_established(&[
            "workloads.kueue.x-k8s.io",
            "clusterqueues.kueue.x-k8s.io",
            "localqueues.kueue.x-k8s.io",
            "resourceflavors.kueue.x-k8s.io",
        ])
        .await
    }

    /// Starts Kueue's controller once and waits until it is ready.
    async fn kueue(&mut self) -> Result<(), String> {
        if self.kueue.is_some() {
            return Ok(());
        }
        let binary = Self::kueue_binary()?;
        let (health, metrics) = (free_port()?, free_port()?);
        let log = std::fs::File::create(self.dir.join("kueue.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg(format!("--health-probe-bind-address=127.0.0.1:{health}"))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics}"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        self.kueue = Some(child);
        eventually("Kueue ready", Duration::from_secs(90), || async {
            http_get(&format!("127.0.0.1:{health}"), "/readyz")
                .is_some_and(|(code, _)| code == 200)
                .then_some(())
        })
        .await
    }

    /// Stops everything: the agent first (it kills its pods' processes), then the rest.
    async fn shutdown(mut self) {
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
        self.stop();
    }

    /// The job as the API server has it.
    /// Deletes every RenderJob left in the cluster, so a scenario that failed half way does not
    /// hold the pools' slots (a hanging shard, say) through the scenarios after it.
    async fn delete_all_jobs(&self) {
        let api = Api::<RenderJob>::all(self.client.clone());
        let Ok(jobs) = api.list(&ListParams::default()).await else {
            return;
        };
        for job in jobs {
            let namespace = job.namespace().unwrap_or_default();
            let _ = Api::<RenderJob>::namespaced(self.client.clone(), &namespace)
                .delete(&job.name_any(), &DeleteParams::background())
                .await;
        }
    }

    async fn render_job(&self, namespace: &str, name: &str) -> Result<RenderJob, String> {
        Api::<RenderJob>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| e.to_string())
    }

    fn stop(mut self) {
        for (_, mut child) in self.operators.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut s3) = self.s3.take() {
            let _ = s3.child.kill();
            let _ = s3.child.wait();
        }
        if let Some(mut kueue) = self.kueue.take() {
            let _ = kueue.kill();
            let _ = kueue.wait();
        }
        self.cluster.stop();
    }
}

impl std::ops::Deref for Env {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

/// `config/samples/scenes`, without `..` (a storage URL may not have one).
fn samples_dir() -> PathBuf {
    let dir = repo_root().join("config/samples/scenes");
    dir.canonicalize().unwrap_or(dir)
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn label(pod: &Pod, key: &str) -> String {
    pod.labels().get(key).cloned().unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Scenarios

fn happy_path(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("happy").await?;
        // The sample job as a user has it, pointed at this cluster's pool and namespace.
        let sample = std::fs::read_to_string(repo_root().join("config/samples/renderjob.yaml"))
            .map_err(|e| e.to_string())?;
        let manifest = sample
            .replace("pool: gpu-a", &format!("pool: {POOL}"))
            .replace("namespace: default", "namespace: happy");
        let out = env.kubectl(&["apply", "-f", "-"], Some(&manifest));
        ensure!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.kubectl_ok(&[
            "wait",
            "--for=condition=Complete",
            "renderjob/cbox",
            "-n",
            "happy",
            "--timeout=120s",
        ])?;
        let table = env.kubectl_ok(&["get", "renderjobs", "-n", "happy"])?;
        ensure!(
            table.contains("Complete") && table.contains("100%") && table.contains("16"),
            "kubectl get renderjobs shows:\n{table}"
        );
        for ((shard, attempt), node) in env.render_nodes("cbox") {
            ensure!(
                GPU_NODES.contains(&node.as_str()),
                "shard {shard} attempt {attempt} ran on {node:?} (not a pool GPU node)"
            );
        }
        // The ledger holds every attempt, so the shard pods go; the status keeps the account.
        env.shard_pods_gone("happy", "cbox", false).await?;
        let job: RenderJob = Api::namespaced(env.client.clone(), "happy")
            .get("cbox")
            .await
            .map_err(|e| e.to_string())?;
        let status = job.status.unwrap_or_default();
        ensure!(
            settled(&status) == "0-15:1",
            "ledger: settled {}",
            settled(&status)
        );
        ensure!(
            env.renders("cbox").len() == 16,
            "expected 16 renders, the fake render pod ran {:?}",
            env.renders("cbox")
        );
        Ok(())
    })
}

fn invalid_manifests_are_refused(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("invalid").await?;
        let base = json!({"pool": POOL, "scene": {"url": "file:///s.gltf"}, "frames": "1-10",
            "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 16});
        // (a change to the spec, text the API server's refusal must contain)
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!({"frames": "1-10,"}), "spec.frames"),
            (json!({"frames": "ten"}), "spec.frames"),
            (json!({"samplesPerPixel": 0}), "spec.samplesPerPixel"),
            (
                json!({"resolution": {"width": 0, "height": 64}}),
                "spec.resolution.width",
            ),
            (
                json!({"resolution": {"width": 64, "height": 40000}}),
                "spec.resolution.height",
            ),
            (
                json!({"sharding": {"tiles": {"columns": 65, "rows": 1}}}),
                "spec.sharding.tiles.columns must not exceed spec.resolution.width",
            ),
            (
                json!({"sharding": {"sampleSplits": 17}}),
                "spec.sharding.sampleSplits must not exceed spec.samplesPerPixel",
            ),
            (
                json!({"sharding": {"framesPerShard": 0}}),
                "spec.sharding.framesPerShard",
            ),
            (
                json!({"scene": {"url": "ftp://host/s.gltf"}}),
                "spec.scene.url",
            ),
            (
                json!({"scene": {}}),
                "set exactly one of spec.scene.url and spec.scene.configMap",
            ),
            (
                json!({"scene": {"url": "s3://b/s.glb", "configMap": {"name": "c", "key": "s.glb"}}}),
                "set exactly one of spec.scene.url",
            ),
            (
                json!({"output": {"formats": ["TIFF"]}}),
                "spec.output.formats[0]",
            ),
            (json!({"priority": 5000}), "spec.priority"),
            (json!({"maxBounces": 65}), "spec.maxBounces"),
            (
                json!({"retry": {"attemptsPerShard": 0}}),
                "spec.retry.attemptsPerShard",
            ),
            (
                json!({"retry": {"backoffSeconds": 100, "maxBackoffSeconds": 10}}),
                "spec.retry.backoffSeconds must not exceed spec.retry.maxBackoffSeconds",
            ),
            (json!({"pool": ""}), "spec.pool"),
            // Storage URLs, names and values copied into pods (docs/security.md, "What the
            // API server refuses").
            (
                json!({"output": {"url": "file:///data/team-a/../team-b/x"}}),
                "spec.output.url must not contain `.` or `..` path segments",
            ),
            (
                json!({"scene": {"url": "s3://b/lib/%2E%2e/team-b/s.glb"}}),
                "spec.scene.url must not contain `.` or `..` path segments",
            ),
            (
                json!({"output": {"url": "s3://b/out//x"}}),
                "spec.output.url must not contain empty path segments",
            ),
            (
                json!({"scene": {"url": "http://example.com/s.glb"}}),
                "spec.scene.url",
            ),
            (
                json!({"scene": {"url": "s3://b/s.glb?versionId=1"}}),
                "spec.scene.url",
            ),
            (
                json!({"output": {"url": "file:///data\\team-b"}}),
                "spec.output.url",
            ),
            (
                json!({"scene": {"url": format!("s3://b/{}", "a".repeat(2100))}}),
                "spec.scene.url",
            ),
            (json!({"camera": "c".repeat(300)}), "spec.camera"),
            (
                json!({"background": [-1.0, 0.0, 0.0]}),
                "spec.background[0]",
            ),
            (
                json!({"background": [0.0, 2.0e6, 0.0]}),
                "spec.background[1]",
            ),
            (
                json!({"scene": {"configMap": {"name": "Scenes_A", "key": "s.glb"}}}),
                "spec.scene.configMap.name",
            ),
            (
                json!({"output": {"secretName": "s3/creds"}}),
                "spec.output.secretName",
            ),
            (json!({"pool": "GPU pool"}), "spec.pool"),
            (
                json!({"environment": {"url": "s3://b/sky.hdr"}, "background": [1.0, 1.0, 1.0]}),
                "spec.background and spec.environment are exclusive",
            ),
            (
                json!({"environment": {"url": "s3://b/lib/../team-b/sky.hdr"}}),
                "spec.environment.url must not contain `.` or `..` path segments",
            ),
            (
                json!({"environment": {"url": "http://example.com/sky.hdr"}}),
                "spec.environment.url",
            ),
            (
                json!({"environment": {"url": "s3://b/sky.hdr", "strength": -1.0}}),
                "spec.environment.strength",
            ),
            (
                json!({"environment": {"url": "s3://b/sky.hdr", "rotationDegrees": 720.0}}),
                "spec.environment.rotationDegrees",
            ),
            (json!({"aovs": ["Depth", "Cryptomatte"]}), "spec.aovs[1]"),
            (
                json!({"motionBlur": {"shutter": 2.0}}),
                "spec.motionBlur.shutter",
            ),
        ];
        let count = cases.len();
        for (change, expected) in cases {
            let mut spec = base.clone();
            if let (Some(spec), Some(change)) = (spec.as_object_mut(), change.as_object()) {
                spec.extend(change.clone());
            }
            let manifest = json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob", "metadata": {"name": "bad", "namespace": "invalid"}, "spec": spec});
            let out = env.kubectl(
                &["apply", "--dry-run=server", "-f", "-"],
                Some(&manifest.to_string()),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(!out.status.success(), "the API server accepted {change}");
            ensure!(
                stderr.contains(expected),
                "refusal of {change} does not name `{expected}`: {stderr}"
            );
        }
        // RenderPools: storage, image, quantities, selectors, budgets.
        let pool_base =
            json!({"image": "render-pod:1", "storage": {"url": "s3://renders/tessera"}});
        let storage = |extra: serde_json::Value| {
            let mut storage = json!({"url": "s3://renders/tessera"});
            if let (Some(storage), Some(extra)) = (storage.as_object_mut(), extra.as_object()) {
                storage.extend(extra.clone());
            }
            json!({"storage": storage})
        };
        let pool_cases: Vec<(serde_json::Value, &str)> = vec![
            (
                storage(json!({"url": "s3://renders/x/../tessera"})),
                "spec.storage.url must not contain `.` or `..` path segments",
            ),
            (
                storage(json!({"url": "http://minio:9000/renders"})),
                "spec.storage.url",
            ),
            (
                storage(json!({"sharedReadPrefixes": ["s3://renders/tessera/library"]})),
                "spec.storage.sharedReadPrefixes must not overlap spec.storage.url",
            ),
            (
                storage(json!({"sharedReadPrefixes": ["s3://renders"]})),
                "spec.storage.sharedReadPrefixes must not overlap spec.storage.url",
            ),
            (
                storage(json!({"sharedReadPrefixes": ["s3://assets/%2e%2e/renders"]})),
                "spec.storage.sharedReadPrefixes must not contain `.` or `..`",
            ),
            (
                storage(json!({"mountPath": "data"})),
                "spec.storage.mountPath",
            ),
            (
                storage(json!({"mountPath": "/data/../etc"})),
                "spec.storage.mountPath must not contain `.` or `..` segments",
            ),
            (
                storage(json!({"secretName": "Render S3"})),
                "spec.storage.secretName",
            ),
            (json!({"image": "render-pod :1"}), "spec.image"),
            (
                json!({"shardResources": {"cpu": "-1"}}),
                "spec.shardResources.cpu must be a positive quantity",
            ),
            (
                json!({"shardResources": {"memory": "lots"}}),
                "spec.shardResources.memory must be a positive quantity",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Gt", "values": ["1"]}]}}),
                "spec.namespaceSelector.matchExpressions[0].operator",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]}}),
                "In and NotIn need values; Exists and DoesNotExist take none",
            ),
            (
                json!({"sceneLimits": {"maxTriangles": 0}}),
                "spec.sceneLimits.maxTriangles",
            ),
            (
                json!({"priorityClassName": "Render Low"}),
                "spec.priorityClassName",
            ),
        ];
        let pool_count = pool_cases.len();
        for (change, expected) in pool_cases {
            let mut spec = pool_base.clone();
            if let (Some(spec), Some(change)) = (spec.as_object_mut(), change.as_object()) {
                spec.extend(change.clone());
            }
            let manifest = json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool",
                "metadata": {"name": "bad-pool"}, "spec": spec});
            let out = env.kubectl(
                &["apply", "--dry-run=server", "-f", "-"],
                Some(&manifest.to_string()),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                !out.status.success(),
                "the API server accepted the pool {change}"
            );
            ensure!(
                stderr.contains(expected),
                "refusal of the pool {change} does not name `{expected}`: {stderr}"
            );
        }
        // What stays valid: quantities as numbers, the documented Azure form, libraries beside
        // the tenants' area.
        let good_pool = json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool",
            "metadata": {"name": "good-pool"}, "spec": {"image": "render-pod:1",
            "shardResources": {"cpu": 2, "memory": "8Gi"},
            "storage": {"url": "abfss://renders@acct.dfs.core.windows.net/tessera",
                "sharedReadPrefixes": ["abfss://renders@acct.dfs.core.windows.net/library", "file:///library"]},
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}});
        let out = env.kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&good_pool.to_string()),
        );
        ensure!(
            out.status.success(),
            "a valid pool was refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Frozen once rendering started: the CEL transition rule.
        env.set_script("frozen", json!({"sleepMs": 20000}))?;
        env.job("invalid", "frozen", "1-2", json!({})).await?;
        env.wait_condition("invalid", "frozen", "Rendering", Duration::from_secs(60))
            .await?;
        let out = env.kubectl(
            &[
                "patch",
                "rj",
                "frozen",
                "-n",
                "invalid",
                "--type=merge",
                "-p",
                r#"{"spec":{"frames":"1-3"}}"#,
            ],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains("cannot change once rendering has started"),
            "changing frames mid-render: {stderr}"
        );
        env.kubectl_ok(&["delete", "rj", "frozen", "-n", "invalid", "--wait=false"])?;
        println!(
            "    {count} invalid RenderJobs and {pool_count} invalid RenderPools refused, frames frozen mid-render"
        );
        Ok(())
    })
}

/// A job that uses the pool's credentials (no Secret of its own) and aims its output or scene
/// at another namespace's prefix of the pool's storage is refused with a condition naming the
/// field, and creates no pod.
fn tenants_cannot_reach_another_namespaces_prefix(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let data = env.dir.join("data");
        let victim = data.join("tenant-b");
        let cases = [
            (
                "steal",
                json!({"output": {"url": format!("file://{}/victim", victim.display())}}),
                "OutputOutsideNamespace",
                "spec.output.url",
            ),
            (
                "peek",
                json!({"scene": {"url": format!("file://{}/scenes/secret.gltf", victim.display())}}),
                "SceneOutsideNamespace",
                "spec.scene.url",
            ),
            // A Secret of its own does not open the pool's volume: file:// stays confined.
            (
                "smuggle",
                json!({"output": {"url": format!("file://{}/victim", victim.display()), "secretName": "mine"}}),
                "OutputOutsideNamespace",
                "spec.output.url",
            ),
        ];
        for (name, extra, _, _) in &cases {
            env.job("tenant-a", name, "1-2", extra.clone()).await?;
        }
        for (name, _, reason, field) in cases {
            let job = env
                .wait_condition("tenant-a", name, "Failed", Duration::from_secs(30))
                .await?;
            let status = job.status.unwrap_or_default();
            for type_ in ["Accepted", "Failed"] {
                let condition = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == type_)
                    .ok_or(format!("{name}: no {type_} condition"))?;
                ensure!(
                    condition.reason == reason
                        && condition.message.starts_with(field)
                        && condition.message.contains("tenant-a/"),
                    "{name}: {type_} is {} {}: {}",
                    condition.status,
                    condition.reason,
                    condition.message
                );
            }
            ensure!(
                env.pods("tenant-a", name).await?.is_empty() && env.renders(name).is_empty(),
                "{name}: pods were created"
            );
        }
        ensure!(
            !victim.exists(),
            "{} exists: a job wrote into tenant-b's prefix",
            victim.display()
        );
        println!("    3 cross-namespace jobs refused (output, scene, file:// with a Secret)");
        Ok(())
    })
}

/// Two jobs of the same name in two namespaces both complete, each under its own
/// `<storage>/<namespace>/<job>/`: shard manifests, frames and job manifest.
fn tenants_jobs_of_one_name_write_apart(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let namespaces = ["tenant-a", "tenant-b"];
        for namespace in namespaces {
            env.job(
                namespace,
                "twin",
                "1-2",
                json!({"output": {"formats": ["EXR"]}}),
            )
            .await?;
        }
        let mut prefixes = Vec::new();
        for namespace in namespaces {
            let job = env
                .wait_condition(namespace, "twin", "Complete", Duration::from_secs(90))
                .await?;
            let uid = job.metadata.uid.clone().unwrap_or_default();
            let prefix = env.dir.join("data").join(namespace).join("twin");
            let frames = job.status.and_then(|s| s.output).map(|o| o.frames);
            ensure!(
                frames.as_deref()
                    == Some(
                        format!("file://{}/frames/twin.####.{{exr,png}}", prefix.display())
                            .as_str()
                    ),
                "{namespace}: status.output.frames {frames:?}"
            );
            // What the fake render pod wrote: each object names the job that wrote it.
            let expected = [
                prefix.join("frames/twin.0001.exr"),
                prefix.join("frames/twin.0002.exr"),
                prefix.join(format!("{uid}/job-manifest.json")),
                prefix.join(format!("{uid}/shards/0/0/manifest.json")),
                prefix.join(format!("{uid}/shards/1/0/manifest.json")),
            ];
            for path in expected {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                ensure!(
                    text.contains(&format!("{namespace}/twin {uid}")),
                    "{} was written by another job: {text}",
                    path.display()
                );
            }
            prefixes.push(prefix);
        }
        ensure!(
            prefixes[0] != prefixes[1],
            "one prefix for both: {prefixes:?}"
        );
        println!(
            "    {} and {} hold one job each",
            prefixes[0].display(),
            prefixes[1].display()
        );
        Ok(())
    })
}

fn failed_shards_are_retried_elsewhere(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("retry", json!({"fail": {"2/0": 1, "5/0": 137}}))?;
        env.job("retries", "retry", "1-8", json!({})).await?;
        let job = env
            .wait_condition("retries", "retry", "Complete", Duration::from_secs(90))
            .await?;
        let status = job.status.unwrap_or_default();
        ensure!(
            status.shard_attempts.to_string() == "2:1,5:1",
            "attempt map {}",
            status.shard_attempts
        );
        let nodes = env.render_nodes("retry");
        for shard in [2, 5] {
            let (first, retry) = (nodes.get(&(shard, 0)), nodes.get(&(shard, 1)));
            ensure!(
                first.is_some() && retry.is_some() && first != retry,
                "shard {shard} retried on the node it failed on: {nodes:?}"
            );
        }
        ensure!(
            status.failed_attempts.to_string() == "2:1,5:1",
            "ledger failures {}",
            status.failed_attempts
        );
        // The failed attempts' pods stay for `kubectl logs`; everything else goes.
        env.shard_pods_gone("retries", "retry", true).await?;
        let kept: BTreeSet<String> = env
            .pods("retries", "retry")
            .await?
            .iter()
            .filter(|p| label(p, "tessera.dev/role") == "shard")
            .map(|p| p.name_any())
            .collect();
        ensure!(
            kept == BTreeSet::from(["retry-2-0".to_string(), "retry-5-0".to_string()]),
            "kept shard pods {kept:?}"
        );
        Ok(())
    })
}

fn a_shard_that_always_fails_fails_the_job(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("doomed", json!({"failAlways": {"3": 1}}))?;
        env.job(
            "doomed",
            "doomed",
            "1-6",
            json!({"retry": {"attemptsPerShard": 2, "backoffSeconds": 0, "maxBackoffSeconds": 0}}),
        )
        .await?;
        let job = env
            .wait_condition("doomed", "doomed", "Failed", Duration::from_secs(90))
            .await?;
        let status = job.status.unwrap_or_default();
        let failed = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Failed")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(
            failed.contains("shard 3 failed on node gpu-node-"),
            "Failed condition: {failed}"
        );
        ensure!(
            env.renders("doomed")
                .iter()
                .filter(|(s, _)| *s == 3)
                .count()
                == 2,
            "shard 3 ran {:?}",
            env.renders("doomed")
        );

        env.set_script("bad-scene", json!({"failAlways": {"0": 3}}))?;
        env.job("doomed", "bad-scene", "1", json!({})).await?;
        let job = env
            .wait_condition("doomed", "bad-scene", "Failed", Duration::from_secs(60))
            .await?;
        let failure = job
            .status
            .and_then(|s| s.last_failure)
            .ok_or("no lastFailure")?;
        ensure!(failure.reason == "BadInput", "reason {}", failure.reason);
        ensure!(
            env.renders("bad-scene").len() == 1,
            "a bad scene was retried: {:?}",
            env.renders("bad-scene")
        );

        // A job that accepts missing frames: shard 2 (frame 3) fails for good, every other
        // frame is merged, and the job is Complete with a reason that says so.
        env.set_script("partial", json!({"failAlways": {"2": 3}}))?;
        env.job(
            "doomed",
            "partial",
            "1-4",
            json!({"retry": {"attemptsPerShard": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0,
                             "maxFailedShards": 1, "allowMissingFrames": true}}),
        )
        .await?;
        let job = env
            .wait_condition("doomed", "partial", "Complete", Duration::from_secs(90))
            .await?;
        let status = job.status.ok_or("no status")?;
        let complete = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Complete")
            .ok_or("no Complete condition")?;
        ensure!(
            complete.reason == "MissingFrames" && complete.message.contains("3 of 4 frames"),
            "Complete: {} {}",
            complete.reason,
            complete.message
        );
        ensure!(
            status.missing_frames.as_deref() == Some("3"),
            "missingFrames {:?}",
            status.missing_frames
        );
        let frames = env.dir.join("data/doomed/partial/frames");
        for frame in [1, 2, 4] {
            let path = frames.join(format!("partial.{frame:04}.exr"));
            ensure!(path.is_file(), "{} was not merged", path.display());
        }
        ensure!(
            !frames.join("partial.0003.exr").exists(),
            "the missing frame was written"
        );
        println!("    partial: {}", complete.message);
        Ok(())
    })
}

/// `spec.dependsOn`: a job waits (no pod, `DependenciesReady` False) until the job it names is
/// Complete, then renders; a failed dependency or a cycle fails the job before it starts.
fn dependencies_gate_the_start(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let after = |name: &str| json!({"dependsOn": [{"name": name}]});
        env.set_script("layout", json!({"sleepMs": 3000}))?;
        env.job("chain", "layout", "1-2", json!({})).await?;
        env.job("chain", "lighting", "1", after("layout")).await?;
        let api: Api<RenderJob> = Api::namespaced(env.client.clone(), "chain");
        let waiting = eventually(
            "lighting waiting for layout",
            Duration::from_secs(30),
            || {
                let api = api.clone();
                async move {
                    let job = api.get("lighting").await.ok()?;
                    let status = job.status?;
                    let ready = status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == "DependenciesReady")?;
                    (ready.status == "False" && ready.reason == "WaitingForDependencies")
                        .then(|| ready.message.clone())
                }
            },
        )
        .await?;
        ensure!(waiting.contains("layout"), "waiting message: {waiting}");
        ensure!(
            env.renders("lighting").is_empty(),
            "lighting rendered before layout finished"
        );
        let layout = env
            .wait_condition("chain", "layout", "Complete", Duration::from_secs(90))
            .await?;
        let lighting = env
            .wait_condition("chain", "lighting", "Complete", Duration::from_secs(90))
            .await?;
        let done = layout
            .status
            .and_then(|s| s.completion_time)
            .ok_or("no completion")?;
        let started = lighting
            .status
            .and_then(|s| s.start_time)
            .ok_or("no start")?;
        ensure!(
            started.0 >= done.0,
            "lighting started at {} before layout completed at {}",
            started.0,
            done.0
        );

        env.set_script("plates", json!({"failAlways": {"0": 3}}))?;
        env.job("chain", "plates", "1", json!({})).await?;
        env.job("chain", "comp", "1", after("plates")).await?;
        let comp = env
            .wait_condition("chain", "comp", "Failed", Duration::from_secs(60))
            .await?;
        let failed = comp
            .status
            .iter()
            .flat_map(|s| s.conditions.clone())
            .find(|c| c.type_ == "Failed")
            .ok_or("no Failed condition")?;
        ensure!(
            failed.reason == "DependencyFailed" && failed.message.contains("plates"),
            "comp: {} {}",
            failed.reason,
            failed.message
        );

        env.job("chain", "loop-a", "1", after("loop-b")).await?;
        env.job("chain", "loop-b", "1", after("loop-a")).await?;
        for name in ["loop-a", "loop-b"] {
            let job = env
                .wait_condition("chain", name, "Failed", Duration::from_secs(60))
                .await?;
            let failed = job
                .status
                .iter()
                .flat_map(|s| s.conditions.clone())
                .find(|c| c.type_ == "Failed")
                .ok_or("no Failed condition")?;
            ensure!(
                failed.reason == "DependencyCycle",
                "{name}: {} {}",
                failed.reason,
                failed.message
            );
            ensure!(env.renders(name).is_empty(), "{name} rendered");
        }
        println!("    waiting: {waiting}; comp: {}", failed.message);
        Ok(())
    })
}

fn a_lost_node_s_shards_run_elsewhere(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("lost", json!({"sleepMs": 4000}))?;
        env.job("lost", "lost", "1-6", json!({})).await?;
        let victim = "gpu-node-3";
        let running_on_victim = eventually(
            "a running shard on gpu-node-3",
            Duration::from_secs(60),
            || async {
                let pods = env.pods("lost", "lost").await.ok()?;
                pods.iter()
                    .find(|p| {
                        node_of(p) == victim
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .map(|p| label(p, "tessera.dev/shard"))
            },
        )
        .await?;
        env.agent().stop_heartbeat(victim);
        let job = env
            .wait_condition("lost", "lost", "Complete", Duration::from_secs(120))
            .await?;
        let shard: u32 = running_on_victim.parse().map_err(|_| "shard label")?;
        let rerun = env
            .render_nodes("lost")
            .iter()
            .any(|((s, attempt), node)| *s == shard && *attempt > 0 && node != victim);
        ensure!(
            rerun,
            "shard {running_on_victim} was not re-run on another node"
        );
        let status = job.status.unwrap_or_default();
        ensure!(
            status.shards.succeeded == 6,
            "succeeded {}",
            status.shards.succeeded
        );
        Ok(())
    })
}

fn operator_killed_at_random_moments(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("restarts", json!({"sleepMs": 300}))?;
        env.job("restarts", "restarts", "1-24", json!({})).await?;
        // Deterministic "random" moments, so a failure can be reproduced.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = Duration::from_millis(200 + seed % 1200);
            tokio::time::sleep(delay).await; // the perturbation itself: kill at an arbitrary moment
            env.kill_operator("operator-a");
            env.start_operator("operator-a")?;
            println!("    round {round}: SIGKILL after {delay:?}, restarted");
        }
        env.wait_condition("restarts", "restarts", "Complete", Duration::from_secs(180))
            .await?;
        let renders = env.renders("restarts");
        let distinct: BTreeSet<u32> = renders.iter().map(|(s, _)| *s).collect();
        ensure!(
            renders.len() == 24 && distinct.len() == 24,
            "each shard must render exactly once: {renders:?}"
        );
        let pods = env.pods("restarts", "restarts").await?;
        ensure!(
            pods.iter().all(|p| p
                .owner_references()
                .iter()
                .any(|o| o.kind == "RenderJob" && o.name == "restarts")),
            "orphaned pods"
        );
        env.shard_pods_gone("restarts", "restarts", false).await?;
        let job: RenderJob = Api::namespaced(env.client.clone(), "restarts")
            .get("restarts")
            .await
            .map_err(|e| e.to_string())?;
        let settled = settled(&job.status.unwrap_or_default());
        ensure!(
            settled == "0-23:1",
            "each attempt accounted exactly once: settledAttempts {settled}"
        );
        Ok(())
    })
}

/// `tessera_pods_created_total`, summed over roles, from the operator's /metrics on `port`.
fn pods_created(port: u16) -> Result<f64, String> {
    let (code, body) = http_get(&format!("127.0.0.1:{port}"), "/metrics")
        .ok_or_else(|| format!("no /metrics on port {port}"))?;
    ensure!(code == 200, "/metrics answered {code}");
    Ok(body
        .lines()
        .filter(|line| line.starts_with("tessera_pods_created_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn only_the_leader_acts(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
        let holder =
            |lease: Option<Lease>| lease.and_then(|l| l.spec).and_then(|s| s.holder_identity);
        ensure!(
            holder(
                leases
                    .get_opt("tessera-operator")
                    .await
                    .map_err(|e| e.to_string())?
            )
            .as_deref()
                == Some("operator-a"),
            "operator-a does not lead"
        );
        env.start_operator("operator-b")?;
        for (identity, expected) in [
            ("operator-a", "ready (leader)"),
            ("operator-b", "ready (standby)"),
        ] {
            let port = env.ports[identity];
            eventually(
                &format!("{identity} to answer /readyz with 200 {expected}"),
                Duration::from_secs(30),
                || async move {
                    (http_get(&format!("127.0.0.1:{port}"), "/readyz")
                        == Some((200, expected.to_string())))
                    .then_some(())
                },
            )
            .await?;
        }
        env.set_script("leader", json!({"sleepMs": 200}))?;
        env.job("leader", "leader", "1-4", json!({})).await?;
        env.wait_condition("leader", "leader", "Complete", Duration::from_secs(60))
            .await?;
        // What each replica did, from its own /metrics (not its log's wording).
        let (leader, standby) = (
            pods_created(env.ports["operator-a"])?,
            pods_created(env.ports["operator-b"])?,
        );
        ensure!(
            leader >= 5.0 && standby == 0.0,
            "pods created: leader {leader}, standby {standby}"
        );
        env.kill_operator("operator-a");
        eventually(
            "operator-b to take the lease",
            Duration::from_secs(60),
            || async {
                (holder(leases.get_opt("tessera-operator").await.ok()?).as_deref()
                    == Some("operator-b"))
                .then_some(())
            },
        )
        .await?;
        env.job("leader", "after-failover", "1-4", json!({}))
            .await?;
        env.wait_condition(
            "leader",
            "after-failover",
            "Complete",
            Duration::from_secs(60),
        )
        .await?;
        Ok(())
    })
}

fn deleting_a_job_removes_its_pods(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("doomed-gc", json!({"sleepMs": 60000}))?;
        env.job("gc", "doomed-gc", "1-4", json!({})).await?;
        eventually("running pods", Duration::from_secs(60), || async {
            let pods = env.pods("gc", "doomed-gc").await.ok()?;
            (pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count()
                >= 2)
                .then_some(())
        })
        .await?;
        let api: Api<RenderJob> = Api::namespaced(env.client.clone(), "gc");
        api.delete("doomed-gc", &DeleteParams::background())
            .await
            .map_err(|e| e.to_string())?;
        eventually(
            "the garbage collector to remove every pod",
            Duration::from_secs(90),
            || async {
                env.pods("gc", "doomed-gc")
                    .await
                    .ok()?
                    .is_empty()
                    .then_some(())
            },
        )
        .await
    })
}

fn corrupt_outputs_are_rendered_again_before_the_merge(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("corrupt", json!({"mergeInvalid": "1,3"}))?;
        env.job("corrupt", "corrupt", "1-4", json!({})).await?;
        let job = env
            .wait_condition("corrupt", "corrupt", "Complete", Duration::from_secs(90))
            .await?;
        ensure!(
            env.renders("corrupt") == vec![(0, 0), (1, 0), (1, 1), (2, 0), (3, 0), (3, 1)],
            "renders {:?}",
            env.renders("corrupt")
        );
        let attempts = job
            .status
            .map(|s| s.shard_attempts.to_string())
            .unwrap_or_default();
        ensure!(attempts == "1:1,3:1", "attempt map {attempts}");
        Ok(())
    })
}

/// The real renderer's settings for the pixel scenarios: small, so lavapipe renders them fast.
fn real_job_spec(frames: &str, tiles: u32) -> serde_json::Value {
    let scene = samples_dir().join("cbox.gltf");
    json!({
        "pool": REAL_POOL, "scene": {"url": format!("file://{}", scene.display())}, "frames": frames,
        "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 8, "maxBounces": 2,
        "sharding": {"tiles": {"columns": tiles, "rows": tiles}},
    })
}

/// `render-pod local` of the same scene and settings, whole frames, as the reference.
fn whole_frame_render(env: &Env, frames: &str) -> Result<PathBuf, String> {
    whole_frame_render_with(env, frames, &samples_dir().join("cbox.gltf"), &[])
}

/// [`whole_frame_render`] of another scene, with more `render-pod local` arguments.
fn whole_frame_render_with(
    env: &Env,
    frames: &str,
    scene: &Path,
    more: &[&str],
) -> Result<PathBuf, String> {
    let name = scene.file_stem().unwrap_or_default().to_string_lossy();
    let out = env.dir.join(format!(
        "whole-{name}-{frames}{}",
        more.join("").replace('/', "_")
    ));
    if out.join("frame_0001.exr").exists() {
        return Ok(out);
    }
    let status = Command::new(env.bin.join("render-pod"))
        .args([
            "local",
            "--frames",
            frames,
            "--width",
            "64",
            "--height",
            "64",
            "--spp",
            "8",
            "--max-bounces",
            "2",
            "--scene",
        ])
        .arg(scene)
        .args(more)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("render-pod local: {e}"))?;
    ensure!(status.success(), "render-pod local failed: {status}");
    Ok(out)
}

fn merged_frame(env: &Env, namespace: &str, job: &str, frame: u32) -> PathBuf {
    env.dir.join(format!(
        "data/{namespace}/{job}/frames/{job}.{frame:04}.exr"
    ))
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    Ok(read(a)? == read(b)?)
}

fn real_frames_are_bit_identical_to_a_whole_frame_render(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("pixels").await?;
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "tiled", "namespace": "pixels"}, "spec": real_job_spec("1-2", 2)}),
        )?;
        env.wait_condition("pixels", "tiled", "Complete", Duration::from_secs(300))
            .await?;
        let whole = whole_frame_render(env, "1-2")?;
        for frame in [1, 2] {
            let merged = merged_frame(env, "pixels", "tiled", frame);
            let reference = whole.join(format!("frame_{frame:04}.exr"));
            ensure!(
                same_bytes(&merged, &reference)?,
                "{} differs from the whole-frame render {}",
                merged.display(),
                reference.display()
            );
        }
        let png = env.dir.join("data/pixels/tiled/frames/tiled.0001.png");
        ensure!(png.exists(), "no PNG at {}", png.display());
        // Each manifest says where its attempt ran; each attempt left its log tail beside it.
        let job = env.render_job("pixels", "tiled").await?;
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let shard = env.dir.join(format!("data/pixels/tiled/{uid}/shards/3/0"));
        let manifest: tessera_shard::contract::ShardManifest = serde_json::from_slice(
            &std::fs::read(shard.join("manifest.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let provenance = manifest
            .provenance
            .ok_or("the manifest has no provenance")?;
        ensure!(
            provenance.pod.as_deref() == Some("tiled-3-0")
                && provenance
                    .node
                    .as_deref()
                    .is_some_and(|n| GPU_NODES.contains(&n))
                && provenance.gpu.is_some(),
            "provenance {provenance:?}"
        );
        let log = std::fs::read_to_string(shard.join("log.txt")).map_err(|e| e.to_string())?;
        ensure!(log.contains("shard done"), "log tail: {log}");
        Ok(())
    })
}

fn an_environment_map_lights_the_render_pods_frames(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("sky").await?;
        // In a shared library of the pool, as a studio's HDRI collection would be.
        let sky = env.dir.join("scenes/sky.hdr");
        std::fs::copy(repo_root().join("render-pod/tests/scenes/sky.hdr"), &sky)
            .map_err(|e| e.to_string())?;
        let mut spec = real_job_spec("1", 2);
        spec["environment"] = json!({"url": format!("file://{}", sky.display()),
            "strength": 0.5, "rotationDegrees": 30});
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "lit", "namespace": "sky"}, "spec": spec}),
        )?;
        env.wait_condition("sky", "lit", "Complete", Duration::from_secs(300))
            .await?;
        let sky_arg = sky.display().to_string();
        let whole = whole_frame_render_with(
            env,
            "1",
            &samples_dir().join("cbox.gltf"),
            &[
                "--environment",
                &sky_arg,
                "--environment-strength",
                "0.5",
                "--environment-rotation",
                "30",
            ],
        )?;
        let merged = merged_frame(env, "sky", "lit", 1);
        let reference = whole.join("frame_0001.exr");
        ensure!(
            same_bytes(&merged, &reference)?,
            "{} differs from the whole-frame render {}",
            merged.display(),
            reference.display()
        );
        // And the map made a difference: the same job without it is another picture.
        let unlit = whole_frame_render(env, "1")?.join("frame_0001.exr");
        ensure!(
            !same_bytes(&merged, &unlit)?,
            "the frame is the same without the environment map"
        );
        Ok(())
    })
}

fn a_skinned_morphing_scene_renders_every_frame_as_a_local_render(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("character").await?;
        // A tube bending on its skin and a sphere morphing, both animated over frames 1-12.
        let scene = env.dir.join("scenes/skin_morph_animated.gltf");
        std::fs::copy(
            repo_root().join("render-pod/tests/scenes/skin_morph_animated.gltf"),
            &scene,
        )
        .map_err(|e| e.to_string())?;
        let mut spec = real_job_spec("1-10", 1);
        spec["scene"] = json!({"url": format!("file://{}", scene.display())});
        spec["sharding"]["framesPerShard"] = json!(2);
        // It has no lights: a white world lights it. Depth and object IDs for compositing.
        spec["background"] = json!([1.0, 1.0, 1.0]);
        spec["aovs"] = json!(["ObjectId", "Depth"]);
        spec["motionBlur"] = json!({"shutter": 0.5});
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "walk", "namespace": "character"}, "spec": spec}),
        )?;
        env.wait_condition("character", "walk", "Complete", Duration::from_secs(300))
            .await?;
        let whole = whole_frame_render_with(
            env,
            "1-10",
            &scene,
            &[
                "--background",
                "1,1,1",
                "--aovs",
                "depth,object-id",
                "--motion-blur",
                "0.5",
            ],
        )?;
        let mut frames = Vec::new();
        for frame in 1..=10u32 {
            let merged = merged_frame(env, "character", "walk", frame);
            let reference = whole.join(format!("frame_{frame:04}.exr"));
            ensure!(
                same_bytes(&merged, &reference)?,
                "frame {frame}: {} differs from render-pod local's {}",
                merged.display(),
                reference.display()
            );
            frames.push(std::fs::read(&merged).map_err(|e| e.to_string())?);
        }
        // The pose moves: no two frames alike.
        frames.sort();
        frames.dedup();
        ensure!(
            frames.len() == 10,
            "only {} distinct frames of 10",
            frames.len()
        );
        Ok(())
    })
}

fn a_broken_scene_fails_its_shard_with_the_log_in_storage(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("broken").await?;
        let scene = env.dir.join("scenes/broken.gltf");
        std::fs::write(
            &scene,
            b"{\"asset\": {\"version\": \"2.0\"}, \"buffers\": [{\"byteLength\": 4}]",
        )
        .map_err(|e| e.to_string())?;
        let mut spec = real_job_spec("1", 1);
        spec["scene"] = json!({"url": format!("file://{}", scene.display())});
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "broken", "namespace": "broken"}, "spec": spec}),
        )?;
        let job = env
            .wait_condition("broken", "broken", "Failed", Duration::from_secs(120))
            .await?;
        let failure = job
            .status
            .and_then(|s| s.last_failure)
            .ok_or("no lastFailure")?;
        ensure!(failure.reason == "BadInput", "lastFailure {failure:?}");
        let log_url = failure.log.clone().ok_or("lastFailure names no log")?;
        let path = log_url.strip_prefix("file://").ok_or("not a file:// log")?;
        let log = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        ensure!(
            log.contains("ERROR") && log.contains("broken.gltf"),
            "the log tail does not say why: {log}"
        );
        // The pod is gone or going; the log stays where status says.
        println!("    lastFailure.log {log_url}");

        // A scene whose buffer climbs out of its directory: bad input, refused before
        // anything outside is read, and not retried (attempt 0 is the only one).
        let escape_dir = env.dir.join("scenes/escape");
        std::fs::create_dir_all(&escape_dir).map_err(|e| e.to_string())?;
        std::fs::write(env.dir.join("scenes/secret.bin"), [7u8; 36]).map_err(|e| e.to_string())?;
        let escape = escape_dir.join("escape.gltf");
        std::fs::write(
            &escape,
            json!({"asset": {"version": "2.0"}, "buffers": [{"byteLength": 36, "uri": "../secret.bin"}]})
                .to_string(),
        )
        .map_err(|e| e.to_string())?;
        let mut spec = real_job_spec("1", 1);
        spec["scene"] = json!({"url": format!("file://{}", escape.display())});
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "escape", "namespace": "broken"}, "spec": spec}),
        )?;
        let job = env
            .wait_condition("broken", "escape", "Failed", Duration::from_secs(120))
            .await?;
        let status = job.status.ok_or("no status")?;
        let failure = status.last_failure.clone().ok_or("no lastFailure")?;
        ensure!(
            failure.reason == "BadInput" && failure.attempt == 0,
            "lastFailure {failure:?}"
        );
        ensure!(
            failure.message.contains("\"../secret.bin\" refused"),
            "the failure does not name the reference: {}",
            failure.message
        );
        ensure!(
            status.shard_attempts.is_empty(),
            "a bad-input shard was retried: shardAttempts {}",
            status.shard_attempts
        );
        println!("    ../ reference: {}", failure.message);
        Ok(())
    })
}

fn a_corrupted_shard_object_is_rendered_again_before_the_merge(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("corruption").await?;
        env.agent().hold_pods("tessera.dev/role", "merge");
        env.kubectl_apply(&json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "damaged", "namespace": "corruption"}, "spec": real_job_spec("1", 2)}))?;
        // Every shard rendered; the merge pod exists but is held back.
        eventually("the merge pod", Duration::from_secs(300), || async {
            (!env.agent().held().is_empty()).then_some(())
        })
        .await?;
        let job: RenderJob = Api::namespaced(env.client.clone(), "corruption")
            .get("damaged")
            .await
            .map_err(|e| e.to_string())?;
        let uid = job.uid().unwrap_or_default();
        let shard_dir = env
            .dir
            .join(format!("data/corruption/damaged/{uid}/shards/2/0"));
        let object = std::fs::read_dir(&shard_dir)
            .map_err(|e| format!("{}: {e}", shard_dir.display()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "exr"))
            .ok_or(format!("no EXR in {}", shard_dir.display()))?;
        let mut bytes = std::fs::read(&object).map_err(|e| e.to_string())?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&object, bytes).map_err(|e| e.to_string())?;
        env.agent().release_held();

        let job = env
            .wait_condition(
                "corruption",
                "damaged",
                "Complete",
                Duration::from_secs(300),
            )
            .await?;
        let attempts = job
            .status
            .map(|s| s.shard_attempts.to_string())
            .unwrap_or_default();
        ensure!(
            attempts == "2:1",
            "only shard 2 should have rendered again: attempts {attempts}"
        );
        // The chunk merges the node agent ran (a sandbox each): a finished merge pod may
        // already be collected, or not yet, when Complete is seen, so the pods listed then
        // say nothing about how many ran.
        let mut merges: Vec<String> = std::fs::read_dir(env.dir.join("pods"))
            .map_err(|e| e.to_string())?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with("corruption_damaged-merge-"))
            .collect();
        merges.sort();
        ensure!(
            merges.len() == 2,
            "expected a refused chunk merge and a good one, found {merges:?}"
        );
        let reference = whole_frame_render(env, "1-2")?.join("frame_0001.exr");
        ensure!(
            same_bytes(&merged_frame(env, "corruption", "damaged", 1), &reference)?,
            "the repaired frame differs from the whole-frame render"
        );
        Ok(())
    })
}

/// Reads `s3://S3_BUCKET/key` back through an S3 client, as any user of the bucket would.
async fn s3_object_data(port: u16, key: &str) -> Result<Vec<u8>, String> {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(S3_BUCKET)
        .with_access_key_id(S3_ACCESS_KEY)
        .with_secret_access_key(S3_SECRET_KEY)
        .build()
        .map_err(|e| e.to_string())?;
    let object = store
        .get(&object_store::path::Path::from(key))
        .await
        .map_err(|e| format!("s3://{S3_BUCKET}/{key}: {e}"))?;
    let bytes = object.bytes().await.map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

fn s3_the_happy_path_against_the_s3_server(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let (port, _) = env.s3().await?;
        env.namespace("s3").await?;
        // The operator hands this Secret to the shard and merge pods as `envFrom`; render-pod's
        // object_store client reads the AWS_* variables.
        env.kubectl_apply(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s3-credentials", "namespace": "s3"},
        "stringData": {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_ENDPOINT": format!("http://127.0.0.1:{port}"), "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
        }}))?;
        // render-pod must have been built with S3 support (its `aws` feature): say so at once
        // rather than after the job's timeout.
        let scene = samples_dir().join("cbox.gltf");
        let probe = Command::new(env.bin.join("render-pod"))
            .args([
                "local", "--frames", "1", "--width", "8", "--height", "8", "--spp", "1",
            ])
            .arg("--scene")
            .arg(&scene)
            .args(["--out", &format!("s3://{S3_BUCKET}/probe")])
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .output()
            .map_err(|e| format!("render-pod local: {e}"))?;
        ensure!(
            probe.status.success(),
            "render-pod cannot write to the S3 server (is it built with its `aws` feature?): {}",
            String::from_utf8_lossy(&probe.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        );
        // The scene stays file://; shards, manifests and merged frames go to S3.
        let mut spec = real_job_spec("1-2", 2);
        spec["output"] =
            json!({"url": format!("s3://{S3_BUCKET}/renders"), "secretName": "s3-credentials"});
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "s3job", "namespace": "s3"}, "spec": spec}),
        )?;
        env.wait_condition("s3", "s3job", "Complete", Duration::from_secs(300))
            .await?;
        let whole = whole_frame_render(env, "1-2")?;
        for (frame, ext) in [(1, "exr"), (2, "exr"), (1, "png")] {
            let key = format!("renders/frames/s3job.{frame:04}.{ext}");
            let object = s3_object_data(port, &key).await?;
            if ext == "exr" {
                let reference = whole.join(format!("frame_{frame:04}.exr"));
                let reference = std::fs::read(&reference)
                    .map_err(|e| format!("{}: {e}", reference.display()))?;
                ensure!(
                    object == reference,
                    "s3://{S3_BUCKET}/{key} differs from the whole-frame render {}",
                    whole.join(format!("frame_{frame:04}.exr")).display()
                );
            }
        }
        // Nothing of this job went to the pool's file:// storage.
        let local = env.dir.join("data/s3/s3job");
        ensure!(
            !local.exists(),
            "{} exists: the job wrote to the pool's storage",
            local.display()
        );
        Ok(())
    })
}

/// Attempts accounted per shard, listed or implied (`0-17:1`).
fn settled(status: &tessera_operator::api::RenderJobStatus) -> String {
    Ledger::from_status(status).settled_counts().to_string()
}

/// The ledger's account of a job, for checking that it never goes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
struct Account {
    settled: u64,
    counted_failures: u64,
    node_failures: u64,
    gpu_seconds: f64,
}

impl Account {
    fn of(job: &RenderJob) -> Self {
        let status = job.status.clone().unwrap_or_default();
        let sum = |map: &tessera_shard::AttemptMap| map.iter().map(|(_, n)| u64::from(n)).sum();
        Self {
            settled: sum(&Ledger::from_status(&status).settled_counts()),
            counted_failures: sum(&status.failed_attempts),
            node_failures: status
                .node_failures
                .iter()
                .map(|n| u64::from(n.failures))
                .sum(),
            gpu_seconds: status.gpu_seconds,
        }
    }

    /// Whether no figure is lower than in `earlier`.
    fn never_below(&self, earlier: &Account) -> bool {
        self.settled >= earlier.settled
            && self.counted_failures >= earlier.counted_failures
            && self.node_failures >= earlier.node_failures
            && self.gpu_seconds >= earlier.gpu_seconds
    }
}

fn deleting_finished_pods_mid_job_loses_nothing(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(finished_pods_deleted_mid_job(env, "ledger", POOL))
}

/// The same on a pool whose shard pods carry no ledger finalizer: each pod deleted before the
/// operator accounted it is accounted from its deletion event.
fn without_the_ledger_finalizer_deleted_pods_are_accounted_from_their_deletion(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(finished_pods_deleted_mid_job(env, "lean", LEAN_POOL))
}

/// Runs job `name` (namespace and fake-render script of the same name) on `pool`, deleting
/// every pod that has finished until the job completes; nothing may render twice.
async fn finished_pods_deleted_mid_job(env: &mut Env, name: &str, pool: &str) -> Outcome {
    env.set_script(name, json!({"sleepMs": 800, "fail": {"3/0": 1}}))?;
    env.job(name, name, "1-18", json!({"pool": pool})).await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), name);
    let mut last = Account::default();
    let mut deleted = 0;
    // As a person (or a cleanup script) would: delete every pod that has finished, over
    // and over, until the job completes; the ledger must never go back meanwhile.
    let started = std::time::Instant::now();
    let done = loop {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "not Complete after 120 s; last account {last:?}"
        );
        for pod in env.pods(name, name).await? {
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            let finished = matches!(phase.as_deref(), Some("Succeeded" | "Failed"));
            if finished && pod.metadata.deletion_timestamp.is_none() {
                let _ = pods.delete(&pod.name_any(), &DeleteParams::default()).await;
                deleted += 1;
            }
        }
        let job = env.render_job(name, name).await?;
        let account = Account::of(&job);
        ensure!(
            account.never_below(&last),
            "the ledger went back: {last:?} -> {account:?}"
        );
        last = account;
        let complete = job.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        });
        if complete {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval, bounded above
    };
    ensure!(deleted > 0, "no finished pod was ever deleted");
    // 19 attempts of 0.8 s, timed by the node agent to the second.
    ensure!(last.gpu_seconds > 0.0, "no GPU-seconds accounted: {last:?}");
    let renders = env.renders(name);
    let mut expected: Vec<(u32, u32)> = (0..18).map(|s| (s, 0)).collect();
    expected.push((3, 1));
    expected.sort_unstable();
    ensure!(
        renders == expected,
        "no shard may render again: {renders:?}"
    );
    let status = done.status.unwrap_or_default();
    ensure!(
        settled(&status) == "0-2:1,3:2,4-17:1"
            && status.failed_attempts.to_string() == "3:1"
            && status.node_failures.iter().map(|n| n.failures).sum::<u32>() == 1,
        "ledger: settled {} failed {} nodes {:?}",
        settled(&status),
        status.failed_attempts,
        status.node_failures
    );
    println!(
        "    {deleted} finished pods deleted by hand; gpuSeconds {}",
        status.gpu_seconds
    );
    Ok(())
}

fn pod_gc_before_the_operator_accounts_loses_nothing(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        // A second control plane whose kube-controller-manager garbage-collects every
        // terminated pod past the first (--terminated-pod-gc-threshold=1).
        let dir = env.dir.join("podgc");
        let mut gc = Env::start_in(dir, &["--terminated-pod-gc-threshold=1"]).await?;
        let outcome = pod_gc_scenario(&mut gc).await;
        gc.shutdown().await;
        outcome
    })
}

async fn pod_gc_scenario(env: &mut Env) -> Outcome {
    env.set_script("gc", json!({"sleepMs": 2000}))?;
    env.job("podgc", "gc", "1-6", json!({})).await?;
    eventually(
        "six running shard pods",
        Duration::from_secs(60),
        || async {
            let pods = env.pods("podgc", "gc").await.ok()?;
            (pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count()
                == 6)
                .then_some(())
        },
    )
    .await?;
    // The operator goes away while they render: nobody accounts them when they end.
    env.kill_operator("operator-a");
    let collected = eventually(
        "PodGC to delete the finished pods nobody accounted",
        Duration::from_secs(90),
        || async {
            let pods = env.pods("podgc", "gc").await.ok()?;
            let collected = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .count();
            (collected >= 5).then_some(collected)
        },
    )
    .await?;
    env.start_operator("operator-a")?;
    let job = env
        .wait_condition("podgc", "gc", "Complete", Duration::from_secs(90))
        .await?;
    let renders = env.renders("gc");
    ensure!(
        renders == (0..6).map(|s| (s, 0)).collect::<Vec<_>>(),
        "a shard PodGC collected rendered again: {renders:?}"
    );
    let status = job.status.unwrap_or_default();
    ensure!(
        settled(&status) == "0-5:1" && status.gpu_seconds >= 6.0,
        "ledger: settled {} gpuSeconds {}",
        settled(&status),
        status.gpu_seconds
    );
    env.shard_pods_gone("podgc", "gc", false).await?;
    println!(
        "    PodGC collected {collected} unaccounted pods; all 6 accounted, none rendered again"
    );
    Ok(())
}

fn a_hung_shard_times_out_and_runs_elsewhere(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("hung", json!({"sleepMs": 300, "hang": ["2/0"]}))?;
        env.job(
            "timeouts",
            "hung",
            "1-4",
            json!({"retry": {"attemptsPerShard": 2, "backoffSeconds": 0, "maxBackoffSeconds": 0,
                "shardTimeoutSeconds": 5}}),
        )
        .await?;
        let job = env
            .wait_condition("timeouts", "hung", "Complete", Duration::from_secs(90))
            .await?;
        let status = job.status.unwrap_or_default();
        let failure = status.last_failure.clone().ok_or("no lastFailure")?;
        ensure!(
            failure.shard == 2 && failure.reason == "Timeout",
            "lastFailure {failure:?}"
        );
        ensure!(
            status.failed_attempts.to_string() == "2:1",
            "ledger failures {}",
            status.failed_attempts
        );
        let nodes = env.render_nodes("hung");
        ensure!(
            matches!((nodes.get(&(2, 0)), nodes.get(&(2, 1))), (Some(a), Some(b)) if a != b),
            "the retry of the hung shard ran on the same node: {nodes:?}"
        );
        Ok(())
    })
}

fn a_refusing_quota_is_named_and_the_job_recovers(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("quota").await?;
        let quota = |pods: u32| {
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "gpu-quota", "namespace": "quota"},
                "spec": {"hard": {"pods": pods.to_string()}}})
        };
        env.kubectl_apply(&quota(1))?;
        // The quota controller must have computed usage before admission enforces it.
        eventually("the quota's usage", Duration::from_secs(60), || async {
            let out = env
                .kubectl_ok(&[
                    "get",
                    "resourcequota",
                    "gpu-quota",
                    "-n",
                    "quota",
                    "-o",
                    "jsonpath={.status.used.pods}",
                ])
                .ok()?;
            (!out.trim().is_empty()).then_some(())
        })
        .await?;
        env.set_script("quota-job", json!({"sleepMs": 3000}))?;
        env.job("quota", "quota-job", "1-6", json!({})).await?;
        let refused = eventually(
            "a PodCreateRefused condition naming the quota",
            Duration::from_secs(60),
            || async {
                let job = env.render_job("quota", "quota-job").await.ok()?;
                job.status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "PodCreateRefused" && c.status == "True")
                    .filter(|c| c.message.contains("gpu-quota"))
                    .map(|c| c.message)
            },
        )
        .await?;
        // Events are best effort and follow the status write: wait for it.
        eventually(
            "a FailedCreate event naming the quota",
            Duration::from_secs(30),
            || async {
                let events = env
                    .kubectl_ok(&[
                        "get",
                        "events",
                        "-n",
                        "quota",
                        "--field-selector",
                        "reason=FailedCreate",
                        "-o",
                        "jsonpath={.items[*].message}",
                    ])
                    .ok()?;
                events.contains("gpu-quota").then_some(())
            },
        )
        .await?;
        env.kubectl_apply(&quota(20))?;
        let job = env
            .wait_condition("quota", "quota-job", "Complete", Duration::from_secs(180))
            .await?;
        let cleared = job
            .status
            .unwrap_or_default()
            .conditions
            .into_iter()
            .any(|c| c.type_ == "PodCreateRefused" && c.status == "False");
        ensure!(
            cleared,
            "PodCreateRefused still set after the quota was raised"
        );
        println!("    refused: {refused}");
        Ok(())
    })
}

fn suspend_pauses_the_active_deadline(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("pause", json!({"sleepMs": 1500}))?;
        env.job(
            "suspend",
            "pause",
            "1-12",
            json!({"activeDeadlineSeconds": 15}),
        )
        .await?;
        env.wait_condition("suspend", "pause", "Rendering", Duration::from_secs(60))
            .await?;
        env.kubectl_ok(&[
            "patch",
            "renderjob",
            "pause",
            "-n",
            "suspend",
            "--type",
            "merge",
            "-p",
            r#"{"spec": {"suspend": true}}"#,
        ])?;
        env.wait_condition("suspend", "pause", "Suspended", Duration::from_secs(30))
            .await?;
        // The perturbation itself: stay suspended longer than the whole deadline.
        tokio::time::sleep(Duration::from_secs(18)).await;
        env.kubectl_ok(&[
            "patch",
            "renderjob",
            "pause",
            "-n",
            "suspend",
            "--type",
            "merge",
            "-p",
            r#"{"spec": {"suspend": false}}"#,
        ])?;
        let job = env
            .wait_condition("suspend", "pause", "Complete", Duration::from_secs(60))
            .await?;
        let status = job.status.unwrap_or_default();
        ensure!(
            status.suspended_seconds >= 18,
            "suspendedSeconds {}",
            status.suspended_seconds
        );
        Ok(())
    })
}

/// Runs 24 one-second shards on the 6-slot pool, one node of which renders 10× slower, with
/// or without speculation; answers the seconds from create to Complete.
async fn slow_node_run(env: &Env, name: &str, speculation: bool) -> Result<f64, String> {
    env.set_script(
        name,
        json!({"sleepMs": 1000, "slowNodes": {"gpu-node-3": 10}}),
    )?;
    let mut retry = json!({"attemptsPerShard": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0});
    if speculation {
        retry["speculativeFactor"] = json!(3);
    }
    let started = std::time::Instant::now();
    env.job("slow", name, "1-24", json!({"retry": retry}))
        .await?;
    env.wait_condition("slow", name, "Complete", Duration::from_secs(180))
        .await?;
    Ok(started.elapsed().as_secs_f64())
}

fn speculative_attempts_route_around_a_slow_node(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let without = slow_node_run(env, "slow-plain", false).await?;
        let with = slow_node_run(env, "slow-spec", true).await?;
        let job = env.render_job("slow", "slow-spec").await?;
        let status = job.status.unwrap_or_default();
        let nodes = env.render_nodes("slow-spec");
        let extra = nodes.keys().filter(|(_, attempt)| *attempt > 0).count();
        ensure!(extra > 0, "no speculative attempt ran: {nodes:?}");
        ensure!(
            status.failed_attempts.is_empty() && status.node_failures.is_empty(),
            "a lost race counted as a failure: failed {} nodes {:?}",
            status.failed_attempts,
            status.node_failures
        );
        println!(
            "    24 shards, one node 10x slower: {without:.1} s without speculation, {with:.1} s with (ratio {:.2}); {extra} speculative attempts, {} superseded",
            with / without,
            status.disrupted_attempts
        );
        ensure!(
            with < without,
            "speculation did not help: {with:.1} s vs {without:.1} s"
        );
        Ok(())
    })
}

fn real_frames_survive_a_speculative_race_bit_identical(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        // gpu-node-3 takes 25 s longer per shard; the others render each 64x64 tile in about
        // a second, so speculation (3x the median) re-runs its shards elsewhere.
        env.agent()
            .slow_node("gpu-node-3", Some(Duration::from_secs(25)));
        let outcome = speculative_race_scenario(env).await;
        env.agent().slow_node("gpu-node-3", None);
        outcome
    })
}

async fn speculative_race_scenario(env: &mut Env) -> Outcome {
    env.namespace("race").await?;
    let mut spec = real_job_spec("1-2", 3);
    spec["retry"] = json!({"speculativeFactor": 3});
    env.kubectl_apply(
        &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
        "metadata": {"name": "race", "namespace": "race"}, "spec": spec}),
    )?;
    let job = env
        .wait_condition("race", "race", "Complete", Duration::from_secs(300))
        .await?;
    let status = job.status.clone().unwrap_or_default();
    ensure!(
        !status.speculative_races.is_empty(),
        "no speculative race happened: {:?}",
        status.shard_attempts
    );
    let whole = whole_frame_render(env, "1-2")?;
    for frame in [1, 2] {
        let merged = merged_frame(env, "race", "race", frame);
        let reference = whole.join(format!("frame_{frame:04}.exr"));
        ensure!(
            same_bytes(&merged, &reference)?,
            "{} differs from the whole-frame render after a speculative race",
            merged.display()
        );
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let manifest: tessera_shard::contract::JobManifest = serde_json::from_slice(
        &std::fs::read(
            env.dir
                .join(format!("data/race/race/{uid}/job-manifest.json")),
        )
        .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    ensure!(
        manifest.races.len() == status.speculative_races.len()
            && manifest.races.iter().all(|r| r.identical),
        "the merge's race checks: {:?}",
        manifest.races
    );
    println!(
        "    {} speculative races, frames bit-identical to the whole-frame render; merge checks: {:?}",
        manifest.races.len(),
        manifest.races
    );
    Ok(())
}

/// Shard pods of `job` in `namespace` holding a slot now: created and not ended (pending or
/// running; on a loaded machine a granted pod may take a moment to start).
async fn running(env: &Env, namespace: &str, job: &str) -> Result<u32, String> {
    Ok(env
        .pods(namespace, job)
        .await?
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            label(p, "tessera.dev/role") == "shard"
                && matches!(phase, None | Some("Pending" | "Running"))
                && p.metadata.deletion_timestamp.is_none()
        })
        .count() as u32)
}

fn priority_first_then_a_fair_share_across_namespaces(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        // The pool has 6 GPU slots. Two teams' equal-priority jobs and one urgent job.
        let jobs = [
            ("team-a", "urgent", 100, "1-6"),
            ("team-a", "bulk-a", 0, "1-24"),
            ("team-b", "bulk-b", 0, "1-24"),
        ];
        for (namespace, name, priority, frames) in jobs {
            env.set_script(name, json!({"sleepMs": 2000}))?;
            env.job(
                namespace,
                name,
                frames,
                json!({"priority": priority, "suspend": true}),
            )
            .await?;
        }
        for (namespace, name, _, _) in jobs {
            env.kubectl_ok(&[
                "patch",
                "renderjob",
                name,
                "-n",
                namespace,
                "--type",
                "merge",
                "-p",
                r#"{"spec": {"suspend": false}}"#,
            ])?;
        }
        // Sample who runs what until both bulk jobs are done.
        let (mut urgent_peak, mut slot_samples) = (0, (0u64, 0u64));
        let mut worst = 0i64;
        let started = std::time::Instant::now();
        loop {
            ensure!(
                started.elapsed() < Duration::from_secs(180),
                "not done after 180 s"
            );
            let (urgent, a, b) = (
                running(env, "team-a", "urgent").await?,
                running(env, "team-a", "bulk-a").await?,
                running(env, "team-b", "bulk-b").await?,
            );
            urgent_peak = urgent_peak.max(urgent);
            let status = |job: RenderJob| job.status.unwrap_or_default();
            let (urgent_status, a_status, b_status) = (
                status(env.render_job("team-a", "urgent").await?),
                status(env.render_job("team-a", "bulk-a").await?),
                status(env.render_job("team-b", "bulk-b").await?),
            );
            let urgent_waiting = urgent_status.shards.waiting > 0;
            ensure!(
                !(urgent_waiting && a + b > 0 && urgent + a + b >= 6),
                "a priority-0 job held a slot while the priority-100 job waited: urgent {urgent}, a {a}, b {b}"
            );
            // Both teams want more than their share: each should hold half the pool.
            if urgent == 0 && a_status.shards.waiting > 0 && b_status.shards.waiting > 0 {
                slot_samples.0 += u64::from(a);
                slot_samples.1 += u64::from(b);
                worst = worst.max((i64::from(a) - i64::from(b)).abs() / 2);
            }
            let done = |s: &tessera_operator::api::RenderJobStatus| {
                s.shards.succeeded == s.shards.total && s.shards.total > 0
            };
            if done(&a_status) && done(&b_status) && done(&urgent_status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await; // sampling interval, bounded above
        }
        ensure!(
            urgent_peak == 6,
            "the urgent job never had the whole pool: peak {urgent_peak}"
        );
        let total = slot_samples.0 + slot_samples.1;
        ensure!(total > 0, "the two teams never competed");
        let share_a = slot_samples.0 as f64 / total as f64;
        println!(
            "    urgent job peak {urgent_peak}/6 slots; team-a held {:.1} % of the contested slot-time (fair: 50 %), largest momentary deviation {worst} slot(s)",
            share_a * 100.0
        );
        ensure!(
            (share_a - 0.5).abs() <= 0.1,
            "team-a held {:.1} % of the contested slot-time",
            share_a * 100.0
        );
        Ok(())
    })
}

fn main() -> std::process::ExitCode {
    block_on(async {
        let scenarios: Vec<(&str, Scenario)> = vec![
            ("happy path", happy_path),
            (
                "real frames are bit-identical to a whole-frame render",
                real_frames_are_bit_identical_to_a_whole_frame_render,
            ),
            (
                "an environment map lights the render pods' frames as it lights a local render",
                an_environment_map_lights_the_render_pods_frames,
            ),
            (
                "a skinned, morphing scene renders every frame, motion-blurred with depth and object IDs, as a local render does",
                a_skinned_morphing_scene_renders_every_frame_as_a_local_render,
            ),
            (
                "a corrupted shard object is rendered again before the merge",
                a_corrupted_shard_object_is_rendered_again_before_the_merge,
            ),
            (
                "a broken scene fails its shard with the log in storage; a ../ reference is bad input, not retried",
                a_broken_scene_fails_its_shard_with_the_log_in_storage,
            ),
            (
                "invalid manifests are refused",
                invalid_manifests_are_refused,
            ),
            (
                "tenants: a job cannot reach another namespace's prefix",
                tenants_cannot_reach_another_namespaces_prefix,
            ),
            (
                "tenants: jobs of one name in two namespaces write apart",
                tenants_jobs_of_one_name_write_apart,
            ),
            (
                "failed shards are retried elsewhere",
                failed_shards_are_retried_elsewhere,
            ),
            (
                "a shard that always fails fails the job, unless the job accepts missing frames",
                a_shard_that_always_fails_fails_the_job,
            ),
            (
                "corrupt outputs are rendered again",
                corrupt_outputs_are_rendered_again_before_the_merge,
            ),
            ("dependencies gate the start", dependencies_gate_the_start),
            (
                "operator killed at random moments",
                operator_killed_at_random_moments,
            ),
            ("only the leader acts", only_the_leader_acts),
            (
                "deleting a job removes its pods",
                deleting_a_job_removes_its_pods,
            ),
            // Before the lost-node scenario: it leaves gpu-node-3 NotReady, and these
            // two need the whole 6-slot pool.
            (
                "priority first, then a fair share across namespaces",
                priority_first_then_a_fair_share_across_namespaces,
            ),
            (
                "speculative attempts route around a slow node",
                speculative_attempts_route_around_a_slow_node,
            ),
            (
                "real frames survive a speculative race bit-identical",
                real_frames_survive_a_speculative_race_bit_identical,
            ),
            (
                "a lost node's shards run elsewhere",
                a_lost_node_s_shards_run_elsewhere,
            ),
            (
                "deleting finished pods mid-job loses nothing",
                deleting_finished_pods_mid_job_loses_nothing,
            ),
            (
                "without the ledger finalizer, deleted pods are accounted from their deletion",
                without_the_ledger_finalizer_deleted_pods_are_accounted_from_their_deletion,
            ),
            (
                "PodGC before the operator accounts loses nothing",
                pod_gc_before_the_operator_accounts_loses_nothing,
            ),
            (
                "a hung shard times out and runs elsewhere",
                a_hung_shard_times_out_and_runs_elsewhere,
            ),
            (
                "a refusing quota is named and the job recovers",
                a_refusing_quota_is_named_and_the_job_recovers,
            ),
            (
                "suspend pauses the active deadline",
                suspend_pauses_the_active_deadline,
            ),
            (
                "S3: the happy path against the S3 server",
                s3_the_happy_path_against_the_s3_server,
            ),
            (
                "workflow: frames merge as they finish; a re-render runs only what it selects",
                workflow::frames_merge_as_they_finish_and_a_rerender_runs_only_what_it_selects,
            ),
            (
                "workflow: frame-by-frame dependencies follow the frames",
                workflow::frame_by_frame_dependencies_follow_the_frames,
            ),
            (
                "workflow: previews sharpen as sample splits land",
                workflow::previews_sharpen_as_sample_splits_land,
            ),
            (
                "platform: namespace policies and the GPU-hour ledger",
                platform::namespace_policies_and_the_gpu_hour_ledger,
            ),
            (
                "platform: a higher-priority job preempts lower-priority shards",
                platform::a_higher_priority_job_preempts_lower_priority_shards,
            ),
            (
                "platform: preempted real renders stay bit-identical",
                platform::preempted_real_renders_stay_bit_identical,
            ),
            (
                "kueue: admits, borrows through the cohort and preempts",
                kueue::kueue_admits_borrows_and_preempts,
            ),
            (
                "kueue: a deactivated Workload stops the job until reactivated",
                kueue::a_deactivated_workload_stops_the_job_until_reactivated,
            ),
        ];
        // TESSERA_E2E_ONLY=text runs only the scenarios whose name contains it.
        // A filter that selects nothing is an error, not "0 passed, 0 failed".
        let only = std::env::var("TESSERA_E2E_ONLY").unwrap_or_default();
        let selected: Vec<(&str, Scenario)> = scenarios
            .into_iter()
            .filter(|(name, _)| name.contains(only.as_str()))
            .collect();
        if selected.is_empty() {
            return could_not_start(
                "e2e",
                &format!("TESSERA_E2E_ONLY={only:?} matches no scenario"),
            );
        }
        let mut env = match Env::start().await {
            Ok(env) => env,
            Err(error) => return could_not_start("e2e", &error),
        };
        let mut report = Report::default();
        for (name, scenario) in selected {
            let label = format!("scenario {name}");
            let passed = report
                .run(&label, &mut env, scenario, Env::reset_operators)
                .await;
            if !passed {
                env.delete_all_jobs().await;
            }
        }
        let dir = env.dir.clone();
        env.shutdown().await;
        report.finish(&dir)
    })
}
