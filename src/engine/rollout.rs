//! Stage: roll the version out to the environments — find them all in one call, then for each (in parallel up to
//! `max-parallel`, or one after another): wait out (or abort) another operation, start the update, and wait for
//! the verdict, every wait served by one shared [`Watch`]. `on-failure` decides whether a failure stops the
//! fleet, and whether the environments it moved go back to their previous version.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::ship::ImageStage;
use super::{Engine, settings};
use crate::beanstalk::{self, Environment, Status, UpdateRefusal};
use crate::config::OnFailure;
use crate::gha::Annotation;
use crate::verdict::{self, Outcome, Readiness, Verdict};
use crate::wait::{Target, Watch};

/// Refused updates (another update got in first) tried again before giving up.
const MAX_UPDATE_ATTEMPTS: u32 = 5;

/// How one environment's rollout ended.
#[derive(Debug, Clone)]
pub(crate) struct EnvResult {
    pub name: String,
    pub outcome: Outcome,
    pub message: String,
    /// This step started an update of it (so it is this step's to undo).
    pub moved: bool,
    /// The version it ran before this step.
    pub previous: Option<String>,
    /// Its last state.
    pub env: Option<Environment>,
}

impl EnvResult {
    /// The result for an environment this step did not start an update of (nothing of it is this step's to undo).
    pub(crate) fn untouched(
        name: &str,
        outcome: Outcome,
        message: String,
        previous: Option<String>,
        env: Option<Environment>,
    ) -> Self {
        EnvResult { name: name.to_owned(), outcome, message, moved: false, previous, env }
    }
}

/// The environments of the step (and the live one of a blue/green pair), found in one call, and the names of
/// those missing that `create-environment` will create. Nothing is changed when one is missing (and not to be
/// created), or busy with `on-busy: fail`.
pub(crate) async fn check_environments<I: ImageStage>(
    e: &Engine<'_, I>,
) -> Result<(Vec<Environment>, Option<Environment>, Vec<String>)> {
    let app = e.cfg.application.as_str();
    let eb = &e.aws.eb;
    let mut wanted = e.cfg.environments.clone();
    wanted.extend(e.cfg.swap_with.clone());
    let _group = e.console.group(format!("Check {}", wanted.join(", ")));
    let found = eb.environments(app, &wanted).await?;
    let find = |name: &str| found.iter().find(|f| f.name.eq_ignore_ascii_case(name)).cloned();
    let missing: Vec<&String> = wanted.iter().filter(|n| find(n).is_none()).collect();
    let live_missing = e.cfg.swap_with.as_ref().is_some_and(|l| missing.contains(&l));
    let to_create = e.cfg.create.environment.is_some() && !live_missing;
    if !missing.is_empty() && !to_create {
        if !eb.application_exists(app).await? {
            bail!(
                "application {app} does not exist in {}; check application-name and region (or set create-application: true and create-environment: true to create it with the environment)",
                e.aws.region
            );
        }
        let names = eb.environment_names(app).await?;
        let known = if names.is_empty() { "it has none".to_owned() } else { format!("it has: {}", names.join(", ")) };
        let input = if live_missing && missing.len() == 1 { "swap-with" } else { "environment-name" };
        let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let (noun, verb) = if missing.len() == 1 { ("environment", "does") } else { ("environments", "do") };
        let create = if input == "environment-name" { ", or set create-environment: true to create it" } else { "" };
        bail!("{noun} {list} {verb} not exist in application {app} ({known}); check {input} and region{create}");
    }
    let missing: Vec<String> = missing.into_iter().cloned().collect();
    let mut targets = Vec::new();
    for name in &e.cfg.environments {
        let Some(env) = find(name) else { continue };
        e.journal.record(|f| {
            let facts = f.environment(name);
            facts.previous_version_label = env.version_label.clone();
            facts.observe(&env);
        });
        e.console.info(format!(
            "{} ({}) runs {}: {} / {}",
            env.name,
            env.id,
            env.version_label.as_deref().unwrap_or("no version"),
            env.status,
            env.health
        ));
        if verdict::readiness(env.status, e.cfg.on_busy) == Readiness::Refuse {
            bail!(verdict::busy_refusal(&env.name, env.status));
        }
        targets.push(env);
    }
    let live = e.cfg.swap_with.as_deref().and_then(find);
    if let Some(live) = &live {
        e.console.info(format!(
            "{} ({}) is live at {}: {} / {}",
            live.name,
            live.id,
            live.cname.as_deref().unwrap_or("(no CNAME)"),
            live.status,
            live.health
        ));
    }
    Ok((targets, live, missing))
}

