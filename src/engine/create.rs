//! Stage: create what is missing (`create-application`, `create-environment`). Everything that can refuse is
//! checked before anything changes: the application (or that it may be created), the CNAME prefix
//! (CheckDNSAvailability) and the platform (ListAvailableSolutionStacks). Each missing environment is then
//! launched with the version, its settings and tags (eb-deploy's own [`OWNER_TAG`] among them), and waited for
//! with the same verdict as a deploy: Launching → Ready on the version, health, no error event. Two runs that
//! create the same environment at once end with one environment: the second finds it exists, waits for it,
//! and reports what it finds.

use anyhow::{Result, bail};
use futures_util::future::join_all;
use tokio::time::Instant;

use super::Engine;
use super::rollout::{self, EnvResult};
use super::ship::ImageStage;
use crate::beanstalk::{self, Launched, NewEnvironment};
use crate::config::{OWNER_TAG, Platform};
use crate::verdict::{self, Failure, Outcome, Verdict};
use crate::wait::{Target, Watch};

/// What the step creates, checked.
#[derive(Debug, Clone)]
pub(crate) struct Creation {
    /// The environments to create, in the order given.
    pub environments: Vec<String>,
    /// `Ok(solution stack)` or `Err(platform ARN)`.
    platform: Result<String, String>,
    /// The application must be created first.
    pub application_missing: bool,
}

/// The newest "64bit Amazon Linux 2023 vX.Y.Z running Docker" solution stack, by version.
pub(crate) fn newest_docker(stacks: &[String]) -> Option<&str> {
    let version = |s: &str| -> Option<Vec<u64>> {
        let v = s.strip_prefix("64bit Amazon Linux 2023 v")?.strip_suffix(" running Docker")?;
        v.split('.').map(|n| n.parse().ok()).collect()
    };
    stacks.iter().filter_map(|s| Some((version(s)?, s.as_str()))).max_by(|a, b| a.0.cmp(&b.0)).map(|(_, s)| s)
}

/// Checks that the missing environments can be created, before anything changes: the application exists
/// (or `create-application`), the CNAME prefix is free, the platform is one Beanstalk offers.
pub(crate) async fn check<I: ImageStage>(e: &Engine<'_, I>, missing: &[String]) -> Result<Creation> {
    let (app, eb, region) = (e.cfg.application.as_str(), &e.aws.eb, &e.aws.region);
    let Some(launch) = &e.cfg.create.environment else {
        bail!("environments {} do not exist in application {app}; set create-environment: true", missing.join(", "));
    };
    let application_missing = !eb.application_exists(app).await?;
    if application_missing && !e.cfg.create.application {
        bail!(
            "application {app} does not exist in {region}; set create-application: true to create it with the environment, or check application-name and region"
        );
    }
    if let Some(prefix) = &launch.cname_prefix {
        let (available, cname) = eb.cname_available(prefix).await?;
        if !available {
            bail!("input `cname-prefix`: {cname} is taken by another environment; choose another cname-prefix");
        }
    }
    let platform = match &launch.platform {
        Platform::Arn(arn) => Err(arn.clone()),
        Platform::NewestDocker => {
            let stacks = eb.solution_stacks().await?;
            match newest_docker(&stacks) {
                Some(stack) => Ok(stack.to_owned()),
                None => bail!(
                    "input `solution-stack`: Elastic Beanstalk lists no \"64bit Amazon Linux 2023 … running Docker\" solution stack in {region}; give solution-stack"
                ),
            }
        }
        Platform::SolutionStack(stack) => {
            let stacks = eb.solution_stacks().await?;
            if !stacks.contains(stack) {
                let docker: Vec<&str> = stacks.iter().map(String::as_str).filter(|s| s.contains("Docker")).collect();
                bail!(
                    "input `solution-stack`: Elastic Beanstalk offers no solution stack named {stack:?} in {region}; Docker ones: {}",
                    if docker.is_empty() { "none".to_owned() } else { docker.join(", ") }
                );
            }
            Ok(stack.clone())
        }
    };
    let on = match &platform {
        Ok(stack) => stack.as_str(),
        Err(arn) => arn.as_str(),
    };
    let app_note = if application_missing { format!(" (application {app} too)") } else { String::new() };
    e.console.info(format!(
        "{} does not exist: it will be created{app_note} with {} on {on}",
        missing.join(", "),
        e.cfg.version_label
    ));
    Ok(Creation { environments: missing.to_vec(), platform, application_missing })
}

