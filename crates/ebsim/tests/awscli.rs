//! Fidelity check with an independent client: the AWS CLI (botocore's parsers, waiters and
//! paginators) drives a running ebsim through every operation, against the running local stack
//! (`.local-stack/env`), with a real image in the registry and real containers.
//!
//! Run: `cargo test -p ebsim --features e2e --test awscli` with the stack up.

#![cfg(feature = "e2e")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stackkit::{EbsimAdmin, StackEnv};

/// The stack, the CLI and the names one test uses.
struct Ctx {
    stack: StackEnv,
    admin: EbsimAdmin,
    suffix: String,
    tmp: PathBuf,
    bucket: String,
    /// Repositories pushed, whose local images are removed at the end.
    repos: std::sync::Mutex<Vec<String>>,
}

impl Ctx {
    fn new() -> Self {
        let stack = StackEnv::load().expect("the local stack must be up (.local-stack/env)");
        let admin = stack.ebsim().unwrap();
        let suffix = ebsim::ids::short_suffix();
        let tmp = std::env::temp_dir().join(format!("ebsim-e2e-{suffix}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let bucket = format!("elasticbeanstalk-{}-{}", stack.region().unwrap(), stack.account_id().unwrap());
        Self { stack, admin, suffix, tmp, bucket, repos: Default::default() }
    }

    fn aws_raw(&self, args: &[&str]) -> Output {
        let out = Command::new(self.stack.aws_cli().unwrap())
            .envs(self.stack.vars())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("failed to run the aws CLI");
        eprintln!(
            "$ aws {} -> {}{}",
            args.join(" "),
            out.status,
            if out.status.success() { String::new() } else { format!("\n{}", String::from_utf8_lossy(&out.stderr)) }
        );
        out
    }

    /// An `aws elasticbeanstalk` call through ebsim.
    fn eb_raw(&self, args: &[&str]) -> Output {
        let mut all = vec!["--endpoint-url", self.stack.ebsim_url().unwrap(), "--output", "json", "elasticbeanstalk"];
        all.extend_from_slice(args);
        self.aws_raw(&all)
    }

    /// `create-environment` of a Docker environment named `env` in `app`, with `extra` arguments; its answer.
    fn create_environment(&self, app: &str, env: &str, extra: &[&str]) -> Value {
        let mut args = vec!["create-environment", "--application-name", app, "--environment-name", env];
        args.extend_from_slice(extra);
        args.extend(["--solution-stack-name", "64bit Amazon Linux 2023 v4.3.0 running Docker"]);
        self.eb(&args)
    }

    /// A successful call's JSON output (null when it prints nothing).
    fn eb(&self, args: &[&str]) -> Value {
        let out = self.eb_raw(args);
        assert!(out.status.success(), "aws elasticbeanstalk {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).expect("CLI printed JSON") }
    }

    /// A failing call's stderr.
    fn eb_err(&self, args: &[&str]) -> String {
        let out = self.eb_raw(args);
        assert!(!out.status.success(), "aws elasticbeanstalk {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn s3_cp(&self, file: &Path, key: &str) {
        let dest = format!("s3://{}/{key}", self.bucket);
        let out = self.aws_raw(&[
            "--endpoint-url",
            self.stack.s3_endpoint().unwrap(),
            "s3",
            "cp",
            file.to_str().unwrap(),
            &dest,
        ]);
        assert!(out.status.success(), "upload failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn s3_exists(&self, key: &str) -> bool {
        self.aws_raw(&[
            "--endpoint-url",
            self.stack.s3_endpoint().unwrap(),
            "s3api",
            "head-object",
            "--bucket",
            &self.bucket,
            "--key",
            key,
        ])
        .status
        .success()
    }

    /// Builds a busybox web app answering `text` and pushes it; the image name for Dockerrun.
    async fn push_image(&self, repo: &str, tag: &str, text: &str) -> String {
        let ctx = self.tmp.join(format!("img-{tag}"));
        std::fs::create_dir_all(ctx.join("www")).unwrap();
        std::fs::copy("/bin/busybox", ctx.join("busybox")).expect("busybox-static provides /bin/busybox");
        std::fs::write(ctx.join("www/index.html"), text).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 80\n\
             ENTRYPOINT [\"/bin/busybox\",\"httpd\",\"-f\",\"-p\",\"80\",\"-h\",\"/www\"]\n",
        )
        .unwrap();
        self.push_context(repo, tag, &ctx).await
    }

    /// Builds the image of the Docker context `ctx` and pushes it; the image name for Dockerrun.
    async fn push_context(&self, repo: &str, tag: &str, ctx: &Path) -> String {
        let registry = self.stack.registry().unwrap().to_string();
        let local = format!("{registry}/{repo}:{tag}");
        self.repos.lock().unwrap().push(format!("{registry}/{repo}"));
        run(Command::new("docker").args(["build", "-q", "-t", &local, ctx.to_str().unwrap()]));
        // ECR's password, from ECR itself (through the CLI), as a real pipeline logs in.
        let token = self.aws_raw(&[
            "--endpoint-url",
            self.stack.ecr_endpoint().unwrap(),
            "ecr",
            "get-authorization-token",
            "--query",
            "authorizationData[0].authorizationToken",
            "--output",
            "text",
        ]);
        assert!(token.status.success());
        let decoded = ebsim::registry::decode_token(String::from_utf8_lossy(&token.stdout).trim()).unwrap();
        let cfg = self.tmp.join("docker-config");
        let mut login = Command::new("docker")
            .args(["--config", cfg.to_str().unwrap(), "login", "-u", &decoded.username, "--password-stdin", &registry])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        login.stdin.take().unwrap().write_all(decoded.password.as_bytes()).unwrap();
        assert!(login.wait().unwrap().success(), "docker login to {registry} failed");
        run(Command::new("docker").args(["--config", cfg.to_str().unwrap(), "push", &local]));
        // Untag what ebsim would find locally (the tag, and with it the repository's digest), so that ebsim pulls
        // it. A keeper tag keeps the image itself for the suite's sweep: removing images while other tests build
        // fails their builds.
        let keeper = format!("ebsim-e2e-keep/{}-{repo}:{tag}", self.suffix);
        run(Command::new("docker").args(["tag", &local, &keeper]));
        run(Command::new("docker").args(["rmi", &local]));
        stackkit::discard_images(&[keeper]);
        // Name it as ECR would when ebsim maps the ECR host to the local registry.
        let cfg = self.admin.config().await.unwrap();
        let ecr_host =
            format!("{}.dkr.ecr.{}.amazonaws.com", self.stack.account_id().unwrap(), self.stack.region().unwrap());
        if cfg["registry_aliases"][&ecr_host].as_str() == Some(registry.as_str()) {
            format!("{ecr_host}/{repo}:{tag}")
        } else {
            local
        }
    }

    /// Builds and pushes a busybox web app whose every page lists its environment variables.
    async fn push_env_image(&self, repo: &str) -> String {
        let ctx = self.tmp.join("img-env");
        std::fs::create_dir_all(ctx.join("www/cgi-bin")).unwrap();
        std::fs::copy("/bin/busybox", ctx.join("busybox")).expect("busybox-static provides /bin/busybox");
        let cgi = ctx.join("www/cgi-bin/index.cgi");
        std::fs::write(&cgi, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | sort\n").unwrap();
        std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\nCOPY www /www\n\
             EXPOSE 80\nENTRYPOINT [\"/bin/busybox\",\"httpd\",\"-f\",\"-p\",\"80\",\"-h\",\"/www\"]\n",
        )
        .unwrap();
        self.push_context(repo, "env", &ctx).await
    }

    /// Writes a bundle zip and uploads it; the S3 key.
    fn bundle(&self, app: &str, name: &str, files: &[(&str, &[u8])]) -> String {
        let path = self.tmp.join(format!("{name}.zip"));
        std::fs::write(&path, ebsim::bundle::zip_of(files)).unwrap();
        let key = format!("{app}/{name}.zip");
        self.s3_cp(&path, &key);
        key
    }

    fn dockerrun_bundle(&self, app: &str, name: &str, image: &str) -> String {
        let json = json!({
            "AWSEBDockerrunVersion": "1",
            "Image": {"Name": image, "Update": "true"},
            "Ports": [{"ContainerPort": "80"}]
        })
        .to_string();
        self.bundle(app, name, &[("Dockerrun.aws.json", json.as_bytes())])
    }

    fn env(&self, name: &str) -> Value {
        let v = self.eb(&["describe-environments", "--environment-names", name, "--no-include-deleted"]);
        v["Environments"][0].clone()
    }

    fn wait_for(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let e = self.env(name);
            if done(&e) {
                return e;
            }
            assert!(start.elapsed() < Duration::from_secs(90), "{name} never reached {what}: {e}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
        // The images ebsim pulled for this test (by digest) are of no further use: the suite's sweep removes them.
        for repo in self.repos.lock().map(|r| r.clone()).unwrap_or_default() {
            let ids = Command::new("docker").args(["images", "-q", "--filter", &format!("reference={repo}")]).output();
            if let Ok(out) = ids {
                let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
                ids.sort();
                ids.dedup();
                stackkit::discard_images(&ids);
            }
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("failed to run a command");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// GET / through an environment's load balancer.
fn http_get(endpoint: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(endpoint).expect("the load balancer accepts connections");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The environment's containers once there are `n` (the previous instance is removed just after the
/// environment turns Ready); fails after 20 s.
fn containers_settle(env: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = containers_of(env);
        if now.len() == n || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn containers_of(env: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=ebsim.instance=1",
            "--filter",
            &format!("label=ebsim.environment={env}"),
            "--format",
            "{{.ID}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn messages(events: &Value) -> Vec<String> {
    events["Events"].as_array().unwrap().iter().map(|e| e["Message"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_pages_and_reports_through_the_aws_cli() {
    let c = Ctx::new();
    let app = format!("e2e-app-{}", c.suffix);
    let env = format!("e2e-env-{}", c.suffix);
    let repo = format!("ebsim-e2e-{}", c.suffix);
    let text = format!("hello from e2e {}\n", c.suffix);
    let image = c.push_image(&repo, "v1", &text).await;

    let loc = c.eb(&["create-storage-location"]);
    assert_eq!(loc["S3Bucket"], c.bucket.as_str());
    let key1 = c.dockerrun_bundle(&app, "v1", &image);
    let created = c.eb(&["create-application", "--application-name", &app, "--description", "e2e <app> & co"]);
    assert_eq!(created["Application"]["Description"], "e2e <app> & co");
    let v = c.eb(&[
        "create-application-version",
        "--application-name",
        &app,
        "--version-label",
        "v1",
        "--process",
        "--source-bundle",
        &format!("S3Bucket={},S3Key={key1}", c.bucket),
    ]);
    assert_eq!(v["ApplicationVersion"]["Status"], "PROCESSING");
    for label in ["v1-copy-a", "v1-copy-b"] {
        c.eb(&[
            "create-application-version",
            "--application-name",
            &app,
            "--version-label",
            label,
            "--source-bundle",
            &format!("S3Bucket={},S3Key={key1}", c.bucket),
        ]);
    }
    // Paginated by botocore: --page-size drives MaxRecords, --max-items cuts and returns a NextToken.
    let all = c.eb(&["describe-application-versions", "--application-name", &app, "--page-size", "1"]);
    let labels: Vec<&str> =
        all["ApplicationVersions"].as_array().unwrap().iter().map(|v| v["VersionLabel"].as_str().unwrap()).collect();
    assert_eq!(labels, vec!["v1-copy-b", "v1-copy-a", "v1"]);
    let first = c.eb(&["describe-application-versions", "--application-name", &app, "--max-items", "2"]);
    assert_eq!(first["ApplicationVersions"].as_array().unwrap().len(), 2);
    let token = first["NextToken"].as_str().expect("a NextToken").to_string();
    let rest = c.eb(&[
        "describe-application-versions",
        "--application-name",
        &app,
        "--max-items",
        "2",
        "--starting-token",
        &token,
    ]);
    assert_eq!(rest["ApplicationVersions"][0]["VersionLabel"], "v1");
    let processed = {
        let start = Instant::now();
        loop {
            let d = c.eb(&["describe-application-versions", "--application-name", &app, "--version-labels", "v1"]);
            if d["ApplicationVersions"][0]["Status"] == "PROCESSED" || start.elapsed() > Duration::from_secs(30) {
                break d;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    assert_eq!(processed["ApplicationVersions"][0]["Status"], "PROCESSED");
    let apps = c.eb(&["describe-applications", "--application-names", &app]);
    assert_eq!(apps["Applications"][0]["Versions"].as_array().unwrap().len(), 3);

    // The environment starts on the sample application.
    let e = c.create_environment(&app, &env, &[]);
    assert_eq!(e["Status"], "Launching");
    let id = e["EnvironmentId"].as_str().unwrap().to_string();
    c.eb(&["wait", "environment-exists", "--environment-ids", &id]);
    let endpoint = c.env(&env)["EndpointURL"].as_str().unwrap().to_string();
    let (code, page) = http_get(&endpoint);
    assert_eq!(code, 200);
    assert!(page.contains("Congratulations"), "{page}");

    // Deploy v1 and wait with botocore's waiter.
    let up = c.eb(&["update-environment", "--environment-name", &env, "--version-label", "v1"]);
    assert_eq!(up["Status"], "Updating");
    assert_eq!(up["Health"], "Grey");
    assert_eq!(up["VersionLabel"], "v1");
    assert_eq!(up["AbortableOperationInProgress"], true);
    c.eb(&["wait", "environment-updated", "--environment-names", &env]);
    let done = c.env(&env);
    assert_eq!(
        (done["Status"].as_str(), done["Health"].as_str(), done["VersionLabel"].as_str()),
        (Some("Ready"), Some("Green"), Some("v1"))
    );
    assert_eq!(http_get(&endpoint), (200, text.clone()));
    assert_eq!(containers_settle(&env, 1).len(), 1);

    // Events: newest first; the update's RequestId selects exactly its own events.
    let ev = c.eb(&["describe-events", "--environment-name", &env]);
    let starting = ev["Events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Message"] == "Environment update is starting.")
        .unwrap()
        .clone();
    let rid = starting["RequestId"].as_str().unwrap().to_string();
    let by_rid = c.eb(&["describe-events", "--request-id", &rid]);
    let mut msgs = messages(&by_rid);
    msgs.reverse();
    assert_eq!(
        msgs,
        vec![
            "Environment update is starting.",
            "Deploying new version to instance(s).",
            "Instance deployment completed successfully.",
            "New application version was deployed to running EC2 instances.",
            "Environment update completed successfully.",
        ]
    );
    let errors = c.eb(&["describe-events", "--environment-name", &env, "--severity", "ERROR"]);
    assert!(errors["Events"].as_array().unwrap().is_empty());
    let since =
        c.eb(&["describe-events", "--environment-name", &env, "--start-time", starting["EventDate"].as_str().unwrap()]);
    assert!(messages(&since).iter().all(|m| !m.contains("createEnvironment")));
    let paged = c.eb(&["describe-events", "--environment-name", &env, "--page-size", "2"]);
    assert_eq!(paged["Events"].as_array().unwrap().len(), ev["Events"].as_array().unwrap().len());
    let cut = c.eb(&["describe-events", "--environment-name", &env, "--max-items", "3"]);
    assert_eq!(cut["Events"].as_array().unwrap().len(), 3);
    assert!(cut["NextToken"].is_string());

    let health = c.eb(&["describe-environment-health", "--environment-name", &env, "--attribute-names", "All"]);
    assert_eq!(
        (health["Color"].as_str(), health["HealthStatus"].as_str(), health["Status"].as_str()),
        (Some("Green"), Some("Ok"), Some("Ready"))
    );
    assert_eq!(health["InstancesHealth"]["Ok"], 1);

    // A bundle with a Dockerfile is built through the Engine.
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let built_text = format!("built from a Dockerfile {}\n", c.suffix);
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 8080\n\
                      ENTRYPOINT [\"/bin/busybox\",\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]\n";
    let key_built = c.bundle(
        &app,
        "built",
        &[("Dockerfile", dockerfile.as_bytes()), ("busybox", &busybox), ("www/index.html", built_text.as_bytes())],
    );
    c.eb(&[
        "create-application-version",
        "--application-name",
        &app,
        "--version-label",
        "built",
        "--source-bundle",
        &format!("S3Bucket={},S3Key={key_built}", c.bucket),
    ]);
    c.eb(&["update-environment", "--environment-name", &env, "--version-label", "built"]);
    let built = c.wait_for(&env, "Ready on built", |e| e["Status"] == "Ready");
    assert_eq!(built["VersionLabel"], "built", "{:?}", c.admin.environment(&env).await.unwrap());
    assert_eq!(http_get(&endpoint), (200, built_text));
    assert_eq!(containers_settle(&env, 1).len(), 1);

    // A second environment so DescribeEnvironments pages too.
    let env2 = format!("e2e-two-{}", c.suffix);
    c.create_environment(&app, &env2, &[]);
    let envs = c.eb(&["describe-environments", "--application-name", &app, "--page-size", "1"]);
    let names: Vec<&str> =
        envs["Environments"].as_array().unwrap().iter().map(|e| e["EnvironmentName"].as_str().unwrap()).collect();
    assert_eq!(names, vec![env.as_str(), env2.as_str()]);
    let one = c.eb(&["describe-environments", "--application-name", &app, "--max-items", "1"]);
    assert!(one["NextToken"].is_string());

    // Terminated through the admin API: the waiter sees it and the container is gone.
    c.admin.terminate(&env).await.unwrap();
    c.admin.terminate(&env2).await.unwrap();
    c.eb(&["wait", "environment-terminated", "--environment-names", &env, &env2]);
    assert!(containers_of(&env).is_empty(), "containers left: {:?}", containers_of(&env));
    let view = c.admin.environment(&env).await.unwrap().unwrap();
    assert_eq!(view.status, "Terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_aborts_and_errors_through_the_aws_cli() {
    let c = Ctx::new();
    let app = format!("e2e-fail-{}", c.suffix);
    let env = format!("e2e-fail-{}", c.suffix);
    let repo = format!("ebsim-e2e-fail-{}", c.suffix);
    let text = format!("good version {}\n", c.suffix);
    let image = c.push_image(&repo, "good", &text).await;
    c.eb(&["create-storage-location"]);
    let good = c.dockerrun_bundle(&app, "good", &image);
    let missing_image = c.dockerrun_bundle(&app, "missing", &image.replace(":good", ":does-not-exist"));
    let empty = c.bundle(&app, "empty", &[("README.md", b"no Dockerfile here")]);
    c.eb(&["create-application", "--application-name", &app]);
    for (label, key) in [("good", &good), ("missing", &missing_image), ("empty", &empty)] {
        c.eb(&[
            "create-application-version",
            "--application-name",
            &app,
            "--version-label",
            label,
            "--process",
            "--source-bundle",
            &format!("S3Bucket={},S3Key={key}", c.bucket),
        ]);
    }
    // Errors, as the CLI prints them.
    let dup = c.eb_err(&[
        "create-application-version",
        "--application-name",
        &app,
        "--version-label",
        "good",
        "--source-bundle",
        &format!("S3Bucket={},S3Key={good}", c.bucket),
    ]);
    assert!(
        dup.contains("(InvalidParameterValue)") && dup.contains("Application Version good already exists."),
        "{dup}"
    );
    let no_obj = c.eb_err(&[
        "create-application-version",
        "--application-name",
        &app,
        "--version-label",
        "ghost",
        "--source-bundle",
        &format!("S3Bucket={},S3Key={app}/ghost.zip", c.bucket),
    ]);
    assert!(no_obj.contains("(InvalidParameterCombination)") && no_obj.contains("Reason: Not Found"), "{no_obj}");
    let no_app =
        c.eb_err(&["create-application-version", "--application-name", "no-such-app-e2e", "--version-label", "x"]);
    assert!(no_app.contains("No Application named 'no-such-app-e2e' found."), "{no_app}");

    c.create_environment(&app, &env, &["--version-label", "good"]);
    let ready = c.wait_for(&env, "Ready on good", |e| e["Status"] == "Ready");
    assert_eq!(ready["VersionLabel"], "good");
    let endpoint = ready["EndpointURL"].as_str().unwrap().to_string();
    assert_eq!(http_get(&endpoint), (200, text.clone()));
    let serving = containers_of(&env);
    assert_eq!(serving.len(), 1);

    // An image that is not in the registry: failure events, back on "good", Red, then Green.
    let before = c.admin.last_request_seq().await.unwrap();
    c.eb(&["update-environment", "--environment-name", &env, "--version-label", "missing"]);
    let after = c.wait_for(&env, "Ready after the failure", |e| e["Status"] == "Ready");
    assert_eq!(after["VersionLabel"], "good");
    assert_eq!(after["Health"], "Red");
    let errors = c.eb(&["describe-events", "--environment-name", &env, "--severity", "ERROR"]);
    let msgs = messages(&errors);
    assert_eq!(msgs.first().map(String::as_str), Some("Failed to deploy application."));
    assert!(msgs.iter().any(|m| m == "Instance deployment failed. For details, see 'eb-engine.log'."));
    assert_eq!(http_get(&endpoint), (200, text.clone()));
    assert_eq!(containers_of(&env), serving, "the failed instance is removed, the old one kept");
    let view = c.admin.environment(&env).await.unwrap().unwrap();
    assert!(view.last_failure.as_deref().unwrap_or_default().contains("does-not-exist"), "{view:?}");
    let recovered = c.wait_for(&env, "Green again", |e| e["Health"] == "Green");
    assert_eq!(recovered["VersionLabel"], "good");
    let ops: Vec<String> = c.admin.requests_since(before).await.unwrap().into_iter().map(|r| r.op).collect();
    assert!(ops.contains(&"UpdateEnvironment".to_string()), "{ops:?}");

    // A bundle without Dockerfile or Dockerrun.aws.json.
    c.eb(&["update-environment", "--environment-name", &env, "--version-label", "empty"]);
    c.wait_for(&env, "Ready after the empty bundle", |e| e["Status"] == "Ready");
    let ev = c.eb(&["describe-events", "--environment-name", &env, "--version-label", "empty"]);
    assert!(
        messages(&ev)
            .iter()
            .any(|m| m.starts_with("Instance deployment: Both 'Dockerfile' and 'Dockerrun.aws.json' are missing"))
    );
    let versions = c.eb(&["describe-application-versions", "--application-name", &app, "--version-labels", "empty"]);
    assert_eq!(versions["ApplicationVersions"][0]["Status"], "FAILED");

    // A stuck update, aborted.
    let not_now = c.eb_err(&["abort-environment-update", "--environment-name", &env]);
    assert!(not_now.contains("Must be pending deployment."), "{not_now}");
    c.admin.set_faults(&json!({"stuck_next_updates": 1})).await.unwrap();
    c.eb(&["update-environment", "--environment-name", &env, "--version-label", "good"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(c.env(&env)["Status"], "Updating");
    let busy = c.eb_err(&["update-environment", "--environment-name", &env, "--version-label", "good"]);
    assert!(
        busy.contains("(InvalidParameterValue)")
            && busy.contains(&format!(
                "Environment named {env} is in an invalid state for this operation. Must be Ready."
            )),
        "{busy}"
    );
    let aborted = c.eb(&["abort-environment-update", "--environment-name", &env]);
    assert_eq!(aborted, Value::Null);
    let back = c.wait_for(&env, "Ready after the abort", |e| e["Status"] == "Ready");
    assert_eq!(back["VersionLabel"], "good");
    c.admin.reset_faults().await.unwrap();

    // Throttling comes back as the CLI knows it (after its own retries).
    c.admin.set_faults(&json!({"throttle_fraction": 1.0, "ops": ["DescribeApplications"]})).await.unwrap();
    let throttled = c.eb_err(&["describe-applications"]);
    c.admin.reset_faults().await.unwrap();
    assert!(throttled.contains("(Throttling)") && throttled.contains("Rate exceeded"), "{throttled}");

    // Deleting a version with its bundle.
    assert!(c.s3_exists(&missing_image));
    assert_eq!(
        c.eb(&[
            "delete-application-version",
            "--application-name",
            &app,
            "--version-label",
            "missing",
            "--delete-source-bundle"
        ]),
        Value::Null
    );
    assert!(!c.s3_exists(&missing_image));
    let gone = c.eb(&["describe-application-versions", "--application-name", &app, "--version-labels", "missing"]);
    assert!(gone["ApplicationVersions"].as_array().unwrap().is_empty());

    let health =
        c.eb(&["describe-environment-health", "--environment-name", &env, "--attribute-names", "Color", "Causes"]);
    assert!(health["Color"].is_string() && health.get("InstancesHealth").is_none());
    c.admin.terminate(&env).await.unwrap();
    c.wait_for_terminated(&env);
    assert!(containers_of(&env).is_empty());
}

impl Ctx {
    fn wait_for_terminated(&self, name: &str) {
        let start = Instant::now();
        loop {
            let v = self.eb(&["describe-environments", "--environment-names", name]);
            if v["Environments"][0]["Status"] == "Terminated" {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{name} never terminated");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// `curl` through ebsim's CNAME proxy: `-x PROXY` when given, else `HTTP_PROXY` in its environment.
fn curl_via(proxy: &str, url: &str, flag: bool) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10"]).env_remove("NO_PROXY").env_remove("no_proxy");
    if flag {
        cmd.args(["-x", &format!("http://{proxy}")]);
    } else {
        cmd.env("http_proxy", format!("http://{proxy}")).env("HTTP_PROXY", format!("http://{proxy}"));
    }
    let out = cmd.arg(url).output().expect("failed to run curl");
    assert!(out.status.success(), "curl {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn swaps_cnames_and_reaches_them_through_the_proxy_with_the_aws_cli() {
    let c = Ctx::new();
    let app = format!("e2e-swap-{}", c.suffix);
    let (blue, green) = (format!("e2e-blue-{}", c.suffix), format!("e2e-green-{}", c.suffix));
    let (live, next) = (format!("live-{}", c.suffix), format!("next-{}", c.suffix));
    let region = c.stack.region().unwrap().to_string();
    let (live_host, next_host) =
        (format!("{live}.{region}.elasticbeanstalk.com"), format!("{next}.{region}.elasticbeanstalk.com"));
    let text = format!("blue {}\n", c.suffix);
    let image = c.push_image(&format!("ebsim-e2e-swap-{}", c.suffix), "blue", &text).await;
    c.eb(&["create-storage-location"]);
    let key = c.dockerrun_bundle(&app, "blue", &image);
    c.eb(&["create-application", "--application-name", &app]);
    c.eb(&[
        "create-application-version",
        "--application-name",
        &app,
        "--version-label",
        "blue",
        "--source-bundle",
        &format!("S3Bucket={},S3Key={key}", c.bucket),
    ]);
    let start = c.create_environment(&app, &blue, &["--cname-prefix", &live, "--version-label", "blue"]);
    c.create_environment(&app, &green, &["--cname-prefix", &next]);
    // Polled rather than botocore's waiter (20 s between polls), which the first test covers.
    for name in [&blue, &green] {
        c.wait_for(name, "Ready", |e| e["Status"] == "Ready");
    }
    assert_eq!(c.env(&blue)["VersionLabel"], "blue");

    let cfg = c.admin.config().await.unwrap();
    let proxy = cfg["proxy"].as_str().expect("ebsim's CNAME proxy address in /_ebsim/config").to_string();
    assert_eq!(curl_via(&proxy, &format!("http://{live_host}/"), true), text);
    assert!(curl_via(&proxy, &format!("http://{next_host}/"), false).contains("Congratulations"));

    // The swap answers at once; the EB CLI then waits for its final event.
    assert_eq!(
        c.eb(&[
            "swap-environment-cnames",
            "--source-environment-name",
            &green,
            "--destination-environment-name",
            &blue
        ]),
        Value::Null
    );
    let begun = Instant::now();
    loop {
        let ev = c.eb(&["describe-events", "--environment-name", &green, "--max-items", "5"]);
        if messages(&ev).iter().any(|m| m.starts_with("Completed swapping CNAMEs for environments")) {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "the swap never completed: {ev}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let both = c.eb(&["describe-environments", "--environment-names", &blue, &green]);
    let cname = |name: &str| {
        both["Environments"].as_array().unwrap().iter().find(|e| e["EnvironmentName"] == name).unwrap()["CNAME"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!((cname(&green), cname(&blue)), (live_host.clone(), next_host.clone()));
    assert!(curl_via(&proxy, &format!("http://{live_host}/"), true).contains("Congratulations"));
    assert_eq!(curl_via(&proxy, &format!("http://{next_host}/"), false), text);

    // One DescribeEvents by application covers both environments.
    let since = start["DateCreated"].as_str().unwrap();
    let ev = c.eb(&["describe-events", "--application-name", &app, "--start-time", since]);
    let mut envs: Vec<&str> =
        ev["Events"].as_array().unwrap().iter().filter_map(|e| e["EnvironmentName"].as_str()).collect();
    envs.sort();
    envs.dedup();
    assert_eq!(envs, vec![blue.as_str(), green.as_str()]);

    c.admin.terminate(&blue).await.unwrap();
    c.admin.terminate(&green).await.unwrap();
    c.wait_for_terminated(&blue);
    c.wait_for_terminated(&green);
    assert!(containers_of(&blue).is_empty());
}

/// The files of `examples/app-broken` (busybox included, after `examples/prepare.sh`) as bundle entries.
fn broken_example_files() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/app-broken");
    ["Dockerfile", "busybox", "start.sh", "www/cgi-bin/index.cgi"]
        .iter()
        .map(|f| {
            let body = std::fs::read(dir.join(f))
                .unwrap_or_else(|e| panic!("{f} in {}: {e} (run examples/prepare.sh)", dir.display()));
            (f.to_string(), body)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_of_a_failed_deploy_through_the_aws_cli() {
    let c = Ctx::new();
    let app = format!("e2e-logs-{}", c.suffix);
    let env = format!("e2e-logs-{}", c.suffix);
    let text = format!("good {}\n", c.suffix);
    let image = c.push_image(&format!("ebsim-e2e-logs-{}", c.suffix), "good", &text).await;
    c.eb(&["create-storage-location"]);
    let good = c.dockerrun_bundle(&app, "good", &image);
    let files = broken_example_files();
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let broken = c.bundle(&app, "broken", &entries);
    c.eb(&["create-application", "--application-name", &app]);
    for (label, key) in [("good", &good), ("broken", &broken)] {
        c.eb(&[
            "create-application-version",
            "--application-name",
            &app,
            "--version-label",
            label,
            "--source-bundle",
            &format!("S3Bucket={},S3Key={key}", c.bucket),
        ]);
    }
    c.create_environment(&app, &env, &["--version-label", "good"]);
    let ready = c.wait_for(&env, "Ready on good", |e| e["Status"] == "Ready");
    let env_id = ready["EnvironmentId"].as_str().unwrap().to_string();
    c.eb(&["update-environment", "--environment-name", &env, "--version-label", "broken"]);
    let after = c.wait_for(&env, "Ready after the broken deploy", |e| e["Status"] == "Ready" && e["Health"] == "Red");
    assert_eq!(after["VersionLabel"], "good");

    // `eb logs`: request, wait for the call's final event, retrieve, download.
    assert_eq!(c.eb(&["request-environment-info", "--environment-name", &env, "--info-type", "tail"]), Value::Null);
    let begun = Instant::now();
    loop {
        let ev = c.eb(&["describe-events", "--environment-name", &env, "--max-items", "3"]);
        if messages(&ev).iter().any(|m| m == "Pulled logs for environment instances.") {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "logs never pulled: {ev}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let info = c.eb(&["retrieve-environment-info", "--environment-name", &env, "--info-type", "tail"]);
    let entry = &info["EnvironmentInfo"][0];
    assert_eq!(entry["InfoType"], "tail");
    let instance = entry["Ec2InstanceId"].as_str().unwrap();
    let url = entry["Message"].as_str().unwrap();
    let object = url.split_once('?').unwrap().0;
    let key = object.strip_prefix(&format!("{}/{}/", c.stack.s3_endpoint().unwrap(), c.bucket)).unwrap_or_default();
    let prefix = format!("resources/environments/logs/tail/{env_id}/{instance}/TailLogs-");
    assert!(key.starts_with(&prefix) && key.ends_with(".out"), "{url}");
    let expires: u64 = url.split("X-Amz-Expires=").nth(1).and_then(|v| v.split('&').next()?.parse().ok()).unwrap_or(0);
    assert!((840..=900).contains(&expires), "valid for what is left of 15 minutes: {url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(c.s3_exists(key));
    let out = Command::new("curl").args(["-s", "--fail", "--max-time", "10", url]).output().expect("curl");
    assert!(out.status.success(), "GET of the presigned URL failed: {}", String::from_utf8_lossy(&out.stderr));
    let tail = String::from_utf8_lossy(&out.stdout);
    assert!(tail.contains("/var/log/eb-engine.log"), "{tail}");
    assert!(tail.contains("[ERROR] Deployment failed: the application container stopped"), "{tail}");
    assert!(tail.contains("app-broken: fatal: required setting DATABASE_URL is not set; exiting"), "{tail}");

    c.admin.terminate(&env).await.unwrap();
    c.wait_for_terminated(&env);
    assert!(containers_of(&env).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_lifecycle_and_tags_through_the_aws_cli() {
    let c = Ctx::new();
    let app = format!("e2e-cfg-{}", c.suffix);
    let env = format!("e2e-cfg-{}", c.suffix);
    let prefix = format!("cfg-{}", c.suffix);
    let ns = "aws:elasticbeanstalk:application:environment";
    let stack_name = "64bit Amazon Linux 2023 v4.3.0 running Docker";
    let image = c.push_env_image(&format!("ebsim-e2e-cfg-{}", c.suffix)).await;
    c.eb(&["create-storage-location"]);
    let run = json!({"AWSEBDockerrunVersion": "1", "Image": {"Name": image, "Update": "true"}, "Ports": [{"ContainerPort": "80"}]})
        .to_string();
    let v1 = c.bundle(&app, "v1", &[("Dockerrun.aws.json", run.as_bytes())]);
    let ext =
        b"option_settings:\n  aws:elasticbeanstalk:application:environment:\n    GREETING: hello from .ebextensions\n";
    let v2 = c.bundle(&app, "v2", &[("Dockerrun.aws.json", run.as_bytes()), (".ebextensions/01-env.config", ext)]);
    let created = c.eb(&["create-application", "--application-name", &app, "--tags", "Key=team,Value=web"]);
    let app_arn = created["Application"]["ApplicationArn"].as_str().unwrap().to_string();
    for (label, key) in [("v1", &v1), ("v2", &v2)] {
        c.eb(&[
            "create-application-version",
            "--application-name",
            &app,
            "--version-label",
            label,
            "--source-bundle",
            &format!("S3Bucket={},S3Key={key}", c.bucket),
        ]);
    }
    let stacks = c.eb(&["list-available-solution-stacks"]);
    assert!(stacks["SolutionStacks"].as_array().unwrap().iter().any(|s| s == stack_name), "{stacks}");
    assert_eq!(c.eb(&["check-dns-availability", "--cname-prefix", &prefix])["Available"], true);

    // Launched with a version, settings and tags; the application sees its variables.
    let launched = c.eb(&[
        "create-environment",
        "--application-name",
        &app,
        "--environment-name",
        &env,
        "--cname-prefix",
        &prefix,
        "--version-label",
        "v1",
        "--solution-stack-name",
        stack_name,
        "--tags",
        "Key=stage,Value=prod",
        "--option-settings",
        &format!("Namespace={ns},OptionName=A,Value=1"),
        &format!("Namespace={ns},OptionName=B,Value=2"),
    ]);
    let arn = launched["EnvironmentArn"].as_str().unwrap().to_string();
    let dns = c.eb(&["check-dns-availability", "--cname-prefix", &prefix]);
    assert_eq!(dns["Available"], false);
    assert_eq!(dns["FullyQualifiedCNAME"], format!("{prefix}.{}.elasticbeanstalk.com", c.stack.region().unwrap()));
    let ready = c.wait_for(&env, "Ready", |e| e["Status"] == "Ready");
    assert_eq!((ready["Status"].as_str(), ready["VersionLabel"].as_str()), (Some("Ready"), Some("v1")));
    let endpoint = ready["EndpointURL"].as_str().unwrap().to_string();
    let (code, page) = http_get(&endpoint);
    assert_eq!(code, 200);
    assert!(page.lines().any(|l| l == "A=1") && page.lines().any(|l| l == "B=2"), "{page}");
    let cfg = c.eb(&["describe-configuration-settings", "--application-name", &app, "--environment-name", &env]);
    let opts = cfg["ConfigurationSettings"][0]["OptionSettings"].as_array().unwrap().clone();
    let get = |opts: &[Value], n: &str, o: &str| {
        opts.iter()
            .find(|x| x["Namespace"] == n && x["OptionName"] == o)
            .map(|x| x["Value"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(get(&opts, ns, "A").as_deref(), Some("1"));
    assert_eq!(get(&opts, "aws:elasticbeanstalk:command", "DeploymentPolicy").as_deref(), Some("AllAtOnce"));
    assert_eq!(cfg["ConfigurationSettings"][0]["DeploymentStatus"], "deployed");

    // New code and settings in one update: A changes, B goes, .ebextensions adds GREETING.
    c.eb(&[
        "update-environment",
        "--environment-name",
        &env,
        "--version-label",
        "v2",
        "--option-settings",
        &format!("Namespace={ns},OptionName=A,Value=9"),
        "--options-to-remove",
        &format!("Namespace={ns},OptionName=B"),
    ]);
    let updated = c.wait_for(&env, "Ready on v2", |e| e["Status"] == "Ready");
    assert_eq!(updated["VersionLabel"], "v2");
    let (_, page) = http_get(&endpoint);
    assert!(page.lines().any(|l| l == "A=9"), "{page}");
    assert!(!page.lines().any(|l| l.starts_with("B=")), "{page}");
    assert!(page.lines().any(|l| l == "GREETING=hello from .ebextensions"), "{page}");
    let cfg = c.eb(&["describe-configuration-settings", "--application-name", &app, "--environment-name", &env]);
    let opts = cfg["ConfigurationSettings"][0]["OptionSettings"].as_array().unwrap().clone();
    assert_eq!((get(&opts, ns, "A").as_deref(), get(&opts, ns, "B")), (Some("9"), None));
    let unknown = c.eb_err(&[
        "update-environment",
        "--environment-name",
        &env,
        "--option-settings",
        "Namespace=aws:elasticbeanstalk:bogus,OptionName=X,Value=1",
    ]);
    assert!(
        unknown.contains("(ConfigurationValidationException)")
            && unknown.contains("Invalid option specification (Namespace: 'aws:elasticbeanstalk:bogus', OptionName: 'X'): Unknown configuration setting."),
        "{unknown}"
    );

    // Tags: the application's, and the environment's with Beanstalk's own, changed by an update.
    let app_tags = c.eb(&["list-tags-for-resource", "--resource-arn", &app_arn]);
    assert_eq!(app_tags["ResourceTags"], json!([{"Key": "team", "Value": "web"}]));
    let env_tags = c.eb(&["list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(env_tags["ResourceTags"][0], json!({"Key": "elasticbeanstalk:environment-name", "Value": env}));
    assert_eq!(env_tags["ResourceTags"][2], json!({"Key": "stage", "Value": "prod"}));
    assert_eq!(
        c.eb(&[
            "update-tags-for-resource",
            "--resource-arn",
            &arn,
            "--tags-to-add",
            "Key=owner,Value=ops",
            "--tags-to-remove",
            "stage"
        ]),
        Value::Null
    );
    let begun = Instant::now();
    loop {
        let ev = c.eb(&["describe-events", "--environment-name", &env, "--max-items", "3"]);
        if messages(&ev).iter().any(|m| m == "Environment tag update completed successfully.") {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "the tag update never completed: {ev}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let env_tags = c.eb(&["list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(env_tags["ResourceTags"].as_array().unwrap()[2..], [json!({"Key": "owner", "Value": "ops"})]);

    // TerminateEnvironment through the API: its events, the container gone, the CNAME free again.
    let t = c.eb(&["terminate-environment", "--environment-name", &env]);
    assert_eq!(t["Status"], "Terminating");
    c.wait_for_terminated(&env);
    let ev = c.eb(&["describe-events", "--environment-name", &env, "--max-items", "5"]);
    assert!(messages(&ev).iter().any(|m| m == "terminateEnvironment completed successfully."), "{ev}");
    assert!(containers_of(&env).is_empty(), "containers left: {:?}", containers_of(&env));
    assert_eq!(c.eb(&["check-dns-availability", "--cname-prefix", &prefix])["Available"], true);
}
