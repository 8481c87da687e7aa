//! What every end-to-end test binary needs: the real control plane (`testcluster up`),
//! kubectl against it, tool paths, and bounded waits.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;

/// Returns `Err(format!(...))` from the enclosing function unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory of the workspace binaries: a test executable lives in `<target>/<profile>/deps`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// A tool's path: the environment variable if set, else `default`.
pub fn tool(env_var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or(default)
}

/// `kubectl` (TESSERA_KUBECTL, else the one `scripts/e2e-tools.sh` fetches).
pub fn kubectl_path() -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    tool(
        "TESSERA_KUBECTL",
        home.join(".cache/tessera/kube-tools/bin/kubectl"),
    )
}

/// Polls `check` until it answers `Some`, at most `timeout`. For conditions no watch expresses.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await; // poll interval, bounded by `timeout`
    }
}

/// `GET path` on `address` (`host:port`): (status code, body), or None if nothing answers.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

/// A free local TCP port (bound, noted, released).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A running control plane: `testcluster up` in `dir`, its admin kubeconfig and a client.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub kubectl: PathBuf,
    child: Child,
}

impl Cluster {
    /// Starts the control plane (TESSERA_TESTCLUSTER, else `e2e/testcluster/bin/testcluster`)
    /// with its log in `dir/cluster.log`, and waits until it is ready. Lost nodes are noticed
    /// in seconds, not the default 40 s.
    pub async fn start(dir: &Path) -> Result<Self, String> {
        Self::start_with(dir, &[]).await
    }

    /// As [`Cluster::start`], with extra kube-controller-manager flags.
    pub async fn start_with(dir: &Path, controller_manager_args: &[&str]) -> Result<Self, String> {
        let testcluster = tool(
            "TESSERA_TESTCLUSTER",
            repo_root().join("e2e/testcluster/bin/testcluster"),
        );
        let kubectl = kubectl_path();
        for path in [&testcluster, &kubectl] {
            ensure!(
                path.exists(),
                "{} is missing: run `eval \"$(scripts/e2e-tools.sh)\"` (it builds the test cluster and fetches kubectl)",
                path.display()
            );
        }
        let cluster_dir = dir.join("cluster");
        let child = Command::new(&testcluster)
            .args(["up", "--dir"])
            .arg(&cluster_dir)
            .args([
                "--controller-manager-arg=--node-monitor-period=1s",
                "--controller-manager-arg=--node-monitor-grace-period=10s",
            ])
            .args(
                controller_manager_args
                    .iter()
                    .map(|arg| format!("--controller-manager-arg={arg}")),
            )
            .stdout(std::fs::File::create(dir.join("cluster.log")).map_err(|e| e.to_string())?)
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", testcluster.display()))?;
        let ready = cluster_dir.join("ready");
        eventually("the control plane", Duration::from_secs(180), || async {
            ready.exists().then_some(())
        })
        .await?;
        let kubeconfig = cluster_dir.join("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).map_err(|e| e.to_string())?,
            &Default::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let client = Client::try_from(config).map_err(|e| e.to_string())?;
        Ok(Self {
            kubeconfig,
            client,
            kubectl,
            child,
        })
    }

    /// Runs kubectl with the admin kubeconfig, feeding `stdin` if given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            let _ = input.write_all(text.as_bytes());
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Waits until the CRDs are Established. (`kubectl wait` fails at once on a CRD that has
    /// no conditions yet, right after it was applied.)
    pub async fn crds_established(&self, names: &[&str]) -> Result<(), String> {
        let established = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}";
        for name in names {
            eventually(
                &format!("CRD {name} Established"),
                Duration::from_secs(60),
                || async {
                    let status = self
                        .kubectl_ok(&["get", "crd", name, "-o", established])
                        .ok()?;
                    (status.trim() == "True").then_some(())
                },
            )
            .await?;
        }
        Ok(())
    }

    /// kubectl's stdout, or an error with its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.kubectl(args, None);
        ensure!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply -f -` of one object.
    pub fn kubectl_apply(&self, object: &serde_json::Value) -> Result<String, String> {
        let out = self.kubectl(&["apply", "-f", "-"], Some(&object.to_string()));
        ensure!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the control plane; SIGTERM lets the supervisor stop its components in order.
    pub fn stop(mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub type Outcome = Result<(), String>;

/// A scenario or step: an async function of the test environment.
pub type Step<E> = for<'a> fn(&'a mut E) -> Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// Counts what passed and failed, printing one line per step and a final `N passed, N failed`.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
}

impl Report {
    /// Runs one step, then `after` (for clean-up that belongs to every step); answers whether
    /// both succeeded.
    pub async fn run<E>(
        &mut self,
        label: &str,
        env: &mut E,
        step: Step<E>,
        after: fn(&mut E) -> Outcome,
    ) -> bool {
        let start = Instant::now();
        let outcome = step(env).await.and_then(|()| after(env));
        let seconds = start.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("{label} ... ok ({seconds:.1} s)");
                true
            }
            Err(error) => {
                self.failed += 1;
                println!("{label} ... FAILED ({seconds:.1} s): {error}");
                false
            }
        }
    }

    /// Removes `dir` when everything passed (keeps logs and data otherwise) and prints the
    /// summary line.
    pub fn finish(self, dir: &Path) -> std::process::ExitCode {
        if self.failed == 0 {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            println!("logs and data: {}", dir.display());
        }
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a test binary's async main on a multi-threaded runtime.
pub fn block_on(main: impl Future<Output = std::process::ExitCode>) -> std::process::ExitCode {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(main)
}

/// Prints why the environment did not start, as a failed run.
pub fn could_not_start(what: &str, error: &str) -> std::process::ExitCode {
    eprintln!("{what}: could not start the environment: {error}");
    println!("0 passed, 1 failed");
    std::process::ExitCode::FAILURE
}
