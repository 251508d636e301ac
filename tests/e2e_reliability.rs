//! Faults survived, on the local stack. Each test injects a fault (ebsim's admin API, the recording proxy in
//! front of moto, a cutting proxy in front of the registry, a dead endpoint, a signal), then checks the
//! verdict, the exit code, what is left in Beanstalk, S3 and the registry, and that a re-run succeeds.
//! Every run is also scanned for secrets (see `support::Stack::finish`). Each test appends its row to
//! `$CARGO_TARGET_TMPDIR/reliability/`, the matrix RELIABILITY.md reports.
#![cfg(feature = "e2e")]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Run, Stack, example_app, record};

fn inputs<'a>(app: &'a str, env: &'a str, label: &'a str, build_args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("application-name", app), ("environment-name", env), ("version-label", label), ("build-args", build_args)]
}

/// A fresh application and environment running v1 of the example app.
async fn running_v1(stack: &Stack) -> (String, String, Run) {
    let (app, env) = stack.new_environment("rel", "rel").await;
    let v1 = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());
    (app, env, v1)
}

#[tokio::test(flavor = "multi_thread")]
async fn half_of_beanstalk_calls_throttled() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("rel", "rel").await;
    let faults = stack.faults(&app, &env, json!({"throttle_fraction": 0.5, "seed": 11})).await;
    let seq = stack.admin.last_request_seq().await.unwrap();
    let run = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    let throttled = stack
        .admin
        .requests_since(seq)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("Throttling"))
        .count();
    drop(faults);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.out("result"), "deployed");
    assert!(throttled >= 5, "only {throttled} calls were throttled");
    assert!(stack.fetch(&env, "/").await.contains("v1"));
    let left = stack.leftovers(&app).await;
    assert_eq!(left.versions, vec![("v1".to_owned(), "PROCESSED".to_owned())]);
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(rerun.out("result"), "unchanged");
    record(&format!("50% of Beanstalk calls throttled ({throttled} throttled)"), &run, &left, "`unchanged`");
}

#[tokio::test(flavor = "multi_thread")]
async fn bursts_of_5xx_from_beanstalk_s3_and_ecr() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("rel", "rel").await;
    let faults = stack.faults(&app, &env, json!({"next_5xx": 4})).await;
    faults.proxy(&json!({"next_5xx": 3, "match": {"service": "s3"}}));
    let run = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(run.out("result"), "deployed", "{}", run.dump());
    faults.proxy(&json!({"next_5xx": 3, "match": {"service": "ecr"}}));
    let run2 = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    drop(faults);
    assert_eq!(run2.code, Some(0), "{}", run2.dump());
    assert_eq!(run2.out("result"), "deployed");
    let answered_5xx = stack.proxy_requests().iter().filter(|r| r["status"].as_u64().is_some_and(|s| s >= 500)).count();
    assert!(answered_5xx >= 6, "the proxy answered {answered_5xx} 5xx");
    let left = stack.leftovers(&app).await;
    assert_eq!(left.versions.len(), 2);
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(rerun.out("result"), "unchanged");
    record("5xx bursts: 4 from Beanstalk, 3 from S3, then 3 from ECR", &run2, &left, "`unchanged`");
}

/// A faultproxy in TCP mode in front of the registry, cutting the first connection that carries more than
/// `cut_after` bytes.
struct CuttingProxy {
    child: Child,
    addr: String,
}

