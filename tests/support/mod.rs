//! Shared harness for the end-to-end tests: the local stack (`scripts/local-stack up`), Beanstalk
//! applications and environments in ebsim, and the eb-deploy binary run the way the Actions runner runs it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_elasticbeanstalk::Client as EbClient;
use ebsim::testkit::{Admin, StackEnv};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    let mut b = [0u8; 3];
    getrandom::fill(&mut b).expect("randomness");
    format!("{prefix}-{}", hex::encode(b))
}

/// The running local stack.
pub struct Stack {
    pub env: StackEnv,
    pub admin: Admin,
}

/// Faults are one setting for the whole ebsim: tests that inject them take turns.
static FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Injected faults, scoped to one test's application and environment; cleared when dropped (even on panic).
pub struct FaultGuard {
    ebsim: String,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let host = self.ebsim.trim_start_matches("http://");
        let _ = http_request(host, "DELETE", "/_ebsim/faults", "");
    }
}

/// What one eb-deploy run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

impl Run {
    /// An output's value ("" when absent).
    pub fn out(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }

    /// Everything the run printed and wrote, for secret scans.
    pub fn everything(&self) -> String {
        let outputs: Vec<String> = self.outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}\n{}\n{}\n{}", self.stdout, self.stderr, outputs.join("\n"), self.summary)
    }

    /// A readable dump for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- outputs\n{:?}",
            self.code, self.stdout, self.stderr, self.outputs
        )
    }
}

impl Stack {
    /// The stack `scripts/local-stack up` started (found through `.local-stack/env`).
    pub fn load() -> Self {
        let env = StackEnv::load().unwrap_or_else(|e| {
            panic!("the local stack is not up ({e:#}); run `make test`, or `scripts/local-stack up` first")
        });
        let admin = env.admin().expect("ebsim admin");
        Self { env, admin }
    }

    fn var(&self, name: &str) -> String {
        self.env.get(name).unwrap_or_else(|| panic!("{name} missing from the stack env")).to_owned()
    }

