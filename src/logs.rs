//! Stage: after a failed deploy, the instances' tail logs — `RequestEnvironmentInfo` (InfoType `tail`), its
//! completion event, `RetrieveEnvironmentInfo`, and each instance's presigned URL downloaded — so the reason
//! of the failure is in the job, not only in the console or `eb logs`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use crate::beanstalk::{Beanstalk, Environment};

/// How long the logs may take to be compiled (`eb logs` waits two minutes; a failed job should not).
pub const LOGS_WAIT: Duration = Duration::from_secs(60);
/// How often the request's events are read while waiting.
const POLL: Duration = Duration::from_secs(2);
/// The lines kept per instance (Beanstalk's `tail` is the last 100 lines of each log file).
pub const MAX_LINES: usize = 200;
/// The bytes kept per instance, so a few instances never make the job summary too big.
pub const MAX_BYTES: usize = 48 * 1024;

/// The event that says the logs are ready (what `eb logs` waits for), and the one that says they are not.
const PULLED: &str = "Pulled logs for environment instances.";
const NOT_PULLED: &str = "Failed to pull logs";

/// The last lines of one instance's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLog {
    pub instance: String,
    pub lines: Vec<String>,
}

/// Requests, waits for, and downloads the environment's tail logs.
pub async fn tail(
    eb: &Beanstalk,
    http: &reqwest::Client,
    application: &str,
    env: &Environment,
    wait: Duration,
) -> Result<Vec<InstanceLog>> {
    let since_ms = env.updated_ms.unwrap_or_else(crate::beanstalk::now_ms) - 1_000;
    let request_id = eb.request_tail_logs(&env.id).await?;
    let deadline = Instant::now() + wait;
    loop {
        tokio::time::sleep(POLL).await;
        let events = eb.events_since(application, since_ms).await.unwrap_or_default();
        let ours = events.iter().filter(|e| {
            e.environment.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&env.name))
                && match (&e.request_id, &request_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        let mut pulled = false;
        for e in ours {
            if e.message.contains(NOT_PULLED) {
                bail!("Elastic Beanstalk could not compile them: {}", e.message);
            }
            pulled |= e.message.contains(PULLED);
        }
        if pulled {
            break;
        }
        if Instant::now() + POLL > deadline {
            bail!("they were not ready within {} s", wait.as_secs());
        }
    }
    let mut entries = eb.retrieve_tail_logs(&env.id).await?;
    // Newest first per instance: an earlier request's logs may still be listed.
    entries.sort_by_key(|e| std::cmp::Reverse(e.sampled_ms));
    let mut logs: Vec<InstanceLog> = Vec::new();
    for entry in entries {
        if logs.iter().any(|l| l.instance == entry.instance) {
            continue;
        }
        let text = download(http, &entry.url).await.with_context(|| format!("instance {}", entry.instance))?;
        logs.push(InstanceLog { instance: entry.instance, lines: last_lines(&text, MAX_LINES, MAX_BYTES) });
    }
    if logs.is_empty() {
        bail!("Elastic Beanstalk listed no instance logs");
    }
    logs.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(logs)
}

async fn download(http: &reqwest::Client, url: &str) -> Result<String> {
    let resp = http.get(url).timeout(Duration::from_secs(30)).send().await.context("failed to download the logs")?;
    let status = resp.status();
    if !status.is_success() {
        bail!("downloading the logs answered {status}");
    }
    let bytes = resp.bytes().await.context("failed to read the logs")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `max_lines` lines of `text`, at most `max_bytes` of them.
pub fn last_lines(text: &str, max_lines: usize, max_bytes: usize) -> Vec<String> {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for line in text.lines().rev() {
        let line = line.trim_end();
        if kept.len() == max_lines || bytes + line.len() > max_bytes {
            break;
        }
        bytes += line.len() + 1;
        kept.push(line.to_owned());
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_are_kept_within_the_limits() {
        let text = (1..=300).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
        let kept = last_lines(&text, 200, 1 << 20);
        assert_eq!(kept.len(), 200);
        assert_eq!(kept.first().map(String::as_str), Some("line 101"));
        assert_eq!(kept.last().map(String::as_str), Some("line 300"));
        let kept = last_lines(&text, 200, 40);
        assert_eq!(kept, ["line 297", "line 298", "line 299", "line 300"]);
    }
}
