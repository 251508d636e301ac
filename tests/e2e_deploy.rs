//! End to end on the local stack: the eb-deploy binary builds the example app with the real Docker Engine,
//! pushes it to the registry behind moto's ECR, uploads the bundle to moto's S3, and deploys it to ebsim,
//! which runs the image and serves it on loopback.
#![cfg(feature = "e2e")]

mod support;

use std::time::Duration;

use serde_json::json;
use stackkit::MUTATING;
use support::{Stack, broken_app, example_app, unique};

/// Inputs for deploying the example app at `version` to `app`/`env`.
fn inputs<'a>(app: &'a str, env: &'a str, label: &'a str, build_args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("application-name", app), ("environment-name", env), ("version-label", label), ("build-args", build_args)]
}

/// Mutating Beanstalk calls since `seq` that concern `env` (its name or id) or `app`. Tests run in parallel
/// on one ebsim, so calls are attributed by their parameters. (CreateStorageLocation names nothing and is
/// idempotent; it cannot be attributed and is left out.)
async fn mutating_calls_since(stack: &Stack, seq: u64, app: &str, env: &str) -> Vec<String> {
    let mut names = vec![app.to_owned(), env.to_owned()];
    if let Some(view) = stack.admin.environment(env).await.ok().flatten() {
        names.push(view.id);
    }
    let requests = stack.admin.requests_since(seq).await.expect("request log");
    requests
        .into_iter()
        .filter(|r| MUTATING.contains(&r.op.as_str()))
        .filter(|r| r.params.values().any(|v| names.contains(v)))
        .map(|r| r.op)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_the_example_app_then_a_broken_one_is_reverted_then_rolls_back() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("shop", "web").await;

    // v1: built, pushed, deployed, served.
    let v1 = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert_eq!(v1.out("result"), "deployed");
    assert_eq!(v1.out("running-version-label"), "v1");
    assert_eq!(v1.out("status"), "Ready");
    assert_eq!(v1.out("health"), "Green");
    assert!(v1.out("image").contains("@sha256:"), "the deployed image is digest-pinned: {}", v1.out("image"));
    assert!(v1.out("bundle").starts_with("s3://elasticbeanstalk-us-east-1-"), "{}", v1.out("bundle"));
    assert!(stack.fetch(&env, "/").await.contains("<strong id=\"version\">v1</strong>"));
    assert!(v1.summary.contains("Deployed v1 to"), "{}", v1.summary);
    assert!(v1.stdout.contains("Environment update completed successfully."), "events are streamed");

    // The bundle deploys exactly the pushed image: Dockerrun names the digest the registry serves for the tag.
    let (bucket, key) = v1.out("bundle").trim_start_matches("s3://").split_once('/').expect("s3 url");
    let object = stack.s3().await.get_object().bucket(bucket).key(key).send().await.expect("bundle in S3");
    let zip_bytes = object.body.collect().await.expect("bundle bytes").into_bytes();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("bundle is a zip");
    let mut dockerrun = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("Dockerrun.aws.json").expect("Dockerrun"), &mut dockerrun)
        .unwrap();
    let dockerrun: serde_json::Value = serde_json::from_str(&dockerrun).unwrap();
    assert_eq!(dockerrun["Image"]["Name"], v1.out("image"));
    for path in [".ebextensions/01-environment.config", ".platform/hooks/predeploy/01-hello.sh"] {
        assert!(archive.by_name(path).is_ok(), "{path} travels in the bundle");
    }
    let repository = eb_deploy::names::ecr_repository_name(&app);
    let served = stack.registry_digest(&repository, "v1");
    assert_eq!(v1.out("image-digest"), served, "image-digest is what the registry serves for the tag");
    assert!(v1.out("image").ends_with(&format!("@{served}")));

    // v2 of the broken app: Beanstalk reverts, v1 keeps serving, the step fails and says so.
    let broken = stack.run(&broken_app(), &inputs(&app, &env, "v2-broken", ""));
    assert_eq!(broken.code, Some(1), "{}", broken.dump());
    assert_eq!(broken.out("result"), "failed");
    assert_eq!(broken.out("previous-version-label"), "v1");
    assert_eq!(broken.out("running-version-label"), "v1");
    assert!(
        broken.stdout.contains("::error title=Elastic Beanstalk::Failed to deploy application."),
        "{}",
        broken.dump()
    );
    assert!(broken.stdout.contains("reverted the environment: it runs v1"), "{}", broken.dump());
    assert!(stack.fetch(&env, "/").await.contains("v1"), "the previous version still serves");

    // v3, then roll back to v1: no build, the page changes back, the replaced version is named.
    stack.wait_ready(&env, Duration::from_secs(30)).await;
    let v3 = stack.run(&example_app(), &inputs(&app, &env, "v3", "APP_VERSION=v3"));
    assert_eq!(v3.out("result"), "deployed", "{}", v3.dump());
    assert!(stack.fetch(&env, "/").await.contains("v3"));
    let seq = stack.admin.last_request_seq().await.unwrap();
    let back = stack.run(
        &example_app(),
        &[("application-name", &app), ("environment-name", &env), ("mode", "rollback"), ("version-label", "v1")],
    );
    assert_eq!(back.code, Some(0), "{}", back.dump());
    assert_eq!(back.out("result"), "deployed");
    assert_eq!(back.out("previous-version-label"), "v3");
    assert_eq!(back.out("running-version-label"), "v1");
    assert_eq!(back.out("image"), v1.out("image"), "the rollback reports the image v1 deploys");
    assert_eq!(back.out("image-digest"), v1.out("image-digest"));
    assert!(!back.stdout.contains("Build image"), "a rollback builds nothing");
    assert_eq!(mutating_calls_since(&stack, seq, &app, &env).await, vec!["UpdateEnvironment"]);
    assert!(stack.fetch(&env, "/").await.contains("v1"));
    assert!(back.summary.contains(&format!("Rolled {env} back to v1")), "{}", back.summary);
}

