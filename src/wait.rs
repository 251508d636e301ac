//! Waiting for an environment to settle, and the verdict on the deploy.
//!
//! Events are the fastest signal, so they are polled often; the environment itself is described on a slower
//! cadence and at once when an event says something ended. Success needs all of: Ready, the target label,
//! health at `min-health` (within `health-grace`), and no ERROR/FATAL event belonging to this update.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::beanstalk::{Beanstalk, Environment, Event};
use crate::config::{MinHealth, WaitPlan, format_duration};
use crate::gha::{Annotation, Console};

/// How often to ask. The defaults keep a wait under ~30 Beanstalk calls a minute (24 for events, 2 for the
/// environment, a few more around completion), also on deploys of a few seconds, while reaching a verdict
/// within one event poll (0-2.5 s) of Beanstalk's own.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// The first DescribeEvents after the update was accepted: updates seldom end sooner, and skipping the
    /// earlier polls keeps short deploys within the call budget.
    pub first_events: Duration,
    /// DescribeEvents while the update runs.
    pub events: Duration,
    /// DescribeEnvironments when events say nothing.
    pub environment: Duration,
    /// DescribeEnvironments after an event that ends an update, until the status reflects it.
    pub follow_up: Duration,
    /// Both calls while waiting for health to reach `min-health`.
    pub grace: Duration,
    /// Before concluding "reverted" from a Ready-on-another-label answer alone (it can be a stale read).
    pub revert_confirm: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        Self {
            first_events: Duration::from_secs(4),
            events: Duration::from_millis(2500),
            environment: Duration::from_secs(30),
            follow_up: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            revert_confirm: Duration::from_secs(10),
        }
    }
}

/// The waiter's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ready on the target label with acceptable health and no error event.
    Deployed,
    /// The deploy failed; the message says how, and what the environment runs now.
    Failed(Failure),
    /// Not settled within `wait-timeout`.
    TimedOut { aborted: bool },
}

/// Why a deploy failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Beanstalk reverted: the environment is Ready on another label.
    Reverted { running: Option<String>, error: Option<String> },
    /// Ready on the target, but an ERROR/FATAL event belongs to this update.
    ErrorEvent { message: String },
    /// Ready on the target, but health did not reach `min-health` within `health-grace`.
    Unhealthy { health: String, health_status: String },
    /// The environment was terminated while waiting.
    Terminated,
    /// The environment was busy with another operation and on-busy is fail.
    Busy { status: String },
    /// Beanstalk could not be read for too long.
    LostContact { error: String },
}

impl Failure {
    /// One sentence for logs, annotations and the summary.
    pub fn describe(&self, target: &str, plan: &WaitPlan) -> String {
        match self {
            Failure::Reverted { running, error } => {
                let running = running.as_deref().unwrap_or("no version");
                let cause = error.as_deref().map(|e| format!(" Last error: {e}")).unwrap_or_default();
                format!(
                    "the deploy of {target} failed and Elastic Beanstalk reverted the environment: it runs {running}.{cause}"
                )
            }
            Failure::ErrorEvent { message } => {
                format!("{target} is running but the update reported an error: {message}")
            }
            Failure::Unhealthy { health, health_status } => {
                let status = if health_status.is_empty() { String::new() } else { format!(" ({health_status})") };
                format!(
                    "{target} is running but health is {health}{status} after the {} health-grace; min-health is {}",
                    format_duration(plan.health_grace),
                    min_health_name(plan.min_health)
                )
            }
            Failure::Terminated => "the environment was terminated during the deploy".to_owned(),
            Failure::Busy { status } => {
                format!(
                    "the environment is {status} (another operation is in progress) and on-busy is fail; nothing was deployed"
                )
            }
            Failure::LostContact { error } => {
                format!("lost contact with Elastic Beanstalk while waiting ({error}); the deploy may still be running")
            }
        }
    }
}

fn min_health_name(m: MinHealth) -> &'static str {
    match m {
        MinHealth::Green => "green",
        MinHealth::Yellow => "yellow",
        MinHealth::Any => "any",
    }
}

/// What one look at the environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Still updating (or a possibly stale read): keep waiting.
    InProgress,
    /// Ready on the target, but health is below `min-health`.
    HealthPending,
    /// Success.
    Settled,
    /// Failure, final.
    Failed(Failure),
}

/// Facts gathered during the wait that the environment's state alone does not show.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// ERROR/FATAL events belonging to this update.
    pub errors: Vec<Event>,
    /// "Failed to deploy application." or an equivalent marker was seen.
    pub failure_marker: bool,
    /// The environment was seen not Ready since the update started (so a later Ready answer is fresh).
    pub saw_in_progress: bool,
    /// A Ready-on-another-label answer has persisted at least `revert_confirm`.
    pub revert_confirmed: bool,
}

