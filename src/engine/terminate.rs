//! Stage: `mode: terminate` — every environment named is checked first: one eb-deploy created for this
//! repository (its [`OWNER_TAG`]) is terminated, any other is refused unless `force-terminate`, and a refusal
//! stops the step before anything is terminated. Then TerminateEnvironment, and a wait until Beanstalk
//! reports each one Terminated. An environment that no longer exists is `unchanged`, so a re-run (or a
//! pull request closed twice) succeeds.

use std::collections::HashSet;

use anyhow::{Result, bail};
use tokio::time::Instant;

use super::rollout::EnvResult;
use super::ship::ImageStage;
use super::{Conclusion, Engine};
use crate::beanstalk::{self, Environment, Status};
use crate::config::OWNER_TAG;
use crate::format::{clock, format_duration};
use crate::gha::Annotation;
use crate::verdict::Outcome;

/// Who an environment was created by, from its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// eb-deploy, for this repository.
    Ours,
    /// Not eb-deploy (no [`OWNER_TAG`]).
    Foreign,
    /// eb-deploy, for another repository.
    OtherRepository(String),
}

/// Reads an environment's tags against `owner` (this run's repository).
pub(crate) fn ownership(tags: &[(String, String)], owner: &str) -> Ownership {
    match tags.iter().find(|(k, _)| k == OWNER_TAG) {
        None => Ownership::Foreign,
        Some((_, v)) if v == owner => Ownership::Ours,
        Some((_, v)) => Ownership::OtherRepository(v.clone()),
    }
}

/// Why `environment` is refused, or `None` when it may be terminated.
pub(crate) fn refusal(environment: &str, ownership: &Ownership) -> Option<String> {
    match ownership {
        Ownership::Ours => None,
        Ownership::Foreign => Some(format!(
            "{environment} was not created by eb-deploy (it has no {OWNER_TAG} tag); set force-terminate: true to terminate it anyway"
        )),
        Ownership::OtherRepository(repo) => Some(format!(
            "{environment} was created by eb-deploy for {repo}, not for this repository; set force-terminate: true to terminate it anyway"
        )),
    }
}

/// Terminates the environments of the step (see the module's description) and waits for them.
pub(crate) async fn terminate<I: ImageStage>(e: &Engine<'_, I>, force: bool) -> Result<Conclusion> {
    let (app, eb) = (e.cfg.application.as_str(), &e.aws.eb);
    let group = e.console.group(format!("Check {}", e.cfg.environments_phrase()));
    let found = eb.not_terminated(app, Some(&e.cfg.environments)).await?;
    // "Nothing to terminate" is a success only when the application is the right one.
    if found.len() < e.cfg.environments.len() && !eb.application_exists(app).await? {
        bail!("application {app} does not exist in {}; check application-name and region", e.aws.region);
    }
    let mut results = Vec::new();
    let mut doomed: Vec<Environment> = Vec::new();
    let mut refusals = Vec::new();
    for name in &e.cfg.environments {
        let Some(env) = found.iter().find(|f| f.name.eq_ignore_ascii_case(name)).cloned() else {
            let message = format!("{name} does not exist in application {app} (terminated already?); nothing to do");
            e.console.info(&message);
            e.record_env(name, Outcome::Unchanged, message.clone());
            results.push(result(name, Outcome::Unchanged, message, None, None));
            continue;
        };
        e.journal.record(|f| {
            let facts = f.environment(name);
            facts.previous_version_label = env.version_label.clone();
            facts.observe(&env);
        });
        let tags = match &env.arn {
            Some(arn) => eb.tags(arn).await?,
            None => Vec::new(),
        };
        let owner = ownership(&tags, &e.cfg.owner);
        e.console.info(format!(
            "{} ({}) runs {}: {}; {}",
            env.name,
            env.id,
            env.version_label.as_deref().unwrap_or("no version"),
            env.status,
            match &owner {
                Ownership::Ours => format!("created by eb-deploy for {}", e.cfg.owner),
                Ownership::Foreign => "not created by eb-deploy".to_owned(),
                Ownership::OtherRepository(repo) => format!("created by eb-deploy for {repo}"),
            }
        ));
        match refusal(&env.name, &owner) {
            Some(why) if !force => refusals.push(why),
            Some(_) => e.console.warning(
                format!(
                    "force-terminate: terminating {}, which {}",
                    env.name,
                    match &owner {
                        Ownership::OtherRepository(repo) => format!("eb-deploy created for {repo}"),
                        _ => "eb-deploy did not create".to_owned(),
                    }
                ),
                None,
            ),
            None => {}
        }
        doomed.push(env);
    }
    if !refusals.is_empty() {
        bail!("refusing to terminate: {}; nothing was terminated", refusals.join("; "));
    }
    drop(group);

    // Events from the service's clock: the time of the first termination answer (less a second's rounding).
    let mut since_ms: Option<i64> = None;
    let mut waiting = Vec::new();
    for env in doomed {
        if env.status == Status::Terminating {
            e.console.info(format!("{} is being terminated already", env.name));
            waiting.push(env);
            continue;
        }
        match eb.terminate(&env.id, &env.name).await {
            Ok(started) => {
                e.journal.observe(&env.name, &started.environment);
                let at = started.environment.updated_ms.or(env.updated_ms).unwrap_or_else(beanstalk::now_ms) - 1_000;
                since_ms = Some(since_ms.map_or(at, |s| s.min(at)));
                e.console.info(format!(
                    "Terminating {} (request {})",
                    env.name,
                    started.request_id.as_deref().unwrap_or("unknown")
                ));
                waiting.push(env);
            }
            Err(err) => {
                let message = format!("{err:#}");
                e.announce_env(&env.name, Outcome::Failed, message.clone());
                results.push(ended(env, Outcome::Failed, message));
            }
        }
    }
    if !e.cfg.wait.enabled {
        for env in waiting {
            let message = format!("termination of {} started; not waiting (wait: false)", env.name);
            e.record_env(&env.name, Outcome::Started, message.clone());
            results.push(ended(env, Outcome::Started, message));
        }
    } else if !waiting.is_empty() {
        let since_ms =
            since_ms.or(waiting.iter().filter_map(|env| env.updated_ms).min()).unwrap_or_else(beanstalk::now_ms);
        results.extend(wait_terminated(e, waiting, since_ms).await);
    }
    results.sort_by_key(|r| e.cfg.environments.iter().position(|n| n.eq_ignore_ascii_case(&r.name)));
    Ok(e.conclude(results, None))
}

