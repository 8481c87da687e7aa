//! `kubectl tessera` (the `kubectl-tessera` binary) against the real control plane, the
//! process node agent, the operator and the fake render pod (docs/kubectl-plugin.md): what a
//! CI step relies on — `submit --dry-run` output the API server accepts, `wait`'s exit codes,
//! `status -o json` agreeing with the job's status, `logs` falling back to storage, and
//! kubectl finding the plugin on PATH.
//!
//! Needs what `e2e/tests/scenarios.rs` needs (`eval "$(scripts/e2e-tools.sh)"`, then
//! `cargo build --workspace --bins`): `testcluster`, `kubectl`, and the binaries
//! `tessera-operator`, `fake-render-pod` and `kubectl-tessera`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Stdio};
use std::time::Duration;

use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};
use tessera_e2e::ensure;
use tessera_e2e::harness::{
    Cluster, Outcome, Report, Step, bin_dir, block_on, could_not_start, eventually, free_port,
    repo_root,
};
use tessera_e2e::node_agent::{Agent, AgentConfig, NodeSpec};
use tessera_operator::api::RenderJob;

const POOL: &str = "plugin-gpu";
const NAMESPACE: &str = "plugin";

struct Env {
    dir: PathBuf,
    cluster: Cluster,
    agent: Option<Agent>,
    operator: Child,
    script: PathBuf,
}

