//! The process node agent: fake Kubernetes nodes that run their pods as local processes.
//!
//! It does what a kubelet does as far as Tessera can tell, and no more:
//! - registers nodes with labels, capacity and allocatable (`cpu`, `memory`, `pods`,
//!   `nvidia.com/gpu`) and a Ready condition, and renews each node's Lease in `kube-node-lease`
//!   every few seconds (the node lifecycle controller's heartbeat);
//! - watches pods bound to its nodes (the real kube-scheduler binds them) and runs each pod's
//!   first container as a local process: the image is mapped to a locally built binary, env is
//!   resolved (literals, fieldRef, secretKeyRef, configMapKeyRef, envFrom) and `$(VAR)`
//!   references in env, command and args are expanded as the kubelet does;
//! - gives each pod its own loopback address (`127.1.x.y`) as `status.podIP`, so two replicas
//!   can listen on the same port when they bind `$(POD_IP)`;
//! - hands a pod that mounts its ServiceAccount token a kubeconfig (env `KUBECONFIG`) holding a
//!   token requested for that ServiceAccount and bound to the pod (TokenRequest), so in-cluster
//!   software runs with exactly the RBAC of its ServiceAccount;
//! - runs `httpGet` readiness probes and reports the pod's `Ready` condition from them;
//! - enforces `activeDeadlineSeconds` (kills the process; the pod fails with reason
//!   `DeadlineExceeded`, as the kubelet reports it);
//! - reports `Running`, then `Succeeded`/`Failed` with the exit code (128 + signal when killed),
//!   container statuses and the termination message (the file named by the env var
//!   `TESSERA_TERMINATION_LOG`, or the tail of stderr under `FallbackToLogsOnError`);
//! - handles deletion: SIGTERM, the grace period, SIGKILL, then the final grace-0 delete with a
//!   UID precondition;
//! - retries an API call that failed in transport or was answered 429/5xx, with backoff, as the
//!   kubelet does: such a hiccup never fails a pod (a reset connection once failed a shard pod
//!   as `ContainerCannotRun`, and the preemption scenario took its retry for a preemption).
//!
//! Faults, for tests: kill a pod's process, fail every pod on a node, slow a node down, stop a
//! node's heartbeat
//! (the node then goes NotReady and its agent behaves like a dead kubelet: it neither runs nor
//! finishes anything on that node), and hold pods with a label until released.
//!
//! Not emulated: networking beyond the loopback address (pods share the host's network; no
//! Services), volumes (pods share the host filesystem; use a shared data directory),
//! init/sidecar containers, liveness/startup probes, container restarts (a pod whose process
//! exits is `Succeeded`/`Failed` whatever its restartPolicy), resource enforcement, image pulls,
//! logs/exec/port-forward.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinSet;
use tracing::{info, warn};

const FIELD_MANAGER: &str = "tessera-node-agent";

/// One fake node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub gpus: u32,
    pub cpu: String,
    pub memory: String,
}

impl NodeSpec {
    pub fn gpu(name: &str, pool_label: (&str, &str), gpus: u32) -> Self {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("nvidia.com/gpu.present".to_string(), "true".to_string()),
        ]);
        labels.insert(pool_label.0.into(), pool_label.1.into());
        Self {
            name: name.into(),
            labels,
            gpus,
            cpu: "16".into(),
            memory: "64Gi".into(),
        }
    }

    pub fn cpu(name: &str) -> Self {
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
        ]);
        Self {
            name: name.into(),
            labels,
            gpus: 0,
            cpu: "8".into(),
            memory: "32Gi".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub nodes: Vec<NodeSpec>,
    /// Image prefix → local binary. The longest matching prefix wins.
    pub images: Vec<(String, PathBuf)>,
    /// Per-pod sandboxes (working directory, logs, termination message).
    pub work_dir: PathBuf,
    pub heartbeat: Duration,
    /// Extra environment for every process (e.g. where the shared data directory is).
    pub extra_env: Vec<(String, String)>,
    /// Where pods that mount their ServiceAccount token find the API server. Unset: such pods
    /// get no credentials.
    pub cluster_access: Option<ClusterAccess>,
}

