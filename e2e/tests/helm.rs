//! The Helm scenario (docs/architecture.md §11): the chart installs the operator on a real control plane as a
//! platform team would, and the operator runs as the chart's Deployment, with the chart's
//! ServiceAccount token and RBAC only, so a missing RBAC verb fails this test.
//!
//! One control plane of its own (no operator process, no CRDs applied by hand): the process
//! node agent runs the Deployment's pods (image `ghcr.io/tessera-dev/tessera-operator` →
//! the `tessera-operator` binary), hands each one a kubeconfig holding a token of its
//! ServiceAccount, and probes `/readyz` for their readiness. Shard pods run `fake-render-pod`.
//!
//! Needs `helm` and `kubectl` (`eval "$(scripts/e2e-tools.sh)"` sets TESSERA_HELM and
//! TESSERA_KUBECTL), the `testcluster` binary, and the workspace binaries
//! (`cargo build --workspace --bins`). `scripts/test.sh` does all of it.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use kube::api::{Api, ListParams};
use serde_json::json;
use tessera_e2e::ensure;
use tessera_e2e::harness::{
    Cluster, Outcome, Report, Step, bin_dir, block_on, could_not_start, eventually, http_get,
    repo_root, tool,
};
use tessera_e2e::node_agent::{Agent, AgentConfig, ClusterAccess, NodeSpec};
use tessera_operator::permissions::{self, Scope};

const RELEASE: &str = "tessera";
const NAMESPACE: &str = "tessera-system";
const OPERATOR_IMAGE: &str = "ghcr.io/tessera-dev/tessera-operator";
const RENDER_IMAGE: &str = "ghcr.io/tessera-dev/render-pod";
/// The agent's pods share the host's network: each binds its own loopback pod IP, so both
/// replicas can listen on port 8080. (On a real cluster the default, 0.0.0.0, is right.)
const LISTEN_ON_POD_IP: &str = "operator.listenHost=$(POD_IP)";
/// A namespace without Pod Security enforcement: there the admission policy alone stands
/// between the operator's token and a privileged pod.
const UNGUARDED: &str = "unguarded";

struct Env {
    dir: PathBuf,
    helm: PathBuf,
    cluster: Cluster,
    agent: Option<Agent>,
    access: ClusterAccess,
}

impl std::ops::Deref for Env {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl Env {
    async fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("tessera-helm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let helm = tool(
            "TESSERA_HELM",
            home.join(".cache/tessera/kube-tools/bin/helm"),
        );
        ensure!(
            helm.exists(),
            "{} is missing: run `eval \"$(scripts/e2e-tools.sh)\"` (it fetches helm)",
            helm.display()
        );
        let cluster = Cluster::start(&dir).await?;
        let access =
            ClusterAccess::from_kubeconfig(&cluster.kubeconfig).map_err(|e| e.to_string())?;
        let bin = bin_dir();
        let script = dir.join("fake-script.json");
        std::fs::write(&script, "{}").map_err(|e| e.to_string())?;
        let mut nodes: Vec<NodeSpec> = (1..=3)
            .map(|i| {
                NodeSpec::gpu(
                    &format!("gpu-node-{i}"),
                    ("tessera.dev/node-group", "gpu-a"),
                    2,
                )
            })
            .collect();
        nodes.push(NodeSpec::cpu("cpu-node-1"));
        let agent = Agent::start(
            cluster.client.clone(),
            AgentConfig {
                nodes,
                images: vec![
                    (OPERATOR_IMAGE.into(), bin.join("tessera-operator")),
                    (RENDER_IMAGE.into(), bin.join("fake-render-pod")),
                ],
                work_dir: dir.join("pods"),
                heartbeat: Duration::from_secs(1),
                extra_env: vec![
                    (
                        "TESSERA_FAKE_SCRIPT".into(),
                        script.to_string_lossy().into(),
                    ),
                    (
                        "TESSERA_FAKE_LOG".into(),
                        dir.join("fake-log").to_string_lossy().into(),
                    ),
                ],
                cluster_access: Some(access.clone()),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Self {
            dir,
            helm,
            cluster,
            agent: Some(agent),
            access,
        })
    }