/// What one run of the plugin did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}; stdout: {:?}; stderr: {:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Env {
    async fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("tessera-e2e-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cluster = Cluster::start(&dir).await?;
        let bin = bin_dir();
        for binary in ["tessera-operator", "fake-render-pod", "kubectl-tessera"] {
            ensure!(
                bin.join(binary).exists(),
                "{} is missing: run `cargo build --workspace --bins`",
                bin.join(binary).display()
            );
        }
        cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            &repo_root().join("crds").to_string_lossy(),
        ])?;
        cluster
            .crds_established(&["renderjobs.tessera.dev", "renderpools.tessera.dev"])
            .await?;
        let script = dir.join("fake-script.json");
        std::fs::write(&script, "{}").map_err(|e| e.to_string())?;
        let agent = Agent::start(
            cluster.client.clone(),
            AgentConfig {
                nodes: vec![
                    NodeSpec::gpu("gpu-node-1", ("tessera.dev/node-group", "gpu-a"), 2),
                    NodeSpec::gpu("gpu-node-2", ("tessera.dev/node-group", "gpu-a"), 2),
                ],
                images: vec![(
                    "ghcr.io/tessera-dev/render-pod".into(),
                    bin.join("fake-render-pod"),
                )],
                work_dir: dir.join("pods"),
                heartbeat: Duration::from_secs(1),
                extra_env: vec![(
                    "TESSERA_FAKE_SCRIPT".into(),
                    script.to_string_lossy().into(),
                )],
                cluster_access: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("operator.log")).map_err(|e| e.to_string())?;
        let operator = std::process::Command::new(bin.join("tessera-operator"))
            .args(["--lease-namespace", "default", "--http-addr"])
            .arg(format!("127.0.0.1:{}", free_port()?))
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting tessera-operator: {e}"))?;
        let env = Env {
            dir,
            cluster,
            agent: Some(agent),
            operator,
            script,
        };
        env.cluster.kubectl_apply(&json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": POOL},
            "spec": {"nodeSelector": {"tessera.dev/node-group": "gpu-a"},
                     "image": "ghcr.io/tessera-dev/render-pod:e2e", "storage": {
                         "url": format!("file://{}/data", env.dir.display()),
                         "sharedReadPrefixes": ["file:///scenes"]}}
        }))?;
        env.cluster
            .kubectl_ok(&["create", "namespace", NAMESPACE])?;
        Ok(env)
    }

    /// Runs `kubectl-tessera args` with the cluster's kubeconfig in $KUBECONFIG.
    /// `kubectl tessera submit` of the test scene as job `name` in the test namespace.
    async fn submit(&self, name: &str, frames: &str, flags: &[&str]) -> Run {
        let mut args = vec![
            "submit",
            "--scene",
            "file:///scenes/cbox.gltf",
            "--frames",
            frames,
            "--name",
            name,
            "-n",
            NAMESPACE,
        ];
        args.extend_from_slice(flags);
        self.plugin(&args).await
    }

    async fn plugin(&self, args: &[&str]) -> Run {
        self.command(bin_dir().join("kubectl-tessera"), args).await
    }

    async fn command(&self, program: PathBuf, args: &[&str]) -> Run {
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = tokio::process::Command::new(&program)
            .args(args)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .env("PATH", path)
            .env_remove("TESSERA_POOL")
            .stdin(Stdio::null())
            .output()
            .await;
        match output {
            Ok(out) => Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(e) => Run {
                code: -1,
                stdout: String::new(),
                stderr: format!("{}: {e}", program.display()),
            },
        }
    }

    fn set_script(&self, job: &str, script: Value) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.script).unwrap_or_else(|_| "{}".into());
        let mut all: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap_or_default();
        all.insert(job.into(), script);
        std::fs::write(&self.script, json!(all).to_string()).map_err(|e| e.to_string())
    }

    async fn job(&self, name: &str) -> Result<RenderJob, String> {
        Api::<RenderJob>::namespaced(self.cluster.client.clone(), NAMESPACE)
            .get(name)
            .await
            .map_err(|e| e.to_string())
    }

    /// `status NAME -o json`, checked against the job's own status: the counts are the
    /// operator's, and the rows account for every shard in the same states. Read twice (by
    /// the plugin and here), so retried while the operator still writes status (a finished
    /// job's last pods are still being accounted).
    async fn status_agrees(&self, name: &str) -> Result<Value, String> {
        let agreed = eventually(
            "status agrees with the job",
            Duration::from_secs(10),
            || async { self.status_agrees_once(name).await.ok() },
        )
        .await;
        match agreed {
            Ok(value) => Ok(value),
            // Say why: the last disagreement.
            Err(_) => self.status_agrees_once(name).await,
        }
    }

    async fn status_agrees_once(&self, name: &str) -> Result<Value, String> {
        let run = self
            .plugin(&["status", name, "-n", NAMESPACE, "-o", "json"])
            .await;
        ensure!(run.code == 0, "status -o json: {run}");
        let view: Value =
            serde_json::from_str(&run.stdout).map_err(|e| format!("status -o json: {e}: {run}"))?;
        let status = self.job(name).await?.status.unwrap_or_default();
        let counts = &view["shards"];
        let c = &status.shards;
        for (key, expected) in [
            ("total", c.total),
            ("succeeded", c.succeeded),
            ("failed", c.failed),
            ("active", c.active),
            ("waiting", c.waiting),
        ] {
            ensure!(
                counts[key] == json!(expected),
                "status -o json says {key} {}, the job's status {expected}",
                counts[key]
            );
        }
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for row in view["rows"].as_array().ok_or("no rows")? {
            let (first, last) = (row["firstShard"].as_u64(), row["lastShard"].as_u64());
            let (Some(first), Some(last)) = (first, last) else {
                return Err(format!("row without shards: {row}"));
            };
            *by_state
                .entry(row["state"].as_str().unwrap_or_default().into())
                .or_default() += last - first + 1;
        }
        ensure!(
            by_state.values().sum::<u64>() == u64::from(c.total),
            "rows cover {by_state:?}, the job has {} shards",
            c.total
        );
        ensure!(
            by_state.get("succeeded").copied().unwrap_or(0) == status.succeeded_shards.len()
                && by_state.get("failed").copied().unwrap_or(0) == status.failed_shards.len(),
            "rows {by_state:?} vs succeeded {} failed {}",
            status.succeeded_shards,
            status.failed_shards
        );
        ensure!(
            view["phase"] == json!(status.phase),
            "phase {} vs {:?}",
            view["phase"],
            status.phase
        );
        Ok(view)
    }

    async fn shutdown(mut self) {
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
        let _ = self.operator.kill();
        let _ = self.operator.wait();
        self.cluster.stop();
    }
}