/// The API server's address and CA, as a pod's kubeconfig names them.
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    pub server: String,
    /// The CA bundle (PEM), base64-encoded as in a kubeconfig's `certificate-authority-data`.
    pub certificate_authority_data: String,
}

impl ClusterAccess {
    /// The cluster of the current context of a kubeconfig file.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, AgentError> {
        use base64::Engine;
        let invalid = |why: &str| AgentError::Config(format!("{}: {why}", path.display()));
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let context_cluster = kubeconfig.current_context.as_ref().and_then(|current| {
            kubeconfig
                .contexts
                .iter()
                .find(|c| &c.name == current)
                .and_then(|c| c.context.as_ref())
                .map(|c| c.cluster.clone())
        });
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| context_cluster.as_ref().is_none_or(|name| &c.name == name))
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| invalid("no cluster"))?;
        let server = cluster
            .server
            .ok_or_else(|| invalid("the cluster has no server"))?;
        let certificate_authority_data = match (
            cluster.certificate_authority_data,
            cluster.certificate_authority,
        ) {
            (Some(data), _) => data,
            (None, Some(file)) => {
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(file)?)
            }
            (None, None) => return Err(invalid("the cluster has no certificate authority")),
        };
        Ok(Self {
            server,
            certificate_authority_data,
        })
    }

    /// A kubeconfig that authenticates with `token` only.
    pub fn kubeconfig(&self, token: &str) -> String {
        json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "pod",
            "clusters": [{"name": "cluster", "cluster": {"server": self.server,
                "certificate-authority-data": self.certificate_authority_data}}],
            "users": [{"name": "service-account", "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": "service-account"}}],
        })
        .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
}

#[derive(Default)]
struct State {
    /// Pod UID → process id, for pods whose process runs.
    running: HashMap<String, u32>,
    /// Pod UIDs already started (or refused); never started twice.
    started: HashSet<String>,
    /// Pod UIDs being torn down.
    terminating: HashSet<String>,
    /// Nodes whose heartbeat is stopped: they act like a dead kubelet.
    dead: HashSet<String>,
    /// Nodes that fail every pod at once.
    failing: HashSet<String>,
    /// Nodes whose pods run this much longer (a slow GPU): reported Running, started late.
    slow: HashMap<String, Duration>,
    /// Pods with this label are not started until released.
    hold: Option<(String, String)>,
    held: Vec<(Pod, String)>,
    /// Pod IPs handed out so far.
    pods_addressed: u32,
}

impl State {
    /// A loopback address of its own for each pod: 127.1.0.1, 127.1.0.2, ...
    fn next_pod_ip(&mut self) -> String {
        self.pods_addressed += 1;
        let n = self.pods_addressed;
        format!("127.1.{}.{}", (n / 254) % 256, n % 254 + 1)
    }
}

/// A running agent. Dropping it does not stop it; call [`Agent::shutdown`].
pub struct Agent {
    client: Client,
    config: Arc<AgentConfig>,
    state: Arc<Mutex<State>>,
    tasks: JoinSet<()>,
}

impl Agent {
    /// Registers the nodes and starts heartbeats and the pod loop.
    pub async fn start(client: Client, config: AgentConfig) -> Result<Self, AgentError> {
        tokio::fs::create_dir_all(&config.work_dir).await?;
        for node in &config.nodes {
            register(&client, node).await?;
        }
        let config = Arc::new(config);
        let state = Arc::new(Mutex::new(State::default()));
        let mut tasks = JoinSet::new();
        tasks.spawn(heartbeats(client.clone(), config.clone(), state.clone()));
        tasks.spawn(pod_loop(client.clone(), config.clone(), state.clone()));
        info!(nodes = config.nodes.len(), "node agent started");
        Ok(Self {
            client,
            config,
            state,
            tasks,
        })
    }

    /// Kills a pod's process with SIGKILL (its container then exits with 137).
    pub fn kill_pod(&self, uid: &str) -> bool {
        let pid = self.lock().running.get(uid).copied();
        pid.is_some_and(|pid| signal(pid, libc::SIGKILL))
    }

    /// Every pod started on `node` from now on fails at once with exit code 1.
    pub fn fail_node(&self, node: &str, failing: bool) {
        let mut state = self.lock();
        if failing {
            state.failing.insert(node.into());
        } else {
            state.failing.remove(node);
        }
    }