/// An environment already running the version, healthy: nothing to do.
pub(crate) fn unchanged<I: ImageStage>(e: &Engine<'_, I>, env: &Environment, label: &str) -> EnvResult {
    e.console.info(format!("{} already runs {label} and is {}: nothing to do", env.name, env.health));
    let message = format!("{} already ran {label}; no update was made", env.name);
    e.record_env(&env.name, Outcome::Unchanged, message.clone());
    EnvResult::untouched(&env.name, Outcome::Unchanged, message, env.version_label.clone(), Some(env.clone()))
}

/// An environment not updated because another one failed first (`on-failure: stop`).
pub(crate) fn skipped<I: ImageStage>(e: &Engine<'_, I>, env: Environment) -> EnvResult {
    let message = format!("{} was not updated: another environment failed first (on-failure: stop)", env.name);
    e.console.info(&message);
    e.record_env(&env.name, Outcome::Skipped, message.clone());
    EnvResult::untouched(&env.name.clone(), Outcome::Skipped, message, env.version_label.clone(), Some(env))
}

/// Rolls `label` out to every environment in `targets` (each with its own label: a rollback returns each
/// to its own previous version), per `strategy` and `on-failure`; results in the order given.
pub(crate) async fn fleet<I: ImageStage>(e: &Engine<'_, I>, targets: Vec<(Environment, String)>) -> Vec<EnvResult> {
    let several = targets.len() > 1;
    let watch = Watch::new(&e.aws.eb, e.console, e.journal, e.cadence, &e.cfg.application, several);
    let gate = Semaphore::new(e.cfg.strategy.concurrency());
    let halted = AtomicBool::new(false);
    let (watch, gate, halted) = (&watch, &gate, &halted);
    let runs = targets.into_iter().map(|(env, label)| async move {
        // The semaphore is fair: environments start in the order given.
        let _permit = gate.acquire().await;
        if halted.load(Ordering::SeqCst) {
            return skipped(e, env);
        }
        let result = rollout_one(e, watch, env, &label).await;
        if !result.outcome.is_success() && e.cfg.on_failure != OnFailure::Continue {
            halted.store(true, Ordering::SeqCst);
        }
        result
    });
    watch.serve(join_all(runs)).await
}