fn result(
    name: &str,
    outcome: Outcome,
    message: String,
    previous: Option<String>,
    env: Option<Environment>,
) -> EnvResult {
    EnvResult::untouched(name, outcome, message, previous, env)
}

/// How `env`'s termination ended.
fn ended(env: Environment, outcome: Outcome, message: String) -> EnvResult {
    result(&env.name.clone(), outcome, message, env.version_label.clone(), Some(env))
}

/// Polls events and the environments (one call each per `cadence.grace`, under 30 calls a minute) until each
/// is Terminated or `wait-timeout` passes.
async fn wait_terminated<I: ImageStage>(
    e: &Engine<'_, I>,
    mut waiting: Vec<Environment>,
    since_ms: i64,
) -> Vec<EnvResult> {
    let eb = &e.aws.eb;
    let started = Instant::now();
    let deadline = started + e.cfg.wait.timeout;
    let mut seen = HashSet::new();
    let mut results = Vec::new();
    let names: Vec<String> = waiting.iter().map(|env| env.name.clone()).collect();
    while !waiting.is_empty() {
        tokio::time::sleep(e.cadence.grace).await;
        for ev in eb.events_since(&e.cfg.application, since_ms).await.unwrap_or_default() {
            let Some(env) = ev.environment.as_deref().filter(|n| names.iter().any(|x| x.eq_ignore_ascii_case(n)))
            else {
                continue;
            };
            if !seen.insert((ev.date_ms, env.to_owned(), ev.message.clone())) {
                continue;
            }
            let prefix = if e.several() { format!("[{env}] ") } else { String::new() };
            if ev.is_error() {
                e.console.error(format!("{prefix}{}", ev.message), Some(&Annotation::titled("Elastic Beanstalk")));
            } else {
                e.console.info(format!("{} {:<5} {prefix}{}", clock(ev.date_ms), ev.severity, ev.message));
            }
            e.journal.record(|f| f.environment(env).events.push(ev.clone()));
        }
        let ids: Vec<String> = waiting.iter().map(|env| env.id.clone()).collect();
        let answers = match eb.environments_by_id(&ids).await {
            Ok(answers) => answers,
            Err(err) => {
                e.console.warning(format!("could not read the environments (will retry): {err:#}"), None);
                Vec::new()
            }
        };
        let mut still = Vec::new();
        for env in waiting {
            let now = answers.iter().find(|a| a.id == env.id).cloned();
            if let Some(now) = &now {
                e.journal.observe(&env.name, now);
            }
            let terminated = now.as_ref().is_some_and(|n| n.status == Status::Terminated);
            if terminated {
                e.journal.span(&env.name, "terminate", started);
                let message = format!("{} was terminated", env.name);
                e.announce_env(&env.name, Outcome::Terminated, message.clone());
                results.push(ended(now.unwrap_or(env), Outcome::Terminated, message));
            } else {
                still.push(now.unwrap_or(env));
            }
        }
        waiting = still;
        if !waiting.is_empty() && Instant::now() + e.cadence.grace > deadline {
            for env in waiting.drain(..) {
                let message = format!(
                    "{} was still {} after {} (wait-timeout); Elastic Beanstalk goes on terminating it",
                    env.name,
                    env.status,
                    format_duration(e.cfg.wait.timeout)
                );
                e.announce_env(&env.name, Outcome::TimedOut, message.clone());
                results.push(ended(env, Outcome::TimedOut, message));
            }
        }
    }
    if !e.several() {
        e.journal.phase("Terminate and wait", started.elapsed());
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_what_eb_deploy_created_for_this_repository_is_ours() {
        let owner = "team/shop";
        assert_eq!(ownership(&tags(&[(OWNER_TAG, "team/shop"), ("pr", "12")]), owner), Ownership::Ours);
        assert_eq!(ownership(&tags(&[("elasticbeanstalk:environment-name", "pr-12")]), owner), Ownership::Foreign);
        assert_eq!(
            ownership(&tags(&[(OWNER_TAG, "team/other")]), owner),
            Ownership::OtherRepository("team/other".into())
        );
        assert_eq!(refusal("pr-12", &Ownership::Ours), None);
        let why = refusal("shop-prod", &Ownership::Foreign).unwrap();
        assert!(why.contains("not created by eb-deploy") && why.contains("force-terminate: true"), "{why}");
        let why = refusal("pr-12", &Ownership::OtherRepository("team/other".into())).unwrap();
        assert!(why.contains("for team/other"), "{why}");
    }
}