    /// Makes every pod started on `node` from now on run `delay` longer (`None`: normal
    /// again), like a slow GPU: the pod reports Running at once and its process starts late.
    pub fn slow_node(&self, node: &str, delay: Option<Duration>) {
        let mut state = self.lock();
        match delay {
            Some(delay) => state.slow.insert(node.into(), delay),
            None => state.slow.remove(node),
        };
    }

    /// Stops (or resumes) a node's heartbeat; a stopped node also stops running its pods'
    /// lifecycle, like a dead kubelet. Its processes are killed, silently.
    pub fn stop_heartbeat(&self, node: &str) {
        let mut state = self.lock();
        state.dead.insert(node.into());
    }

    /// Pods labelled `key=value` bound from now on stay Pending (not started) until
    /// [`Agent::release_held`]: a test can act between the scheduling and the start of a pod.
    pub fn hold_pods(&self, key: &str, value: &str) {
        self.lock().hold = Some((key.into(), value.into()));
    }

    /// Stops holding and starts the held pods.
    pub fn release_held(&self) {
        let held = {
            let mut state = self.lock();
            state.hold = None;
            std::mem::take(&mut state.held)
        };
        for (pod, node) in held {
            let (client, config, state) =
                (self.client.clone(), self.config.clone(), self.state.clone());
            tokio::spawn(handle_pod(client, config, state, pod, node));
        }
    }

    /// Starts one held pod, by name, and keeps holding the others (and new ones).
    pub fn release_pod(&self, name: &str) -> bool {
        let released = {
            let mut state = self.lock();
            let position = state
                .held
                .iter()
                .position(|(pod, _)| pod.name_any() == name);
            position.map(|i| state.held.remove(i))
        };
        let Some((pod, node)) = released else {
            return false;
        };
        let (client, config, state) =
            (self.client.clone(), self.config.clone(), self.state.clone());
        tokio::spawn(handle_pod(client, config, state, pod, node));
        true
    }

    /// Names of the pods held so far.
    pub fn held(&self) -> Vec<String> {
        self.lock()
            .held
            .iter()
            .map(|(pod, _)| pod.name_any())
            .collect()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Stops every process and task.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        let pids: Vec<u32> = self.lock().running.values().copied().collect();
        for pid in pids {
            signal(pid, libc::SIGKILL);
        }
        while self.tasks.join_next().await.is_some() {}
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) == 0 }
}

async fn register(client: &Client, node: &NodeSpec) -> Result<(), AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let resources = json!({
        "cpu": node.cpu, "memory": node.memory, "pods": "110", "nvidia.com/gpu": node.gpus.to_string(),
    });
    let body = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": node.labels},
        "spec": {},
    });
    api.patch(
        &node.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [ready_condition()],
        "nodeInfo": {"kubeletVersion": "v1.35.4-tessera-node-agent", "operatingSystem": "linux", "architecture": "amd64",
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "process://", "kubeProxyVersion": ""},
    }});
    api.patch_status(&node.name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

fn ready_condition() -> serde_json::Value {
    let now = Timestamp::now().to_string();
    json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "tessera node agent is posting ready status",
        "lastHeartbeatTime": now, "lastTransitionTime": now})
}

/// Renews each live node's Lease and Ready condition.
async fn heartbeats(client: Client, config: Arc<AgentConfig>, state: Arc<Mutex<State>>) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client.clone());
    let mut tick = tokio::time::interval(config.heartbeat);
    loop {
        tick.tick().await;
        for node in &config.nodes {
            if state
                .lock()
                .map(|s| s.dead.contains(&node.name))
                .unwrap_or(true)
            {
                continue;
            }
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node.name},
                "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40,
                    "renewTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
            });
            if let Err(error) = leases
                .patch(
                    &node.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(lease),
                )
                .await
            {
                warn!(%error, node = %node.name, "lease renewal failed");
            }
            let status = json!({"status": {"conditions": [ready_condition()]}});
            if let Err(error) = nodes
                .patch_status(
                    &node.name,
                    &PatchParams::default(),
                    &Patch::Strategic(status),
                )
                .await
            {
                warn!(%error, node = %node.name, "node status update failed");
            }
        }
    }
}