/// The tags of what eb-deploy creates: the user's, and the repository it was created for.
fn tags<I: ImageStage>(e: &Engine<'_, I>) -> Vec<(String, String)> {
    let mut tags = e.cfg.create.tags.clone();
    tags.push((OWNER_TAG.to_owned(), e.cfg.owner.clone()));
    tags
}

/// Creates the application (just before its first version; a concurrent run may have created it first).
pub(crate) async fn application<I: ImageStage>(e: &Engine<'_, I>) -> Result<()> {
    let app = &e.cfg.application;
    if e.aws.eb.create_application(app, &tags(e)).await? {
        e.console.info(format!("Created application {app}"));
    } else {
        e.console.info(format!("Application {app} was created meanwhile by another run"));
    }
    Ok(())
}

/// Launches every environment to create with `label` (all at once, one watch for all), and waits for each
/// verdict; results in the order given.
pub(crate) async fn launch_all<I: ImageStage>(e: &Engine<'_, I>, creation: &Creation, label: &str) -> Vec<EnvResult> {
    let several = e.several();
    let watch = Watch::new(&e.aws.eb, e.console, e.journal, e.cadence, &e.cfg.application, several);
    let watch = &watch;
    let runs = creation.environments.iter().map(|name| launch_one(e, watch, creation, name, label));
    watch.serve(join_all(runs)).await
}

async fn launch_one<I: ImageStage>(
    e: &Engine<'_, I>,
    watch: &Watch<'_>,
    creation: &Creation,
    name: &str,
    label: &str,
) -> EnvResult {
    let failed = |message: String| {
        e.announce_env(name, Outcome::Failed, message.clone());
        EnvResult::untouched(name, Outcome::Failed, message, None, None)
    };
    let tags = tags(e);
    let launch = e.cfg.create.environment.as_ref();
    let new = NewEnvironment {
        application: &e.cfg.application,
        name,
        label,
        platform: creation.platform.as_deref().map_err(String::as_str),
        cname_prefix: launch.and_then(|l| l.cname_prefix.as_deref()),
        tags: &tags,
        settings: &e.cfg.settings,
    };
    let started = match e.aws.eb.create_environment(&new).await {
        Ok(Launched::Started(started)) => started,
        Ok(Launched::AlreadyExists) => return created_meanwhile(e, watch, name, label).await,
        Err(err) => return failed(format!("{err:#}")),
    };
    e.ledger.version_used();
    e.journal.record(|f| f.environment(name).created = true);
    e.journal.observe(name, &started.environment);
    e.console
        .info(format!("Creating {name} with {label} (request {})", started.request_id.as_deref().unwrap_or("unknown")));
    let env = started.environment.clone();
    if !e.cfg.wait.enabled {
        let message =
            format!("{name} is being created with {label}; not waiting (wait: false), so the result is not verified");
        e.record_env(name, Outcome::Started, message.clone());
        return EnvResult::untouched(name, Outcome::Started, message, None, Some(env));
    }

    let since = Instant::now();
    let started_ms = env.updated_ms.unwrap_or_else(beanstalk::now_ms);
    let target = Target { environment: &env, label, request_id: started.request_id.as_deref(), started_ms };
    let outcome = watch.settle(&target, &e.cfg.wait).await;
    e.journal.record(|f| f.environment(name).events.extend(outcome.events.iter().cloned()));
    e.journal.span(name, &format!("create with {label}"), since);
    if !e.several() {
        e.journal.phase("Create environment and wait", since.elapsed());
    }
    if let Some(env) = &outcome.environment {
        e.journal.observe(name, env);
    }
    let (kind, message) = match &outcome.verdict {
        // A launch that failed leaves an environment with no version: say so, and what to do.
        Verdict::Failed(Failure::Reverted { error, running }) => (
            Outcome::Failed,
            format!(
                "the launch of {name} with {label} failed{}; the environment was created but runs {}: fix the cause and run again (the next run deploys to it), or remove it with mode: terminate",
                error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                running.as_deref().unwrap_or("no version")
            ),
        ),
        verdict => {
            let (kind, message) = verdict::conclusion(verdict, name, label, &e.cfg.wait, outcome.environment.as_ref());
            let message = match kind {
                Outcome::Deployed => {
                    format!("{name} was created and {}", message.strip_prefix(&format!("{name} ")).unwrap_or(&message))
                }
                _ => format!("{name} was created, but {message}"),
            };
            (kind, message)
        }
    };
    e.announce_env(name, kind, message.clone());
    EnvResult::untouched(name, kind, message, None, outcome.environment)
}