type Test = Step<Env>;

fn submit_dry_run_is_accepted_by_the_api_server(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let flags = [
            "submit",
            "--scene",
            "file:///scenes/cbox.gltf",
            "--frames",
            "1-8x2",
            "--pool",
            POOL,
            "--resolution",
            "64x48",
            "--spp",
            "16",
            "--tiles",
            "2x2",
            "--sample-splits",
            "2",
            "--frames-per-shard",
            "2",
            "--camera",
            "Camera",
            "--name",
            "dry",
            "-n",
            NAMESPACE,
            "--dry-run",
        ];
        let yaml = env.plugin(&flags).await;
        ensure!(yaml.code == 0, "submit --dry-run: {yaml}");
        let applied = env.cluster.kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&yaml.stdout),
        );
        ensure!(
            applied.status.success()
                && String::from_utf8_lossy(&applied.stdout)
                    .contains("renderjob.tessera.dev/dry created (server dry run)"),
            "kubectl apply --dry-run=server of {:?}: {} {}",
            yaml.stdout,
            String::from_utf8_lossy(&applied.stdout),
            String::from_utf8_lossy(&applied.stderr)
        );
        let mut json_flags = flags.to_vec();
        json_flags.extend(["-o", "json"]);
        let json_run = env.plugin(&json_flags).await;
        ensure!(json_run.code == 0, "submit --dry-run -o json: {json_run}");
        let from_json: Value = serde_json::from_str(&json_run.stdout).map_err(|e| e.to_string())?;
        let from_yaml: Value = serde_yaml::from_str(&yaml.stdout).map_err(|e| e.to_string())?;
        ensure!(from_json == from_yaml, "{from_json} vs {from_yaml}");
        let applied = env.cluster.kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&json_run.stdout),
        );
        ensure!(
            applied.status.success(),
            "kubectl apply --dry-run=server of the JSON: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        ensure!(env.job("dry").await.is_err(), "a dry run created the job");

        // Flags the operator would refuse are refused before any cluster is asked: exit 2.
        let bad = env
            .plugin(&[
                "submit",
                "--scene",
                "file:///scenes/cbox.gltf",
                "--frames",
                "5-1",
                "--pool",
                POOL,
                "--dry-run",
            ])
            .await;
        ensure!(
            bad.code == 2 && bad.stderr.contains("--frames") && bad.stderr.lines().count() == 1,
            "bad frames: {bad}"
        );
        Ok(())
    })
}

fn a_job_that_completes_makes_wait_exit_0(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("done", json!({"sleepMs": 300}))?;
        // No --pool: the cluster's only pool is chosen.
        let submitted = env
            .submit(
                "done",
                "1-4",
                &["--resolution", "64x64", "--spp", "4", "--tiles", "2x1"],
            )
            .await;
        ensure!(
            submitted.code == 0 && submitted.stdout == "done\n",
            "submit: {submitted}"
        );
        let waited = env
            .plugin(&["wait", "done", "-n", NAMESPACE, "--timeout", "2m"])
            .await;
        ensure!(
            waited.code == 0 && waited.stdout.contains("Complete (FramesWritten)"),
            "wait: {waited}"
        );
        let view = env.status_agrees("done").await?;
        ensure!(
            view["rows"]
                == json!([{"frames": "1-4", "shards": "0-7", "firstShard": 0, "lastShard": 7,
                           "state": "succeeded", "attempt": 0, "failedAttempts": 0}]),
            "rows {}",
            view["rows"]
        );

        // As a kubectl plugin: kubectl finds kubectl-tessera on PATH.
        let table = env
            .command(
                env.cluster.kubectl.clone(),
                &["tessera", "status", "done", "-n", NAMESPACE],
            )
            .await;
        ensure!(
            table.code == 0
                && table.stdout.contains("Phase:     Complete 100%")
                && table.stdout.contains("Merged:    1-4\n")
                && table.stdout.contains("1-4     0-7     succeeded"),
            "kubectl tessera status: {table}"
        );
        let yaml = env
            .plugin(&["status", "done", "-n", NAMESPACE, "-o", "yaml"])
            .await;
        let parsed: Value = serde_yaml::from_str(&yaml.stdout).map_err(|e| e.to_string())?;
        ensure!(parsed["shards"]["succeeded"] == json!(8), "-o yaml: {yaml}");
        Ok(())
    })
}