/// Watches pods bound to any node and acts on those bound to ours.
async fn pod_loop(client: Client, config: Arc<AgentConfig>, state: Arc<Mutex<State>>) {
    let ours: HashSet<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    let pods: Api<Pod> = Api::all(client.clone());
    let stream = watcher(pods, watcher::Config::default().fields("spec.nodeName!="))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(pod) => pod,
            Err(error) => {
                warn!(%error, "pod watch error");
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !ours.contains(&node) {
            continue;
        }
        let dead = state.lock().map(|s| s.dead.contains(&node)).unwrap_or(true);
        if dead {
            // A dead kubelet: kill its processes once, silently, and do nothing else.
            let uid = pod.uid().unwrap_or_default();
            if let Some(pid) = state.lock().ok().and_then(|mut s| s.running.remove(&uid)) {
                signal(pid, libc::SIGKILL);
            }
            continue;
        }
        if hold(&state, &pod, &node) {
            continue;
        }
        tokio::spawn(handle_pod(
            client.clone(),
            config.clone(),
            state.clone(),
            pod,
            node,
        ));
    }
}

/// Keeps a new pod back when it carries the held label.
fn hold(state: &Mutex<State>, pod: &Pod, node: &str) -> bool {
    let Ok(mut state) = state.lock() else {
        return false;
    };
    let Some((key, value)) = state.hold.clone() else {
        return false;
    };
    let matches =
        pod.labels().get(&key) == Some(&value) && pod.metadata.deletion_timestamp.is_none();
    let uid = pod.uid().unwrap_or_default();
    if matches
        && !state
            .held
            .iter()
            .any(|(p, _)| p.uid().as_deref() == Some(uid.as_str()))
    {
        state.held.push((pod.clone(), node.to_string()));
    }
    matches
}

