//! Every decision eb-deploy takes about Beanstalk's state, as pure functions over observed facts: what to do
//! before the update (nothing, update, wait, abort, refuse), whether an event belongs to this update, the
//! assessment while waiting (with the health-grace and revert-confirmation timing given as inputs), what a
//! version's status means, and the words each outcome is reported in.
//!
//! Nothing here calls AWS or sleeps; time is passed in, so a test can walk any sequence of answers.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::beanstalk::{Environment, Event, Health, Status, Version, VersionStatus};
use crate::config::{MinHealth, OnBusy, WaitPlan};
use crate::format::format_duration;

/// How the step (or one environment's rollout) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The environment settled on the new version with acceptable health.
    Deployed,
    /// The environment already ran the version, healthy: nothing to do.
    Unchanged,
    /// The update was accepted but not waited for (`wait: false`).
    Started,
    /// Two environments swapped CNAMEs (mode `swap`).
    Swapped,
    /// The environment was terminated (mode `terminate`).
    Terminated,
    /// Not started, because another environment of the fleet failed first (`on-failure: stop`).
    Skipped,
    /// The deploy did not go out: the environment was returned to its previous version.
    RolledBack,
    Failed,
    TimedOut,
    Cancelled,
}

impl Outcome {
    /// The `result` output value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Unchanged => "unchanged",
            Outcome::Started => "started",
            Outcome::Swapped => "swapped",
            Outcome::Terminated => "terminated",
            Outcome::Skipped => "skipped",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Whether the step succeeds (exit code 0).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::Deployed | Outcome::Unchanged | Outcome::Started | Outcome::Swapped | Outcome::Terminated
        )
    }

    /// How bad it is, to pick the worst result of a fleet: nothing to do < done < not verified < not done
    /// < timed out < undone < failed < cancelled.
    fn badness(self) -> u8 {
        match self {
            Outcome::Unchanged => 0,
            Outcome::Deployed | Outcome::Swapped | Outcome::Terminated => 1,
            Outcome::Started => 2,
            Outcome::Skipped => 3,
            Outcome::TimedOut => 4,
            Outcome::RolledBack => 5,
            Outcome::Failed => 6,
            Outcome::Cancelled => 7,
        }
    }

    /// The worst of several results (`Unchanged` when there are none).
    pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        outcomes.into_iter().max_by_key(|o| o.badness()).unwrap_or(Outcome::Unchanged)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// --- before the update ---------------------------------------------------------------------------

/// Whether the environment can take the update now, and if not what `on-busy` says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Ready: update now.
    Ready,
    /// Busy with another operation: wait until it is Ready (`on-busy: wait`).
    Wait,
    /// Busy: abort that operation, then wait until Ready (`on-busy: abort`).
    Abort,
    /// Busy and `on-busy: fail`: nothing is deployed.
    Refuse,
}

/// What to do with an environment in `status`.
pub fn readiness(status: Status, on_busy: OnBusy) -> Readiness {
    if status.is_ready() {
        return Readiness::Ready;
    }
    match on_busy {
        OnBusy::Wait => Readiness::Wait,
        OnBusy::Abort => Readiness::Abort,
        OnBusy::Fail => Readiness::Refuse,
    }
}

/// The environment already runs `label`, Ready and healthy enough: there is nothing to deploy.
pub fn unchanged(env: &Environment, label: &str, min: MinHealth) -> bool {
    env.is_ready() && env.runs(label) && min.accepts(env.health)
}

/// Why a busy environment is refused (`on-busy: fail`), before anything was changed.
pub fn busy_refusal(environment: &str, status: Status) -> String {
    format!(
        "environment {environment} is {status} (another operation is in progress) and on-busy is fail; retry later, or set on-busy: wait or abort"
    )
}

/// What Beanstalk's processing of a version says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Usable: processed, or created without processing (nothing will change that).
    Usable,
    /// Still being processed.
    Pending,
    /// Beanstalk could not process the bundle.
    Failed,
    /// The version does not exist (any more).
    Missing,
}