/// Whether `health` satisfies `min`.
pub fn health_ok(health: &str, min: MinHealth) -> bool {
    match min {
        MinHealth::Any => true,
        MinHealth::Yellow => matches!(health, "Green" | "Yellow"),
        MinHealth::Green => health == "Green",
    }
}

/// The verdict rules, as a pure function of one environment answer and what was observed so far.
pub fn assess(env: &Environment, target: &str, min: MinHealth, seen: &Observed) -> Assessment {
    if env.is_terminated() {
        return Assessment::Failed(Failure::Terminated);
    }
    if !env.is_ready() {
        return Assessment::InProgress;
    }
    if env.version_label.as_deref() != Some(target) {
        let definitive =
            seen.failure_marker || !seen.errors.is_empty() || seen.saw_in_progress || seen.revert_confirmed;
        return if definitive {
            Assessment::Failed(Failure::Reverted {
                running: env.version_label.clone(),
                error: seen.errors.last().map(|e| e.message.clone()),
            })
        } else {
            Assessment::InProgress
        };
    }
    if let Some(first) = seen.errors.first() {
        return Assessment::Failed(Failure::ErrorEvent { message: first.message.clone() });
    }
    if health_ok(&env.health, min) { Assessment::Settled } else { Assessment::HealthPending }
}

/// Event texts that end an update (or report its failure): describe the environment at once. Only the
/// final ones: an earlier step ("New application version was deployed …", an instance's ERROR) would cost a
/// describe that still finds the update running.
fn is_terminal_marker(e: &Event) -> bool {
    const MARKERS: &[&str] = &[
        "Environment update completed successfully.",
        "Failed to deploy application.",
        "Update environment operation is complete, but with errors.",
        "Successfully deployed new configuration to environment.",
        "reverted to the previous",
        "was aborted",
    ];
    MARKERS.iter().any(|m| e.message.contains(m))
}

fn is_failure_marker(e: &Event) -> bool {
    e.message.contains("Failed to deploy application.")
        || e.message.contains("complete, but with errors")
        || e.message.contains("reverted to the previous")
}

/// What the wait ended with.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    pub verdict: Verdict,
    /// The last environment answer.
    pub environment: Option<Environment>,
}

/// The update being waited for.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub application: &'a str,
    pub env_id: &'a str,
    pub label: &'a str,
    /// RequestId of the UpdateEnvironment call; its events carry it.
    pub request_id: Option<&'a str>,
    /// When the update started, by the service's clock (epoch ms).
    pub started_ms: i64,
}

/// Polls events and the environment, logging every new event once, oldest first.
pub struct Waiter<'a> {
    eb: &'a Beanstalk,
    console: &'a Console,
    cadence: Cadence,
    seen: HashSet<(i64, String)>,
    /// Events older than this are never shown (they belong to earlier operations).
    floor_ms: i64,
    /// The newest event date seen.
    cursor_ms: i64,
    /// Every event logged, oldest first (for the job summary).
    pub timeline: Vec<Event>,
}

/// How many events the summary keeps.
const TIMELINE_MAX: usize = 500;
/// Failed polls in a row (after the SDK's own retries) before giving up on Beanstalk.
const MAX_POLL_FAILURES: u32 = 12;
/// Overlap when asking for events, so one written late with an earlier timestamp is still seen.
const EVENT_OVERLAP_MS: i64 = 5_000;

impl<'a> Waiter<'a> {
    /// A waiter that shows events dated at or after `since_ms`.
    pub fn new(eb: &'a Beanstalk, console: &'a Console, cadence: Cadence, since_ms: i64) -> Self {
        Self {
            eb,
            console,
            cadence,
            seen: HashSet::new(),
            floor_ms: since_ms,
            cursor_ms: since_ms,
            timeline: Vec::new(),
        }
    }

    /// Fetches, logs and returns the events not seen before.
    async fn poll_events(&mut self, application: &str, env_id: &str) -> anyhow::Result<Vec<Event>> {
        let since = self.floor_ms.max(self.cursor_ms - EVENT_OVERLAP_MS);
        let events = self.eb.events_since(application, env_id, since).await?;
        let mut new = Vec::new();
        for e in events.into_iter().filter(|e| e.date_ms >= self.floor_ms) {
            if self.seen.insert((e.date_ms, e.message.clone())) {
                self.cursor_ms = self.cursor_ms.max(e.date_ms);
                self.log_event(&e);
                if self.timeline.len() < TIMELINE_MAX {
                    self.timeline.push(e.clone());
                }
                new.push(e);
            }
        }
        Ok(new)
    }

    fn log_event(&self, e: &Event) {
        let line = format!("{} {:<5} {}", clock(e.date_ms), e.severity, e.message);
        if e.is_error() {
            self.console.error(&e.message, Some(&Annotation::titled("Elastic Beanstalk")));
        } else {
            self.console.info(line);
        }
    }