async fn handle_pod(
    client: Client,
    config: Arc<AgentConfig>,
    state: Arc<Mutex<State>>,
    pod: Pod,
    node: String,
) {
    let uid = pod.uid().unwrap_or_default();
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();

    if pod.metadata.deletion_timestamp.is_some() {
        let (pid, first) = {
            let Ok(mut s) = state.lock() else { return };
            (
                s.running.get(&uid).copied(),
                s.terminating.insert(uid.clone()),
            )
        };
        if !first {
            return;
        }
        if let Some(pid) = pid {
            signal(pid, libc::SIGTERM);
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(grace);
            while tokio::time::Instant::now() < deadline
                && state.lock().is_ok_and(|s| s.running.contains_key(&uid))
            {
                tokio::time::sleep(Duration::from_millis(100)).await; // polling a child we do not own; bounded by the grace period
            }
            if state.lock().is_ok_and(|s| s.running.contains_key(&uid)) {
                signal(pid, libc::SIGKILL);
            }
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match retrying(|| api.delete(&name, &params)).await {
            Ok(_) => info!(pod = %name, "pod deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(error) => warn!(%error, pod = %name, "final delete failed"),
        }
        return;
    }
    if phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let first = state
        .lock()
        .is_ok_and(|mut s| s.started.insert(uid.clone()));
    if !first {
        return;
    }
    if let Err(error) = run_pod(&client, &config, &state, &api, &pod, &node).await {
        warn!(%error, pod = %name, "could not run pod");
        let _ = report_exit(
            &api,
            &name,
            Timestamp::now(),
            1,
            "ContainerCannotRun",
            &error.to_string(),
        )
        .await;
    }
}

async fn run_pod(
    client: &Client,
    config: &AgentConfig,
    state: &Arc<Mutex<State>>,
    api: &Api<Pod>,
    pod: &Pod,
    node: &str,
) -> Result<(), AgentError> {
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let Some(container) = spec.containers.first() else {
        return Ok(());
    };
    let started = Timestamp::now();
    if state.lock().is_ok_and(|s| s.failing.contains(node)) {
        report_running(api, &name, started, "127.0.0.1", true).await?;
        return report_exit(
            api,
            &name,
            started,
            1,
            "Error",
            "injected failure: every pod on this node fails",
        )
        .await;
    }
    let slow = state.lock().ok().and_then(|s| s.slow.get(node).copied());
    if let Some(delay) = slow {
        report_running(api, &name, started, "127.0.0.1", true).await?;
        let until = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < until {
            if state.lock().is_ok_and(|s| s.terminating.contains(&uid)) {
                return report_exit(api, &name, started, 137, "Killed", "stopped on a slow node")
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // the slow GPU; polled so a deletion stops it at once
        }
    }
    let image = container.image.clone().unwrap_or_default();
    let program = match &container.command {
        Some(command) if !command.is_empty() => PathBuf::from(&command[0]),
        _ => match resolve_image(&config.images, &image) {
            Some(binary) => binary,
            None => {
                return report_exit(
                    api,
                    &name,
                    started,
                    1,
                    "ErrImagePull",
                    &format!("no local binary mapped for image {image}"),
                )
                .await;
            }
        },
    };
    let pod_ip = state
        .lock()
        .map(|mut s| s.next_pod_ip())
        .unwrap_or_else(|_| "127.0.0.1".into());
    let env = resolve_env(client, pod, container, node, &pod_ip).await?;
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let program = PathBuf::from(expand(&program.to_string_lossy(), &lookup));
    let args: Vec<String> = container
        .command
        .iter()
        .flatten()
        .skip(1)
        .chain(container.args.iter().flatten())
        .map(|arg| expand(arg, &lookup))
        .collect();

    let sandbox = config.work_dir.join(format!(
        "{}_{}_{}",
        pod.namespace().unwrap_or_default(),
        name,
        &uid[..uid.len().min(8)]
    ));
    tokio::fs::create_dir_all(&sandbox).await?;
    let termination_log = sandbox.join("termination-log");
    let stdout = std::fs::File::create(sandbox.join("stdout.log"))?;
    let stderr = std::fs::File::create(sandbox.join("stderr.log"))?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .current_dir(&sandbox)
        .env("HOME", &sandbox)
        .env("TESSERA_TERMINATION_LOG", &termination_log)
        .envs(config.extra_env.iter().cloned())
        .envs(env)
        // The agent's own credentials never leak into a pod.
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    if let Some(access) = &config.cluster_access
        && mounts_token(client, pod).await?
    {
        let kubeconfig = sandbox.join("kubeconfig");
        let token = request_token(client, pod).await?;
        tokio::fs::write(&kubeconfig, access.kubeconfig(&token)).await?;
        command.env("KUBECONFIG", &kubeconfig);
    }
    let mut child = command.spawn()?;
    let pid = child.id().unwrap_or(0);
    state
        .lock()
        .map(|mut s| s.running.insert(uid.clone(), pid))
        .ok();
    info!(pod = %name, %node, pid, %pod_ip, "started process");
    let probe = container
        .readiness_probe
        .clone()
        .and_then(|probe| HttpProbe::new(&probe, container, &pod_ip));
    report_running(api, &name, started, &pod_ip, probe.is_none()).await?;
    if let Some(probe) = probe {
        tokio::spawn(probe_readiness(
            api.clone(),
            name.clone(),
            uid.clone(),
            state.clone(),
            probe,
            (started, pod_ip.clone()),
        ));
    }

    // The kubelet enforces activeDeadlineSeconds: past it, the pod is killed and fails with
    // reason DeadlineExceeded.
    let deadline = spec
        .active_deadline_seconds
        .map(|seconds| Duration::from_secs(seconds.max(0) as u64));
    let status = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                let _ = child.kill().await;
                state.lock().map(|mut s| s.running.remove(&uid)).ok();
                info!(pod = %name, "active deadline exceeded; killed");
                return report_terminal(
                    api,
                    &name,
                    started,
                    Exit {
                        code: 137,
                        reason: "DeadlineExceeded",
                        message: "",
                        pod_reason: Some((
                            "DeadlineExceeded",
                            "Pod was active on the node longer than the specified deadline",
                        )),
                    },
                )
                .await;
            }
        },
        None => child.wait().await?,
    };
    let dead = state.lock().map(|mut s| {
        s.running.remove(&uid);
        s.dead.contains(node)
    });
    if dead.unwrap_or(true) {
        return Ok(()); // a dead kubelet reports nothing
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(9));
    let mut message = tokio::fs::read_to_string(&termination_log)
        .await
        .unwrap_or_default();
    let fallback = container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if message.trim().is_empty() && code != 0 && fallback {
        message = tail(&sandbox.join("stderr.log"), 2048).await;
    }
    let reason = match (code, status.signal()) {
        (0, _) => "Completed",
        (_, Some(_)) | (137, _) => "Killed",
        _ => "Error",
    };
    report_exit(api, &name, started, code, reason, &message).await
}