    /// Runs helm against the cluster: (success, stdout, stderr).
    fn helm(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.helm)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            // Keep helm's cache and config out of the user's home.
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .output()
            .expect("helm runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn helm_ok(&self, args: &[&str]) -> Result<String, String> {
        let (ok, stdout, stderr) = self.helm(args);
        ensure!(ok, "helm {}: {stderr}", args.join(" "));
        Ok(stdout)
    }

    /// Waits until the operator Deployment is Available with every replica ready.
    fn wait_available(&self) -> Result<(), String> {
        self.kubectl_ok(&[
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            &format!("deployment/{RELEASE}"),
            "--timeout=180s",
        ])?;
        self.kubectl_ok(&[
            "-n",
            NAMESPACE,
            "wait",
            "--for=condition=Available",
            &format!("deployment/{RELEASE}"),
            "--timeout=60s",
        ])
        .map(|_| ())
    }

    async fn operator_pods(&self) -> Result<Vec<Pod>, String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let pods = api
            .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(pods.items)
    }

    /// A kubeconfig that authenticates as the operator's ServiceAccount, with a fresh token.
    fn service_account_kubeconfig(&self) -> Result<PathBuf, String> {
        let token = self.kubectl_ok(&["-n", NAMESPACE, "create", "token", RELEASE])?;
        let path = self.dir.join("operator-sa.kubeconfig");
        std::fs::write(&path, self.access.kubeconfig(token.trim())).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

fn chart() -> String {
    repo_root()
        .join("charts/tessera")
        .to_string_lossy()
        .into_owned()
}

// ------------------------------------------------------------------------------------------
// Steps, in order: each builds on the one before.

/// `helm lint`, and the rendered objects accepted by the API server (`--dry-run=server`);
/// bad values fail with a message that names the value.
fn the_chart_lints_and_renders_valid_objects(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let chart = chart();
        env.helm_ok(&["lint", "--strict", &chart])?;
        env.kubectl_ok(&["create", "namespace", NAMESPACE])?;
        // Both the operator's namespace and the jobs' must admit only `restricted` pods: the
        // operator pods and the shard and merge pods it creates comply.
        for namespace in [NAMESPACE, "default"] {
            env.kubectl_ok(&[
                "label",
                "namespace",
                namespace,
                "pod-security.kubernetes.io/enforce=restricted",
            ])?;
        }
        let privileged = env.kubectl(
            &[
                "run",
                "privileged",
                "--image=busybox",
                "--privileged",
                "--dry-run=server",
                "-n",
                "default",
            ],
            None,
        );
        ensure!(
            !privileged.status.success()
                && String::from_utf8_lossy(&privileged.stderr).contains("violates PodSecurity"),
            "the restricted Pod Security level is not enforced: {}",
            String::from_utf8_lossy(&privileged.stderr)
        );
        let everything_on = [
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "renderNetworkPolicy.enabled=true",
            "--set",
            "renderNetworkPolicy.namespaces={default}",
            "--set",
            "renderNetworkPolicy.storage[0].cidr=203.0.113.0/24",
            "--set",
            "renderNetworkPolicy.storage[0].ports={443}",
            "--set",
            "renderNetworkPolicy.extraEgress[0].to[0].ipBlock.cidr=169.254.169.254/32",
        ];
        let mut args = vec!["template", RELEASE, &chart, "-n", NAMESPACE];
        args.extend(everything_on);
        let rendered = env.helm_ok(&args)?;
        for kind in [
            "CustomResourceDefinition",
            "Deployment",
            "ServiceAccount",
            "ClusterRole",
            "Role",
            "Service",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "ConfigMap",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ] {
            ensure!(
                rendered.contains(&format!("\nkind: {kind}\n")),
                "the chart rendered no {kind}"
            );
        }
        // The render pods' NetworkPolicy: one in each listed namespace, selecting them by the
        // operator's labels.
        ensure!(
            rendered.contains("name: tessera-render\n  namespace: default\n")
                && rendered.contains("app.kubernetes.io/managed-by: tessera-operator"),
            "the render pods' NetworkPolicy is not in namespace default:\n{rendered}"
        );
        let out = env.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
        ensure!(
            out.status.success(),
            "the API server refused the rendered chart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The admission policy is on by default and can be switched off.
        let (ok, without_policy, stderr) = env.helm(&[
            "template",
            RELEASE,
            &chart,
            "--set",
            "admissionPolicy.enabled=false",
        ]);
        ensure!(
            ok && !without_policy.contains("kind: ValidatingAdmissionPolicy"),
            "admissionPolicy.enabled=false still renders the policy: {stderr}"
        );
        // The ServiceMonitor renders when the cluster serves its API, and fails clearly if not.
        let monitor = env.helm_ok(&[
            "template",
            RELEASE,
            &chart,
            "--set",
            "serviceMonitor.enabled=true",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
            "--show-only",
            "templates/servicemonitor.yaml",
        ])?;
        ensure!(
            monitor.contains("kind: ServiceMonitor"),
            "no ServiceMonitor:\n{monitor}"
        );
        let (ok, _, stderr) = env.helm(&[
            "template",
            RELEASE,
            &chart,
            "--set",
            "serviceMonitor.enabled=true",
        ]);
        ensure!(
            !ok && stderr.contains("ServiceMonitor CRD"),
            "serviceMonitor.enabled without the CRD: {stderr}"
        );
        for (value, named) in [
            ("replicaCount=0", "replicaCount"),
            ("operator.logFormat=xml", "logFormat"),
            ("oprator.port=1", "oprator"),
            ("image.pullPolicy=Sometimes", "pullPolicy"),
            (
                "admissionPolicy.validationActions={Block}",
                "validationActions",
            ),
            (
                "renderNetworkPolicy.enabled=true",
                "renderNetworkPolicy.namespaces",
            ),
            (
                "renderNetworkPolicy.storage[0].cidr=storage.example.com",
                "cidr",
            ),
        ] {
            let (ok, _, stderr) = env.helm(&["template", RELEASE, &chart, "--set", value]);
            ensure!(
                !ok && stderr.contains(named),
                "--set {value} should fail naming {named}, got: {stderr}"
            );
        }
        Ok(())
    })
}

/// `helm install`: the Deployment becomes Available; one replica leads, the other stands by;
/// both answer their probes on their own pod IPs.
fn helm_install_makes_the_operator_available(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.helm_ok(&[
            "install",
            RELEASE,
            &chart(),
            "-n",
            NAMESPACE,
            "--set",
            LISTEN_ON_POD_IP,
        ])?;
        env.wait_available()?;
        let pods = env.operator_pods().await?;
        let names: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        ensure!(
            names.len() == 2,
            "expected 2 operator pods, found {names:?}"
        );
        for pod in &pods {
            let spec = pod.spec.clone().unwrap_or_default();
            ensure!(
                spec.service_account_name.as_deref() == Some(RELEASE),
                "pod runs as {:?}",
                spec.service_account_name
            );
        }
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), NAMESPACE);
        let holder = eventually("a leader", Duration::from_secs(60), || async {
            leases
                .get_opt(tessera_operator::leader::LEASE_NAME)
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec.and_then(|s| s.holder_identity))
        })
        .await?;
        ensure!(
            names.contains(&holder),
            "the Lease is held by {holder}, not by an operator pod ({names:?})"
        );
        let mut answers = BTreeSet::new();
        for pod in &pods {
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            let (code, body) = http_get(&format!("{ip}:8080"), "/readyz")
                .ok_or_else(|| format!("nothing answers on {ip}:8080"))?;
            ensure!(code == 200, "/readyz on {ip}: {code} {body}");
            answers.insert(body);
        }
        ensure!(
            answers == BTreeSet::from(["ready (leader)".into(), "ready (standby)".into()]),
            "expected one leader and one standby, got {answers:?}"
        );
        Ok(())
    })
}

