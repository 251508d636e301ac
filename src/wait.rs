//! Waiting for an environment to settle: the polling loop that feeds [`crate::verdict::Tracker`].
//!
//! Events are the fastest signal, so they are polled often; the environment itself is described on a slower
//! cadence and at once when an event says something ended. Every new event is logged once, oldest first.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::beanstalk::{Beanstalk, Environment, Event};
use crate::config::WaitPlan;
use crate::format::{clock, format_duration};
use crate::gha::{Annotation, Console};
use crate::verdict::{Failure, Step, Timing, Tracker, Verdict};

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
        let timing = Timing { health_grace: plan.health_grace, revert_confirm: cadence.revert_confirm };
        let mut tracker = Tracker::new(target.label, target.request_id, target.started_ms, plan.min_health, timing);
        // Nothing has happened yet at the instant the update was accepted.
        let mut next_events = start + cadence.first_events;
        let mut next_env = start + cadence.environment / 2;
        let mut follow_ups = 0u32;
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
                            if tracker.on_event(e) {
                                next_env = now;
                                follow_ups = 3;
                            }
                        }
                    }
                    Err(e) => self.console.debug(format!("could not read events: {e:#}")),
                }
                next_events = now + if tracker.in_grace() { cadence.grace } else { cadence.events };
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
            let step = tracker.on_environment(&env, now);
            last = Some(env);
            next_env = match step {
                Step::Done(verdict) => return WaitOutcome { verdict, environment: last },
                Step::HealthPending { first } => {
                    if first {
                        self.console.info(format!(
                            "{} is running; waiting up to {} for health to reach {}",
                            target.label,
                            format_duration(plan.health_grace),
                            plan.min_health.name()
                        ));
                    }
                    now + cadence.grace
                }
                Step::InProgress | Step::ConfirmingRevert if follow_ups > 0 => {
                    follow_ups -= 1;
                    now + cadence.follow_up
                }
                Step::ConfirmingRevert => now + cadence.grace,
                Step::InProgress => now + cadence.environment,
            };
        }
    }
}
