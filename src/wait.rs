//! Waiting for environments to settle: one watch serves every environment of the step, so the calls it makes
//! stay flat in their number. Each poll is one `DescribeEvents` for the whole application (events handed to
//! their environment by name) and, when any environment needs one, one `DescribeEnvironments` for all of them.
//! The decisions are [`crate::verdict::Tracker`]'s; this module only polls, logs each new event once, and keeps
//! to a call budget.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::beanstalk::{Beanstalk, Environment, Event};
use crate::config::WaitPlan;
use crate::format::{clock, format_duration};
use crate::gha::{Annotation, Console};
use crate::journal::Journal;
use crate::verdict::{Failure, Step, Timing, Tracker, Verdict};

/// How often to ask. The defaults keep a wait at or under 30 Beanstalk calls a minute, also on deploys of a
/// few seconds (the budget starts empty, so no stretch from the updates on goes above `calls_per_second`):
/// events every 2 s as long as a call stays in reserve, so that the environment read an ending event calls
/// for goes out at once, and the verdict comes within one event poll (0-2 s) of Beanstalk's own. Environment
/// reads go before event polls when the budget is short: a fleet whose environments settle at separate polls
/// has its verdicts first, and its events a little later.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// The first DescribeEvents after an update was accepted: updates seldom end sooner, and skipping the
    /// earlier polls keeps short deploys within the call budget.
    pub first_events: Duration,
    /// DescribeEvents while an update runs.
    pub events: Duration,
    /// DescribeEnvironments when events say nothing.
    pub environment: Duration,
    /// DescribeEnvironments after an event that ends an update, until the status reflects it.
    pub follow_up: Duration,
    /// Both calls while waiting for health to reach `min-health`, or for a busy environment to be Ready.
    pub grace: Duration,
    /// Before concluding "reverted" from a Ready-on-another-label answer alone (it can be a stale read).
    pub revert_confirm: Duration,
    /// Calls per second the watch may make on average, whatever the number of environments (Beanstalk's
    /// limit is shared by the account and region).
    pub calls_per_second: f64,
    /// Calls saved up in quiet stretches, for the bursts around completions.
    pub burst: f64,
    /// Calls an event poll leaves in the budget, for the environment reads that its events call for.
    pub reserve: f64,
}

impl Default for Cadence {
    fn default() -> Self {
        Self {
            first_events: Duration::from_secs(4),
            events: Duration::from_secs(2),
            environment: Duration::from_secs(30),
            follow_up: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            revert_confirm: Duration::from_secs(10),
            // A little under 30 a minute, so that a wait measured from the update's answer stays under it.
            calls_per_second: 0.49,
            burst: 20.0,
            reserve: 1.0,
        }
    }
}

/// What a wait ended with.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    pub verdict: Verdict,
    /// The last environment answer.
    pub environment: Option<Environment>,
    /// The environment's events logged during the wait, oldest first.
    pub events: Vec<Event>,
}

/// The update being waited for.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The environment, as the update's answer described it.
    pub environment: &'a Environment,
    pub label: &'a str,
    /// RequestId of the UpdateEnvironment call; its events carry it.
    pub request_id: Option<&'a str>,
    /// When the update started, by the service's clock (epoch ms).
    pub started_ms: i64,
}

/// How many events a timeline keeps.
const TIMELINE_MAX: usize = 500;
/// Failed polls in a row (after the SDK's own retries) before giving up on Beanstalk.
const MAX_POLL_FAILURES: u32 = 12;
/// Overlap when asking for events, so one written late with an earlier timestamp is still seen.
const EVENT_OVERLAP_MS: i64 = 5_000;

/// A token bucket: the watch spends one token per call.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
    rate: f64,
    cap: f64,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.cap);
        self.at = now;
    }

    /// Spends a token when `keep` more are left after it; otherwise says when that will be.
    fn take(&mut self, now: Instant, keep: f64) -> Result<(), Instant> {
        self.refill(now);
        let need = 1.0 + keep;
        if self.tokens >= need {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(now + Duration::from_secs_f64((need - self.tokens) / self.rate))
        }
    }
}

enum Want {
    /// A busy environment, until it is Ready.
    Ready(oneshot::Sender<Result<Environment, Verdict>>),
    /// An update, until its verdict.
    Verdict { tracker: Box<Tracker>, follow_ups: u32, done: oneshot::Sender<WaitOutcome> },
}

