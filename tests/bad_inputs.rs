//! Bad inputs are refused before anything reaches AWS: each case runs the real binary the way the runner
//! does (INPUT_* variables, GITHUB_OUTPUT), with every AWS endpoint pointed at a listener that counts
//! connections. Each must exit 1, name the offending input, write `result=failed`, and make no connection.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eb_deploy::gha::parse_file_commands;

#[path = "cases/bad_inputs.rs"]
mod cases;
use cases::{VALID, cases, workspace};

/// Counts TCP connections: any would mean an AWS (or Docker) call was attempted.
struct Tripwire {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { port, hits }
    }
}

struct Outcome {
    code: Option<i32>,
    log: String,
    outputs: Vec<(String, String)>,
}

fn run(ws: &Path, tripwire: &Tripwire, inputs: &[(&str, &str)], args: &[&str]) -> Outcome {
    let out_file = ws.join(format!("out-{}", tripwire.hits.load(Ordering::SeqCst) + rand_suffix()));
    let endpoint = format!("http://127.0.0.1:{}", tripwire.port);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eb-deploy"));
    cmd.env_clear()
        .current_dir(ws)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_REF_TYPE", "branch")
        .env("GITHUB_REF_NAME", "main")
        .env("HOME", ws)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "bad-inputs-secret-key-value")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", tripwire.port))
        .args(args);
    // Defaults as the runner passes them: every declared input, empty unless given.
    for spec in eb_deploy::inputs::INPUTS {
        let value = match spec.default {
            eb_deploy::inputs::DefaultValue::Value(v) => v,
            _ => "",
        };
        cmd.env(eb_deploy::inputs::env_var_name(spec.name), value);
    }
    for (k, v) in inputs {
        cmd.env(eb_deploy::inputs::env_var_name(k), v);
    }
    let output = cmd.output().expect("run eb-deploy");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let outputs =
        std::fs::read_to_string(&out_file).map(|t| parse_file_commands(&t).expect("outputs parse")).unwrap_or_default();
    Outcome { code: output.status.code(), log, outputs }
}

fn rand_suffix() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn every_bad_input_is_refused_by_name_before_any_connection() {
    let ws = workspace("table");
    let tripwire = Tripwire::start();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 85, "the table keeps at least 85 cases");
    for (what, input, overrides) in &cases {
        let mut inputs: Vec<(&str, &str)> = VALID.to_vec();
        for (k, v) in overrides {
            inputs.retain(|(name, _)| name != k);
            inputs.push((k, v.as_str()));
        }
        let out = run(&ws, &tripwire, &inputs, &[]);
        let named = out.log.contains(&format!("`{input}`")) || out.log.contains(&format!("input `{input}`"));
        let result = out.outputs.iter().find(|(k, _)| k == "result").map(|(_, v)| v.as_str());
        if out.code != Some(1) || !named || result != Some("failed") {
            failures
                .push(format!("{what}: exit {:?}, names `{input}`: {named}, result {result:?}\n{}", out.code, out.log));
        }
        let hits = tripwire.hits.load(Ordering::SeqCst);
        if hits > 0 {
            failures.push(format!("{what}: {hits} connection(s) were made"));
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(tripwire.hits.load(Ordering::SeqCst), 0, "a bad input reached the network");
    assert!(
        failures.is_empty(),
        "{} of {} cases misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n---\n")
    );
    std::fs::remove_dir_all(ws).unwrap();
}

#[test]
fn errors_are_annotations_naming_the_input_and_all_are_reported_together() {
    let ws = workspace("annotations");
    let tripwire = Tripwire::start();
    let out = run(&ws, &tripwire, &[("application-name", ""), ("environment-name", "x"), ("wait", "yes")], &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.log.contains("::error title=Invalid input `application-name`::"), "{}", out.log);
    assert!(out.log.contains("::error title=Invalid input `environment-name`::"), "{}", out.log);
    assert!(out.log.contains("::error title=Invalid input `wait`::"), "{}", out.log);
    assert_eq!(tripwire.hits.load(Ordering::SeqCst), 0);
    std::fs::remove_dir_all(ws).unwrap();
}

#[test]
fn command_line_mistakes_exit_1_with_a_hint() {
    let ws = workspace("cli");
    let tripwire = Tripwire::start();
    let out = run(&ws, &tripwire, VALID, &["--enviroment-name", "x"]);
    assert_eq!(out.code, Some(1));
    assert!(out.log.contains("did you mean --environment-name?"), "{}", out.log);
    let out = run(&ws, &tripwire, VALID, &["--help"]);
    assert_eq!(out.code, Some(0));
    assert!(out.log.contains("--wait-timeout [default: 20m]"));
    assert_eq!(tripwire.hits.load(Ordering::SeqCst), 0);
    std::fs::remove_dir_all(ws).unwrap();
}
