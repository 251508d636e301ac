//! Requests real clients send to Beanstalk, replayed byte for byte over HTTP against ebsim, and
//! their answers checked against the shapes those clients read. The corpus is in `tests/corpus/`;
//! the AWS CLI (`awscli.rs`) and the Rust SDK (`sdk.rs`) are checked beside it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const BEANSTALK_DEPLOY: &str = include_str!("corpus/beanstalk-deploy-v22.http");

/// The requests of one client, by name.
struct Corpus {
    requests: BTreeMap<String, String>,
}

impl Corpus {
    fn parse(text: &str) -> Self {
        let mut requests = BTreeMap::new();
        let mut current: Option<(String, Vec<&str>)> = None;
        for line in text.lines().map(str::trim_end) {
            if let Some(name) = line.strip_prefix("### ") {
                requests.extend(current.take().map(|(n, lines)| (n, lines.join("\r\n") + "\r\n\r\n")));
                current = Some((name.trim().to_string(), Vec::new()));
            } else if let Some((_, lines)) = &mut current
                && !line.is_empty()
            {
                lines.push(line);
            }
        }
        requests.extend(current.map(|(n, lines)| (n, lines.join("\r\n") + "\r\n\r\n")));
        Self { requests }
    }

    /// The request `name` with its placeholders filled in (values encoded as `encodeURIComponent` does).
    fn render(&self, name: &str, vars: &[(&str, &str)]) -> String {
        let mut text = self.requests.get(name).unwrap_or_else(|| panic!("no request {name} in the corpus")).clone();
        for (k, v) in vars {
            text = text.replace(&format!("{{{{{k}}}}}"), &encode_uri_component(v));
        }
        assert!(!text.contains("{{"), "unfilled placeholder in {name}: {text}");
        text
    }
}

fn encode_uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// ISO 8601 basic format, as `new Date(ms).toISOString().replace(/(-|:|\.\d\d\d)/g, '')` gives it.
fn basic(ms: i64) -> String {
    ebsim::protocol::time::format_iso(ms).replace(['-', ':'], "").split('.').next().unwrap().to_string() + "Z"
}

/// One answer read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: BTreeMap<String, String>,
    json: Value,
}

/// Sends `request` on a fresh connection and reads one HTTP/1.1 answer.
async fn replay(h: &Harness, request: &str) -> Raw {
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("a header");
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).expect("a Content-Length");
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    Raw { status, headers, json }
}

/// What the action checks before it reads any answer (`expect()` and `createResult()`): the status
/// and a Content-Type of exactly `application/json`, without which it would not parse the body.
fn expect(raw: &Raw, status: u16) -> &Value {
    assert_eq!(raw.status, status, "{:#}", raw.json);
    assert_eq!(raw.headers.get("content-type").map(String::as_str), Some("application/json"));
    &raw.json
}

fn result<'a>(json: &'a Value, op: &str) -> &'a Value {
    let envelope = &json[format!("{op}Response")];
    let rid = envelope["ResponseMetadata"]["RequestId"].as_str().unwrap_or_default();
    assert_eq!(rid.len(), 36, "a RequestId in ResponseMetadata: {json:#}");
    &envelope[format!("{op}Result")]
}

