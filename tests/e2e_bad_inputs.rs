//! Bad inputs against the real stack: every case of the shared table, plus those only AWS can reveal
//! (unknown application, environment or label, the wrong region, an oversized bundle). Each exits 1 with
//! a message naming the input, and makes zero mutating calls, checked in ebsim's request log and in the
//! recording proxy's log of S3 and ECR requests.
#![cfg(feature = "e2e")]

#[path = "cases/bad_inputs.rs"]
mod cases;
mod support;

use std::io::Write as _;

use stackkit::MUTATING;
use support::{Stack, unique};

/// S3 and ECR requests that change something.
fn is_mutating_proxy_request(r: &serde_json::Value) -> bool {
    let method = r["method"].as_str().unwrap_or("");
    let target = r["target"].as_str().unwrap_or("");
    match r["service"].as_str() {
        Some("s3") => !matches!(method, "GET" | "HEAD"),
        Some("ecr") => {
            !["GetAuthorizationToken", "Describe", "BatchGetImage", "List"].iter().any(|t| target.contains(t))
        }
        _ => false,
    }
}

/// A file of incompressible bytes, so the zipped bundle really exceeds 500 MB.
fn write_noise(path: &std::path::Path, bytes: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..bytes.div_ceil(block.len()) {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        file.write_all(&block).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_change_nothing_anywhere() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("bad", "bad").await;
    let ws = cases::workspace("e2e");
    std::fs::create_dir_all(ws.join("huge-bundle")).unwrap();
    write_noise(&ws.join("huge-bundle/blob.bin"), 510 * 1024 * 1024);

    let seq = stack.admin.last_request_seq().await.unwrap();
    let proxy_seen = stack.proxy_requests().len();
    let s = |v: &str| v.to_owned();
    let mut table = cases::cases();
    table.extend([
        ("unknown application", "application-name", vec![("application-name", unique("nope"))]),
        ("unknown environment", "environment-name", vec![("environment-name", unique("nope"))]),
        ("rollback to an unknown label", "version-label", vec![("mode", s("rollback")), ("version-label", s("v404"))]),
        ("the wrong region", "region", vec![("region", s("eu-west-3"))]),
        ("bundle over 500 MB", "bundle-dir", vec![("bundle-dir", s("huge-bundle"))]),
        (
            "a CNAME prefix already taken",
            "cname-prefix",
            vec![("environment-name", unique("new")), ("create-environment", s("true")), ("cname-prefix", env.clone())],
        ),
        (
            "a solution stack Beanstalk does not offer",
            "solution-stack",
            vec![
                ("environment-name", unique("new")),
                ("create-environment", s("true")),
                ("solution-stack", s("64bit Amazon Linux 2023 v9.9.9 running Docker")),
            ],
        ),
        (
            "an environment to create in a missing application",
            "create-application",
            vec![("application-name", unique("nope")), ("create-environment", s("true"))],
        ),
        ("terminating an environment eb-deploy did not create", "force-terminate", vec![("mode", s("terminate"))]),
    ]);
    let mut failures = Vec::new();
    let mut report = String::from("| Bad input | Names | Exit | First error line |\n|---|---|---|---|\n");
    for (what, input, overrides) in &table {
        let mut inputs: Vec<(&str, &str)> =
            vec![("application-name", app.as_str()), ("environment-name", env.as_str()), ("context", "app")];
        for (k, v) in overrides {
            inputs.retain(|(name, _)| name != k);
            inputs.push((k, v.as_str()));
        }
        let run = stack.run(&ws, &inputs);
        let names_it = run.stdout.contains(&format!("`{input}`"))
            || match *input {
                "application-name" => run.stdout.contains("check application-name"),
                "environment-name" => run.stdout.contains("check environment-name"),
                "version-label" => run.stdout.contains("give an existing version-label"),
                "create-application" => run.stdout.contains("set create-application: true"),
                "force-terminate" => run.stdout.contains("set force-terminate: true"),
                "region" => {
                    run.stdout.contains("check application-name and region") && run.stdout.contains("eu-west-3")
                }
                _ => false,
            };
        let first_error = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("::error ").and_then(|l| l.split_once("::")).map(|(_, m)| m))
            .unwrap_or("(none)")
            .replace('|', "\\|");
        let first_error: String = first_error.chars().take(160).collect();
        report.push_str(&format!("| {what} | `{input}` | {} | {first_error} |\n", run.code.unwrap_or(-1)));
        if run.code != Some(1) || !names_it || run.out("result") != "failed" {
            failures.push(format!("{what}: exit {:?}, names `{input}`: {names_it}\n{}", run.code, run.stdout));
        }
    }
    let ebsim_writes: Vec<String> = stack
        .admin
        .requests_since(seq)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| MUTATING.contains(&r.op.as_str()))
        .map(|r| format!("{} {:?}", r.op, r.params))
        .collect();
    let proxy_writes: Vec<serde_json::Value> =
        stack.proxy_requests().into_iter().skip(proxy_seen).filter(is_mutating_proxy_request).collect();
    std::fs::remove_dir_all(&ws).unwrap();
    let tables = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability");
    std::fs::create_dir_all(&tables).unwrap();
    std::fs::write(tables.join("bad-inputs.table"), report).unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases misbehaved:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n---\n")
    );
    assert!(ebsim_writes.is_empty(), "mutating Beanstalk calls: {ebsim_writes:?}");
    assert!(proxy_writes.is_empty(), "mutating S3/ECR calls: {proxy_writes:?}");
    assert!(table.len() >= 90, "{} cases", table.len());
}
