//! End to end on the local stack: several environments in one step (one build, one version), each
//! `on-failure`, a sequential canary, cancel across a fleet, and blue/green through the CNAMEs ebsim's proxy
//! serves.
#![cfg(feature = "e2e")]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Stack, broken_app, example_app, unique};

fn inputs<'a>(app: &'a str, envs: &'a str, label: &'a str, build_args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("application-name", app), ("environment-name", envs), ("version-label", label), ("build-args", build_args)]
}

/// The `environments` output, by name: (result, running version).
fn per_env(run: &support::Run) -> Vec<(String, String, String)> {
    let all: Value = serde_json::from_str(run.out("environments")).unwrap_or_else(|e| panic!("{e}: {}", run.dump()));
    all.as_array()
        .expect("an array")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("result"), s("running_version_label"))
        })
        .collect()
}

/// Beanstalk operations since `seq` that name `app` or one of `envs` (by name or id): tests share one ebsim.
async fn ours_since(stack: &Stack, seq: u64, app: &str, envs: &[String]) -> Vec<String> {
    let mut names = vec![app.to_owned()];
    for env in envs {
        names.push(env.clone());
        names.extend(stack.admin.environment(env).await.ok().flatten().map(|v| v.id));
    }
    let requests = stack.admin.requests_since(seq).await.expect("request log");
    requests.into_iter().filter(|r| r.params.values().any(|v| names.contains(v))).map(|r| r.op).collect()
}