struct Entry {
    id: String,
    name: String,
    want: Want,
    /// Events older than this are never shown (they belong to earlier operations).
    floor_ms: i64,
    next_env: Instant,
    deadline: Instant,
    last: Option<Environment>,
    timeline: Vec<Event>,
}

struct State {
    entries: Vec<Entry>,
    closed: bool,
    next_events: Option<Instant>,
    cursor_ms: i64,
    seen: HashSet<(i64, String, String)>,
    budget: Budget,
    failures: u32,
}

/// The watch over every environment the step waits for: [`Watch::serve`] runs the waits and polls for them.
pub struct Watch<'a> {
    eb: &'a Beanstalk,
    console: &'a Console,
    journal: &'a Journal,
    cadence: Cadence,
    application: &'a str,
    /// Name each event's environment in the log (several environments).
    name_events: bool,
    state: Mutex<State>,
    wake: Notify,
}

impl<'a> Watch<'a> {
    /// A watch over environments of `application`.
    pub fn new(
        eb: &'a Beanstalk,
        console: &'a Console,
        journal: &'a Journal,
        cadence: Cadence,
        application: &'a str,
        name_events: bool,
    ) -> Self {
        let now = Instant::now();
        let state = State {
            entries: Vec::new(),
            closed: false,
            next_events: None,
            cursor_ms: i64::MIN,
            seen: HashSet::new(),
            // Empty at the start: from the updates on, never more than `calls_per_second` times the time elapsed.
            budget: Budget { tokens: 0.0, at: now, rate: cadence.calls_per_second, cap: cadence.burst },
            failures: 0,
        };
        Self { eb, console, journal, cadence, application, name_events, state: Mutex::new(state), wake: Notify::new() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, entry: Entry, first_events: Duration) {
        let mut st = self.state();
        let at = Instant::now() + first_events;
        st.next_events = Some(st.next_events.map_or(at, |t| t.min(at)));
        st.cursor_ms = if st.entries.is_empty() { entry.floor_ms } else { st.cursor_ms.min(entry.floor_ms) };
        st.entries.push(entry);
        drop(st);
        self.wake.notify_one();
    }

    /// No more waits will be added: [`Watch::drive`] returns once the current ones end.
    pub fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }

    /// Waits while `env` is busy with another operation; `Ok` once it is Ready, `Err` with the verdict when it
    /// is terminated, cannot be read, or stays busy past `timeout`.
    pub async fn until_ready(&self, env: &Environment, timeout: Duration) -> Result<Environment, Verdict> {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let entry = Entry {
            id: env.id.clone(),
            name: env.name.clone(),
            want: Want::Ready(tx),
            floor_ms: crate::beanstalk::now_ms(),
            next_env: now,
            deadline: now + timeout,
            last: None,
            timeline: Vec::new(),
        };
        self.add(entry, Duration::ZERO);
        rx.await.unwrap_or(Err(Verdict::TimedOut { aborted: false }))
    }

    /// Waits for the update to settle and returns the verdict. Never returns early on transient errors.
    pub async fn settle(&self, target: &Target<'_>, plan: &WaitPlan) -> WaitOutcome {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let timing = Timing { health_grace: plan.health_grace, revert_confirm: self.cadence.revert_confirm };
        let tracker = Tracker::new(target.label, target.request_id, target.started_ms, plan.min_health, timing);
        let entry = Entry {
            id: target.environment.id.clone(),
            name: target.environment.name.clone(),
            want: Want::Verdict { tracker: Box::new(tracker), follow_ups: 0, done: tx },
            floor_ms: target.started_ms - 1_000,
            next_env: now + self.cadence.environment / 2,
            deadline: now + plan.timeout,
            last: Some(target.environment.clone()),
            timeline: Vec::new(),
        };
        let last = entry.last.clone();
        self.add(entry, self.cadence.first_events);
        rx.await.unwrap_or(WaitOutcome {
            verdict: Verdict::TimedOut { aborted: false },
            environment: last,
            events: Vec::new(),
        })
    }

    /// Runs `waits` (which add their waits to this watch) while polling for them; the watch is closed once they
    /// end. Every environment of a step shares the polls this way.
    pub async fn serve<T>(&self, waits: impl Future<Output = T>) -> T {
        let (result, ()) = tokio::join!(
            async {
                let result = waits.await;
                self.close();
                result
            },
            self.drive()
        );
        result
    }