/// The samples as a user applies them: a RenderPool and a RenderJob that completes, driven by
/// the operator with the chart's RBAC only (a missing verb stalls or fails it).
fn a_sample_job_completes_under_the_chart_rbac(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let samples = repo_root().join("config/samples");
        let read =
            |name: &str| std::fs::read_to_string(samples.join(name)).map_err(|e| e.to_string());
        let pool = read("renderpool.yaml")?
            .replace(
                "image: ghcr.io/tessera-dev/render-pod:0.1.0",
                &format!("image: {RENDER_IMAGE}:0.1.0"),
            )
            .replace(
                "url: file:///data/tessera",
                &format!("url: file://{}/data", env.dir.display()),
            );
        let out = env.kubectl(&["apply", "-f", "-"], Some(&pool));
        ensure!(
            out.status.success(),
            "applying the pool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let job = read("renderjob.yaml")?;
        let out = env.kubectl(&["apply", "-f", "-"], Some(&job));
        ensure!(
            out.status.success(),
            "applying the job: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.kubectl_ok(&[
            "wait",
            "--for=condition=Complete",
            "renderjob/cbox",
            "-n",
            "default",
            "--timeout=180s",
        ])?;
        let succeeded = env.kubectl_ok(&[
            "get",
            "rj",
            "cbox",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.shards.succeeded}/{.status.shards.total}",
        ])?;
        ensure!(succeeded == "16/16", "shards succeeded/total: {succeeded}");
        // The fake render pod leaves `<job>.render.<shard>.<attempt>` per run.
        let renders = std::fs::read_dir(env.dir.join("fake-log"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("cbox.render."))
            .count();
        ensure!(
            renders == 16,
            "the fake render pod rendered {renders} shards, expected 16"
        );
        // The leader exports the pool's capacity and what it created on /metrics.
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), NAMESPACE);
        let leader = leases
            .get(tessera_operator::leader::LEASE_NAME)
            .await
            .map_err(|e| e.to_string())?
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        let leader_ip = env
            .operator_pods()
            .await?
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(leader.as_str()))
            .and_then(|p| p.status.and_then(|s| s.pod_ip))
            .ok_or_else(|| format!("no pod IP for the leader {leader}"))?;
        eventually(
            "the pool's capacity on /metrics",
            Duration::from_secs(30),
            || async {
                let (_, metrics) = http_get(&format!("{leader_ip}:8080"), "/metrics")?;
                (metrics.contains(r#"tessera_pool_ready_nodes{pool="gpu-a"} 3"#)
                    && metrics.contains(r#"tessera_pool_gpus{pool="gpu-a"} 6"#)
                    && metrics.contains(r#"tessera_pods_created_total{role="shard"} 16"#))
                .then_some(())
            },
        )
        .await?;
        // The pool's status is written too (renderpools/status).
        let ready_nodes = env.kubectl_ok(&[
            "get",
            "renderpool",
            "gpu-a",
            "-o",
            "jsonpath={.status.readyNodes}",
        ])?;
        ensure!(
            ready_nodes == "3",
            "the pool reports {ready_nodes:?} ready nodes"
        );
        let events = env.kubectl_ok(&[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            "involvedObject.name=cbox",
            "-o",
            "jsonpath={.items[*].reason}",
        ])?;
        ensure!(events.contains("Complete"), "events of cbox: {events}");
        Ok(())
    })
}

/// The chart's RBAC grants exactly what the operator checks it needs, and its ServiceAccount
/// is refused anything else.
fn the_operator_account_has_least_privilege(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let rbac = env.helm_ok(&[
            "template",
            RELEASE,
            &chart(),
            "-n",
            NAMESPACE,
            "--show-only",
            "templates/rbac.yaml",
        ])?;
        let rules =
            |accesses: &[&[permissions::Access]]| -> BTreeSet<(String, String, String, bool)> {
                accesses
                    .iter()
                    .flat_map(|list| list.iter())
                    .map(|a| {
                        (
                            a.group.to_string(),
                            a.resource.to_string(),
                            a.verb.to_string(),
                            a.scope == Scope::Cluster,
                        )
                    })
                    .collect()
            };
        let granted = granted_rules(&rbac)?;
        let required = rules(&[permissions::REQUIRED]);
        ensure!(
            granted == required,
            "the chart grants {:?} beyond what the operator needs and misses {:?}",
            granted.difference(&required).collect::<Vec<_>>(),
            required.difference(&granted).collect::<Vec<_>>()
        );
        // With kueue.enabled, exactly the Kueue integration's access on top.
        let with_kueue = granted_rules(&env.helm_ok(&[
            "template",
            RELEASE,
            &chart(),
            "-n",
            NAMESPACE,
            "--set",
            "kueue.enabled=true",
            "--show-only",
            "templates/rbac.yaml",
        ])?)?;
        let required = rules(&[permissions::REQUIRED, permissions::KUEUE]);
        ensure!(
            with_kueue == required,
            "with kueue.enabled the chart grants {:?} beyond what the operator needs and misses {:?}",
            with_kueue.difference(&required).collect::<Vec<_>>(),
            required.difference(&with_kueue).collect::<Vec<_>>()
        );
        // With the ServiceAccount's own token: allowed reads work, everything else is refused.
        let kubeconfig = env.service_account_kubeconfig()?;
        let as_operator = |args: &[&str]| {
            Command::new(&env.kubectl)
                .args(args)
                .env("KUBECONFIG", &kubeconfig)
                .output()
                .expect("kubectl runs")
        };
        let allowed = as_operator(&["get", "pods", "--all-namespaces"]);
        ensure!(
            allowed.status.success(),
            "listing pods as the operator: {}",
            String::from_utf8_lossy(&allowed.stderr)
        );
        for forbidden in [
            vec!["get", "secrets", "--all-namespaces"],
            vec!["get", "configmaps", "-n", NAMESPACE],
            vec!["create", "namespace", "escalated"],
            vec!["delete", "nodes", "--all"],
            vec!["get", "leases", "-n", "kube-system"],
        ] {
            let out = as_operator(&forbidden);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let refused = !out.status.success()
                && (text.contains("Forbidden")
                    || text.contains("forbidden")
                    || text.trim() == "no");
            ensure!(
                refused,
                "the operator's account may `kubectl {}`: {text}",
                forbidden.join(" ")
            );
        }
        // RenderJobs: RBAC lets the operator patch them (its usage finalizer); the chart's
        // admission policy lets it change nothing else.
        let job = env.kubectl_ok(&["get", "renderjob", "cbox", "-n", "default", "-o", "json"])?;
        ensure!(
            job.contains("\"tessera.dev/usage\""),
            "the sample job carries no usage finalizer: {job}"
        );
        // Through the API as the operator does (kubectl patch would GET first, which the
        // account may not).
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).map_err(|e| e.to_string())?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let jobs: Api<tessera_operator::api::RenderJob> = Api::namespaced(client, "default");
        for patch in [
            json!({"spec": {"priority": 7}}),
            json!({"metadata": {"labels": {"team": "other"}}}),
            json!({"metadata": {"finalizers": ["tessera.dev/usage", "example.com/keep"]}}),
        ] {
            let outcome = jobs
                .patch(
                    "cbox",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await;
            ensure!(
                matches!(&outcome, Err(kube::Error::Api(status))
                    if status.message.contains("may only add or remove its tessera.dev/usage finalizer")),
                "the operator's account could patch the sample job with {patch}: {:?}",
                outcome.map(|_| ())
            );
        }
        Ok(())
    })
}