/// The state of a version Beanstalk may be processing.
pub fn version_state(version: Option<&Version>) -> VersionState {
    match version.map(|v| v.status) {
        None => VersionState::Missing,
        Some(VersionStatus::Processed | VersionStatus::Unprocessed | VersionStatus::Unknown) => VersionState::Usable,
        Some(VersionStatus::Failed) => VersionState::Failed,
        Some(VersionStatus::Processing | VersionStatus::Building) => VersionState::Pending,
    }
}

// --- while waiting -------------------------------------------------------------------------------

/// The waiter's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ready on the target label with acceptable health and no error event.
    Deployed,
    /// The deploy failed; the message says how, and what the environment runs now.
    Failed(Failure),
    /// Not settled within `wait-timeout`.
    TimedOut { aborted: bool },
    /// Beanstalk completed this update (its success event carries the update's RequestId), then another
    /// operation replaced the version: ours did go out.
    Superseded { running: Option<String> },
}

/// Why a deploy failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Beanstalk reverted: the environment is Ready on another label.
    Reverted { running: Option<String>, error: Option<String> },
    /// Ready on the target, but an ERROR/FATAL event belongs to this update.
    ErrorEvent { message: String },
    /// Ready on the target, but health did not reach `min-health` within `health-grace`.
    Unhealthy { health: Health, health_status: String },
    /// The environment was terminated while waiting.
    Terminated,
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
                    plan.min_health.name()
                )
            }
            Failure::Terminated => "the environment was terminated during the deploy".to_owned(),
            Failure::LostContact { error } => {
                format!("lost contact with Elastic Beanstalk while waiting ({error}); the deploy may still be running")
            }
        }
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
    /// Completed, then replaced by another operation.
    Superseded { running: Option<String> },
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
    /// "Environment update completed successfully." with this update's RequestId was seen.
    pub completed: bool,
    /// The environment was seen not Ready since the update started (so a later Ready answer is fresh).
    pub saw_in_progress: bool,
    /// A Ready-on-another-label answer has persisted at least the revert confirmation time.
    pub revert_confirmed: bool,
}

/// The verdict rules, as a pure function of one environment answer and what was observed so far.
pub fn assess(env: &Environment, target: &str, min: MinHealth, seen: &Observed) -> Assessment {
    if env.is_terminated() {
        return Assessment::Failed(Failure::Terminated);
    }
    if seen.completed && seen.errors.is_empty() && !seen.failure_marker && !env.runs(target) {
        return Assessment::Superseded { running: env.version_label.clone() };
    }
    if !env.is_ready() {
        return Assessment::InProgress;
    }
    if !env.runs(target) {
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
    if min.accepts(env.health) { Assessment::Settled } else { Assessment::HealthPending }
}

/// Whether an event belongs to the update started by the request `request_id` at `started_ms` (service
/// clock): by its RequestId when both carry one, else by its time.
pub fn belongs_to_update(event: &Event, request_id: Option<&str>, started_ms: i64) -> bool {
    match (&event.request_id, request_id) {
        (Some(id), Some(want)) => id == want,
        _ => event.date_ms >= started_ms,
    }
}

/// Beanstalk's own word that an update succeeded (the EB CLI's success marker).
const SUCCESS_MARKER: &str = "Environment update completed successfully.";

/// Event texts that end an update (or report its failure): describe the environment at once. Only the
/// final ones: an earlier step ("New application version was deployed …", an instance's ERROR) would cost a
/// describe that still finds the update running.
pub fn is_terminal_marker(e: &Event) -> bool {
    const MARKERS: &[&str] = &[
        "Environment update completed successfully.",
        "Failed to deploy application.",
        "Update environment operation is complete, but with errors.",
        "Successfully deployed new configuration to environment.",
        // A launch (create-environment) ends with one of these.
        "Successfully launched environment:",
        "Create environment operation is complete, but with errors.",
        "reverted to the previous",
        "was aborted",
    ];
    MARKERS.iter().any(|m| e.message.contains(m))
}

/// Event texts that say the update failed.
pub fn is_failure_marker(e: &Event) -> bool {
    e.message.contains("Failed to deploy application.")
        || e.message.contains("complete, but with errors")
        || e.message.contains("reverted to the previous")
}

/// The timing rules of one wait, given as inputs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long health may take to reach the minimum once Ready on the target (`health-grace`).
    pub health_grace: Duration,
    /// How long a Ready-on-another-label answer must persist before it counts as a revert by itself (it can
    /// be a stale read from before the update).
    pub revert_confirm: Duration,
}