/// Expands `$(NAME)` references as the kubelet does: `$$` is a literal `$`, and a name that
/// `vars` does not know stays as written.
pub fn expand(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            out.push('$');
            rest = after_escape;
        } else if let Some((name, after_ref)) = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
        {
            match vars(name) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = after_ref;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// An API call retried as the kubelet retries its own: a request that failed in transport (a
/// connection the API server closed as it was reused) or was answered 429/5xx is sent again
/// with backoff, so such a hiccup never fails a pod that would have run.
async fn retrying<T, Call, Sent>(call: Call) -> Result<T, kube::Error>
where
    Call: FnMut() -> Sent,
    Sent: std::future::Future<Output = Result<T, kube::Error>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(8);
    call.retry(backoff)
        .when(is_transient)
        .notify(|error, after| warn!(%error, ?after, "API call failed; retrying"))
        .await
}

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Whether the pod gets its ServiceAccount's token: the pod's `automountServiceAccountToken`,
/// else the ServiceAccount's, else yes.
async fn mounts_token(client: &Client, pod: &Pod) -> Result<bool, AgentError> {
    let spec = pod.spec.clone().unwrap_or_default();
    if let Some(automount) = spec.automount_service_account_token {
        return Ok(automount);
    }
    let accounts: Api<ServiceAccount> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let account_name = service_account(pod);
    let account = retrying(|| accounts.get_opt(&account_name))
        .await?
        .and_then(|a| a.automount_service_account_token);
    Ok(account.unwrap_or(true))
}

fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into())
}

/// A token of the pod's ServiceAccount, bound to the pod (it dies with the pod), as the kubelet
/// requests one. Not refreshed: it lives a day, longer than any test.
async fn request_token(client: &Client, pod: &Pod) -> Result<String, AgentError> {
    let accounts: Api<ServiceAccount> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(), // the API server's own audience
            expiration_seconds: Some(86_400),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..Default::default()
    };
    let (account, params) = (service_account(pod), PostParams::default());
    let granted: TokenRequest =
        retrying(|| accounts.create_subresource("token", &account, &params, &request)).await?;
    granted
        .status
        .map(|s| s.token)
        .ok_or_else(|| AgentError::Config("the token request granted no token".into()))
}

/// An `httpGet` readiness probe, resolved against the pod's address.
#[derive(Debug, Clone)]
struct HttpProbe {
    address: String,
    path: String,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: i32,
    failure_threshold: i32,
}

impl HttpProbe {
    /// `None` for probes that are not `httpGet` or name a port the container does not declare.
    fn new(
        probe: &k8s_openapi::api::core::v1::Probe,
        container: &k8s_openapi::api::core::v1::Container,
        pod_ip: &str,
    ) -> Option<Self> {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let get = probe.http_get.as_ref()?;
        let port = match &get.port {
            IntOrString::Int(port) => *port,
            IntOrString::String(name) => {
                container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))?
                    .container_port
            }
        };
        let seconds = |value: Option<i32>, default: i32| {
            Duration::from_secs(value.unwrap_or(default).max(0) as u64)
        };
        Some(Self {
            address: format!("{pod_ip}:{port}"),
            path: get.path.clone().unwrap_or_else(|| "/".into()),
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1),
        })
    }

    /// One probe: a status below 400 within the timeout is success, as for the kubelet.
    async fn passes(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(&self.address).await.ok()?;
            let request = format!(
                "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: kube-probe/1.35\r\n\r\n",
                self.path, self.address
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = [0u8; 64];
            let read = stream.read(&mut head).await.ok()?;
            let line = String::from_utf8_lossy(&head[..read]).into_owned();
            line.split_whitespace().nth(1)?.parse::<u16>().ok()
        };
        matches!(
            tokio::time::timeout(self.timeout, attempt).await,
            Ok(Some(code)) if (200..400).contains(&code)
        )
    }
}