    /// Waits while the environment is busy with another update; `Ok(env)` once it is Ready.
    pub async fn until_ready(
        &mut self,
        application: &str,
        env_id: &str,
        timeout: Duration,
        on_env: &dyn Fn(&Environment),
    ) -> Result<Environment, Verdict> {
        let deadline = Instant::now() + timeout;
        let mut failures = 0;
        loop {
            let _ = self.poll_events(application, env_id).await;
            match self.eb.environment_by_id(env_id).await {
                Ok(Some(env)) => {
                    failures = 0;
                    on_env(&env);
                    if env.is_terminated() {
                        return Err(Verdict::Failed(Failure::Terminated));
                    }
                    if env.is_ready() {
                        return Ok(env);
                    }
                }
                Ok(None) => return Err(Verdict::Failed(Failure::Terminated)),
                Err(e) => {
                    failures += 1;
                    self.console.warning(format!("could not read the environment: {e:#}"), None);
                    if failures >= MAX_POLL_FAILURES {
                        return Err(Verdict::Failed(Failure::LostContact { error: format!("{e:#}") }));
                    }
                }
            }
            if Instant::now() + self.cadence.grace > deadline {
                return Err(Verdict::TimedOut { aborted: false });
            }
            tokio::time::sleep(self.cadence.grace).await;
        }
    }

    /// Waits for the update to settle and returns the verdict. Never returns early on transient errors.
    pub async fn settle(
        &mut self,
        target: &Target<'_>,
        plan: &WaitPlan,
        initial: Option<Environment>,
        on_env: &dyn Fn(&Environment),
    ) -> WaitOutcome {
        let cadence = self.cadence;
        let start = Instant::now();
        let deadline = start + plan.timeout;
        // Nothing has happened yet at the instant the update was accepted.
        let mut next_events = start + cadence.first_events;
        let mut next_env = start + cadence.environment / 2;
        let mut follow_ups = 0u32;
        let mut grace_started: Option<Instant> = None;
        let mut other_label_since: Option<Instant> = None;
        let mut seen = Observed::default();
        let mut last = initial;
        let mut failures = 0u32;

        loop {
            let wake = next_events.min(next_env).min(deadline);
            tokio::time::sleep_until(wake).await;
            let now = Instant::now();
            if now >= deadline {
                return WaitOutcome { verdict: Verdict::TimedOut { aborted: false }, environment: last };
            }

            if now >= next_events {
                match self.poll_events(target.application, target.env_id).await {
                    Ok(new) => {
                        for e in &new {
                            let ours = match (&e.request_id, target.request_id) {
                                (Some(id), Some(want)) => id == want,
                                _ => e.date_ms >= target.started_ms,
                            };
                            if ours && e.is_error() {
                                seen.errors.push(e.clone());
                            }
                            if ours && is_failure_marker(e) {
                                seen.failure_marker = true;
                            }
                            if is_terminal_marker(e) {
                                next_env = now;
                                follow_ups = 3;
                            }
                        }
                    }
                    Err(e) => self.console.debug(format!("could not read events: {e:#}")),
                }
                next_events = now + if grace_started.is_some() { cadence.grace } else { cadence.events };
            }

            if Instant::now() < next_env {
                continue;
            }
            let now = Instant::now();
            let env = match self.eb.environment_by_id(target.env_id).await {
                Ok(Some(env)) => env,
                Ok(None) => {
                    return WaitOutcome { verdict: Verdict::Failed(Failure::Terminated), environment: last };
                }
                Err(e) => {
                    failures += 1;
                    self.console.warning(format!("could not read the environment (will retry): {e:#}"), None);
                    if failures >= MAX_POLL_FAILURES {
                        let failure = Failure::LostContact { error: format!("{e:#}") };
                        return WaitOutcome { verdict: Verdict::Failed(failure), environment: last };
                    }
                    next_env = now + cadence.grace;
                    continue;
                }
            };
            failures = 0;
            on_env(&env);
            if !env.is_ready() {
                seen.saw_in_progress = true;
            }
            if env.is_ready() && env.version_label.as_deref() != Some(target.label) {
                let since = *other_label_since.get_or_insert(now);
                seen.revert_confirmed = now.duration_since(since) >= cadence.revert_confirm;
            } else {
                other_label_since = None;
            }
            let assessment = assess(&env, target.label, plan.min_health, &seen);
            last = Some(env);
            match assessment {
                Assessment::Settled => return WaitOutcome { verdict: Verdict::Deployed, environment: last },
                Assessment::Failed(f) => return WaitOutcome { verdict: Verdict::Failed(f), environment: last },
                Assessment::HealthPending => {
                    let since = *grace_started.get_or_insert_with(|| {
                        self.console.info(format!(
                            "{} is running; waiting up to {} for health to reach {}",
                            target.label,
                            format_duration(plan.health_grace),
                            min_health_name(plan.min_health)
                        ));
                        now
                    });
                    if now.duration_since(since) >= plan.health_grace {
                        let env = last.as_ref().map(|e| (e.health.clone(), e.health_status.clone()));
                        let (health, health_status) = env.unwrap_or_default();
                        let failure = Failure::Unhealthy { health, health_status };
                        return WaitOutcome { verdict: Verdict::Failed(failure), environment: last };
                    }
                    next_env = now + cadence.grace;
                }
                Assessment::InProgress => {
                    grace_started = None;
                    next_env = if follow_ups > 0 {
                        follow_ups -= 1;
                        now + cadence.follow_up
                    } else if other_label_since.is_some() {
                        now + cadence.grace
                    } else {
                        now + cadence.environment
                    };
                }
            }
        }
    }
}