/// Another run created the environment between our check and our CreateEnvironment: wait until it is
/// Ready; when it runs the version (with no settings of ours to apply) there is nothing to do, otherwise it is
/// deployed to like any existing environment.
async fn created_meanwhile<I: ImageStage>(e: &Engine<'_, I>, watch: &Watch<'_>, name: &str, label: &str) -> EnvResult {
    e.console.info(format!("{name} was created meanwhile by another run; waiting for it"));
    let failed = |message: String| {
        e.announce_env(name, Outcome::Failed, message.clone());
        EnvResult::untouched(name, Outcome::Failed, message, None, None)
    };
    let env = match e.aws.eb.environment(&e.cfg.application, name).await {
        Ok(Some(env)) => env,
        Ok(None) => {
            return failed(format!(
                "an environment named {name} exists in another application of this region (names are unique in a region); choose another environment-name"
            ));
        }
        Err(err) => return failed(format!("{err:#}")),
    };
    let since = Instant::now();
    let env = if env.is_ready() {
        env
    } else {
        match watch.until_ready(&env, e.cfg.wait.timeout).await {
            Ok(env) => env,
            Err(verdict) => {
                let (outcome, message) = match verdict {
                    Verdict::TimedOut { .. } => verdict::busy_timeout(name, &e.cfg.wait),
                    verdict => verdict::conclusion(&verdict, name, label, &e.cfg.wait, None),
                };
                e.announce_env(name, outcome, message.clone());
                return EnvResult::untouched(name, outcome, message, None, Some(env));
            }
        }
    };
    e.journal.span(name, "wait for the other run's launch", since);
    e.journal.observe(name, &env);
    if verdict::unchanged(&env, label, e.cfg.wait.min_health) && e.cfg.settings.is_empty() {
        let message =
            format!("{name} was created meanwhile by another run, which launched it with {label}; nothing to do");
        e.announce_env(name, Outcome::Unchanged, message.clone());
        return EnvResult::untouched(name, Outcome::Unchanged, message, None, Some(env));
    }
    rollout::rollout_one(e, watch, env, label).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_docker_on_amazon_linux_2023() {
        let stacks: Vec<String> = [
            "64bit Amazon Linux 2 v4.0.9 running Docker",
            "64bit Amazon Linux 2023 v4.3.0 running Docker",
            "64bit Amazon Linux 2023 v4.10.1 running Docker",
            "64bit Amazon Linux 2023 v4.9.7 running Docker",
            "64bit Amazon Linux 2023 v6.1.0 running Node.js 20",
            "64bit Amazon Linux 2023 v4.11.0 running ECS",
        ]
        .map(String::from)
        .to_vec();
        // By version number, not text: 4.10.1 is newer than 4.9.7.
        assert_eq!(newest_docker(&stacks), Some("64bit Amazon Linux 2023 v4.10.1 running Docker"));
        assert_eq!(newest_docker(&stacks[..1]), None, "Amazon Linux 2 is not the default");
        assert_eq!(newest_docker(&[]), None);
    }
}