/// The chart's ValidatingAdmissionPolicy bounds the operator's own power. The operator's creates
/// and finalizer patches went through it (the sample job completed, its shard pods are gone).
/// With the operator's ServiceAccount token, a copy of the operator's own merge pod is admitted,
/// and the same pod made privileged, given a hostPath, host networking, a capability, root, a
/// token, a foreign image, no labels, a host port or a node is refused with a message naming
/// it — in a namespace without Pod Security enforcement, so the policy alone refuses. A pool whose
/// image the policy does not allow gets `PodCreateRefused` with the policy's message. The admin
/// creates the same privileged pod untouched.
fn the_operator_account_creates_only_tessera_pods(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let policy = format!("{RELEASE}-operator-pods");
        let warnings = env.kubectl_ok(&[
            "get",
            "validatingadmissionpolicy",
            &policy,
            "-o",
            "jsonpath={.status.typeChecking.expressionWarnings}",
        ])?;
        ensure!(
            warnings.trim().is_empty(),
            "the policy's CEL does not type-check against Pod: {warnings}"
        );
        // The operator's finalizer patches (UPDATE) were admitted: the completed job's shard
        // pods are deleted and gone.
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
        eventually(
            "cbox's shard pods gone",
            Duration::from_secs(60),
            || async {
                pods.list(
                    &ListParams::default().labels("tessera.dev/job=cbox,tessera.dev/role=shard"),
                )
                .await
                .ok()
                .filter(|l| l.items.is_empty())
                .map(|_| ())
            },
        )
        .await?;
        // The operator's own merge pod (merge pods stay), as the operator would create it again.
        let merge = pods
            .list(&ListParams::default().labels("tessera.dev/job=cbox,tessera.dev/role=merge"))
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .next()
            .ok_or("cbox left no merge pod")?;
        let mut own = serde_json::to_value(&merge).map_err(|e| e.to_string())?;
        let strip = |object: &mut serde_json::Value, fields: &[&str]| {
            if let Some(map) = object.as_object_mut() {
                for field in fields {
                    map.remove(*field);
                }
            }
        };
        strip(
            &mut own["metadata"],
            &[
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generation",
            ],
        );
        strip(
            &mut own["spec"],
            &["nodeName", "priority", "preemptionPolicy"],
        );
        strip(&mut own, &["status"]);
        own["metadata"]["name"] = json!("policy-check");
        own["metadata"]["namespace"] = json!(UNGUARDED);
        env.kubectl_ok(&["create", "namespace", UNGUARDED])?;
        let kubeconfig = env.service_account_kubeconfig()?;
        let create = |kubeconfig: &Path, pod: &serde_json::Value| {
            let out = kubectl_with(
                &env.kubectl,
                kubeconfig,
                &["create", "--dry-run=server", "-f", "-"],
                &pod.to_string(),
            );
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (ok, stderr) = create(&kubeconfig, &own);
        ensure!(
            ok,
            "the operator's own pod, created again with its token, is refused: {stderr}"
        );
        type Change = fn(&mut serde_json::Value);
        let changes: [(&str, Change, &str); 10] = [
            (
                "privileged",
                |p| {
                    let security = &mut p["spec"]["containers"][0]["securityContext"];
                    security["privileged"] = json!(true);
                    security
                        .as_object_mut()
                        .map(|s| s.remove("allowPrivilegeEscalation"));
                },
                "privileged containers are refused: merge",
            ),
            (
                "a hostPath volume",
                |p| {
                    let volume = json!({"name": "host", "hostPath": {"path": "/"}});
                    match p["spec"]["volumes"].as_array_mut() {
                        Some(volumes) => volumes.push(volume),
                        None => p["spec"]["volumes"] = json!([volume]),
                    }
                },
                "host (hostPath /)",
            ),
            (
                "host networking",
                |p| p["spec"]["hostNetwork"] = json!(true),
                "host namespaces are refused: hostNetwork",
            ),
            (
                "an added capability",
                |p| {
                    p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] =
                        json!(["SYS_ADMIN"])
                },
                "drop ALL capabilities and add none: merge",
            ),
            (
                "root",
                |p| {
                    p["spec"]["securityContext"]["runAsUser"] = json!(0);
                    p["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
                    if let Some(security) =
                        p["spec"]["containers"][0]["securityContext"].as_object_mut()
                    {
                        security.remove("runAsNonRoot");
                    }
                },
                "must run as non-root",
            ),
            (
                "an API token",
                |p| {
                    if let Some(spec) = p["spec"].as_object_mut() {
                        spec.remove("automountServiceAccountToken");
                    }
                },
                "automountServiceAccountToken: false",
            ),
            (
                "a foreign image",
                |p| p["spec"]["containers"][0]["image"] = json!("docker.io/library/busybox:1.36"),
                "image docker.io/library/busybox:1.36 is not a Tessera render image",
            ),
            (
                "no managed-by label",
                |p| {
                    if let Some(labels) = p["metadata"]["labels"].as_object_mut() {
                        labels.remove("app.kubernetes.io/managed-by");
                    }
                },
                "pods labelled app.kubernetes.io/managed-by=tessera-operator",
            ),
            (
                "a host port",
                |p| {
                    p["spec"]["containers"][0]["ports"] =
                        json!([{"containerPort": 8080, "hostPort": 8080}])
                },
                "host ports are refused: merge",
            ),
            (
                "a node of its choosing",
                |p| p["spec"]["nodeName"] = json!("gpu-node-1"),
                "spec.nodeName is refused",
            ),
        ];
        for (what, change, named) in changes {
            let mut pod = own.clone();
            change(&mut pod);
            let (ok, stderr) = create(&kubeconfig, &pod);
            ensure!(
                !ok && stderr.contains(&format!("ValidatingAdmissionPolicy '{policy}'"))
                    && stderr.contains(named),
                "the operator's pod with {what}: expected the policy to refuse it naming \
                 {named:?}, got: {}",
                if ok { "admitted" } else { &stderr }
            );
        }
        // Other users are not matched: the admin creates the privileged pod as it is.
        let mut privileged = own.clone();
        (changes[0].1)(&mut privileged);
        let (ok, stderr) = create(&env.kubeconfig, &privileged);
        ensure!(
            ok,
            "the policy refused the admin's privileged pod: {stderr}"
        );
        // A pool whose image the policy does not allow: its job says why no pod runs.
        let pool = std::fs::read_to_string(repo_root().join("config/samples/renderpool.yaml"))
            .map_err(|e| e.to_string())?
            .replace("\n  name: gpu-a\n", "\n  name: rogue\n")
            .replace(
                "image: ghcr.io/tessera-dev/render-pod:0.1.0",
                "image: docker.io/library/busybox:1.36",
            )
            .replace(
                "url: file:///data/tessera",
                &format!("url: file://{}/data", env.dir.display()),
            );
        let out = env.kubectl(&["apply", "-f", "-"], Some(&pool));
        ensure!(
            out.status.success(),
            "applying the rogue pool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The sample job, as the sample pool's job that completed, on the rogue pool.
        let job = std::fs::read_to_string(repo_root().join("config/samples/renderjob.yaml"))
            .map_err(|e| e.to_string())?
            .replace("\n  name: cbox\n", "\n  name: rogue\n")
            .replace("\n  pool: gpu-a\n", "\n  pool: rogue\n");
        let out = env.kubectl(&["apply", "-f", "-"], Some(&job));
        ensure!(
            out.status.success(),
            "applying the rogue pool's job: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Err(error) = env.kubectl_ok(&[
            "wait",
            "--for=condition=PodCreateRefused",
            "renderjob/rogue",
            "-n",
            "default",
            "--timeout=60s",
        ]) {
            let conditions = env.kubectl_ok(&[
                "get",
                "rj",
                "rogue",
                "-n",
                "default",
                "-o",
                "jsonpath={.status.conditions}",
            ]);
            return Err(format!("{error}; the job's conditions: {conditions:?}"));
        }
        let message = env.kubectl_ok(&[
            "get",
            "rj",
            "rogue",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodCreateRefused\")].message}",
        ])?;
        ensure!(
            message.contains("image docker.io/library/busybox:1.36 is not a Tessera render image"),
            "PodCreateRefused of the rogue pool's job: {message}"
        );
        env.kubectl_ok(&["delete", "rj", "rogue", "-n", "default", "--wait"])?;
        env.kubectl_ok(&["delete", "renderpool", "rogue", "--wait"])?;
        Ok(())
    })
}