/// What the tracker concluded from one environment answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The wait is over.
    Done(Verdict),
    /// Ready on the target, health not there yet; `first` on the first such answer.
    HealthPending { first: bool },
    /// Ready on another label, not yet definitive: look again soon.
    ConfirmingRevert,
    /// Still updating.
    InProgress,
}

/// One environment's wait, as a state machine fed with events and environment answers.
#[derive(Debug, Clone)]
pub struct Tracker {
    target: String,
    request_id: Option<String>,
    started_ms: i64,
    min: MinHealth,
    timing: Timing,
    seen: Observed,
    grace_started: Option<Instant>,
    other_label_since: Option<Instant>,
}

impl Tracker {
    /// Tracks the update to `target` started by `request_id` at `started_ms` (service clock).
    pub fn new(target: &str, request_id: Option<&str>, started_ms: i64, min: MinHealth, timing: Timing) -> Self {
        Self {
            target: target.to_owned(),
            request_id: request_id.map(str::to_owned),
            started_ms,
            min,
            timing,
            seen: Observed::default(),
            grace_started: None,
            other_label_since: None,
        }
    }

    /// Takes in a new event; true when it ends an update, so the environment is worth describing now.
    pub fn on_event(&mut self, e: &Event) -> bool {
        let ours = belongs_to_update(e, self.request_id.as_deref(), self.started_ms);
        if ours && e.is_error() {
            self.seen.errors.push(e.clone());
        }
        if ours && is_failure_marker(e) {
            self.seen.failure_marker = true;
        }
        // Only by RequestId: a time-attributed success could be another operation's.
        if self.request_id.is_some() && e.request_id == self.request_id && e.message.contains(SUCCESS_MARKER) {
            self.seen.completed = true;
        }
        is_terminal_marker(e)
    }

    /// The label being deployed.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The timing rules this wait follows.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The lowest health accepted.
    pub fn min_health(&self) -> MinHealth {
        self.min
    }

    /// True while health is being waited for (events are then polled on the grace cadence).
    pub fn in_grace(&self) -> bool {
        self.grace_started.is_some()
    }

    /// Takes in an environment answer seen at `now`.
    pub fn on_environment(&mut self, env: &Environment, now: Instant) -> Step {
        if !env.is_ready() {
            self.seen.saw_in_progress = true;
        }
        if env.is_ready() && !env.runs(&self.target) {
            let since = *self.other_label_since.get_or_insert(now);
            self.seen.revert_confirmed = now.duration_since(since) >= self.timing.revert_confirm;
        } else {
            self.other_label_since = None;
        }
        match assess(env, &self.target, self.min, &self.seen) {
            Assessment::Settled => Step::Done(Verdict::Deployed),
            Assessment::Superseded { running } => Step::Done(Verdict::Superseded { running }),
            Assessment::Failed(f) => Step::Done(Verdict::Failed(f)),
            Assessment::HealthPending => {
                let first = self.grace_started.is_none();
                let since = *self.grace_started.get_or_insert(now);
                if now.duration_since(since) >= self.timing.health_grace {
                    let failure = Failure::Unhealthy { health: env.health, health_status: env.health_status.clone() };
                    return Step::Done(Verdict::Failed(failure));
                }
                Step::HealthPending { first }
            }
            Assessment::InProgress => {
                self.grace_started = None;
                if self.other_label_since.is_some() { Step::ConfirmingRevert } else { Step::InProgress }
            }
        }
    }
}

// --- the words -----------------------------------------------------------------------------------