impl CuttingProxy {
    fn start(stack: &Stack, cut_after: u64) -> Self {
        let bin = support::root().join("target/debug/faultproxy");
        assert!(bin.exists(), "target/debug/faultproxy is built by scripts/local-stack up");
        let free = |_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, admin) = (free(0), free(1));
        let upstream = stack.env.get("LOCAL_REGISTRY").expect("LOCAL_REGISTRY").to_owned();
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream])
            .args(["--admin", &format!("127.0.0.1:{admin}"), "--mode", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start faultproxy");
        let admin = format!("127.0.0.1:{admin}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while support::http_get(&admin, "/health").is_err() {
            assert!(Instant::now() < deadline, "faultproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let settings = json!({"cut_after_bytes": cut_after, "cut_times": 1});
        stackkit::ProxyAdmin::new(&admin).set_faults_now(&settings).expect("set cut");
        Self { child, addr: format!("127.0.0.1:{port}") }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_connection_dropped_mid_push() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("rel", "rel").await;
    let proxy = CuttingProxy::start(&stack, 300_000);
    let mut with_proxy = inputs(&app, &env, "v1", "APP_VERSION=v1");
    with_proxy.push(("registry", &proxy.addr));
    let run = stack.run(&example_app(), &with_proxy);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.out("result"), "deployed");
    assert!(run.stdout.contains("retrying"), "the cut push was retried:\n{}", run.dump());
    assert!(stack.fetch(&env, "/").await.contains("v1"));
    let left = stack.leftovers(&app).await;
    let rerun = stack.run(&example_app(), &with_proxy);
    assert_eq!(rerun.out("result"), "unchanged");
    drop(proxy);
    record("registry connection cut mid-push (TCP proxy, once)", &run, &left, "`unchanged`");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_upload_failure_leaves_nothing_to_trip_on() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("rel", "rel").await;
    let bucket = format!("/elasticbeanstalk-us-east-1-{}/{app}/", stack.env.get("AWS_ACCOUNT_ID").unwrap());
    let faults = stack.faults(&app, &env, json!({})).await;
    faults
        .proxy(&json!({"error_5xx_fraction": 1.0, "match": {"service": "s3", "method": "PUT", "path_prefix": bucket}}));
    let run = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    drop(faults);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "failed");
    assert!(run.stdout.contains("failed to upload the bundle"), "{}", run.dump());
    let left = stack.leftovers(&app).await;
    assert!(left.versions.is_empty() && left.bundles.is_empty(), "nothing half-made: {left:?}");
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(rerun.out("result"), "deployed", "{}", rerun.dump());
    record("every S3 upload answered 500", &run, &left, "`deployed`");
}

#[tokio::test(flavor = "multi_thread")]
async fn beanstalk_or_moto_unreachable() {
    let stack = Stack::load();
    let (app, env, _) = running_v1(&stack).await;
    let dead = "http://127.0.0.1:9";
    for (what, var) in [("Beanstalk", "AWS_ENDPOINT_URL_ELASTIC_BEANSTALK"), ("S3 and ECR", "AWS_ENDPOINT_URL_S3")] {
        let files = support::scratch_dir("unreachable");
        let mut cmd = stack.command(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"), &files);
        cmd.env(var, dead);
        if var == "AWS_ENDPOINT_URL_S3" {
            cmd.env("AWS_ENDPOINT_URL_ECR", dead);
        }
        let started = Instant::now();
        let run = stack.finish(cmd.spawn().expect("start"), &files);
        assert_eq!(run.code, Some(1), "{}", run.dump());
        assert_eq!(run.out("result"), "failed");
        assert!(run.stdout.contains("127.0.0.1:9") || run.stdout.contains("could not reach"), "{}", run.dump());
        if var == "AWS_ENDPOINT_URL_S3" {
            // The cache-source lookup (earlier bundles in S3) gives up with a warning instead of holding the run.
            assert!(run.stdout.contains("building without"), "{}", run.dump());
        }
        let left = stack.leftovers(&app).await;
        assert_eq!(left.versions, vec![("v1".to_owned(), "PROCESSED".to_owned())], "nothing was created");
        record(
            &format!("{what} unreachable (failed after {:.0} s of retries)", started.elapsed().as_secs_f64()),
            &run,
            &left,
            "see below",
        );
    }
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(rerun.out("result"), "deployed", "{}", rerun.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_terminated_during_the_wait() {
    let stack = Stack::load();
    let (app, env, _) = running_v1(&stack).await;
    let faults = stack.faults(&app, &env, json!({"stuck_next_updates": 1})).await;
    let (child, files) = stack.spawn(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    wait_for_update(&stack, &env).await;
    stack.admin.terminate(&env).await.unwrap();
    let run = stack.finish(child, &files);
    drop(faults);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "failed");
    assert!(run.stdout.contains("terminated"), "{}", run.dump());
    let left = stack.leftovers(&app).await;
    // A re-run recreates nothing by itself: it says the environment is gone.
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(rerun.code, Some(1));
    assert!(rerun.stdout.contains(&format!("environment {env} does not exist")), "{}", rerun.dump());
    record("environment terminated during the wait", &run, &left, "fails: environment gone (as it should)");
}

/// Waits until ebsim has received this environment's UpdateEnvironment.
async fn wait_for_update(stack: &Stack, env: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let view = stack.admin.environment(env).await.unwrap().expect("environment");
        if view.status == "Updating" && view.version_label.as_deref() != Some("v1") {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no update reached {env}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_update_is_aborted_with_abort_on_timeout() {
    let stack = Stack::load();
    let (app, env, _) = running_v1(&stack).await;
    let faults = stack.faults(&app, &env, json!({"stuck_next_updates": 1})).await;
    let mut stuck = inputs(&app, &env, "v2", "APP_VERSION=v2");
    stuck.extend([("wait-timeout", "6s"), ("abort-on-timeout", "true")]);
    let run = stack.run(&example_app(), &stuck);
    drop(faults);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "timed-out");
    assert!(run.stdout.contains("the update was aborted"), "{}", run.dump());
    stack.wait_ready(&env, Duration::from_secs(30)).await;
    let view = stack.admin.environment(&env).await.unwrap().unwrap();
    assert_eq!(view.version_label.as_deref(), Some("v1"), "aborting returned the environment to v1");
    assert!(stack.fetch(&env, "/").await.contains("v1"));
    let left = stack.leftovers(&app).await;
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(rerun.out("result"), "deployed", "{}", rerun.dump());
    assert!(rerun.stdout.contains("deploying it as is"), "the existing v2 is reused: {}", rerun.dump());
    record("update stuck in Updating, abort-on-timeout: true (wait-timeout 6s)", &run, &left, "`deployed` (v2 reused)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deploy_is_reverted_and_reported() {
    let stack = Stack::load();
    let (app, env, _) = running_v1(&stack).await;
    let faults = stack.faults(&app, &env, json!({"fail_next_deploys": 1})).await;
    let run = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    drop(faults);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "failed");
    assert_eq!(run.out("running-version-label"), "v1");
    assert!(stack.fetch(&env, "/").await.contains("v1"), "the previous version still serves");
    let left = stack.leftovers(&app).await;
    stack.wait_ready(&env, Duration::from_secs(30)).await;
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(rerun.out("result"), "deployed", "{}", rerun.dump());
    record("the deploy fails on the instance; Beanstalk reverts to v1", &run, &left, "`deployed` (v2 reused)");
}

/// Runs eb-deploy as PID 1 of a new PID namespace (as in the action's container), signals it during the
/// wait, and returns the run and how long it took to exit after the signal.
async fn cancel_as_pid1(stack: &Stack, app: &str, env: &str, signal: &str, extra: &[(&str, &str)]) -> (Run, Duration) {
    let files = support::scratch_dir("cancel");
    let mut ins = inputs(app, env, "v2", "APP_VERSION=v2");
    ins.extend_from_slice(extra);
    let wrapper = ["unshare", "--fork", "--pid", "--mount-proc"];
    let child = stack.command_via(Some(&wrapper), &example_app(), &ins, &files).spawn().expect("start as PID 1");
    wait_for_update(stack, env).await;
    let unshare_pid = child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children")).expect("children");
    let pid = children.split_whitespace().next().expect("eb-deploy under unshare").to_owned();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status.lines().any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "runs as PID 1:\n{status}"
    );
    let signalled = Instant::now();
    let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
    assert!(sent.success());
    let run = stack.finish(child, &files);
    (run, signalled.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_and_sigterm_as_pid1_write_outputs_and_abort_when_asked() {
    let stack = Stack::load();
    let (app, env, _) = running_v1(&stack).await;

    // SIGINT, abort-on-cancel false: outputs written, cancelled, the update left running.
    let faults = stack.faults(&app, &env, json!({"stuck_next_updates": 2})).await;
    let (run, took) = cancel_as_pid1(&stack, &app, &env, "INT", &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "cancelled");
    assert!(took < Duration::from_secs(5), "exited {took:?} after SIGINT");
    assert!(run.stdout.contains("set abort-on-cancel: true to abort it"), "{}", run.dump());
    let view = stack.admin.environment(&env).await.unwrap().unwrap();
    assert_eq!(view.status, "Updating", "without abort-on-cancel the update goes on");
    let left = stack.leftovers(&app).await;
    record(
        &format!("SIGINT to PID 1 during the wait (exited in {:.1} s)", took.as_secs_f64()),
        &run,
        &left,
        "see below",
    );
    // Free the environment for the next case.
    let eb = stack.eb().await;
    eb.abort_environment_update().environment_name(&env).send().await.expect("abort");
    stack.wait_ready(&env, Duration::from_secs(30)).await;

    // SIGTERM, abort-on-cancel true: the update is aborted and the environment returns to v1.
    let seq = stack.admin.last_request_seq().await.unwrap();
    let (run, took) = cancel_as_pid1(&stack, &app, &env, "TERM", &[("abort-on-cancel", "true")]).await;
    drop(faults);
    assert_eq!(run.out("result"), "cancelled", "{}", run.dump());
    assert!(took < Duration::from_secs(5), "exited {took:?} after SIGTERM");
    assert!(run.stdout.contains("the update was aborted"), "{}", run.dump());
    let aborted = stack.admin.requests_since(seq).await.unwrap().iter().any(|r| r.op == "AbortEnvironmentUpdate");
    assert!(aborted, "AbortEnvironmentUpdate was called");
    stack.wait_ready(&env, Duration::from_secs(30)).await;
    assert!(stack.fetch(&env, "/").await.contains("v1"));
    let left = stack.leftovers(&app).await;
    let rerun = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(rerun.out("result"), "deployed", "{}", rerun.dump());
    record(
        &format!("SIGTERM to PID 1 during the wait, abort-on-cancel: true (exited in {:.1} s)", took.as_secs_f64()),
        &run,
        &left,
        "`deployed` (v2 reused)",
    );
}