/// kubectl with another kubeconfig (another user), feeding `stdin`.
fn kubectl_with(
    kubectl: &Path,
    kubeconfig: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("kubectl finishes")
}

/// `helm upgrade` to a chart whose CRD adds a field upgrades the CRD (templates, not `crds/`),
/// keeps the operator available, and `helm uninstall` keeps the CRDs and the jobs.
fn helm_upgrade_upgrades_the_crds(env: &mut Env) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let with_notes = json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "noted", "namespace": "default"},
            "spec": {"pool": "gpu-a", "scene": {"url": "file:///scenes/cbox.gltf"}, "frames": "1",
                     "resolution": {"width": 16, "height": 16}, "samplesPerPixel": 1,
                     "notes": "added by the next chart version"}});
        let before = env.kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&with_notes.to_string()),
        );
        ensure!(
            !before.status.success() && String::from_utf8_lossy(&before.stderr).contains("notes"),
            "the installed CRD already knows spec.notes: {}",
            String::from_utf8_lossy(&before.stderr)
        );
        let next = next_chart_version(&env.dir.join("next-chart"))?;
        env.helm_ok(&[
            "upgrade",
            RELEASE,
            &next.to_string_lossy(),
            "-n",
            NAMESPACE,
            "--set",
            LISTEN_ON_POD_IP,
        ])?;
        env.kubectl_apply(&with_notes)?;
        let notes = env.kubectl_ok(&[
            "get",
            "rj",
            "noted",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.notes}",
        ])?;
        ensure!(
            notes == "added by the next chart version",
            "spec.notes after the upgrade: {notes:?} (pruned: the CRD was not upgraded)"
        );
        env.wait_available()?;
        env.helm_ok(&["uninstall", RELEASE, "-n", NAMESPACE, "--wait"])?;
        env.kubectl_ok(&[
            "get",
            "crd",
            "renderjobs.tessera.dev",
            "renderpools.tessera.dev",
        ])
        .map_err(|e| format!("helm uninstall removed the CRDs: {e}"))?;
        env.kubectl_ok(&["get", "rj", "cbox", "noted", "-n", "default"])
            .map_err(|e| format!("helm uninstall removed RenderJobs: {e}"))?;
        Ok(())
    })
}