/// The outcome of a verdict and the sentence that reports it. `env` is the last environment answer.
pub fn conclusion(
    verdict: &Verdict,
    environment: &str,
    label: &str,
    plan: &WaitPlan,
    env: Option<&Environment>,
) -> (Outcome, String) {
    match verdict {
        Verdict::Deployed => {
            let env = env.cloned().unwrap_or_default();
            let url = env.url().map(|u| format!(" at {u}")).unwrap_or_default();
            (Outcome::Deployed, format!("{environment} runs {label}, {}{url}", env.health))
        }
        Verdict::Failed(failure) => (Outcome::Failed, failure.describe(label, plan)),
        Verdict::Superseded { running } => (
            Outcome::Deployed,
            format!(
                "{label} was deployed to {environment} (Beanstalk: \"{SUCCESS_MARKER}\"), and another operation has replaced it since: it runs {}",
                running.as_deref().unwrap_or("no version")
            ),
        ),
        Verdict::TimedOut { aborted } => {
            let status = env.map_or_else(|| "unknown".to_owned(), |e| e.status.to_string());
            let what = if *aborted {
                "the update was aborted and Elastic Beanstalk is rolling back"
            } else {
                "the update goes on; set abort-on-timeout: true to abort it instead"
            };
            (
                Outcome::TimedOut,
                format!(
                    "{environment} did not settle on {label} within {} (status {status}); {what}",
                    format_duration(plan.timeout)
                ),
            )
        }
    }
}