/// `HH:MM:SS` (UTC) of an epoch-millisecond time.
pub fn clock(ms: i64) -> String {
    let formatted = aws_smithy_types::DateTime::from_millis(ms)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    formatted.get(11..19).unwrap_or("--:--:--").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(status: &str, label: &str, health: &str) -> Environment {
        Environment {
            id: "e-1".into(),
            name: "env".into(),
            status: status.into(),
            health: health.into(),
            version_label: Some(label.into()),
            ..Environment::default()
        }
    }

    fn error_event(msg: &str) -> Event {
        Event { date_ms: 0, severity: "ERROR".into(), message: msg.into(), request_id: None }
    }

    #[test]
    fn success_needs_ready_target_label_and_health() {
        let seen = Observed::default();
        assert_eq!(assess(&env("Ready", "v2", "Green"), "v2", MinHealth::Green, &seen), Assessment::Settled);
        assert_eq!(assess(&env("Updating", "v2", "Grey"), "v2", MinHealth::Green, &seen), Assessment::InProgress);
        assert_eq!(assess(&env("Ready", "v2", "Yellow"), "v2", MinHealth::Green, &seen), Assessment::HealthPending);
        assert_eq!(assess(&env("Ready", "v2", "Yellow"), "v2", MinHealth::Yellow, &seen), Assessment::Settled);
        assert_eq!(assess(&env("Ready", "v2", "Red"), "v2", MinHealth::Yellow, &seen), Assessment::HealthPending);
        assert_eq!(assess(&env("Ready", "v2", "Grey"), "v2", MinHealth::Any, &seen), Assessment::Settled);
    }

    #[test]
    fn ready_on_another_label_is_a_revert_only_when_definitive() {
        let fresh = Observed::default();
        assert_eq!(assess(&env("Ready", "v1", "Green"), "v2", MinHealth::Green, &fresh), Assessment::InProgress);
        let after_progress = Observed { saw_in_progress: true, ..Observed::default() };
        let reverted = Failure::Reverted { running: Some("v1".into()), error: None };
        assert_eq!(
            assess(&env("Ready", "v1", "Green"), "v2", MinHealth::Green, &after_progress),
            Assessment::Failed(reverted)
        );
        let with_error = Observed { errors: vec![error_event("Failed to deploy application.")], ..Observed::default() };
        assert_eq!(
            assess(&env("Ready", "v1", "Red"), "v2", MinHealth::Green, &with_error),
            Assessment::Failed(Failure::Reverted {
                running: Some("v1".into()),
                error: Some("Failed to deploy application.".into())
            })
        );
    }

    #[test]
    fn an_error_event_fails_even_on_the_target_label() {
        let seen = Observed { errors: vec![error_event("Instance deployment failed.")], ..Observed::default() };
        assert_eq!(
            assess(&env("Ready", "v2", "Green"), "v2", MinHealth::Green, &seen),
            Assessment::Failed(Failure::ErrorEvent { message: "Instance deployment failed.".into() })
        );
    }

    #[test]
    fn terminated_is_final() {
        let seen = Observed::default();
        assert_eq!(
            assess(&env("Terminating", "v2", "Grey"), "v2", MinHealth::Any, &seen),
            Assessment::Failed(Failure::Terminated)
        );
    }

    #[test]
    fn only_final_events_end_the_wait() {
        let info = |m: &str| Event { date_ms: 0, severity: "INFO".into(), message: m.into(), request_id: None };
        assert!(is_terminal_marker(&info("Environment update completed successfully.")));
        assert!(is_terminal_marker(&error_event("Failed to deploy application.")));
        assert!(!is_terminal_marker(&info("New application version was deployed to running EC2 instances.")));
        assert!(!is_terminal_marker(&error_event("Instance deployment failed. For details, see 'eb-engine.log'.")));
    }

    #[test]
    fn clock_formats_utc() {
        assert_eq!(clock(1_704_164_645_123), "03:04:05");
    }
}