fn a_shard_that_always_fails_makes_wait_exit_1_with_the_reason(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        // Exit 3 (bad input) fails the shard at once, without the default retry backoff.
        env.set_script("doomed", json!({"failAlways": {"1": 3}}))?;
        let submitted = env
            .submit(
                "doomed",
                "1-4",
                &["--pool", POOL, "--resolution", "64x64", "--spp", "4"],
            )
            .await;
        ensure!(submitted.code == 0, "submit: {submitted}");
        let waited = env
            .plugin(&["wait", "doomed", "-n", NAMESPACE, "--timeout", "2m"])
            .await;
        ensure!(
            waited.code == 1
                && waited
                    .stderr
                    .contains("renderjob plugin/doomed Failed: ShardFailed: ")
                && waited.stderr.contains("shard 1 failed"),
            "wait: {waited}"
        );
        let view = env.status_agrees("doomed").await?;
        let failed: Vec<&Value> = view["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["state"] == "failed")
            .collect();
        ensure!(
            failed.len() == 1
                && failed[0]["shards"] == "1"
                && failed[0]["frames"] == "2"
                && failed[0]["node"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("gpu-node-")),
            "failed rows {failed:?}"
        );

        // logs: the agent serves no pod logs, so the plugin reads the render pod's copy in
        // storage (the fake render pod writes none: the test puts one where the real one would).
        let job = env.job("doomed").await?;
        let log = job
            .status
            .and_then(|s| s.last_failure)
            .and_then(|f| f.log)
            .ok_or("no lastFailure.log")?;
        let missing = env
            .plugin(&["logs", "doomed", "-n", NAMESPACE, "--shard", "1"])
            .await;
        ensure!(
            missing.code == 1 && missing.stderr.contains(&log),
            "logs without a log in storage: {missing}"
        );
        let path = PathBuf::from(log.strip_prefix("file://").ok_or("not a file URL")?);
        std::fs::create_dir_all(path.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        std::fs::write(&path, "scene: cbox.gltf\nerror: scripted bad input\n")
            .map_err(|e| e.to_string())?;
        for selector in [["--shard", "1"], ["--frame", "2"]] {
            let mut args = vec!["logs", "doomed", "-n", NAMESPACE];
            args.extend(selector);
            let read = env.plugin(&args).await;
            ensure!(
                read.code == 0 && read.stdout.ends_with("error: scripted bad input\n"),
                "logs {selector:?}: {read}"
            );
        }

        // The scene is fixed: rerun the failed shard; wait now exits 0; preview copies frame 2.
        env.set_script("doomed", json!({}))?;
        let bad = env
            .plugin(&["rerun", "doomed", "-n", NAMESPACE, "--frames", "4-1"])
            .await;
        ensure!(
            bad.code == 2 && bad.stderr.contains("--frames"),
            "rerun --frames 4-1: {bad}"
        );
        let rerun = env
            .plugin(&["rerun", "doomed", "-n", NAMESPACE, "--failed"])
            .await;
        ensure!(
            rerun.code == 0 && rerun.stdout.contains("rerender generation 1 requested"),
            "rerun --failed: {rerun}"
        );
        let waited = env
            .plugin(&["wait", "doomed", "-n", NAMESPACE, "--timeout", "2m"])
            .await;
        ensure!(waited.code == 0, "wait after the rerun: {waited}");
        let job = env.job("doomed").await?;
        let rerenders = job.status.map(|s| s.rerenders).unwrap_or_default();
        ensure!(
            rerenders.len() == 1 && rerenders[0].shards.to_string() == "1",
            "status.rerenders {rerenders:?}"
        );
        let copy = std::env::temp_dir().join(format!("plugin-preview-{}.png", std::process::id()));
        let preview = env
            .plugin(&[
                "preview",
                "doomed",
                "-n",
                NAMESPACE,
                "--frame",
                "2",
                "--to",
                copy.to_str().unwrap_or_default(),
            ])
            .await;
        ensure!(
            preview.code == 0 && preview.stdout.contains("(frame)"),
            "preview: {preview}"
        );
        let frame = preview
            .stdout
            .split(' ')
            .next()
            .and_then(|u| u.strip_prefix("file://"))
            .unwrap_or_default();
        ensure!(
            std::fs::read(&copy)
                .ok()
                .is_some_and(|b| std::fs::read(frame).ok() == Some(b)),
            "preview copied something else than {frame}"
        );
        let _ = std::fs::remove_file(&copy);
        Ok(())
    })
}

