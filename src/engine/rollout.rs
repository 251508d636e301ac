//! Stage: roll the version out to one environment — find it, wait out (or abort) another operation, start
//! the update, wait for the verdict, abort on timeout when asked.

use anyhow::{Result, bail};
use tokio::time::Instant;

use super::ship::ImageStage;
use super::{Conclusion, Engine};
use crate::beanstalk::{self, Environment, Status, UpdateRefusal};
use crate::verdict::{self, Outcome, Readiness, Verdict};
use crate::wait::{Target, Waiter};

/// Refused updates (another update got in first) tried again before giving up.
const MAX_UPDATE_ATTEMPTS: u32 = 5;

/// The environment must exist in the application; nothing is changed when it does not.
pub(crate) async fn check_environment<I: ImageStage>(e: &Engine<'_, I>) -> Result<Environment> {
    let (app, name) = (e.cfg.application.as_str(), e.cfg.environment.as_str());
    let eb = &e.aws.eb;
    let _group = e.console.group(format!("Check {name}"));
    let Some(env) = eb.environment(app, name).await? else {
        if !eb.application_exists(app).await? {
            bail!(
                "application {app} does not exist in {}; check application-name and region (create the application and environment once, e.g. with the console or `eb create`)",
                e.aws.region
            );
        }
        let names = eb.environment_names(app).await?;
        let known = if names.is_empty() { "it has none".to_owned() } else { format!("it has: {}", names.join(", ")) };
        bail!("environment {name} does not exist in application {app} ({known}); check environment-name and region");
    };
    e.journal.record(|f| {
        f.environment.previous_version_label = env.version_label.clone();
        f.environment.observe(&env);
    });
    e.console.info(format!(
        "{name} ({}) runs {}: {} / {}",
        env.id,
        env.version_label.as_deref().unwrap_or("no version"),
        env.status,
        env.health
    ));
    if verdict::readiness(env.status, e.cfg.on_busy) == Readiness::Refuse {
        bail!(verdict::busy_refusal(name, env.status));
    }
    Ok(env)
}

/// The environment already runs the version: nothing to do.
pub(crate) fn unchanged<I: ImageStage>(e: &Engine<'_, I>, env: &Environment) -> Conclusion {
    let (name, label) = (&e.cfg.environment, &e.cfg.version_label);
    e.console.info(format!("{name} already runs {label} and is {}: nothing to do", env.health));
    Conclusion { outcome: Outcome::Unchanged, message: format!("{name} already ran {label}; no update was made") }
}

/// Waits out (or aborts) another update, starts ours, and waits for the verdict. `created_here`: the
/// version was created by this run (deleted again if it can never be deployed).
pub(crate) async fn rollout<I: ImageStage>(
    e: &Engine<'_, I>,
    env: Environment,
    created_here: bool,
) -> Result<Conclusion> {
    let (name, label) = (e.cfg.environment.as_str(), e.cfg.version_label.as_str());
    let eb = &e.aws.eb;
    let observe = |env: &Environment| e.journal.observe(env);
    let mut waiter = Waiter::new(eb, e.console, e.cadence, beanstalk::now_ms());
    // What the environment is doing, as last seen: only a Ready one is updated.
    let mut status = env.status;
    let mut env = env;
    let mut attempts = 0;
    let started = loop {
        attempts += 1;
        match verdict::readiness(status, e.cfg.on_busy) {
            Readiness::Ready => {}
            Readiness::Refuse => bail!(verdict::busy_refusal(name, status)),
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
                let ready = waiter.until_ready(&e.cfg.application, &env.id, e.cfg.wait.timeout, &observe).await;
                e.journal.phase("Wait for the environment to be Ready", since.elapsed());
                env = match ready {
                    Ok(env) => env,
                    Err(verdict) => {
                        if created_here {
                            e.ledger.discard_version(eb, e.console, false).await;
                        }
                        if let Verdict::TimedOut { .. } = verdict {
                            let (outcome, message) = verdict::busy_timeout(name, &e.cfg.wait);
                            return Ok(e.announce(outcome, message));
                        }
                        return Ok(conclude(e, &verdict, None));
                    }
                };
            }
        }
        match eb.update_environment(&env.id, label).await? {
            Ok(started) => break started,
            Err(refused) if refused.reason == Some(UpdateRefusal::Busy) && attempts < MAX_UPDATE_ATTEMPTS => {
                // Another operation got in first: the environment is busy again, as if seen Updating.
                e.console.info(format!("{name} became busy before our update: {}", refused.message));
                status = Status::Updating;
            }
            Err(refused) => bail!("Elastic Beanstalk refused to update {name}: {}", refused.message),
        }
    };
    e.ledger.version_used();
    e.ledger.update_started(&started.environment.id);
    e.journal.observe(&started.environment);
    e.console
        .info(format!("Deploying {label} to {name} (request {})", started.request_id.as_deref().unwrap_or("unknown")));

    if !e.cfg.wait.enabled {
        e.ledger.update_settled(&started.environment.id);
        let message = format!("update to {label} started; not waiting (wait: false), so the result is not verified");
        return Ok(Conclusion { outcome: Outcome::Started, message });
    }

    let wait_started = Instant::now();
    let started_ms = started.environment.updated_ms.unwrap_or_else(beanstalk::now_ms);
    let mut waiter = Waiter::new(eb, e.console, e.cadence, started_ms - 1_000);
    let target = Target {
        application: &e.cfg.application,
        env_id: &started.environment.id,
        label,
        request_id: started.request_id.as_deref(),
        started_ms,
    };
    let outcome = waiter.settle(&target, &e.cfg.wait, Some(started.environment.clone()), &observe).await;
    e.journal.record(|f| f.environment.events = waiter.timeline.clone());
    e.journal.phase("Deploy and wait", wait_started.elapsed());
    let mut verdict = outcome.verdict;
    if let Verdict::TimedOut { .. } = verdict
        && e.cfg.abort_on_timeout
    {
        verdict = Verdict::TimedOut { aborted: abort(e, &started.environment.id).await };
    }
    if !matches!(verdict, Verdict::TimedOut { aborted: false }) {
        e.ledger.update_settled(&started.environment.id);
    }
    Ok(conclude(e, &verdict, outcome.environment))
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

/// Turns a verdict into the outcome, the message and the annotation.
fn conclude<I: ImageStage>(e: &Engine<'_, I>, verdict: &Verdict, env: Option<Environment>) -> Conclusion {
    if let Some(env) = &env {
        e.journal.observe(env);
    }
    let (outcome, message) =
        verdict::conclusion(verdict, &e.cfg.environment, &e.cfg.version_label, &e.cfg.wait, env.as_ref());
    e.announce(outcome, message)
}
