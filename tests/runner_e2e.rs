//! The action as GitHub's runner runs it: an image holding the eb-deploy binary, started with exactly the
//! `docker run` flags, `-e` variables and mounts actions/runner uses for a container action (only
//! `--network host` is added, to reach the local stack on loopback). Deploys the example app, rolls back,
//! and cancels a deploy the way the runner does: SIGINT to the `docker run` client, which forwards it.
#![cfg(feature = "e2e")]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Stack, example_app, scratch_dir, unique};

/// Label on everything this test starts, for cleanup.
const LABEL: &str = "eb-deploy.test=runner-e2e";

/// The runner's grace before it escalates SIGINT to SIGTERM.
const SIGINT_GRACE: Duration = Duration::from_millis(7500);

fn docker() -> Command {
    let mut cmd = Command::new("docker");
    cmd.stdin(Stdio::null());
    cmd
}

fn run_ok(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: failed to start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The eb-deploy binary cargo built for these tests. The image's behaviour (PID 1, signals, mounts, file
/// commands) does not depend on the optimisation level, and a separate release build would cost the suite
/// minutes; the release binary itself is measured by `make bench`.
fn action_binary() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_eb-deploy"));
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// The shared libraries and the dynamic loader `ldd` lists for `bin`.
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let mut ldd = Command::new("ldd");
    ldd.arg(bin);
    let listing = run_ok(ldd, "ldd");
    let mut libs = Vec::new();
    for line in listing.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "ldd listed no libc:\n{listing}");
    assert!(libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")), "ldd listed no loader:\n{listing}");
    libs
}

/// Copies `src` (following symlinks) into the image tree `root` at the absolute path `at`.
fn put(root: &Path, src: &Path, at: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let dest = root.join(at.strip_prefix("/").expect("absolute path"));
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("create image dir");
    std::fs::copy(src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The action image: FROM scratch + the binary, its shared libraries, the loader and the CA bundle.
struct ActionImage {
    tag: String,
}

impl ActionImage {
    fn build() -> Self {
        let bin = action_binary();
        let ctx = scratch_dir("action-image");
        let rootfs = ctx.join("rootfs");
        put(&rootfs, &bin, Path::new("/usr/local/bin/eb-deploy"), 0o755);
        for lib in shared_libraries(&bin) {
            put(&rootfs, &lib, &lib, 0o755);
        }
        let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
        put(&rootfs, certs, certs, 0o644);
        std::fs::create_dir_all(rootfs.join("tmp")).expect("mkdir tmp");
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/usr/local/bin/eb-deploy\"]\n",
        )
        .expect("write Dockerfile");

        let tag = format!("eb-deploy-action:{}", unique("e2e"));
        let mut build = docker();
        // The classic builder: present on every Docker Engine, with or without the buildx plugin.
        build.env("DOCKER_BUILDKIT", "0").args(["build", "-q", "--label", LABEL, "-t", &tag]).arg(&ctx);
        run_ok(build, "docker build of the action image");
        let _ = std::fs::remove_dir_all(&ctx);
        Self { tag }
    }
}

impl Drop for ActionImage {
    fn drop(&mut self) {
        let mut ps = docker();
        ps.args(["ps", "-aq", "--filter", &format!("label={LABEL}")]);
        if let Ok(out) = ps.output() {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
            if !ids.is_empty() {
                let _ = docker().args(["rm", "-f"]).args(&ids).output();
            }
        }
        stackkit::discard_images(&[&self.tag]);
    }
}

/// One job's directories on the "runner host", laid out as actions/runner lays them out.
struct Job {
    base: PathBuf,
    workspace: PathBuf,
    temp: PathBuf,
    output: String,
    summary: String,
}

fn uuid() -> String {
    let hex = hex::encode(rand_bytes());
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("randomness");
    b
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy (permissions kept)");
        }
    }
}

impl Job {
    /// `_work/shop/shop` holds a copy of the example app (the checkout); `_work/_temp` the runner's temp.
    fn new() -> Self {
        let base = scratch_dir("runner");
        let workspace = base.join("_work/shop/shop");
        copy_tree(&example_app(), &workspace);
        let temp = base.join("_work/_temp");
        for dir in ["_github_home", "_github_workflow", "_runner_file_commands"] {
            std::fs::create_dir_all(temp.join(dir)).expect("mkdir");
        }
        std::fs::write(
            temp.join("_github_workflow/event.json"),
            json!({"ref": "refs/heads/main", "repository": {"full_name": "team/shop"}}).to_string(),
        )
        .expect("event.json");
        // The runner creates each step's file-command files before the step and reads them after it.
        let output = format!("set_output_{}", uuid());
        let summary = format!("step_summary_{}", uuid());
        for name in [&output, &summary] {
            std::fs::write(temp.join("_runner_file_commands").join(name), "").expect("file command file");
        }
        Self { base, workspace, temp, output, summary }
    }

