//! Stage: after Beanstalk's verdict, check that the app really answers — GET a path of the environment's URL
//! (or a given URL) until it gives an accepted status (and body), with backoff, within `check-timeout`.
//! One HTTP client for this and for downloading instance logs: reqwest on the AWS SDK's rustls/aws-lc-rs
//! stack, honouring HTTP_PROXY/HTTPS_PROXY/NO_PROXY and validating TLS.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;

use crate::config::{CheckPlan, CheckTarget};
use crate::format::format_duration;
use crate::gha::Console;

/// How much of a bad answer's body a log line shows.
const BODY_PREVIEW: usize = 120;
/// The longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// One attempt never waits longer than this for an answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed within the same host.
const MAX_REDIRECTS: usize = 5;

/// The HTTP client: rustls with aws-lc-rs, the platform's roots, proxies from the environment, and
/// redirects followed only within the same host (a check must not end up judging another site).
pub fn http_client() -> Result<reqwest::Client> {
    let same_host = reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().and_then(|u| u.host_str().map(str::to_owned));
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if first.as_deref() == attempt.url().host_str() {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .redirect(same_host)
        .user_agent(concat!("eb-deploy/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(ATTEMPT_TIMEOUT)
        .build()
        .context("failed to set up the HTTP client")
}

/// The URL the check asks: `check-url`, or `check-path` on the environment's URL.
pub fn url(plan: &CheckPlan, environment_url: Option<&str>) -> Option<String> {
    match &plan.target {
        CheckTarget::Url(url) => Some(url.clone()),
        CheckTarget::Path(path) => environment_url.map(|base| format!("{}{path}", base.trim_end_matches('/'))),
    }
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub passed: bool,
    /// One sentence: what was asked and what came back.
    pub message: String,
    pub attempts: u32,
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Http { status: u16, body: String },
    Unreachable(String),
}

/// Checks `url` per `plan`, logging one line per attempt.
pub async fn check(client: &reqwest::Client, plan: &CheckPlan, url: &str, console: &Console) -> CheckResult {
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let mut backoff = Duration::from_secs(1);
    let mut attempts = 0;
    let last = loop {
        attempts += 1;
        let sent = Instant::now();
        let remaining = deadline.saturating_duration_since(sent).max(Duration::from_secs(1));
        let answer = attempt(client, url, ATTEMPT_TIMEOUT.min(remaining)).await;
        let took = sent.elapsed().as_millis();
        let ok = judge(plan, &answer);
        match &answer {
            Answer::Http { status, body } if ok => {
                console.info(format!("Check {attempts}: GET {url} → {status} in {took} ms"));
                let _ = body;
                return CheckResult {
                    passed: true,
                    message: format!("GET {url} answered {status}{}", body_clause(plan)),
                    attempts,
                };
            }
            Answer::Http { status, body } => {
                console.info(format!("Check {attempts}: GET {url} → {status} in {took} ms: {}", preview(body)))
            }
            Answer::Unreachable(why) => console.info(format!("Check {attempts}: GET {url} → {why} after {took} ms")),
        }
        if Instant::now() + backoff >= deadline {
            break answer;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    let got = match last {
        Answer::Http { status, body } => format!("the last answer was {status}: {}", preview(&body)),
        Answer::Unreachable(why) => format!("the last attempt got {why}"),
    };
    CheckResult {
        passed: false,
        message: format!(
            "the check failed: GET {url} should answer {}{} within {} (check-timeout); {attempts} attempts, {got}",
            plan.statuses_text(),
            body_clause(plan),
            format_duration(plan.timeout)
        ),
        attempts,
    }
}

fn body_clause(plan: &CheckPlan) -> String {
    plan.body.as_ref().map(|b| format!(" with a body containing {b:?}")).unwrap_or_default()
}

async fn attempt(client: &reqwest::Client, url: &str, timeout: Duration) -> Answer {
    match client.get(url).timeout(timeout).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Enough of the body to find the expected text; a huge page is not read whole.
            let mut body = Vec::new();
            let mut resp = resp;
            while body.len() < 1 << 20 {
                match resp.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            Answer::Http { status, body: String::from_utf8_lossy(&body).into_owned() }
        }
        Err(e) => Answer::Unreachable(describe(&e)),
    }
}

fn judge(plan: &CheckPlan, answer: &Answer) -> bool {
    match answer {
        Answer::Http { status, body } => {
            plan.accepts(*status) && plan.body.as_ref().is_none_or(|want| body.contains(want.as_str()))
        }
        Answer::Unreachable(_) => false,
    }
}

/// The first bytes of a body, on one line.
fn preview(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = one_line.chars().take(BODY_PREVIEW).collect();
    if cut.len() < one_line.len() { format!("{cut:?}…") } else { format!("{cut:?}") }
}

/// A transport error in a few words (reqwest's own text plus its cause).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer (timed out)"
    } else if e.is_connect() {
        "no connection"
    } else if e.is_redirect() {
        "a redirect loop"
    } else {
        "an error"
    };
    let cause = std::error::Error::source(e).map(|s| format!(" ({s})")).unwrap_or_default();
    format!("{kind}{cause}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_statuses;

    fn plan(statuses: &str, body: Option<&str>) -> CheckPlan {
        CheckPlan {
            target: CheckTarget::Path("/health".into()),
            statuses: parse_statuses(statuses).unwrap(),
            body: body.map(str::to_owned),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn statuses_and_bodies_decide() {
        let p = plan("200-299,301", Some("ok"));
        assert!(judge(&p, &Answer::Http { status: 200, body: "all ok".into() }));
        assert!(judge(&p, &Answer::Http { status: 301, body: "ok".into() }));
        assert!(!judge(&p, &Answer::Http { status: 200, body: "fine".into() }), "body must contain ok");
        assert!(!judge(&p, &Answer::Http { status: 500, body: "ok".into() }));
        assert!(!judge(&p, &Answer::Unreachable("no connection".into())));
        assert_eq!(p.statuses_text(), "200-299,301");
        for bad in ["", "abc", "99", "600", "300-200", "200-", "2xx"] {
            assert_eq!(parse_statuses(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_url_is_the_environments_unless_given() {
        let p = plan("200", None);
        assert_eq!(
            url(&p, Some("http://x.elasticbeanstalk.com")).as_deref(),
            Some("http://x.elasticbeanstalk.com/health")
        );
        assert_eq!(url(&p, None), None);
        let given = CheckPlan { target: CheckTarget::Url("https://shop.example.com/ping".into()), ..p };
        assert_eq!(url(&given, Some("http://x")).as_deref(), Some("https://shop.example.com/ping"));
    }

    #[test]
    fn bad_bodies_are_shown_short_and_on_one_line() {
        assert_eq!(preview("line one\nline two"), "\"line one line two\"");
        assert!(preview(&"x".repeat(500)).ends_with('…'));
    }

    /// A tiny local server: answers each connection with the next canned response.
    async fn serve(answers: Vec<&'static str>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for answer in answers {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_slow_start_passes_once_the_app_answers_and_a_sick_app_fails_with_what_it_said() {
        let base = serve(vec![
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\nConnection: close\r\n\r\nstarting",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let (console, out) = Console::captured(false, false);
        let client = http_client().unwrap();
        let r = check(&client, &plan("200", Some("ok")), &format!("{base}/health"), &console).await;
        assert!(r.passed && r.attempts == 2, "{r:?}\n{}", out.text());
        assert!(out.text().contains("→ 503 in") && out.text().contains("\"starting\""), "{}", out.text());

        let sick = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 23\r\nConnection: close\r\n\r\ndatabase is unreachable";
        let base = serve(vec![sick; 10]).await;
        let quick = CheckPlan { timeout: Duration::from_secs(2), ..plan("200-399", None) };
        let r = check(&client, &quick, &format!("{base}/health"), &console).await;
        assert!(!r.passed, "{r:?}");
        assert!(
            r.message.contains("should answer 200-399") && r.message.contains("500: \"database is unreachable\""),
            "{}",
            r.message
        );
    }

    #[tokio::test]
    async fn redirects_are_followed_within_the_host_only() {
        let base = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: /ready\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let (console, _) = Console::captured(false, false);
        let client = http_client().unwrap();
        let r = check(&client, &plan("200", None), &format!("{base}/health"), &console).await;
        assert!(r.passed, "{r:?}");

        let away = "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let base = serve(vec![away; 3]).await;
        let quick = CheckPlan { timeout: Duration::from_secs(1), ..plan("200", None) };
        let r = check(&client, &quick, &format!("{base}/health"), &console).await;
        assert!(!r.passed && r.message.contains("302"), "another host's answer is not followed: {r:?}");
    }
}