/// The action's wait loop (`waitForDeployment`), polling without its 10 s pauses: events since
/// `start` (moved past the newest event each time, as the action does), the environment, until it
/// is Ready on `label` or a "Failed to deploy application" event was seen. Returns the messages
/// and the last environment.
async fn wait_like_the_action(
    h: &Harness,
    corpus: &Corpus,
    vars: &[(&str, &str)],
    label: &str,
    mut start_ms: i64,
) -> (Vec<String>, Value) {
    let mut messages = Vec::new();
    let mut failed = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut with_start = vars.to_vec();
        let start = basic(start_ms);
        with_start.push(("START", &start));
        let raw = replay(h, &corpus.render("DescribeEvents", &with_start)).await;
        let events =
            result(expect(&raw, 200), "DescribeEvents")["Events"].as_array().expect("Events is an array").clone();
        let dates: Vec<f64> = events.iter().map(|e| e["EventDate"].as_f64().expect("EventDate is a number")).collect();
        assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first: {dates:?}");
        for e in events.iter().rev() {
            let date = e["EventDate"].as_f64().unwrap();
            // The basic form carries whole seconds: events earlier in that second come back too.
            assert!(date * 1000.0 >= (start_ms / 1000 * 1000) as f64, "an event before StartTime {start}: {e}");
            let message = e["Message"].as_str().expect("Message is a string").to_string();
            assert!(e["Severity"].is_string());
            failed |= message.contains("Failed to deploy application");
            messages.push(message);
        }
        if let Some(newest) = dates.first() {
            start_ms = (newest * 1000.0) as i64 + 1000;
        }
        let raw = replay(h, &corpus.render("DescribeEnvironments", vars)).await;
        let envs = result(expect(&raw, 200), "DescribeEnvironments")["Environments"].as_array().unwrap().clone();
        assert_eq!(envs.len(), 1, "the action fails unless exactly its environment comes back: {envs:?}");
        let env = envs[0].clone();
        if (env["VersionLabel"] == label && env["Status"] == "Ready") || failed {
            return (messages, env);
        }
        assert!(Instant::now() < deadline, "never settled: {env}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn beanstalk_deploy_v22_deploys_with_its_own_requests() {
    let h = Harness::start().await;
    let corpus = Corpus::parse(BEANSTALK_DEPLOY);
    assert_eq!(corpus.requests.len(), 6);
    // Another version and another environment of the application: the `.members.N` filters must
    // leave them out, or the action counts two versions or two environments.
    h.version("shop", "older", "img:older").await;
    h.ready_env("shop", "shop-prod").await;
    h.ready_env("shop", "shop-stage").await;
    let now = ebsim::protocol::time::now_ms();
    let date = basic(now);
    let day = date[..8].to_string();
    let bucket = "elasticbeanstalk-us-east-1-123456789012";
    let mut vars = vec![
        ("APP", "shop"),
        ("ENV", "shop-prod"),
        ("LABEL", "v22-1"),
        ("DESCRIPTION", "Deployed by beanstalk-deploy: fix (#12) & more"),
        ("BUCKET", bucket),
        ("KEY", "shop/v22-1.zip"),
        ("DATE", &date),
        ("DAY", &day),
    ];

    let raw = replay(&h, &corpus.render("DescribeApplicationVersions", &vars)).await;
    let versions = &result(expect(&raw, 200), "DescribeApplicationVersions")["ApplicationVersions"];
    assert_eq!(versions.as_array().map(Vec::len), Some(0), "{versions}");

    let raw = replay(&h, &corpus.render("CreateStorageLocation", &vars)).await;
    assert_eq!(result(expect(&raw, 200), "CreateStorageLocation")["S3Bucket"], bucket);
    assert_eq!(raw.headers.get("x-amzn-requestid").map(String::len), Some(36));

    h.put_dockerrun(bucket, "shop/v22-1.zip", "img:v22");
    let raw = replay(&h, &corpus.render("CreateApplicationVersion", &vars)).await;
    let v = &result(expect(&raw, 200), "CreateApplicationVersion")["ApplicationVersion"];
    assert_eq!(v["VersionLabel"], "v22-1");
    assert_eq!(v["Description"], "Deployed by beanstalk-deploy: fix (#12) & more");
    assert_eq!(v["SourceBundle"]["S3Key"], "shop/v22-1.zip");
    assert_eq!(v["Status"], "UNPROCESSED");
    assert!(v["DateCreated"].is_f64(), "{v}");

    // Deploying an existing version starts the same way: exactly one version answers.
    let raw = replay(&h, &corpus.render("DescribeApplicationVersions", &vars)).await;
    let versions = result(expect(&raw, 200), "DescribeApplicationVersions")["ApplicationVersions"].clone();
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");

    let deploy_start = ebsim::protocol::time::now_ms();
    let raw = replay(&h, &corpus.render("UpdateEnvironment", &vars)).await;
    let up = result(expect(&raw, 200), "UpdateEnvironment");
    assert_eq!((up["Status"].as_str(), up["VersionLabel"].as_str()), (Some("Updating"), Some("v22-1")));
    assert_eq!(up["AbortableOperationInProgress"], true);
    let (messages, env) = wait_like_the_action(&h, &corpus, &vars, "v22-1", deploy_start).await;
    assert_eq!(env["Health"], "Green", "the action requires Green: {env}");
    assert!(messages.contains(&"Environment update is starting.".to_string()), "{messages:?}");
    let since = basic(deploy_start);
    let raw = replay(&h, &corpus.render("DescribeEvents", &[vars.clone(), vec![("START", &since)]].concat())).await;
    let events = result(expect(&raw, 200), "DescribeEvents")["Events"].as_array().unwrap().clone();
    let done = events.iter().filter(|e| e["Message"] == "Environment update completed successfully.").count();
    assert_eq!(done, 1, "{events:#?}");

    // StartTime in the basic form filters: from before the environments were created, their launch
    // events come back; from a second ahead, nothing does.
    for (start, want_launch) in [(basic(now - 2_000), true), (basic(ebsim::protocol::time::now_ms() + 2_000), false)] {
        let raw = replay(&h, &corpus.render("DescribeEvents", &[vars.clone(), vec![("START", &start)]].concat())).await;
        let events = result(expect(&raw, 200), "DescribeEvents")["Events"].as_array().unwrap().clone();
        let launch = events.iter().any(|e| e["Message"] == "createEnvironment is starting.");
        assert_eq!(launch, want_launch, "StartTime={start}: {events:?}");
        assert_eq!(events.is_empty(), !want_launch);
    }

    // Its own retry looks for `Error.Code == "Throttling"` in a 400 JSON answer.
    h.admin("POST", "/faults", Some(serde_json::json!({"throttle_fraction": 1.0, "ops": ["DescribeEnvironments"]})))
        .await;
    let raw = replay(&h, &corpus.render("DescribeEnvironments", &vars)).await;
    let err = expect(&raw, 400);
    assert_eq!(err["Error"]["Code"], "Throttling");
    assert_eq!(err["Error"]["Message"], "Rate exceeded");
    h.admin("DELETE", "/faults", None).await;

    // And the message of a refused call, which it prints as `Code: …, Message: …`.
    vars.retain(|(k, _)| *k != "ENV");
    vars.push(("ENV", "gone-env"));
    let raw = replay(&h, &corpus.render("UpdateEnvironment", &vars)).await;
    let err = expect(&raw, 400);
    assert_eq!(err["Error"]["Code"], "InvalidParameterValue");
    assert_eq!(err["Error"]["Message"], "No Environment found for EnvironmentName = 'gone-env'.");
    assert_eq!(err["RequestId"].as_str().map(str::len), Some(36));
}

#[tokio::test]
async fn beanstalk_deploy_v22_sees_a_failed_deploy() {
    // The action moves StartTime one second past the newest event it saw, so it misses events less
    // than a second apart; Beanstalk's are seconds apart. Steps of just over a second keep that.
    let h = Harness::with(|c| {
        c.timing.step = ebsim::config::Span::fixed(1_050);
        c.timing.health_timeout_ms = 300;
    })
    .await;
    let corpus = Corpus::parse(BEANSTALK_DEPLOY);
    h.version("shop", "v1", "img:v1").await;
    h.ready_env("shop", "shop-prod").await;
    let bucket = "elasticbeanstalk-us-east-1-123456789012";
    h.put_dockerrun(bucket, "shop/v2.zip", "img:unhealthy");
    let date = basic(ebsim::protocol::time::now_ms());
    let vars = [
        ("APP", "shop"),
        ("ENV", "shop-prod"),
        ("LABEL", "v2"),
        ("DESCRIPTION", ""),
        ("BUCKET", bucket),
        ("KEY", "shop/v2.zip"),
        ("DATE", &date),
        ("DAY", &date[..8]),
    ];
    expect(&replay(&h, &corpus.render("CreateApplicationVersion", &vars)).await, 200);
    let deploy_start = ebsim::protocol::time::now_ms();
    expect(&replay(&h, &corpus.render("UpdateEnvironment", &vars)).await, 200);
    let (messages, env) = wait_like_the_action(&h, &corpus, &vars, "v2", deploy_start).await;
    assert!(messages.iter().any(|m| m == "Failed to deploy application."), "{messages:?}");
    assert_eq!(env["VersionLabel"], serde_json::Value::Null, "back on the sample application: {env}");
    assert_eq!(env["Health"], "Red");
}

#[tokio::test]
async fn an_invalid_timestamp_is_still_refused() {
    let h = Harness::start().await;
    let corpus = Corpus::parse(BEANSTALK_DEPLOY);
    let vars = [("APP", "shop"), ("ENV", "shop-prod"), ("START", "2026-1201T22:47:47Z"), ("DATE", "x"), ("DAY", "x")];
    let raw = replay(&h, &corpus.render("DescribeEvents", &vars)).await;
    let err = expect(&raw, 400);
    assert_eq!(err["Error"]["Code"], "InvalidParameterValue");
    assert!(err["Error"]["Message"].as_str().unwrap().contains("StartTime"), "{err}");
}
