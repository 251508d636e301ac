//! End to end on the local stack, after Beanstalk's verdict: the check that the app answers (through the
//! environment's CNAME, as a runner reaches it), automatic rollback, and the instance logs of a failure.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::{Stack, broken_app, example_app, record};

fn inputs<'a>(app: &'a str, env: &'a str, label: &'a str, build_args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("application-name", app), ("environment-name", env), ("version-label", label), ("build-args", build_args)]
}

fn run(stack: &Stack, dir: &std::path::Path, ins: &[(&str, &str)]) -> support::Run {
    let env = stack.cname_proxy_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    stack.run_with_env(dir, ins, &env)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_check_is_rolled_back_and_the_logs_say_why() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("verify", "web").await;

    // v1 answers its check through the CNAME.
    let mut ins = inputs(&app, &env, "v1", "APP_VERSION=v1");
    ins.push(("check-path", "/health"));
    ins.push(("check-body", "ok"));
    let v1 = run(&stack, &example_app(), &ins);
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert_eq!(v1.out("result"), "deployed");
    let cname = v1.out("environment-cname").to_owned();
    assert!(v1.stdout.contains(&format!("GET http://{cname}/health → 200")), "{}", v1.dump());

    // v2 runs (Beanstalk is content) but /health answers 500: failed, rolled back to v1, serving v1 again.
    let mut ins = inputs(&app, &env, "v2", "APP_VERSION=v2\nHEALTH=fail");
    ins.extend([("check-path", "/health"), ("check-timeout", "4s"), ("rollback-on-failure", "true")]);
    let v2 = run(&stack, &example_app(), &ins);
    assert_eq!(v2.code, Some(1), "the release did not go out: {}", v2.dump());
    assert_eq!(v2.out("result"), "rolled-back");
    assert_eq!(v2.out("rolled-back-to"), "v1");
    assert_eq!(v2.out("running-version-label"), "v1");
    assert!(v2.stdout.contains("→ 500"), "each attempt is logged: {}", v2.dump());
    assert!(v2.out("result") == "rolled-back" && stack.fetch_cname(&cname, "/").contains("v1"), "v1 serves again");
    // Both stories in the summary; the app's own error line from the instance logs in log and summary.
    assert!(
        v2.summary.contains("the check failed: GET http://") && v2.summary.contains("rolled back to v1"),
        "{}",
        v2.summary
    );
    let app_error = "example-app: GET /health failed: the database is unreachable";
    assert!(v2.stdout.contains(app_error), "the instance logs are in the log: {}", v2.dump());
    assert!(v2.summary.contains(app_error) && v2.summary.contains("Instance logs:"), "{}", v2.summary);
    // The UpdateEnvironment of the rollback: back to v1, no new version.
    let left = stack.leftovers(&app).await;
    assert!(
        left.versions.iter().any(|(l, _)| l == "v2"),
        "the failed version stays, for the record: {:?}",
        left.versions
    );
    record("/health answers 500 after the deploy; rollback-on-failure: true (back on v1, checked)", &v2, &left, "—");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_passes_after_a_slow_start() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("verify", "web").await;
    let mut ins = inputs(&app, &env, "v1", "APP_VERSION=v1\nHEALTH=slow-start:4");
    ins.extend([("check-path", "/health"), ("check-timeout", "40s")]);
    let run = run(&stack, &example_app(), &ins);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.out("result"), "deployed");
    assert!(run.stdout.contains("→ 200"), "{}", run.dump());
    assert!(run.summary.contains("the check passed"), "{}", run.summary);
    record("/health answers 503 for 4 s after start (check-timeout 40s)", &run, &stack.leftovers(&app).await, "—");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_beanstalk_reverted_is_not_rolled_back_again_and_its_logs_say_why() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("verify", "web").await;
    let v1 = run(&stack, &example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());
    stack.wait_ready(&env, std::time::Duration::from_secs(30)).await;

    let seq = stack.admin.last_request_seq().await.unwrap();
    let mut ins = inputs(&app, &env, "v2-broken", "");
    ins.push(("rollback-on-failure", "true"));
    let broken = run(&stack, &broken_app(), &ins);
    assert_eq!(broken.code, Some(1), "{}", broken.dump());
    assert_eq!(broken.out("result"), "failed", "Beanstalk's own revert is not rolled back a second time");
    assert_eq!(broken.out("rolled-back-to"), "");
    assert_eq!(broken.out("running-version-label"), "v1");
    let env_id = broken.out("environment-id").to_owned();
    let updates = stack
        .admin
        .requests_since(seq)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.op == "UpdateEnvironment" && r.params.values().any(|v| *v == env_id))
        .count();
    assert_eq!(updates, 1);
    let why = "app-broken: fatal: required setting DATABASE_URL is not set";
    assert!(broken.stdout.contains(why) && broken.summary.contains(why), "{}", broken.dump());
    record(
        "the deploy fails on the instance and Beanstalk reverts; rollback-on-failure: true (no second rollback; the app's error line from the logs shown)",
        &broken,
        &stack.leftovers(&app).await,
        "—",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_that_cannot_be_fetched_change_nothing_but_a_warning() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("verify", "web").await;
    let v1 = run(&stack, &example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());
    stack.wait_ready(&env, std::time::Duration::from_secs(30)).await;

    // Only this environment's logs (tests run side by side on one stack).
    let env_id = stack.admin.environment(&env).await.unwrap().unwrap().id;
    let (region, account) = (stack.env.region().unwrap(), stack.env.account_id().unwrap());
    let logs = format!("/elasticbeanstalk-{region}-{account}/resources/environments/logs/tail/{env_id}/");
    let faults = stack.faults(&app, &env, json!({})).await;
    faults.proxy(&json!({"error_5xx_fraction": 1.0, "match": {"method": "GET", "path_prefix": logs}}));
    let broken = run(&stack, &broken_app(), &inputs(&app, &env, "v2-broken", ""));
    drop(faults);
    assert_eq!(broken.code, Some(1), "{}", broken.dump());
    assert_eq!(broken.out("result"), "failed", "the same verdict");
    assert_eq!(broken.stdout.matches("could not fetch the instance logs").count(), 1, "one warning: {}", broken.dump());
    assert!(!broken.summary.contains("Instance logs:"), "{}", broken.summary);
    record(
        "a failed deploy whose instance logs cannot be downloaded (S3 answers 503)",
        &broken,
        &stack.leftovers(&app).await,
        "—",
    );
}