/// A copy of the chart, one version on, whose RenderJob CRD has an extra `spec.notes` field.
fn next_chart_version(dir: &Path) -> Result<PathBuf, String> {
    let status = Command::new("cp")
        .args(["-r", &chart()])
        .arg(dir)
        .status()
        .map_err(|e| e.to_string())?;
    ensure!(status.success(), "copying the chart failed");
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).map_err(|e| e.to_string())?;
    std::fs::write(
        &chart_yaml,
        text.replace("\nversion: 0.1.0\n", "\nversion: 0.1.1\n"),
    )
    .map_err(|e| e.to_string())?;
    let mut crds = tessera_operator::api::crds();
    for crd in crds.iter_mut().filter(|c| c.spec.names.kind == "RenderJob") {
        for version in &mut crd.spec.versions {
            let spec = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
                .and_then(|s| s.properties.as_mut())
                .and_then(|p| p.get_mut("spec"))
                .and_then(|s| s.properties.as_mut())
                .ok_or("the RenderJob schema has no spec properties")?;
            spec.insert(
                "notes".into(),
                JSONSchemaProps {
                    type_: Some("string".into()),
                    ..Default::default()
                },
            );
        }
    }
    let template = tessera_operator::api::helm_crds_template(&crds).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("templates/crds.yaml"), template).map_err(|e| e.to_string())?;
    Ok(dir.to_path_buf())
}