/// Probes while the pod's process runs and reports `Ready` whenever it flips.
async fn probe_readiness(
    api: Api<Pod>,
    name: String,
    uid: String,
    state: Arc<Mutex<State>>,
    probe: HttpProbe,
    (started, pod_ip): (Timestamp, String),
) {
    // The pod's own initialDelaySeconds: the kubelet waits exactly this long before probing.
    tokio::time::sleep(probe.initial_delay).await;
    let (mut ready, mut successes, mut failures) = (false, 0, 0);
    let mut tick = tokio::time::interval(probe.period);
    loop {
        tick.tick().await;
        if !state.lock().is_ok_and(|s| s.running.contains_key(&uid)) {
            return;
        }
        if probe.passes().await {
            (successes, failures) = (successes + 1, 0);
        } else {
            (successes, failures) = (0, failures + 1);
        }
        let flip = if ready {
            failures >= probe.failure_threshold
        } else {
            successes >= probe.success_threshold
        };
        // The process may have exited while the probe ran: never report a finished pod Running.
        let still_running = state.lock().is_ok_and(|s| s.running.contains_key(&uid));
        if flip && still_running {
            ready = !ready;
            if let Err(error) = report_running(&api, &name, started, &pod_ip, ready).await {
                warn!(%error, pod = %name, "readiness update failed");
            }
        }
    }
}

/// The binary of the longest image prefix that matches.
pub fn resolve_image(images: &[(String, PathBuf)], image: &str) -> Option<PathBuf> {
    images
        .iter()
        .filter(|(prefix, _)| image.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, binary)| binary.clone())
}