fn wait_times_out_with_124_and_says_what_is_wrong_otherwise(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("hung", json!({"hang": ["0/0"]}))?;
        let submitted = env
            .submit(
                "hung",
                "1",
                &["--pool", POOL, "--resolution", "8x8", "--spp", "1"],
            )
            .await;
        ensure!(submitted.code == 0, "submit: {submitted}");
        let waited = env
            .plugin(&["wait", "hung", "-n", NAMESPACE, "--timeout", "3s"])
            .await;
        ensure!(
            waited.code == 124 && waited.stderr.contains("timed out after 3s"),
            "wait --timeout 3s: {waited}"
        );
        Api::<RenderJob>::namespaced(env.cluster.client.clone(), NAMESPACE)
            .delete("hung", &DeleteParams::default())
            .await
            .map_err(|e| e.to_string())?;

        for (args, code, says) in [
            (vec!["wait", "nosuch", "-n", NAMESPACE], 3, "not found"),
            (vec!["wait"], 2, "JOB"),
            (
                vec!["wait", "done", "--timeout", "soon"],
                2,
                "not a duration",
            ),
            (vec!["logs", "done", "-n", NAMESPACE], 2, "--shard"),
            (
                vec!["logs", "done", "-n", NAMESPACE, "--shard", "99"],
                2,
                "has shards 0 to 7",
            ),
            (vec!["status", "nosuch", "-n", NAMESPACE], 1, "not found"),
        ] {
            let run = env.plugin(&args).await;
            ensure!(
                run.code == code && run.stderr.contains(says) && !run.stderr.contains("panicked"),
                "{args:?}: {run}"
            );
        }
        Ok(())
    })
}

fn main() -> std::process::ExitCode {
    block_on(async {
        let tests: Vec<(&str, Test)> = vec![
            (
                "submit --dry-run output is accepted by kubectl apply --dry-run=server",
                submit_dry_run_is_accepted_by_the_api_server,
            ),
            (
                "a job that completes: wait exits 0, status agrees with the job",
                a_job_that_completes_makes_wait_exit_0,
            ),
            (
                "a shard that always fails: wait exits 1 with the reason, logs from storage",
                a_shard_that_always_fails_makes_wait_exit_1_with_the_reason,
            ),
            (
                "wait times out with 124; usage errors exit 2, a missing job 3",
                wait_times_out_with_124_and_says_what_is_wrong_otherwise,
            ),
        ];
        let mut env = match Env::start().await {
            Ok(env) => env,
            Err(error) => return could_not_start("plugin", &error),
        };
        let mut report = Report::default();
        for (name, test) in tests {
            report
                .run(&format!("plugin {name}"), &mut env, test, |_| Ok(()))
                .await;
        }
        let dir = env.dir.clone();
        env.shutdown().await;
        report.finish(&dir)
    })
}