    /// The secrets a run must never print.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = vec![self.var("AWS_SECRET_ACCESS_KEY"), self.var("AWS_SESSION_TOKEN")];
        s.push(format!("{}-auth-token", self.var("AWS_ACCOUNT_ID")));
        s
    }

    async fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds = aws_credential_types::Credentials::new(
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            Some(self.var("AWS_SESSION_TOKEN")),
            None,
            "local-stack",
        );
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.var("AWS_REGION")))
            .credentials_provider(creds)
            .load()
            .await
    }

    /// A Beanstalk client on ebsim (test setup and checks; not eb-deploy's).
    pub async fn eb(&self) -> EbClient {
        let conf = self.sdk_config().await;
        EbClient::from_conf(
            aws_sdk_elasticbeanstalk::config::Builder::from(&conf).endpoint_url(self.var("EBSIM_URL")).build(),
        )
    }

    /// An S3 client on moto, directly (unrecorded).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = self.sdk_config().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf).endpoint_url(self.var("MOTO_URL")).force_path_style(true).build(),
        )
    }

    /// Creates an application and a Docker environment in it, and waits until the environment is Ready.
    pub async fn create_environment(&self, app: &str, env: &str) {
        let eb = self.eb().await;
        eb.create_application().application_name(app).send().await.expect("create application");
        eb.create_environment()
            .application_name(app)
            .environment_name(env)
            .solution_stack_name("64bit Amazon Linux 2023 v4.3.0 running Docker")
            .send()
            .await
            .expect("create environment");
        self.wait_ready(env, Duration::from_secs(60)).await;
    }

    /// Waits until ebsim reports the environment Ready (and not mid-revert).
    pub async fn wait_ready(&self, env: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = self.admin.environment(env).await.expect("admin environment");
            if view.as_ref().is_some_and(|v| format!("{:?}", v.status) == "Ready") {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{env} not Ready after {timeout:?}: {view:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Injects ebsim faults (`settings` as its admin API takes them) for this app and environment only.
    pub async fn faults(&self, app: &str, env: &str, settings: serde_json::Value) -> FaultGuard {
        let turn = FAULTS.lock().await;
        let mut scope = vec![app.to_owned(), env.to_owned()];
        if let Some(view) = self.admin.environment(env).await.expect("admin environment") {
            scope.push(view.id);
        }
        let mut settings = settings;
        settings["environments"] = serde_json::json!(scope);
        self.admin.reset_faults().await.expect("reset faults");
        self.admin.set_faults(&settings).await.expect("set faults");
        FaultGuard { ebsim: self.var("EBSIM_URL"), _turn: turn }
    }

    /// The loopback address that serves the environment (its "load balancer").
    pub async fn endpoint(&self, env: &str) -> String {
        self.admin.environment(env).await.expect("admin").expect("environment exists").endpoint
    }

    /// The page the environment serves at `path`.
    pub async fn fetch(&self, env: &str, path: &str) -> String {
        let endpoint = self.endpoint(env).await;
        http_get(&endpoint, path).unwrap_or_else(|e| panic!("GET http://{endpoint}{path}: {e}"))
    }

    /// The eb-deploy command, set up as the runner sets up a container action: every input from action.yml
    /// (defaults applied, empty when none), `GITHUB_*` file commands, the stack's AWS variables.
    pub fn command(&self, workdir: &Path, inputs: &[(&str, &str)], files: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eb-deploy"));
        cmd.env_clear().current_dir(workdir);
        for (k, v) in self.env.vars() {
            cmd.env(k, v);
        }
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", files)
            .env("GITHUB_ACTIONS", "true")
            .env("CI", "true")
            .env("GITHUB_OUTPUT", files.join("output"))
            .env("GITHUB_STEP_SUMMARY", files.join("summary"))
            .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
            .env("GITHUB_REF_TYPE", "branch")
            .env("GITHUB_REF_NAME", "main")
            .env("GITHUB_REPOSITORY", "team/shop")
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_RUN_ID", "4242")
            .env("RUNNER_TEMP", files);
        for spec in eb_deploy::inputs::INPUTS {
            let default = match spec.default {
                eb_deploy::inputs::DefaultValue::Value(v) => v,
                _ => "",
            };
            cmd.env(eb_deploy::inputs::env_var_name(spec.name), default);
        }
        cmd.env(eb_deploy::inputs::env_var_name("registry"), self.var("LOCAL_REGISTRY"));
        for (k, v) in inputs {
            cmd.env(eb_deploy::inputs::env_var_name(k), v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs eb-deploy to completion in `workdir` and collects what it wrote.
    pub fn run(&self, workdir: &Path, inputs: &[(&str, &str)]) -> Run {
        let files = scratch_dir("run");
        let child = self.command(workdir, inputs, &files).spawn().expect("start eb-deploy");
        collect(child, &files)
    }

    /// Starts eb-deploy without waiting (for concurrency and signal tests).
    pub fn spawn(&self, workdir: &Path, inputs: &[(&str, &str)]) -> (Child, PathBuf) {
        let files = scratch_dir("run");
        let child = self.command(workdir, inputs, &files).spawn().expect("start eb-deploy");
        (child, files)
    }
}

/// Waits for a spawned run and reads its outputs and summary.
pub fn collect(child: Child, files: &Path) -> Run {
    let output = child.wait_with_output().expect("wait for eb-deploy");
    let outputs_text = std::fs::read_to_string(files.join("output")).unwrap_or_default();
    let outputs = eb_deploy::gha::parse_file_commands(&outputs_text)
        .unwrap_or_else(|e| panic!("the outputs file breaks the runner's rules: {e:#}\n{outputs_text}"))
        .into_iter()
        .collect();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        outputs,
        summary: std::fs::read_to_string(files.join("summary")).unwrap_or_default(),
    }
}

/// A fresh directory under the system temp dir.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("eb-deploy-e2e-{prefix}")));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The example app's directory (its busybox copied in by `scripts/local-stack up`).
pub fn example_app() -> PathBuf {
    let dir = root().join("examples/app");
    assert!(
        dir.join("busybox").exists(),
        "examples/app/busybox is missing: run `scripts/local-stack up` (or examples/prepare.sh)"
    );
    dir
}

/// The broken variant (builds fine, fails its health check).
pub fn broken_app() -> PathBuf {
    root().join("examples/app-broken")
}

/// A minimal HTTP/1.0 GET over loopback; returns the body of a 2xx answer.
pub fn http_get(host_port: &str, path: &str) -> Result<String, String> {
    http_request(host_port, "GET", path, "")
}

/// A minimal HTTP/1.0 request over loopback (usable where no runtime is, e.g. in `Drop`).
pub fn http_request(host_port: &str, method: &str, path: &str, body: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(host_port).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host_port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if !status.starts_with('2') {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(body.to_owned())
}

/// Asserts none of the secrets appear anywhere in what the run printed or wrote, except in the
/// `::add-mask::` commands that tell the runner to hide them (which must come before any other use).
pub fn assert_no_secrets(stack: &Stack, run: &Run) {
    let visible: String =
        run.everything().lines().filter(|l| !l.trim_start().starts_with("::add-mask::")).collect::<Vec<_>>().join("\n");
    for secret in stack.secrets() {
        assert!(!visible.contains(&secret), "a secret leaked into the run's output:\n{}", run.dump());
    }
}
