//! Shared harness for the end-to-end tests: the local stack (`scripts/local-stack up`), Beanstalk
//! applications and environments in ebsim, and the eb-deploy binary run the way the Actions runner runs it.
#![allow(dead_code)]

pub mod console;
pub mod image;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_elasticbeanstalk::Client as EbClient;
pub use stackkit::http::get as http_get;
use stackkit::{EbsimAdmin, ProxyAdmin, StackEnv};

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
    pub admin: EbsimAdmin,
    pub proxy: ProxyAdmin,
}

/// The values each run was given as environment variables (`environment-variables`), by the run's files
/// directory: that run's secret scans look for them as for the credentials.
static VARIABLE_VALUES: std::sync::Mutex<BTreeMap<PathBuf, Vec<String>>> = std::sync::Mutex::new(BTreeMap::new());

/// Records the values of a run's `environment-variables` input for its secret scans (values under 4 characters
/// are too short to mask, and no test passes such a secret).
fn remember_variable_values(files: &Path, text: &str) {
    let mut all = VARIABLE_VALUES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let values = all.entry(files.to_path_buf()).or_default();
    for value in text.lines().filter_map(|l| l.split_once('=')).map(|(_, v)| v.trim()) {
        if value.len() >= 4 && !values.iter().any(|v| v == value) {
            values.push(value.to_owned());
        }
    }
}