    fn file_command(&self, name: &str) -> String {
        std::fs::read_to_string(self.temp.join("_runner_file_commands").join(name)).unwrap_or_default()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The `docker run` of a container action: every variable as a bare `-e NAME` whose value the docker
/// client takes from its own environment (so values never show in a process listing), the runner's
/// mounts, `--workdir /github/workspace --rm`, and the image's entrypoint.
fn docker_run(stack: &Stack, image: &ActionImage, job: &Job, with: &[(&str, &str)]) -> Command {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    // Every declared input: its `with:` value, else action.yml's default, else "" (never unset).
    for spec in eb_deploy::inputs::INPUTS {
        let default = match spec.default {
            eb_deploy::inputs::DefaultValue::Value(v) => v,
            _ => "",
        };
        vars.insert(eb_deploy::inputs::env_var_name(spec.name), default.to_owned());
    }
    let registry = stack.env.get("LOCAL_REGISTRY").expect("LOCAL_REGISTRY").to_owned();
    for (name, value) in with.iter().copied().chain([("registry", registry.as_str())]) {
        vars.insert(eb_deploy::inputs::env_var_name(name), value.to_owned());
    }
    // What aws-actions/configure-aws-credentials would have exported (here: the stack's endpoints too).
    for (k, v) in stack.env.vars() {
        if k.starts_with("AWS_") {
            vars.insert(k.clone(), v.clone());
        }
    }
    let sha = "0123456789abcdef0123456789abcdef01234567";
    for (k, v) in [
        ("HOME", "/github/home"),
        ("GITHUB_JOB", "deploy"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_REF_TYPE", "branch"),
        ("GITHUB_REF_PROTECTED", "false"),
        ("GITHUB_SHA", sha),
        ("GITHUB_REPOSITORY", "team/shop"),
        ("GITHUB_REPOSITORY_OWNER", "team"),
        ("GITHUB_REPOSITORY_ID", "123456"),
        ("GITHUB_RUN_ID", "4242"),
        ("GITHUB_RUN_NUMBER", "7"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_RETENTION_DAYS", "90"),
        ("GITHUB_ACTOR", "octocat"),
        ("GITHUB_TRIGGERING_ACTOR", "octocat"),
        ("GITHUB_WORKFLOW", "Deploy"),
        ("GITHUB_WORKFLOW_REF", "team/shop/.github/workflows/deploy.yml@refs/heads/main"),
        ("GITHUB_WORKFLOW_SHA", sha),
        ("GITHUB_HEAD_REF", ""),
        ("GITHUB_BASE_REF", ""),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_API_URL", "https://api.github.com"),
        ("GITHUB_GRAPHQL_URL", "https://api.github.com/graphql"),
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("GITHUB_ACTION", "deploy"),
        ("GITHUB_ACTION_REPOSITORY", "team/eb-deploy"),
        ("GITHUB_ACTION_REF", "v1"),
        ("GITHUB_EVENT_PATH", "/github/workflow/event.json"),
        ("GITHUB_PATH", "/github/file_commands/add_path_x"),
        ("GITHUB_ENV", "/github/file_commands/set_env_x"),
        ("GITHUB_STATE", "/github/file_commands/save_state_x"),
        ("RUNNER_OS", "Linux"),
        ("RUNNER_ARCH", "X64"),
        ("RUNNER_NAME", "GitHub Actions 1"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
        ("RUNNER_TOOL_CACHE", "/opt/hostedtoolcache"),
        ("RUNNER_TEMP", "/github/runner_temp"),
        ("RUNNER_WORKSPACE", "/home/runner/work/shop"),
        ("GITHUB_ACTIONS", "true"),
        ("CI", "true"),
    ] {
        vars.insert(k.to_owned(), v.to_owned());
    }
    vars.insert("GITHUB_OUTPUT".to_owned(), format!("/github/file_commands/{}", job.output));
    vars.insert("GITHUB_STEP_SUMMARY".to_owned(), format!("/github/file_commands/{}", job.summary));

    let mut cmd = docker();
    cmd.env_clear();
    for k in ["PATH", "DOCKER_HOST", "DOCKER_CONFIG"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("HOME", &job.temp);
    let name = unique("team_eb-deploy");
    cmd.args(["run", "--name", &name, "--label", LABEL, "--workdir", "/github/workspace", "--rm"]);
    for (k, v) in &vars {
        cmd.arg("-e").arg(k);
        cmd.env(k, v);
    }
    let mount = |host: &Path, container: &str| format!("{}:{container}", host.display());
    cmd.arg("--network").arg("host");
    cmd.args(["-v", "/var/run/docker.sock:/var/run/docker.sock"]);
    cmd.arg("-v").arg(mount(&job.temp.join("_github_home"), "/github/home"));
    cmd.arg("-v").arg(mount(&job.temp.join("_github_workflow"), "/github/workflow"));
    cmd.arg("-v").arg(mount(&job.temp.join("_runner_file_commands"), "/github/file_commands"));
    cmd.arg("-v").arg(mount(&job.workspace, "/github/workspace"));
    cmd.arg("-v").arg(mount(&job.temp, "/github/runner_temp"));
    cmd.arg(&image.tag);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// What one containerised run did, read the way the runner reads it.
struct Step {
    code: Option<i32>,
    log: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

impl Step {
    fn out(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }

    fn dump(&self) -> String {
        format!("exit {:?}\n--- log\n{}\n--- outputs\n{:#?}", self.code, self.log, self.outputs)
    }
}

/// Parses the outputs file under the runner's rules (a malformed file would fail the step).
fn read_step(job: &Job, code: Option<i32>, log: String) -> Step {
    let raw = job.file_command(&job.output);
    let outputs = eb_deploy::gha::parse_file_commands(&raw)
        .unwrap_or_else(|e| panic!("the outputs file breaks the runner's rules: {e:#}\n{raw}\n--- log\n{log}"))
        .into_iter()
        .collect();
    Step { code, log, outputs, summary: job.file_command(&job.summary) }
}

/// Collects stdout and stderr lines of a child as they come.
fn stream(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    fn pump<R: Read + Send + 'static>(r: R, tx: mpsc::Sender<String>) {
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    pump(child.stdout.take().expect("stdout"), tx.clone());
    pump(child.stderr.take().expect("stderr"), tx);
    rx
}

fn run_step(stack: &Stack, image: &ActionImage, with: &[(&str, &str)]) -> Step {
    let job = Job::new();
    let out = docker_run(stack, image, &job, with).output().expect("docker run");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    read_step(&job, out.status.code(), log)
}

fn deploy<'a>(app: &'a str, env: &'a str, label: &'a str, build_args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("application-name", app), ("environment-name", env), ("version-label", label), ("build-args", build_args)]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_image_deploys_rolls_back_and_cancels_as_the_runner_runs_it() {
    let stack = Stack::load();
    let image = ActionImage::build();
    let (app, env) = stack.new_environment("shop", "web").await;

    // 1. Deploy the example app, v1.
    let v1 = run_step(&stack, &image, &deploy(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());
    assert_eq!(v1.out("version-label"), "v1");
    assert_eq!(v1.out("running-version-label"), "v1");
    assert!(v1.out("image").contains("@sha256:"), "{}", v1.dump());
    assert!(v1.out("environment-url").starts_with("http://"), "{}", v1.dump());
    let declared: Vec<&str> = eb_deploy::inputs::OUTPUTS.iter().map(|o| o.name).collect();
    for name in &declared {
        assert!(v1.outputs.contains_key(*name), "output {name} missing: {}", v1.dump());
    }
    assert!(v1.log.contains("::group::"), "workflow commands on stdout: {}", v1.dump());
    assert!(v1.summary.contains("Deployed v1 to"), "step summary: {}", v1.summary);
    assert!(stack.fetch(&env, "/").await.contains("<strong id=\"version\">v1</strong>"));
    // `::add-mask::` lines are the runner's to consume (it never shows them); nothing else may hold a secret.
    let shown: Vec<&str> = v1.log.lines().filter(|l| !l.trim_start().starts_with("::add-mask::")).collect();
    for secret in stack.secrets() {
        assert!(!shown.join("\n").contains(&secret), "a secret reached the log:\n{}", v1.dump());
        assert!(v1.log.contains(&format!("::add-mask::{secret}")), "{secret:.4}… is masked before use");
    }

    // Then v2, so that there is something to roll back from.
    let v2 = run_step(&stack, &image, &deploy(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(v2.out("result"), "deployed", "{}", v2.dump());
    assert!(stack.fetch(&env, "/").await.contains("v2"));

    // 2. Roll back to v1: no build, the page is v1 again, the replaced version is named.
    let back = run_step(
        &stack,
        &image,
        &[("application-name", &app), ("environment-name", &env), ("mode", "rollback"), ("version-label", "v1")],
    );
    assert_eq!(back.code, Some(0), "{}", back.dump());
    assert_eq!(back.out("result"), "deployed", "{}", back.dump());
    assert_eq!(back.out("previous-version-label"), "v2");
    assert_eq!(back.out("running-version-label"), "v1");
    assert!(stack.fetch(&env, "/").await.contains("<strong id=\"version\">v1</strong>"));

    // 3. Cancel during the wait: the update sticks in Updating; SIGINT goes to the `docker run` client,
    //    which forwards it to the container's PID 1.
    let faults = stack.faults(&app, &env, json!({"stuck_next_updates": 1})).await;
    let job = Job::new();
    let mut with = deploy(&app, &env, "v3", "APP_VERSION=v3");
    with.push(("abort-on-cancel", "true"));
    let mut client = docker_run(&stack, &image, &job, &with).spawn().expect("docker run");
    let lines = stream(&mut client);
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = lines.recv_timeout(Duration::from_secs(1));
        if let Ok(line) = &line {
            log.push_str(line);
            log.push('\n');
            if line.contains("Deploying v3 to") {
                break;
            }
        }
        if Instant::now() > deadline || matches!(client.try_wait(), Ok(Some(_))) {
            let _ = client.kill();
            drop(faults);
            panic!("the run never reached the wait:\n{log}");
        }
    }
    // Let it settle into polling before the signal.
    std::thread::sleep(Duration::from_secs(2));
    let mut kill = Command::new("kill");
    kill.args(["-INT", &client.id().to_string()]);
    let signalled = Instant::now();
    run_ok(kill, "kill -INT the docker client");
    let status = loop {
        if let Some(status) = client.try_wait().expect("wait for docker run") {
            break Some(status);
        }
        if signalled.elapsed() > Duration::from_secs(15) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = signalled.elapsed();
    if status.is_none() {
        let _ = client.kill();
    }
    drop(faults);
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
        log.push_str(&line);
        log.push('\n');
    }
    let cancelled = read_step(&job, status.and_then(|s| s.code()), log);
    eprintln!("runner_e2e: the container ended {took:?} after SIGINT to the docker client");
    assert!(took < SIGINT_GRACE, "the container took {took:?} to end after SIGINT:\n{}", cancelled.dump());
    assert_eq!(cancelled.code, Some(1), "{}", cancelled.dump());
    assert_eq!(cancelled.out("result"), "cancelled", "{}", cancelled.dump());
    assert!(cancelled.log.contains("cancelled (SIGINT)"), "the container saw SIGINT: {}", cancelled.dump());
    assert!(cancelled.log.contains("the update was aborted"), "{}", cancelled.dump());
    // Beanstalk rolls the aborted update back: v1 keeps serving.
    stack.wait_ready(&env, Duration::from_secs(60)).await;
    assert!(stack.fetch(&env, "/").await.contains("<strong id=\"version\">v1</strong>"));

    // --rm: the client returns once the container is gone.
    let mut ps = docker();
    ps.args(["ps", "-aq", "--filter", &format!("label={LABEL}")]);
    assert_eq!(run_ok(ps, "docker ps").trim(), "", "containers of this test are left behind");

    // Terminate the environment (ebsim removes its instance container), then discard the app's images.
    stack.admin.terminate(&env).await.expect("terminate");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match stack.admin.environment(&env).await {
            Ok(Some(view)) if view.container_id.is_some() => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => break,
        }
    }
    discard_app_images(&app);
}

/// The images the runs built and pushed (tagged `REGISTRY/APP:LABEL`), for the suite's sweep.
fn discard_app_images(app: &str) {
    let mut ls = docker();
    ls.args(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let Ok(out) = ls.output() else { return };
    let refs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|r| r.rsplit_once(':').is_some_and(|(repo, _)| repo.ends_with(&format!("/{app}"))))
        .map(str::to_owned)
        .collect();
    stackkit::discard_images(&refs);
}