#[tokio::test(flavor = "multi_thread")]
async fn re_running_a_label_reuses_it_and_uploads_nothing() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("shop", "web").await;
    let proxy_seq = stack.proxy_requests().len();
    let first = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(first.out("result"), "deployed", "{}", first.dump());
    // The filter below sees this application's upload (so an empty list later means nothing was uploaded).
    assert!(app_requests(&stack, proxy_seq, &app).iter().any(|r| r["method"] == "PUT"), "first upload not seen");

    // Same label again, environment already on it: unchanged, no update, nothing pushed or uploaded.
    let proxy_seq = stack.proxy_requests().len();
    let seq = stack.admin.last_request_seq().await.unwrap();
    let again = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(again.code, Some(0), "{}", again.dump());
    assert_eq!(again.out("result"), "unchanged");
    assert!(mutating_calls_since(&stack, seq, &app, &env).await.is_empty());
    assert!(!again.stdout.contains("Build image") && !again.stdout.contains("::group::Push"), "{}", again.dump());
    let puts: Vec<_> = app_requests(&stack, proxy_seq, &app).into_iter().filter(|r| r["method"] == "PUT").collect();
    assert!(puts.is_empty(), "nothing uploaded: {puts:?}");

    // Move to v2, then deploy v1 again: the existing version is reused, nothing is built or uploaded.
    let v2 = stack.run(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(v2.out("result"), "deployed", "{}", v2.dump());
    let proxy_seq = stack.proxy_requests().len();
    let seq = stack.admin.last_request_seq().await.unwrap();
    let reuse = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(reuse.out("result"), "deployed", "{}", reuse.dump());
    assert!(reuse.stdout.contains("deploying it as is"), "{}", reuse.dump());
    assert!(!reuse.stdout.contains("Build image") && !reuse.stdout.contains("::group::Push"), "{}", reuse.dump());
    assert_eq!(mutating_calls_since(&stack, seq, &app, &env).await, vec!["UpdateEnvironment"]);
    let writes: Vec<_> = app_requests(&stack, proxy_seq, &app)
        .into_iter()
        .filter(|r| r["method"] != "GET" && r["method"] != "HEAD")
        .collect();
    assert!(writes.is_empty(), "no upload: {writes:?}");

    // With reuse-existing-version false, the existing label is refused and nothing changes.
    let seq = stack.admin.last_request_seq().await.unwrap();
    let refused = stack.run(
        &example_app(),
        &[
            ("application-name", &app),
            ("environment-name", &env),
            ("version-label", "v2"),
            ("reuse-existing-version", "false"),
        ],
    );
    assert_eq!(refused.code, Some(1));
    assert!(refused.stdout.contains("reuse-existing-version is false"), "{}", refused.dump());
    assert!(mutating_calls_since(&stack, seq, &app, &env).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_update_times_out_and_a_busy_environment_is_waited_for() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("shop", "web").await;
    let first = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(first.out("result"), "deployed", "{}", first.dump());

    // The next update sticks in Updating: timed-out, the update is left running.
    let faults = stack.faults(&app, &env, json!({"stuck_next_updates": 1})).await;
    let mut stuck_inputs = inputs(&app, &env, "v2", "APP_VERSION=v2");
    stuck_inputs.push(("wait-timeout", "8s"));
    let stuck = stack.run(&example_app(), &stuck_inputs);
    assert_eq!(stuck.code, Some(1), "{}", stuck.dump());
    assert_eq!(stuck.out("result"), "timed-out");
    assert_eq!(stuck.out("status"), "Updating");

    // A second deploy meanwhile finds the environment busy; with on-busy: abort it aborts the stuck
    // update, waits for Ready, and deploys.
    let mut next = inputs(&app, &env, "v3", "APP_VERSION=v3");
    next.push(("on-busy", "abort"));
    let after = stack.run(&example_app(), &next);
    assert_eq!(after.code, Some(0), "{}", after.dump());
    assert_eq!(after.out("result"), "deployed");
    assert!(stack.fetch(&env, "/").await.contains("v3"));
    drop(faults);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_deploy_waits_while_another_one_runs() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("shop", "web").await;
    let first = stack.run(&example_app(), &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(first.out("result"), "deployed", "{}", first.dump());

    // Two deploys at once: whichever updates second finds the environment busy and waits (on-busy: wait).
    let (a, a_files) = stack.spawn(&example_app(), &inputs(&app, &env, "v2", "APP_VERSION=v2"));
    let (b, b_files) = stack.spawn(&example_app(), &inputs(&app, &env, "v3", "APP_VERSION=v3"));
    let a = stack.finish(a, &a_files);
    let b = stack.finish(b, &b_files);
    assert_eq!(a.out("result"), "deployed", "{}", a.dump());
    assert_eq!(b.out("result"), "deployed", "{}", b.dump());
    let waited = [&a, &b].iter().any(|r| r.stdout.contains("on-busy: wait") || r.stdout.contains("became busy"));
    assert!(waited, "one of them met the other's update:\n{}\n{}", a.dump(), b.dump());
    // The one that finished last decides what runs.
    let page = stack.fetch(&env, "/").await;
    assert!(page.contains("v2") || page.contains("v3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_application_or_environment_changes_nothing() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("shop", "web").await;
    let seq = stack.admin.last_request_seq().await.unwrap();

    let (missing_app, missing_env) = (unique("nope"), unique("nope"));
    let run = stack.run(&example_app(), &inputs(&missing_app, &env, "v1", ""));
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains(&format!("application {missing_app} does not exist")), "{}", run.dump());
    assert!(mutating_calls_since(&stack, seq, &missing_app, &env).await.is_empty());

    let run = stack.run(&example_app(), &inputs(&app, &missing_env, "v1", ""));
    assert_eq!(run.code, Some(1));
    let expected = format!("environment {missing_env} does not exist in application {app} (it has: {env})");
    assert!(run.stdout.contains(&expected), "{}", run.dump());
    assert!(mutating_calls_since(&stack, seq, &app, &missing_env).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_ebextensions_file_fails_before_the_update_and_leaves_nothing() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("shop", "web").await;
    // The example app with a .ebextensions file that is neither YAML nor JSON.
    let dir = support::scratch_dir("broken-config");
    let copied =
        std::process::Command::new("cp").arg("-a").arg(format!("{}/.", example_app().display())).arg(&dir).status();
    assert!(copied.expect("cp").success());
    std::fs::write(dir.join(".ebextensions/01-environment.config"), "option_settings:\n  - namespace: [unclosed\n")
        .unwrap();

    let seq = stack.admin.last_request_seq().await.unwrap();
    let run = stack.run(&dir, &inputs(&app, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(run.stdout.contains("could not process version v1"), "{}", run.dump());
    let calls = mutating_calls_since(&stack, seq, &app, &env).await;
    assert!(calls.contains(&"CreateApplicationVersion".to_owned()), "{calls:?}");
    assert!(!calls.contains(&"UpdateEnvironment".to_owned()), "it fails before the update: {calls:?}");
    let left = stack.leftovers(&app).await;
    assert!(left.versions.is_empty(), "the version it created is deleted: {left:?}");
}

/// The S3 requests the proxy saw after the first `since` that touch this application's bundles. Other tests
/// run at the same time, so requests are attributed by the key prefix bundles are stored under (`<app>/`).
fn app_requests(stack: &Stack, since: usize, app: &str) -> Vec<serde_json::Value> {
    let prefix = format!("/{app}/");
    stack
        .proxy_requests()
        .into_iter()
        .skip(since)
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains(&prefix)))
        .collect()
}