/// Faults are one setting for the whole ebsim: tests that inject them take turns.
static FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Injected faults, scoped to one test's application and environment; cleared when dropped (even on panic).
pub struct FaultGuard {
    ebsim: EbsimAdmin,
    proxy: ProxyAdmin,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl FaultGuard {
    /// Also injects faults into the recording proxy in front of moto (S3 and ECR), e.g.
    /// `{"next_5xx": 3, "match": {"service": "s3"}}`.
    pub fn proxy(&self, settings: &serde_json::Value) {
        self.proxy.set_faults_now(settings).expect("set proxy faults");
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let _ = self.ebsim.reset_faults_now();
        let _ = self.proxy.reset_faults_now();
    }
}

/// What a run left behind for an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// Application versions: (label, status).
    pub versions: Vec<(String, String)>,
    /// Bundle keys in the Beanstalk bucket under the application's prefix.
    pub bundles: Vec<String>,
    /// Image tags in the application's repository.
    pub tags: Vec<String>,
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
        let admin = env.ebsim().expect("ebsim admin");
        let proxy = ProxyAdmin::new(env.require("MOTO_PROXY_ADMIN").expect("MOTO_PROXY_ADMIN"));
        Self { env, admin, proxy }
    }

    fn var(&self, name: &str) -> String {
        self.env.get(name).unwrap_or_else(|| panic!("{name} missing from the stack env")).to_owned()
    }

    /// The secrets a run must never print.
    pub fn secrets(&self) -> Vec<String> {
        use base64::Engine as _;
        let ecr_password = self.env.registry_password().expect("AWS_ACCOUNT_ID");
        let ecr_token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{ecr_password}"));
        vec![self.var("AWS_SECRET_ACCESS_KEY"), self.var("AWS_SESSION_TOKEN"), ecr_password, ecr_token]
    }

    /// The secrets the run with files directory `files` must never print: the credentials, and the values it
    /// was given as environment variables.
    pub fn secrets_of_run(&self, files: &Path) -> Vec<String> {
        let mut secrets = self.secrets();
        let given = VARIABLE_VALUES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        secrets.extend(given.get(files).into_iter().flatten().cloned());
        secrets
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

    /// A new application with one new environment (unique names from the two prefixes), Ready: (app, env).
    pub async fn new_environment(&self, app: &str, env: &str) -> (String, String) {
        let (app, env) = (unique(app), unique(env));
        self.create_environment(&app, &env).await;
        (app, env)
    }

    /// Creates an application and a Docker environment in it, and waits until the environment is Ready.
    pub async fn create_environment(&self, app: &str, env: &str) {
        self.create_environments(app, &[env.to_owned()]).await;
    }

    /// Creates an application and several Docker environments in it at once, and waits until all are Ready.
    pub async fn create_environments(&self, app: &str, envs: &[String]) {
        let eb = self.eb().await;
        eb.create_application().application_name(app).send().await.expect("create application");
        for env in envs {
            eb.create_environment()
                .application_name(app)
                .environment_name(env)
                .solution_stack_name("64bit Amazon Linux 2023 v4.3.0 running Docker")
                .send()
                .await
                .expect("create environment");
        }
        for env in envs {
            self.wait_ready(env, Duration::from_secs(60)).await;
        }
    }

    /// Injects ebsim faults for one environment only (not the rest of its application).
    pub async fn faults_on(&self, env: &str, settings: serde_json::Value) -> FaultGuard {
        self.scoped_faults(vec![env.to_owned()], env, settings).await
    }

    /// The page `http://CNAME/path` serves, through ebsim's CNAME proxy (a CNAME resolves nowhere here).
    pub fn fetch_cname(&self, cname: &str, path: &str) -> String {
        let proxy = self.var("EBSIM_PROXY");
        let answer = stackkit::http::request(
            stackkit::http::host_port(&proxy),
            "GET",
            &format!("http://{cname}{path}"),
            &[],
            b"",
        )
        .and_then(|r| r.ok())
        .unwrap_or_else(|e| panic!("GET http://{cname}{path} through {proxy}: {e:#}"));
        answer.text()
    }

    /// Waits until ebsim reports the environment Ready (and not mid-revert).
    pub async fn wait_ready(&self, env: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = self.admin.environment(env).await.expect("admin environment");
            if view.as_ref().is_some_and(|v| v.status == "Ready") {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{env} not Ready after {timeout:?}: {view:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Injects ebsim faults (`settings` as its admin API takes them) for this app and environment only.
    pub async fn faults(&self, app: &str, env: &str, settings: serde_json::Value) -> FaultGuard {
        self.scoped_faults(vec![app.to_owned(), env.to_owned()], env, settings).await
    }

    /// Faults for the names in `scope` and `env`'s id, one test at a time (the guard holds the turn).
    async fn scoped_faults(&self, mut scope: Vec<String>, env: &str, settings: serde_json::Value) -> FaultGuard {
        let turn = FAULTS.lock().await;
        if let Some(view) = self.admin.environment(env).await.expect("admin environment") {
            scope.push(view.id);
        }
        let mut settings = settings;
        settings["environments"] = serde_json::json!(scope);
        self.admin.reset_faults().await.expect("reset faults");
        self.admin.set_faults(&settings).await.expect("set faults");
        FaultGuard { ebsim: self.admin.clone(), proxy: self.proxy.clone(), _turn: turn }
    }

    /// Versions, bundles and image tags of `app`, read directly (not through the recording proxy).
    pub async fn leftovers(&self, app: &str) -> Leftovers {
        let eb = self.eb().await;
        let out = eb.describe_application_versions().application_name(app).send().await.expect("versions");
        let mut versions: Vec<(String, String)> = out
            .application_versions()
            .iter()
            .map(|v| {
                let status = v.status().map(|s| s.as_str().to_owned()).unwrap_or_default();
                (v.version_label().unwrap_or_default().to_owned(), status)
            })
            .collect();
        versions.sort();
        let bucket = format!("elasticbeanstalk-{}-{}", self.var("AWS_REGION"), self.var("AWS_ACCOUNT_ID"));
        let listed = self.s3().await.list_objects_v2().bucket(&bucket).prefix(format!("{app}/")).send().await;
        let mut bundles: Vec<String> = listed
            .map(|l| l.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect())
            .unwrap_or_default();
        bundles.sort();
        Leftovers { versions, bundles, tags: self.registry_tags(&eb_deploy::names::ecr_repository_name(app)) }
    }

    /// The `Docker-Content-Digest` the local registry serves for `repository:tag`.
    pub fn registry_digest(&self, repository: &str, tag: &str) -> String {
        stackkit::registry::digest(&self.env, repository, tag)
            .unwrap_or_else(|e| panic!("no digest for {repository}:{tag}: {e:#}"))
    }

    /// Tags of a repository in the local registry.
    pub fn registry_tags(&self, repository: &str) -> Vec<String> {
        stackkit::registry::tags(&self.env, repository).unwrap_or_default()
    }

    /// The recording proxy's log of S3 and ECR requests.
    pub fn proxy_requests(&self) -> Vec<serde_json::Value> {
        self.proxy.requests_now().expect("proxy requests")
    }

    /// The loopback address that serves the environment (its "load balancer").
    pub async fn endpoint(&self, env: &str) -> String {
        self.admin.environment(env).await.expect("admin").expect("environment exists").endpoint
    }

    /// The Beanstalk writes (`stackkit::MUTATING`) ebsim answered after request `since` that name `name` in a
    /// parameter (an application or environment).
    pub async fn mutations_since(&self, since: u64, name: &str) -> Vec<String> {
        self.admin
            .requests_since(since)
            .await
            .expect("request log")
            .into_iter()
            .filter(|r| stackkit::MUTATING.contains(&r.op.as_str()) && r.params.values().any(|v| v == name))
            .map(|r| r.op)
            .collect()
    }

    /// The page the environment serves at `path`.
    pub async fn fetch(&self, env: &str, path: &str) -> String {
        let endpoint = self.endpoint(env).await;
        http_get(&endpoint, path).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The eb-deploy command, set up as the runner sets up a container action: every input from action.yml
    /// (defaults applied, empty when none), `GITHUB_*` file commands, the stack's AWS variables.
    pub fn command(&self, workdir: &Path, inputs: &[(&str, &str)], files: &Path) -> Command {
        self.command_via(None, workdir, inputs, files)
    }

    /// Like [`Stack::command`], started through `wrapper` (e.g. `unshare` to run it as PID 1).
    pub fn command_via(
        &self,
        wrapper: Option<&[&str]>,
        workdir: &Path,
        inputs: &[(&str, &str)],
        files: &Path,
    ) -> Command {
        let bin = env!("CARGO_BIN_EXE_eb-deploy");
        let mut cmd = match wrapper {
            Some([program, args @ ..]) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            _ => Command::new(bin),
        };
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
            if *k == "environment-variables" {
                remember_variable_values(files, v);
            }
            cmd.env(eb_deploy::inputs::env_var_name(k), v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs eb-deploy to completion in `workdir` and collects what it wrote; checks that no secret was
    /// printed, written to an output or the summary, or left on disk.
    pub fn run(&self, workdir: &Path, inputs: &[(&str, &str)]) -> Run {
        let files = scratch_dir("run");
        let child = self.command(workdir, inputs, &files).spawn().expect("start eb-deploy");
        self.finish(child, &files)
    }

    /// Like [`Stack::run`], with extra environment variables (e.g. `HTTP_PROXY`).
    pub fn run_with_env(&self, workdir: &Path, inputs: &[(&str, &str)], env: &[(&str, &str)]) -> Run {
        let files = scratch_dir("run");
        let mut cmd = self.command(workdir, inputs, &files);
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().expect("start eb-deploy");
        self.finish(child, &files)
    }

    /// The variables that send HTTP for `http://<cname>/` through ebsim's CNAME proxy, as a runner's
    /// HTTP_PROXY would, and everything on loopback (the AWS emulators, presigned URLs) directly.
    pub fn cname_proxy_env(&self) -> Vec<(&'static str, String)> {
        let proxy = self.var("EBSIM_PROXY");
        vec![("HTTP_PROXY", proxy.clone()), ("http_proxy", proxy), ("NO_PROXY", "127.0.0.1,localhost".to_owned())]
    }

    /// Waits for a spawned run, collects it and runs the secret checks.
    pub fn finish(&self, child: Child, files: &Path) -> Run {
        let run = collect(child, files);
        let secrets = self.secrets_of_run(files);
        assert_no_secrets(&secrets, &run);
        assert_no_secrets_on_disk(&secrets, files);
        run
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

/// Asserts none of the secrets appear anywhere in what the run printed or wrote, except in the
/// `::add-mask::` commands that tell the runner to hide them, which must come before any other line.
pub fn assert_no_secrets(secrets: &[String], run: &Run) {
    for secret in secrets {
        let mut masked = false;
        for line in run.stdout.lines().chain(run.stderr.lines()) {
            if line.trim_start().starts_with("::add-mask::") {
                masked |= line.contains(secret);
                continue;
            }
            assert!(!line.contains(secret), "a secret leaked into the log (masked before: {masked}):\n{}", run.dump());
        }
        let written = format!("{:?}\n{}", run.outputs, run.summary);
        assert!(!written.contains(secret), "a secret leaked into the outputs or summary:\n{}", run.dump());
    }
}

/// Asserts nothing credential-bearing was left in the run's HOME/RUNNER_TEMP (no docker config, no token).
pub fn assert_no_secrets_on_disk(secrets: &[String], dir: &Path) {
    assert!(!dir.join(".docker/config.json").exists(), "a docker config with credentials was written");
    let mut stack_dirs = vec![dir.to_path_buf()];
    while let Some(d) = stack_dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack_dirs.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let text = String::from_utf8_lossy(&bytes);
            for secret in secrets {
                assert!(!text.contains(secret), "a secret was written to {}", path.display());
            }
        }
    }
}

/// Writes one row of the fault matrix to `$CARGO_TARGET_TMPDIR/reliability/` (one file per fault, so a
/// re-run replaces its row); RELIABILITY.md is assembled from them.
pub fn record(fault: &str, run: &Run, left: &Leftovers, rerun: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability");
    std::fs::create_dir_all(&dir).expect("reliability dir");
    let versions: Vec<String> = left.versions.iter().map(|(l, s)| format!("{l} {s}")).collect();
    let row = format!(
        "| {fault} | `{}` | {} | {} | {} | {} | {rerun} |\n",
        run.out("result"),
        run.code.map_or("signal".to_owned(), |c| c.to_string()),
        if versions.is_empty() { "none".to_owned() } else { versions.join(", ") },
        left.bundles.len(),
        left.tags.len(),
    );
    let slug: String = fault.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(60).collect();
    std::fs::write(dir.join(format!("{slug}.md")), row).expect("write reliability row");
}
