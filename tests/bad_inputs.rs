//! Bad inputs are refused before anything reaches AWS: each case runs the real binary the way the runner
//! does (INPUT_* variables, GITHUB_OUTPUT), with every AWS endpoint pointed at a listener that counts
//! connections. Each must exit 1, name the offending input, write `result=failed`, and make no connection.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eb_deploy::gha::parse_file_commands;

/// A workspace with the files the cases refer to.
fn workspace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bad-inputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["app", "empty-context", "bundle-with-dockerfile", "bundle-with-template", "bundle-ok"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("app/Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("not-json.json"), "{ \"Image\": ").unwrap();
    std::fs::write(dir.join("no-image.json"), r#"{"AWSEBDockerrunVersion":"1","Ports":[{"ContainerPort":"80"}]}"#)
        .unwrap();
    std::fs::write(dir.join("v2.json"), r#"{"AWSEBDockerrunVersion":2,"containerDefinitions":[]}"#).unwrap();
    std::fs::write(dir.join("good.json"), r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"x"}}"#).unwrap();
    std::fs::write(dir.join("bundle-with-dockerfile/Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("bundle-with-template/Dockerrun.aws.json"), r#"{"Image":{"Name":"x"}}"#).unwrap();
    dir
}

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

const VALID: &[(&str, &str)] = &[("application-name", "shop"), ("environment-name", "shop-prod"), ("context", "app")];

/// (what is wrong, the input the message must name, inputs overriding VALID)
type Case = (&'static str, &'static str, Vec<(&'static str, String)>);

fn cases() -> Vec<Case> {
    let s = |v: &str| v.to_owned();
    vec![
        ("missing application", "application-name", vec![("application-name", s(""))]),
        ("blank application", "application-name", vec![("application-name", s("   "))]),
        ("application over 100 chars", "application-name", vec![("application-name", "a".repeat(101))]),
        ("missing environment", "environment-name", vec![("environment-name", s(""))]),
        ("environment too short", "environment-name", vec![("environment-name", s("abc"))]),
        ("environment over 40 chars", "environment-name", vec![("environment-name", "e".repeat(41))]),
        ("environment with underscore", "environment-name", vec![("environment-name", s("shop_prod"))]),
        ("environment starting with hyphen", "environment-name", vec![("environment-name", s("-shop"))]),
        ("environment ending with hyphen", "environment-name", vec![("environment-name", s("shop-"))]),
        ("unknown mode", "mode", vec![("mode", s("redeploy"))]),
        ("rollback without label", "version-label", vec![("mode", s("rollback"))]),
        ("label over 100 chars", "version-label", vec![("version-label", "v".repeat(101))]),
        ("label with a control character", "version-label", vec![("version-label", s("v1\u{7}x"))]),
        ("timeout not a duration", "wait-timeout", vec![("wait-timeout", s("soon"))]),
        ("timeout zero", "wait-timeout", vec![("wait-timeout", s("0s"))]),
        ("timeout with a fraction", "wait-timeout", vec![("wait-timeout", s("1.5h"))]),
        ("negative grace", "health-grace", vec![("health-grace", s("-5s"))]),
        ("wait not a boolean", "wait", vec![("wait", s("yes"))]),
        ("reuse as a number", "reuse-existing-version", vec![("reuse-existing-version", s("1"))]),
        ("abort-on-timeout as on", "abort-on-timeout", vec![("abort-on-timeout", s("on"))]),
        ("abort-on-cancel in odd case", "abort-on-cancel", vec![("abort-on-cancel", s("tRUE"))]),
        ("no-cache as Y", "no-cache", vec![("no-cache", s("Y"))]),
        ("pull as maybe", "pull", vec![("pull", s("maybe"))]),
        ("create-repository as no", "create-repository", vec![("create-repository", s("no"))]),
        ("pin-digest as 0", "pin-digest", vec![("pin-digest", s("0"))]),
        ("unknown min-health", "min-health", vec![("min-health", s("blue"))]),
        ("unknown on-busy", "on-busy", vec![("on-busy", s("ignore"))]),
        ("port zero", "container-port", vec![("container-port", s("0"))]),
        ("port too large", "container-port", vec![("container-port", s("70000"))]),
        ("port not a number", "container-port", vec![("container-port", s("http"))]),
        ("bucket with capitals", "bucket", vec![("bucket", s("My_Bucket"))]),
        ("bucket too short", "bucket", vec![("bucket", s("ab"))]),
        ("region malformed", "region", vec![("region", s("useast1"))]),
        ("region upper case", "region", vec![("region", s("US-EAST-1"))]),
        ("build-arg without =", "build-args", vec![("build-args", s("A=1\nNOEQUALS"))]),
        ("build-arg without key", "build-args", vec![("build-args", s("=value"))]),
        ("label key with a space", "labels", vec![("labels", s("two words=x"))]),
        ("repository in upper case", "ecr-repository", vec![("ecr-repository", s("Team/App"))]),
        ("tag starting with a dot", "image-tag", vec![("image-tag", s(".hidden"))]),
        ("tag over 128 chars", "image-tag", vec![("image-tag", "t".repeat(129))]),
        ("registry as a URL", "registry", vec![("registry", s("https://registry.example.com"))]),
        ("platform without os", "platform", vec![("platform", s("amd64"))]),
        ("missing context", "context", vec![("context", s("no-such-dir"))]),
        ("context without a Dockerfile", "dockerfile", vec![("context", s("empty-context"))]),
        ("missing Dockerfile", "dockerfile", vec![("dockerfile", s("app/Dockerfile.missing"))]),
        ("missing template", "dockerrun", vec![("dockerrun", s("nope.json"))]),
        ("template not JSON", "dockerrun", vec![("dockerrun", s("not-json.json"))]),
        ("template without Image", "dockerrun", vec![("dockerrun", s("no-image.json"))]),
        ("template of another platform", "dockerrun", vec![("dockerrun", s("v2.json"))]),
        ("two templates", "dockerrun", vec![("dockerrun", s("good.json")), ("bundle-dir", s("bundle-with-template"))]),
        ("missing bundle-dir", "bundle-dir", vec![("bundle-dir", s("no-such-bundle"))]),
        ("bundle-dir with a Dockerfile", "bundle-dir", vec![("bundle-dir", s("bundle-with-dockerfile"))]),
    ]
}

#[test]
fn every_bad_input_is_refused_by_name_before_any_connection() {
    let ws = workspace("table");
    let tripwire = Tripwire::start();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 40, "the table keeps at least 40 cases");
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