/// The outcome when the environment stayed busy with another operation for the whole wait.
pub fn busy_timeout(environment: &str, plan: &WaitPlan) -> (Outcome, String) {
    (
        Outcome::TimedOut,
        format!(
            "{environment} stayed busy for {} (on-busy: wait); nothing was deployed",
            format_duration(plan.timeout)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(status: &str, label: &str, health: &str) -> Environment {
        Environment {
            id: "e-1".into(),
            name: "env".into(),
            status: Status::parse(status),
            health: Health::parse(health),
            version_label: Some(label.into()),
            ..Environment::default()
        }
    }

    fn error_event(msg: &str) -> Event {
        Event { date_ms: 0, severity: "ERROR".into(), message: msg.into(), request_id: None, environment: None }
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
        let info = |m: &str| Event {
            date_ms: 0,
            severity: "INFO".into(),
            message: m.into(),
            request_id: None,
            environment: None,
        };
        assert!(is_terminal_marker(&info("Environment update completed successfully.")));
        assert!(is_terminal_marker(&error_event("Failed to deploy application.")));
        assert!(!is_terminal_marker(&info("New application version was deployed to running EC2 instances.")));
        assert!(!is_terminal_marker(&error_event("Instance deployment failed. For details, see 'eb-engine.log'.")));
    }

    #[test]
    fn a_completed_update_replaced_by_another_is_still_deployed() {
        let timing = Timing { health_grace: Duration::from_secs(60), revert_confirm: Duration::from_secs(10) };
        let mut t = Tracker::new("v2", Some("r2"), 0, MinHealth::Green, timing);
        let done = |rid: &str| Event {
            date_ms: 5,
            severity: "INFO".into(),
            message: SUCCESS_MARKER.into(),
            request_id: Some(rid.into()),
            environment: None,
        };
        // Another request's success says nothing about ours.
        t.on_event(&done("r3"));
        assert_eq!(t.on_environment(&env("Updating", "v3", "Grey"), Instant::now()), Step::InProgress);
        t.on_event(&done("r2"));
        assert_eq!(
            t.on_environment(&env("Updating", "v3", "Grey"), Instant::now()),
            Step::Done(Verdict::Superseded { running: Some("v3".into()) })
        );
    }

    #[test]
    fn busy_environments_follow_on_busy() {
        assert_eq!(readiness(Status::Ready, OnBusy::Fail), Readiness::Ready);
        assert_eq!(readiness(Status::Updating, OnBusy::Wait), Readiness::Wait);
        assert_eq!(readiness(Status::Aborting, OnBusy::Abort), Readiness::Abort);
        assert_eq!(readiness(Status::Launching, OnBusy::Fail), Readiness::Refuse);
        assert!(unchanged(&env("Ready", "v2", "Green"), "v2", MinHealth::Green));
        assert!(!unchanged(&env("Ready", "v2", "Yellow"), "v2", MinHealth::Green));
        assert!(!unchanged(&env("Updating", "v2", "Green"), "v2", MinHealth::Any));
        assert!(!unchanged(&env("Ready", "v1", "Green"), "v2", MinHealth::Any));
    }

    #[test]
    fn events_belong_by_request_id_else_by_time() {
        let mut e = error_event("x");
        e.date_ms = 1_000;
        assert!(!belongs_to_update(&e, Some("r1"), 2_000));
        assert!(belongs_to_update(&e, Some("r1"), 500));
        e.request_id = Some("r2".into());
        assert!(!belongs_to_update(&e, Some("r1"), 0));
        assert!(belongs_to_update(&e, Some("r2"), 5_000));
    }

    #[test]
    fn the_worst_result_of_a_fleet_wins() {
        use Outcome::*;
        assert_eq!(Outcome::worst([Unchanged, Deployed, Unchanged]), Deployed);
        assert_eq!(Outcome::worst([Deployed, Started]), Started);
        assert_eq!(Outcome::worst([Deployed, Failed, Skipped, TimedOut]), Failed);
        assert_eq!(Outcome::worst([Failed, Cancelled]), Cancelled);
        assert_eq!(Outcome::worst([RolledBack, Deployed, TimedOut]), RolledBack);
        assert!(!Skipped.is_success() && Swapped.is_success());
    }

    #[test]
    fn version_states() {
        let v = |status| Version { label: "v".into(), status, bucket: None, key: None, created_ms: None };
        assert_eq!(version_state(None), VersionState::Missing);
        assert_eq!(version_state(Some(&v(VersionStatus::Processing))), VersionState::Pending);
        assert_eq!(version_state(Some(&v(VersionStatus::Processed))), VersionState::Usable);
        assert_eq!(version_state(Some(&v(VersionStatus::Unprocessed))), VersionState::Usable);
        assert_eq!(version_state(Some(&v(VersionStatus::Failed))), VersionState::Failed);
    }

    #[test]
    fn the_tracker_times_health_grace_and_revert_confirmation() {
        let timing = Timing { health_grace: Duration::from_secs(60), revert_confirm: Duration::from_secs(10) };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = Tracker::new("v2", Some("r"), 0, MinHealth::Green, timing);
        assert_eq!(t.on_environment(&env("Ready", "v2", "Yellow"), at(0)), Step::HealthPending { first: true });
        assert_eq!(t.on_environment(&env("Ready", "v2", "Yellow"), at(30)), Step::HealthPending { first: false });
        assert!(t.in_grace());
        assert!(matches!(
            t.on_environment(&env("Ready", "v2", "Yellow"), at(60)),
            Step::Done(Verdict::Failed(Failure::Unhealthy { health: Health::Yellow, .. }))
        ));

        // A stale Ready-on-the-old-label answer becomes a revert only once it has lasted revert_confirm.
        let mut t = Tracker::new("v2", Some("r"), 0, MinHealth::Green, timing);
        assert_eq!(t.on_environment(&env("Ready", "v1", "Green"), at(0)), Step::ConfirmingRevert);
        assert_eq!(t.on_environment(&env("Ready", "v1", "Green"), at(5)), Step::ConfirmingRevert);
        assert!(matches!(
            t.on_environment(&env("Ready", "v1", "Green"), at(10)),
            Step::Done(Verdict::Failed(Failure::Reverted { .. }))
        ));

        // An error event of this update turns Ready-on-target into a failure.
        let mut t = Tracker::new("v2", Some("r"), 0, MinHealth::Green, timing);
        let mut e = error_event("Update environment operation is complete, but with errors.");
        e.request_id = Some("r".into());
        assert!(t.on_event(&e));
        assert!(matches!(
            t.on_environment(&env("Ready", "v2", "Green"), at(1)),
            Step::Done(Verdict::Failed(Failure::ErrorEvent { .. }))
        ));
    }
}