async fn tail(path: &Path, bytes: usize) -> String {
    let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

async fn resolve_env(
    client: &Client,
    pod: &Pod,
    container: &k8s_openapi::api::core::v1::Container,
    node: &str,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, AgentError> {
    let namespace = pod.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let mut env = Vec::new();
    for source in container.env_from.iter().flatten() {
        if let Some(secret) = &source.secret_ref {
            let data = retrying(|| secrets.get(&secret.name))
                .await?
                .data
                .unwrap_or_default();
            env.extend(
                data.into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())),
            );
        }
        if let Some(config_map) = &source.config_map_ref {
            env.extend(
                retrying(|| config_maps.get(&config_map.name))
                    .await?
                    .data
                    .unwrap_or_default(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => expand(value, &|name: &str| {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    match field.field_path.as_str() {
                        "metadata.name" => pod.name_any(),
                        "metadata.namespace" => namespace.clone(),
                        "metadata.uid" => pod.uid().unwrap_or_default(),
                        "spec.nodeName" => node.to_string(),
                        "spec.serviceAccountName" => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.service_account_name.clone())
                            .unwrap_or_default(),
                        "status.podIP" => pod_ip.to_string(),
                        "status.hostIP" => "127.0.0.1".into(),
                        _ => String::new(),
                    }
                } else if let Some(key) = &from.secret_key_ref {
                    let data = retrying(|| secrets.get(&key.name))
                        .await?
                        .data
                        .unwrap_or_default();
                    data.get(&key.key)
                        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                        .unwrap_or_default()
                } else if let Some(key) = &from.config_map_key_ref {
                    retrying(|| config_maps.get(&key.name))
                        .await?
                        .data
                        .unwrap_or_default()
                        .get(&key.key)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            }
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// The pod as it is now, and its first container's name and image (for container statuses).
async fn pod_and_container(
    api: &Api<Pod>,
    name: &str,
) -> Result<(Pod, (String, String)), AgentError> {
    let pod = retrying(|| api.get(name)).await?;
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .unwrap_or_default();
    Ok((pod, container))
}

async fn report_running(
    api: &Api<Pod>,
    name: &str,
    started: Timestamp,
    pod_ip: &str,
    ready: bool,
) -> Result<(), AgentError> {
    let (_, container) = pod_and_container(api, name).await?;
    let (started, now) = (started.to_string(), Timestamp::now().to_string());
    let ready_status = if ready { "True" } else { "False" };
    let status = json!({"status": {
        "phase": "Running", "startTime": started, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": ready_status, "lastTransitionTime": now},
            {"type": "Ready", "status": ready_status, "lastTransitionTime": now},
        ],
        "containerStatuses": [{"name": container.0, "image": container.1, "imageID": container.1,
            "ready": ready, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}}}],
    }});
    let (params, patch) = (PatchParams::default(), Patch::Merge(&status));
    retrying(|| api.patch_status(name, &params, &patch)).await?;
    Ok(())
}

async fn report_exit(
    api: &Api<Pod>,
    name: &str,
    started: Timestamp,
    code: i32,
    reason: &str,
    message: &str,
) -> Result<(), AgentError> {
    let exit = Exit {
        code,
        reason,
        message,
        pod_reason: None,
    };
    report_terminal(api, name, started, exit).await
}

/// How a pod's container ended, and the pod-level reason and message the kubelet sets for
/// some endings (DeadlineExceeded).
struct Exit<'a> {
    code: i32,
    reason: &'a str,
    message: &'a str,
    pod_reason: Option<(&'a str, &'a str)>,
}

async fn report_terminal(
    api: &Api<Pod>,
    name: &str,
    started: Timestamp,
    exit: Exit<'_>,
) -> Result<(), AgentError> {
    let Exit {
        code,
        reason,
        message,
        pod_reason,
    } = exit;
    let (pod, container) = pod_and_container(api, name).await?;
    let (now, started) = (Timestamp::now().to_string(), started.to_string());
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let mut status = json!({"status": {
        "phase": phase,
        "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0.to_string()).unwrap_or_else(|| started.clone()),
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
        ],
        "containerStatuses": [{"name": container.0, "image": container.1, "imageID": container.1, "ready": false, "started": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason, "message": message,
            "startedAt": started, "finishedAt": now}}}],
    }});
    if let Some((pod_reason, pod_message)) = pod_reason {
        status["status"]["reason"] = json!(pod_reason);
        status["status"]["message"] = json!(pod_message);
    }
    let (params, patch) = (PatchParams::default(), Patch::Merge(&status));
    retrying(|| api.patch_status(name, &params, &patch)).await?;
    info!(pod = %name, code, "pod finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_and_overload_are_retried_refusals_are_not() {
        let answered = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        let reset = kube::Error::Service("client error (SendRequest)".into());
        assert!(is_transient(&reset));
        assert!(is_transient(&answered(503)) && is_transient(&answered(429)));
        assert!(!is_transient(&answered(404)) && !is_transient(&answered(409)));
    }

    #[test]
    fn references_expand_as_the_kubelet_expands_them() {
        let vars = |name: &str| (name == "POD_IP").then(|| "127.1.0.2".to_string());
        assert_eq!(expand("$(POD_IP):8080", &vars), "127.1.0.2:8080");
        assert_eq!(expand("$$(POD_IP)", &vars), "$(POD_IP)");
        assert_eq!(
            expand("$(UNKNOWN)-$(POD_IP)", &vars),
            "$(UNKNOWN)-127.1.0.2"
        );
        assert_eq!(expand("cost: 5$ or $(", &vars), "cost: 5$ or $(");
        assert_eq!(expand("no references", &vars), "no references");
    }

    #[test]
    fn each_pod_gets_its_own_loopback_address() {
        let mut state = State::default();
        let addresses: HashSet<String> = (0..600).map(|_| state.next_pod_ip()).collect();
        assert_eq!(addresses.len(), 600);
        assert!(addresses.iter().all(|a| a.starts_with("127.1.")));
    }

    #[test]
    fn the_longest_image_prefix_wins() {
        let images = vec![
            ("ghcr.io/tessera-dev/".to_string(), PathBuf::from("/bin/a")),
            (
                "ghcr.io/tessera-dev/render-pod".to_string(),
                PathBuf::from("/bin/render-pod"),
            ),
        ];
        assert_eq!(
            resolve_image(&images, "ghcr.io/tessera-dev/render-pod:0.1.0"),
            Some(PathBuf::from("/bin/render-pod"))
        );
        assert_eq!(
            resolve_image(&images, "ghcr.io/tessera-dev/other:1"),
            Some(PathBuf::from("/bin/a"))
        );
        assert_eq!(resolve_image(&images, "docker.io/busybox"), None);
    }
}