    /// Polls for every registered wait until the watch is closed and no wait is left.
    pub async fn drive(&self) {
        loop {
            let wake_at = {
                let st = self.state();
                if st.entries.is_empty() {
                    if st.closed {
                        return;
                    }
                    None
                } else {
                    let env_due = st.entries.iter().map(|e| e.next_env.min(e.deadline)).min();
                    [st.next_events, env_due].into_iter().flatten().min()
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => continue,
                    }
                }
                None => {
                    self.wake.notified().await;
                    continue;
                }
            }
            self.expire();
            self.poll_events().await;
            self.poll_environments().await;
        }
    }

    /// Ends the waits whose time is up.
    fn expire(&self) {
        let now = Instant::now();
        let mut st = self.state();
        let (expired, kept): (Vec<Entry>, Vec<Entry>) = st.entries.drain(..).partition(|e| e.deadline <= now);
        st.entries = kept;
        drop(st);
        for e in expired {
            let verdict = Verdict::TimedOut { aborted: false };
            finish(e, verdict);
        }
    }

    async fn poll_events(&self) {
        let now = Instant::now();
        let since = {
            let mut st = self.state();
            match st.next_events {
                Some(at) if at <= now && !st.entries.is_empty() => {}
                _ => return,
            }
            if let Err(later) = st.budget.take(now, self.cadence.reserve) {
                st.next_events = Some(later);
                return;
            }
            let floor = st.entries.iter().map(|e| e.floor_ms).min().unwrap_or(st.cursor_ms);
            floor.max(st.cursor_ms - EVENT_OVERLAP_MS)
        };
        let result = self.eb.events_since(self.application, since).await;
        let now = Instant::now();
        let mut st = self.state();
        match result {
            Ok(events) => {
                let mut ended = false;
                for e in events {
                    let Some(env_name) = e.environment.clone() else { continue };
                    let Some(i) = st.entries.iter().position(|x| x.name.eq_ignore_ascii_case(&env_name)) else {
                        continue;
                    };
                    if e.date_ms < st.entries[i].floor_ms || !st.seen.insert((e.date_ms, env_name, e.message.clone())) {
                        continue;
                    }
                    st.cursor_ms = st.cursor_ms.max(e.date_ms);
                    let entry = &mut st.entries[i];
                    self.log_event(&entry.name, &e);
                    if entry.timeline.len() < TIMELINE_MAX {
                        entry.timeline.push(e.clone());
                    }
                    if let Want::Verdict { tracker, follow_ups, .. } = &mut entry.want
                        && tracker.on_event(&e)
                    {
                        entry.next_env = now;
                        *follow_ups = 3;
                        ended = true;
                    }
                }
                // The environments updated with it often end within seconds of one another: reading them all
                // (one call) gives their verdicts without waiting for their own events, on a short budget.
                if ended {
                    read_soon(&mut st.entries, now + self.cadence.follow_up, 2);
                }
            }
            Err(err) => self.console.debug(format!("could not read events: {err:#}")),
        }
        let grace_only = st.entries.iter().all(|e| match &e.want {
            Want::Ready(_) => true,
            Want::Verdict { tracker, .. } => tracker.in_grace(),
        });
        st.next_events = Some(now + if grace_only { self.cadence.grace } else { self.cadence.events });
    }

    async fn poll_environments(&self) {
        let now = Instant::now();
        let ids: Vec<String> = {
            let mut st = self.state();
            if !st.entries.iter().any(|e| e.next_env <= now) {
                return;
            }
            if let Err(later) = st.budget.take(now, 0.0) {
                for e in st.entries.iter_mut().filter(|e| e.next_env <= now) {
                    e.next_env = later;
                }
                return;
            }
            st.entries.iter().map(|e| e.id.clone()).collect()
        };
        let result = self.eb.environments_by_id(&ids).await;
        let now = Instant::now();
        let mut st = self.state();
        let answers = match result {
            Ok(answers) => {
                st.failures = 0;
                answers
            }
            Err(err) => {
                st.failures += 1;
                self.console.warning(format!("could not read the environment (will retry): {err:#}"), None);
                if st.failures >= MAX_POLL_FAILURES {
                    let error = format!("{err:#}");
                    let lost: Vec<Entry> = st.entries.drain(..).collect();
                    drop(st);
                    for e in lost {
                        finish(e, Verdict::Failed(Failure::LostContact { error: error.clone() }));
                    }
                    return;
                }
                for e in &mut st.entries {
                    e.next_env = e.next_env.max(now + self.cadence.grace);
                }
                return;
            }
        };
        let mut done = Vec::new();
        let mut kept = Vec::new();
        for mut entry in st.entries.drain(..) {
            // A deleted environment can appear more than once (old incarnations): prefer a live one.
            let mine = answers.iter().filter(|a| a.id == entry.id);
            let env = mine.clone().find(|a| !a.is_terminated()).or_else(|| mine.clone().next()).cloned();
            let Some(env) = env else {
                done.push((entry, Some(Verdict::Failed(Failure::Terminated))));
                continue;
            };
            self.journal.observe(&entry.name, &env);
            entry.last = Some(env.clone());
            match &mut entry.want {
                Want::Ready(_) => {
                    if env.is_terminated() {
                        done.push((entry, Some(Verdict::Failed(Failure::Terminated))));
                    } else if env.is_ready() {
                        done.push((entry, None));
                    } else {
                        entry.next_env = now + self.cadence.grace;
                        kept.push(entry);
                    }
                }
                Want::Verdict { tracker, follow_ups, .. } => {
                    let next = match tracker.on_environment(&env, now) {
                        Step::Done(verdict) => Err(verdict),
                        Step::HealthPending { first } => {
                            if first {
                                let on = if self.name_events { format!(" on {}", entry.name) } else { String::new() };
                                self.console.info(format!(
                                    "{} is running{on}; waiting up to {} for health to reach {}",
                                    tracker.target(),
                                    format_duration(tracker.timing().health_grace),
                                    tracker.min_health().name()
                                ));
                            }
                            Ok(now + self.cadence.grace)
                        }
                        Step::InProgress | Step::ConfirmingRevert if *follow_ups > 0 => {
                            *follow_ups -= 1;
                            Ok(now + self.cadence.follow_up)
                        }
                        Step::ConfirmingRevert => Ok(now + self.cadence.grace),
                        Step::InProgress => Ok(now + self.cadence.environment),
                    };
                    match next {
                        Ok(at) => {
                            entry.next_env = at;
                            kept.push(entry);
                        }
                        Err(verdict) => done.push((entry, Some(verdict))),
                    }
                }
            }
        }
        // Others updated with the ones that just ended are likely to end next: keep reading while reads end some.
        if done.iter().any(|(e, _)| matches!(e.want, Want::Verdict { .. })) {
            read_soon(&mut kept, now + self.cadence.follow_up, 1);
        }
        st.entries = kept;
        drop(st);
        for (entry, verdict) in done {
            match verdict {
                Some(v) => finish(entry, v),
                None => {
                    if let Want::Ready(tx) = entry.want {
                        let _ = tx.send(entry.last.ok_or(Verdict::Failed(Failure::Terminated)));
                    }
                }
            }
        }
    }

    fn log_event(&self, env: &str, e: &Event) {
        let prefix = if self.name_events { format!("[{env}] ") } else { String::new() };
        if e.is_error() {
            self.console.error(format!("{prefix}{}", e.message), Some(&Annotation::titled("Elastic Beanstalk")));
        } else {
            self.console.info(format!("{} {:<5} {prefix}{}", clock(e.date_ms), e.severity, e.message));
        }
    }
}

/// Ends one wait with `verdict`.
/// Reads the environments still waiting for a verdict by `at`, and at least `reads` times more.
fn read_soon(entries: &mut [Entry], at: Instant, reads: u32) {
    for entry in entries {
        if let Want::Verdict { follow_ups, .. } = &mut entry.want {
            *follow_ups = (*follow_ups).max(reads);
            entry.next_env = entry.next_env.min(at);
        }
    }
}

fn finish(entry: Entry, verdict: Verdict) {
    match entry.want {
        Want::Ready(tx) => {
            let _ = tx.send(Err(verdict));
        }
        Want::Verdict { done, .. } => {
            let _ = done.send(WaitOutcome { verdict, environment: entry.last, events: entry.timeline });
        }
    }
}