/// Waits out (or aborts) another update, starts ours (with the settings [`settings::for_update`] says go with
/// `label`), and waits for the verdict.
pub(crate) async fn rollout_one<I: ImageStage>(
    e: &Engine<'_, I>,
    watch: &Watch<'_>,
    env: Environment,
    label: &str,
) -> EnvResult {
    let name = env.name.clone();
    let previous = env.version_label.clone();
    let result = |outcome, message: String, moved, env| EnvResult {
        name: name.clone(),
        outcome,
        message,
        moved,
        previous: previous.clone(),
        env,
    };
    let eb = &e.aws.eb;
    // What the environment is doing, as last seen: only a Ready one is updated.
    let mut status = env.status;
    let mut env = env;
    let mut attempts = 0;
    let started = loop {
        attempts += 1;
        match verdict::readiness(status, e.cfg.on_busy) {
            Readiness::Ready => {}
            Readiness::Refuse => {
                let message = verdict::busy_refusal(&name, status);
                return result(e.announce_env(&name, Outcome::Failed, message.clone()), message, false, Some(env));
            }
            busy => {
                if busy == Readiness::Abort {
                    e.console.info(format!("{name} is {status}: aborting that update (on-busy: abort)"));
                    if let Err(err) = eb.abort_update(&env.id).await {
                        // It may have finished meanwhile; waiting tells.
                        e.console.warning(format!("{err:#}"), None);
                    }
                } else {
                    e.console.info(format!(
                        "{name} is {status}: waiting up to {} for it to be Ready (on-busy: wait)",
                        crate::format::format_duration(e.cfg.wait.timeout)
                    ));
                }
                let since = Instant::now();
                let ready = watch.until_ready(&env, e.cfg.wait.timeout).await;
                e.journal.span(&name, "wait for Ready", since);
                if !e.several() {
                    e.journal.phase("Wait for the environment to be Ready", since.elapsed());
                }
                env = match ready {
                    // Someone else put it on the label meanwhile (or Beanstalk's own revert, for a rollback).
                    Ok(env) if verdict::unchanged(&env, label, e.cfg.wait.min_health) => {
                        return unchanged(e, &env, label);
                    }
                    Ok(env) => env,
                    Err(Verdict::TimedOut { .. }) => {
                        let (outcome, message) = verdict::busy_timeout(&name, &e.cfg.wait);
                        e.announce_env(&name, outcome, message.clone());
                        return result(outcome, message, false, Some(env));
                    }
                    Err(verdict) => {
                        let (outcome, message) = verdict::conclusion(&verdict, &name, label, &e.cfg.wait, None);
                        e.announce_env(&name, outcome, message.clone());
                        return result(outcome, message, false, Some(env));
                    }
                };
            }
        }
        match eb.update_environment(&env.id, label, &settings::for_update(e, &name, label)).await {
            Ok(Ok(started)) => break started,
            Ok(Err(refused)) if refused.reason == Some(UpdateRefusal::Busy) && attempts < MAX_UPDATE_ATTEMPTS => {
                // Another operation got in first: the environment is busy again, as if seen Updating.
                e.console.info(format!("{name} became busy before our update: {}", refused.message));
                status = Status::Updating;
            }
            Ok(Err(refused)) => {
                let message = format!("Elastic Beanstalk refused to update {name}: {}", refused.message);
                e.announce_env(&name, Outcome::Failed, message.clone());
                return result(Outcome::Failed, message, false, Some(env));
            }
            Err(err) => {
                let message = format!("{err:#}");
                e.announce_env(&name, Outcome::Failed, message.clone());
                return result(Outcome::Failed, message, false, Some(env));
            }
        }
    };
    e.ledger.version_used();
    e.ledger.update_started(&started.environment.id);
    e.journal.observe(&name, &started.environment);
    e.console
        .info(format!("Deploying {label} to {name} (request {})", started.request_id.as_deref().unwrap_or("unknown")));

    if !e.cfg.wait.enabled {
        e.ledger.update_settled(&started.environment.id);
        let message = format!("update to {label} started; not waiting (wait: false), so the result is not verified");
        e.record_env(&name, Outcome::Started, message.clone());
        return result(Outcome::Started, message, true, Some(started.environment));
    }

    let wait_started = Instant::now();
    let started_ms = started.environment.updated_ms.unwrap_or_else(beanstalk::now_ms);
    let target =
        Target { environment: &started.environment, label, request_id: started.request_id.as_deref(), started_ms };
    let outcome = watch.settle(&target, &e.cfg.wait).await;
    e.journal.record(|f| f.environment(&name).events.extend(outcome.events.iter().cloned()));
    e.journal.span(&name, &format!("deploy {label}"), wait_started);
    if !e.several() {
        e.journal.phase("Deploy and wait", wait_started.elapsed());
    }
    let mut verdict = outcome.verdict;
    if let Verdict::TimedOut { .. } = verdict
        && e.cfg.abort_on_timeout
    {
        verdict = Verdict::TimedOut { aborted: abort(e, &started.environment.id).await };
    }
    if !matches!(verdict, Verdict::TimedOut { aborted: false }) {
        e.ledger.update_settled(&started.environment.id);
    }
    if let Some(env) = &outcome.environment {
        e.journal.observe(&name, env);
    }
    let (mut outcome_kind, mut message) =
        verdict::conclusion(&verdict, &name, label, &e.cfg.wait, outcome.environment.as_ref());
    if outcome_kind == Outcome::Deployed
        && let Some(plan) = &e.cfg.check
    {
        let since = Instant::now();
        let url = outcome.environment.as_ref().and_then(Environment::url);
        let checked = match crate::check::url(plan, url.as_deref()) {
            Some(url) => {
                let _group = e.console.group(format!("Check {url}"));
                match crate::check::http_client() {
                    Ok(client) => crate::check::check(&client, plan, &url, e.console).await,
                    Err(err) => crate::check::CheckResult { passed: false, message: format!("{err:#}"), attempts: 0 },
                }
            }
            None => crate::check::CheckResult {
                passed: false,
                message: format!("{name} has no URL (no CNAME) for check-path; give check-url"),
                attempts: 0,
            },
        };
        e.journal.span(&name, "check", since);
        if checked.passed {
            message = format!("{message}; the check passed: {}", checked.message);
        } else {
            outcome_kind = Outcome::Failed;
            message = format!("{label} is running on {name} but {}", checked.message);
        }
    }
    e.announce_env(&name, outcome_kind, message.clone());
    result(outcome_kind, message, true, outcome.environment)
}