/// Every (group, resource, verb, cluster-wide) the rendered ClusterRole and Role grant.
fn granted_rules(rbac: &str) -> Result<BTreeSet<(String, String, String, bool)>, String> {
    use serde::Deserialize;
    let mut granted = BTreeSet::new();
    for document in serde_yaml::Deserializer::from_str(rbac) {
        let object = serde_json::Value::deserialize(document).map_err(|e| e.to_string())?;
        let cluster_wide = match object["kind"].as_str() {
            Some("ClusterRole") => true,
            Some("Role") => false,
            _ => continue,
        };
        for rule in object["rules"].as_array().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            };
            ensure!(
                list("resourceNames").is_empty(),
                "resourceNames are not compared"
            );
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        granted.insert((group.clone(), resource.clone(), verb, cluster_wide));
                    }
                }
            }
        }
    }
    Ok(granted)
}

fn main() -> std::process::ExitCode {
    block_on(async {
        let mut env = match Env::start().await {
            Ok(env) => env,
            Err(error) => return could_not_start("helm e2e", &error),
        };
        let steps: Vec<(&str, Step<Env>)> = vec![
            (
                "the chart lints and renders objects the API server accepts",
                the_chart_lints_and_renders_valid_objects,
            ),
            (
                "helm install makes the operator available",
                helm_install_makes_the_operator_available,
            ),
            (
                "a sample job completes under the chart's RBAC",
                a_sample_job_completes_under_the_chart_rbac,
            ),
            (
                "the operator's account has least privilege",
                the_operator_account_has_least_privilege,
            ),
            (
                "the operator's account creates only Tessera-shaped pods",
                the_operator_account_creates_only_tessera_pods,
            ),
            (
                "helm upgrade upgrades the CRDs; uninstall keeps them",
                helm_upgrade_upgrades_the_crds,
            ),
        ];
        let mut report = Report::default();
        for (name, step) in steps {
            // Later steps build on earlier ones: stop at the first failure.
            if !report
                .run(&format!("helm {name}"), &mut env, step, |_| Ok(()))
                .await
            {
                break;
            }
        }
        let dir = env.dir.clone();
        if let Some(agent) = env.agent.take() {
            agent.shutdown().await;
        }
        env.cluster.stop();
        report.finish(&dir)
    })
}