async fn serves(stack: &Stack, env: &str, version: &str) -> bool {
    stack.wait_ready(env, Duration::from_secs(30)).await;
    stack.fetch(env, "/").await.contains(&format!("<strong id=\"version\">{version}</strong>"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_deploys_once_and_each_on_failure_does_what_it_says() {
    let stack = Stack::load();
    let app = unique("fleet");
    let envs: Vec<String> = (0..5).map(|i| format!("{}-{i}", unique("web"))).collect();
    stack.create_environments(&app, &envs).await;
    let names = envs.join("\n");

    // v1 to all five at once: one build, one version, five updates, five environments serving it.
    let seq = stack.admin.last_request_seq().await.unwrap();
    let v1 = stack.run(&example_app(), &inputs(&app, &names, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert_eq!(v1.out("result"), "deployed");
    assert_eq!(v1.stdout.matches("Build image").count(), 1, "built once: {}", v1.stdout);
    let ops = ours_since(&stack, seq, &app, &envs).await;
    let count = |op: &str| ops.iter().filter(|o| *o == op).count();
    assert_eq!(count("CreateApplicationVersion"), 1, "{ops:?}");
    assert_eq!(count("UpdateEnvironment"), 5, "{ops:?}");
    for (name, result, running) in per_env(&v1) {
        assert_eq!((result.as_str(), running.as_str()), ("deployed", "v1"), "{name}");
    }
    for env in &envs {
        assert!(serves(&stack, env, "v1").await, "{env} serves v1");
    }
    assert!(v1.summary.contains("```mermaid\ngantt"), "the summary pictures the rollout: {}", v1.summary);
    assert_eq!(v1.out("environment-id"), "", "single-environment outputs stay empty for a fleet");

    // on-failure: continue — the third fails (Beanstalk reverts it), the others take v2.
    let faults = stack.faults_on(&envs[2], json!({"fail_next_deploys": 1})).await;
    let mut ins = inputs(&app, &names, "v2", "APP_VERSION=v2");
    ins.push(("on-failure", "continue"));
    let v2 = stack.run(&example_app(), &ins);
    drop(faults);
    assert_eq!(v2.code, Some(1), "{}", v2.dump());
    assert_eq!(v2.out("result"), "failed");
    for (i, (name, result, running)) in per_env(&v2).into_iter().enumerate() {
        let want = if i == 2 { ("failed", "v1") } else { ("deployed", "v2") };
        assert_eq!((result.as_str(), running.as_str()), want, "{name}: {}", v2.dump());
    }

    // on-failure: rollback — the third fails again; the others go back to what they ran before (v2).
    let faults = stack.faults_on(&envs[2], json!({"fail_next_deploys": 1})).await;
    let mut ins = inputs(&app, &names, "v3", "APP_VERSION=v3");
    ins.push(("on-failure", "rollback"));
    let v3 = stack.run(&example_app(), &ins);
    drop(faults);
    assert_eq!(v3.code, Some(1), "{}", v3.dump());
    for (i, (name, result, running)) in per_env(&v3).into_iter().enumerate() {
        let want = if i == 2 { ("failed", "v1") } else { ("rolled-back", "v2") };
        assert_eq!((result.as_str(), running.as_str()), want, "{name}: {}", v3.dump());
    }
    for (i, env) in envs.iter().enumerate() {
        assert!(serves(&stack, env, if i == 2 { "v1" } else { "v2" }).await, "{env} after the rollback");
    }

    // strategy: sequential, the canary fails: nothing after it is touched (on-failure: stop).
    let faults = stack.faults_on(&envs[0], json!({"fail_next_deploys": 1})).await;
    let seq = stack.admin.last_request_seq().await.unwrap();
    let mut ins = inputs(&app, &names, "v4", "APP_VERSION=v4");
    ins.push(("strategy", "sequential"));
    let v4 = stack.run(&example_app(), &ins);
    drop(faults);
    assert_eq!(v4.code, Some(1), "{}", v4.dump());
    let results: Vec<String> = per_env(&v4).into_iter().map(|(_, r, _)| r).collect();
    assert_eq!(results, ["failed", "skipped", "skipped", "skipped", "skipped"], "{}", v4.dump());
    let updated = ours_since(&stack, seq, &app, &envs).await.into_iter().filter(|op| op == "UpdateEnvironment").count();
    assert_eq!(updated, 1, "only the canary was updated");
    assert!(serves(&stack, &envs[1], "v2").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_during_a_fleet_deploy_aborts_every_update() {
    let stack = Stack::load();
    let app = unique("fleet");
    let envs: Vec<String> = (0..2).map(|i| format!("{}-{i}", unique("web"))).collect();
    stack.create_environments(&app, &envs).await;
    let names = envs.join(",");
    let v1 = stack.run(&example_app(), &inputs(&app, &names, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());
    for env in &envs {
        stack.wait_ready(env, Duration::from_secs(30)).await;
    }

    let faults = stack.faults(&app, "-", json!({"stuck_next_updates": 2})).await;
    let seq = stack.admin.last_request_seq().await.unwrap();
    let mut ins = inputs(&app, &names, "v2", "APP_VERSION=v2");
    ins.push(("abort-on-cancel", "true"));
    let (child, files) = stack.spawn(&example_app(), &ins);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut updating = 0;
        for env in &envs {
            let view = stack.admin.environment(env).await.unwrap().unwrap();
            updating += usize::from(view.status == "Updating" && view.version_label.as_deref() == Some("v2"));
        }
        if updating == envs.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the fleet never got under way");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let run = stack.finish(child, &files);
    drop(faults);
    assert_eq!(run.out("result"), "cancelled", "{}", run.dump());
    let aborts =
        stack.admin.requests_since(seq).await.unwrap().iter().filter(|r| r.op == "AbortEnvironmentUpdate").count();
    assert_eq!(aborts, 2, "every update in flight was aborted: {}", run.dump());
    for env in &envs {
        assert!(serves(&stack, env, "v1").await, "{env} returned to v1");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_swaps_after_a_verified_deploy_and_mode_swap_undoes_it() {
    let stack = Stack::load();
    let app = unique("bg");
    let (blue, green) = (unique("blue"), unique("green"));
    stack.create_environments(&app, &[blue.clone(), green.clone()]).await;
    let live = stack.run(&example_app(), &inputs(&app, &blue, "v1", "APP_VERSION=v1"));
    assert_eq!(live.out("result"), "deployed", "{}", live.dump());
    let live_cname = live.out("environment-cname").to_owned();
    assert!(stack.fetch_cname(&live_cname, "/").contains("v1"), "the live CNAME serves v1");

    // v2 to the idle environment, verified, then swapped: the live CNAME serves v2.
    let mut ins = inputs(&app, &green, "v2", "APP_VERSION=v2");
    ins.push(("swap-with", &blue));
    let v2 = stack.run(&example_app(), &ins);
    assert_eq!(v2.code, Some(0), "{}", v2.dump());
    assert_eq!(v2.out("result"), "deployed");
    assert_eq!(v2.out("live-environment"), green);
    assert_eq!(v2.out("environment-cname"), live_cname, "the deployed environment holds the live CNAME now");
    assert!(v2.stdout.contains("Completed swapping CNAMEs"), "{}", v2.dump());
    assert!(stack.fetch_cname(&live_cname, "/").contains("v2"), "the live CNAME serves v2 after the swap");

    // mode: swap undoes it: the live CNAME serves v1 again, nothing is deployed.
    let seq = stack.admin.last_request_seq().await.unwrap();
    let back = stack.run(
        &example_app(),
        &[("application-name", &app), ("environment-name", &green), ("swap-with", &blue), ("mode", "swap")],
    );
    assert_eq!(back.code, Some(0), "{}", back.dump());
    assert_eq!(back.out("result"), "swapped");
    assert_eq!(back.out("live-environment"), blue);
    assert!(stack.fetch_cname(&live_cname, "/").contains("v1"), "the live CNAME serves v1 again");
    let ops = ours_since(&stack, seq, &app, &[blue.clone(), green.clone()]).await;
    assert!(!ops.iter().any(|o| o == "UpdateEnvironment" || o == "CreateApplicationVersion"), "{ops:?}");

    // A green that fails its deploy never swaps: the live CNAME keeps serving v1.
    stack.wait_ready(&green, Duration::from_secs(30)).await;
    let mut ins = inputs(&app, &green, "v3-broken", "");
    ins.push(("swap-with", &blue));
    let broken = stack.run(&broken_app(), &ins);
    assert_eq!(broken.code, Some(1), "{}", broken.dump());
    assert_eq!(broken.out("live-environment"), blue);
    let swaps_after =
        stack.admin.requests_since(seq).await.unwrap().iter().filter(|r| r.op == "SwapEnvironmentCNAMEs").count();
    assert_eq!(swaps_after, 1, "only mode: swap swapped");
    assert!(stack.fetch_cname(&live_cname, "/").contains("v1"));
}