async fn abort<I: ImageStage>(e: &Engine<'_, I>, env_id: &str) -> bool {
    match e.aws.eb.abort_update(env_id).await {
        Ok(()) => {
            e.console
                .info("Aborted the update (abort-on-timeout); Elastic Beanstalk rolls back to the previous version");
            true
        }
        Err(err) => {
            e.console.warning(format!("could not abort the update: {err:#}"), None);
            false
        }
    }
}

/// Which environments a rollback returns to their previous version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollbackScope {
    /// `rollback-on-failure`: those whose deploy failed.
    Failed,
    /// `on-failure: rollback`: every one this step moved.
    Moved,
}

/// Returns environments this step moved (only the failed ones, or all) to the version they ran before, waits
/// for it and checks it as the deploy was checked. Never one this step did not change, nor one Beanstalk's
/// own revert already returned. Each result says what happened; a rollback that fails says so loudly.
pub(crate) async fn roll_back<I: ImageStage>(e: &Engine<'_, I>, results: &mut [EnvResult], scope: RollbackScope) {
    let moved: Vec<(Environment, String)> = results
        .iter()
        .filter(|r| r.moved && (scope == RollbackScope::Moved || !r.outcome.is_success()))
        .filter_map(|r| {
            let env = r.env.clone()?;
            let previous = r.previous.clone()?;
            // Beanstalk's own revert may already have returned it.
            (!(env.runs(&previous) && env.is_ready())).then_some((env, previous))
        })
        .collect();
    if moved.is_empty() {
        return;
    }
    let names: Vec<String> = moved.iter().map(|(env, previous)| format!("{} to {previous}", env.name)).collect();
    let why = match scope {
        RollbackScope::Failed => "rollback-on-failure",
        RollbackScope::Moved => "on-failure: rollback",
    };
    e.console.info(format!("{why}: returning {}", names.join(", ")));
    let undone = fleet(e, moved).await;
    for back in undone {
        let Some(r) = results.iter_mut().find(|r| r.name == back.name) else { continue };
        let previous = r.previous.clone().unwrap_or_default();
        let failed_version = e.cfg.version_label.clone();
        if matches!(back.outcome, Outcome::Deployed | Outcome::Unchanged) {
            r.outcome = Outcome::RolledBack;
            r.message = format!("{}; rolled back to {previous} ({why}), which runs again", r.message);
            e.journal.record(|f| f.environment(&r.name).rolled_back_to = Some(previous.clone()));
        } else {
            r.outcome = Outcome::Failed;
            let running = back
                .env
                .as_ref()
                .and_then(|env| env.version_label.clone())
                .unwrap_or_else(|| "an unknown version".to_owned());
            r.message = format!(
                "{}; ROLLING BACK TO {previous} FAILED TOO: {} — {} runs {running}, not {previous} (and {failed_version} failed): look at it now",
                r.message, back.message, r.name
            );
            e.console.error(&r.message, Some(&Annotation::titled(format!("eb-deploy: rollback of {} failed", r.name))));
        }
        r.env = back.env;
        e.record_env(&r.name, r.outcome, r.message.clone());
    }
}

impl<I: ImageStage> Engine<'_, I> {
    /// More than one environment in this step.
    pub(crate) fn several(&self) -> bool {
        self.cfg.environments.len() > 1
    }

    /// Announces one environment's outcome (a notice or an error annotation, titled with its name when the
    /// step has several) and records it.
    pub(crate) fn announce_env(&self, name: &str, outcome: Outcome, message: String) -> Outcome {
        let title = if self.several() { format!("eb-deploy: {name}") } else { "eb-deploy".to_owned() };
        if outcome.is_success() {
            self.console.notice(&message, Some(&Annotation::titled(title)));
        } else {
            self.console.error(&message, Some(&Annotation::titled(title)));
        }
        self.record_env(name, outcome, message);
        outcome
    }

    /// Records one environment's outcome for the report.
    pub(crate) fn record_env(&self, name: &str, outcome: Outcome, message: String) {
        self.journal.record(|f| {
            let facts = f.environment(name);
            facts.result = Some(outcome);
            facts.message = message;
        });
    }
}
