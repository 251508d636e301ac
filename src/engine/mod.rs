//! The deploy and rollback engine: local checks first, then the environment, then the version (reused, or
//! published: image → bundle → version), then the rollout and its verdict. Each stage is a function with a
//! typed result; [`Journal`] records what is learnt for the report and [`Ledger`] what must be undone if the
//! run ends early.

mod cache;
mod create;
#[cfg(test)]
mod fake_eb;
mod ledger;
mod logs;
mod publish;
mod rollout;
mod settings;
mod ship;
mod swap;
mod terminate;
mod versions;

use std::path::PathBuf;

use anyhow::{Result, bail};
use tokio::time::Instant;

pub use cache::RunningImage;
pub use ledger::Ledger;
pub use ship::{DockerImages, ImageStage, ShippedImage};

use crate::aws::Clients;
use crate::config::{Config, OnFailure, Plan};
use crate::gha::{Annotation, Console};
use crate::journal::Journal;
use crate::verdict::{self, Outcome};
use crate::wait::Cadence;
use rollout::RollbackScope;

/// How the run ended, and the sentence that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub outcome: Outcome,
    pub message: String,
}

/// Everything the engine works with.
pub struct Engine<'a, I: ImageStage> {
    pub cfg: &'a Config,
    pub aws: &'a Clients,
    pub console: &'a Console,
    pub journal: &'a Journal,
    pub ledger: &'a Ledger,
    pub cadence: Cadence,
    /// Where the bundle zip is written.
    pub temp_dir: PathBuf,
    pub images: &'a I,
}

impl<I: ImageStage> Engine<'_, I> {
    /// Runs the plan to its conclusion. Errors are failures the caller reports as `failed`.
    pub async fn run(&self) -> Result<Conclusion> {
        match &self.cfg.plan {
            Plan::Swap => {
                let (outcome, message) = swap::swap_only(self).await?;
                return Ok(Conclusion { outcome, message });
            }
            Plan::Terminate { force } => return terminate::terminate(self, *force).await,
            Plan::Deploy(_) | Plan::Rollback => {}
        }
        let (app, label) = (self.cfg.application.as_str(), self.cfg.version_label.as_str());
        // Local checks first: a bad bundle must fail before anything is asked of AWS.
        let deploy = match &self.cfg.plan {
            Plan::Deploy(plan) => {
                let started = Instant::now();
                let _group = self.console.group("Check bundle content");
                let prepared = publish::prepare(&plan.bundle, &self.temp_dir)?;
                self.journal.phase("Check bundle content", started.elapsed());
                Some((plan, prepared))
            }
            Plan::Rollback | Plan::Swap | Plan::Terminate { .. } => None,
        };
        let started = Instant::now();
        let (targets, live, missing) = rollout::check_environments(self).await?;
        let creation = match missing.as_slice() {
            [] => None,
            missing => Some(create::check(self, missing).await?),
        };
        settings::check(self, &targets).await?;
        let existing = self.aws.eb.version(app, label).await?;
        self.journal.phase("Check environment", started.elapsed());

        match (deploy, existing) {
            (None, None) => bail!(publish::missing_version_message(&self.aws.eb, app, label).await),
            (Some((plan, _)), Some(_)) if !plan.reuse_existing => bail!(
                "version {label} already exists in application {app}, and reuse-existing-version is false; choose a new version-label, or set reuse-existing-version: true to deploy the existing one"
            ),
            (deploy, Some(version)) => {
                publish::check_deployable(&version)?;
                publish::record_existing(self, &version).await;
                if creation.is_none() && targets.iter().all(|env| self.unchanged(env)) {
                    let results = targets.iter().map(|env| rollout::unchanged(self, env, label)).collect();
                    return Ok(self.finish(results, None).await);
                }
                if deploy.is_some() {
                    self.console.info(format!(
                        "Version {label} already exists: deploying it as is (reuse-existing-version); nothing is built or uploaded"
                    ));
                } else {
                    for env in targets.iter().filter(|env| !self.unchanged(env)) {
                        let from = env.version_label.as_deref().unwrap_or("(no version)");
                        self.console.info(format!("Rolling back {} from {from} to {label}", env.name));
                    }
                }
            }
            (Some((plan, prepared)), None) => {
                let create_application = creation.as_ref().is_some_and(|c| c.application_missing);
                publish::publish(self, plan, prepared, create_application).await?
            }
        }

        let (done, to_roll): (Vec<_>, Vec<_>) = targets.iter().cloned().partition(|env| self.unchanged(env));
        let mut results: Vec<rollout::EnvResult> =
            done.iter().map(|env| rollout::unchanged(self, env, label)).collect();
        // Environments to create first: the others are not touched when one fails (unless on-failure: continue).
        if let Some(creation) = &creation {
            results.extend(create::launch_all(self, creation, label).await);
        }
        if results.iter().any(|r| !r.outcome.is_success()) && self.cfg.on_failure != OnFailure::Continue {
            results.extend(to_roll.into_iter().map(|env| rollout::skipped(self, env)));
        } else {
            results
                .extend(rollout::fleet(self, to_roll.into_iter().map(|env| (env, label.to_owned())).collect()).await);
        }
        results.sort_by_key(|r| self.cfg.environments.iter().position(|n| n.eq_ignore_ascii_case(&r.name)));
        let failed = results.iter().any(|r| !r.outcome.is_success());
        if failed && self.cfg.recovery.logs {
            logs::fetch_for_failures(self, &results).await;
        }
        if failed && self.cfg.on_failure == OnFailure::Rollback {
            rollout::roll_back(self, &mut results, RollbackScope::Moved).await;
        } else if failed && self.cfg.recovery.rollback {
            rollout::roll_back(self, &mut results, RollbackScope::Failed).await;
        }
        // A version this run created that no environment took is not left behind.
        self.ledger.discard_version(&self.aws.eb, self.console, false).await;

        let swapped = match (live, results.as_slice()) {
            (Some(live), [r]) if r.outcome == Outcome::Deployed && r.env.is_some() => {
                let idle = r.env.clone().unwrap_or_default();
                Some(swap::swap(self, &idle, &live).await)
            }
            (Some(live), [r]) => {
                self.journal.record(|f| f.live_environment = Some(live.name.clone()));
                if r.outcome == Outcome::Unchanged {
                    self.console.info(format!(
                        "{} already ran {label}: not swapping (a re-run never moves traffic without a deploy; use mode: swap)",
                        r.name
                    ));
                } else {
                    self.console.info(format!("The deploy to {} was not verified: {} stays live", r.name, live.name));
                }
                None
            }
            _ => None,
        };
        Ok(self.finish(results, swapped).await)
    }

    /// Nothing to do for `env`: it runs the version, healthy, with the step's settings.
    fn unchanged(&self, env: &crate::beanstalk::Environment) -> bool {
        verdict::unchanged(env, &self.cfg.version_label, self.cfg.wait.min_health)
            && !settings::pending(self, &env.name)
    }

    /// The conclusion, then `keep-versions` when the step succeeded (deployed, or nothing to do).
    async fn finish(&self, results: Vec<rollout::EnvResult>, swapped: Option<swap::Swapped>) -> Conclusion {
        let replaced: Vec<String> = results.iter().filter_map(|r| r.previous.clone()).collect();
        let conclusion = self.conclude(results, swapped);
        if let Some(keep) = self.cfg.keep_versions {
            if matches!(conclusion.outcome, Outcome::Deployed | Outcome::Unchanged) {
                versions::prune(self, keep, &replaced).await;
            } else {
                self.console.info(format!(
                    "keep-versions: nothing deleted, as the step did not succeed with a verified deploy ({})",
                    conclusion.outcome
                ));
            }
        }
        conclusion
    }

    /// The step's conclusion from every environment's result (and the swap's): the worst result, and one
    /// sentence (the environment's own when there is one).
    fn conclude(&self, results: Vec<rollout::EnvResult>, swapped: Option<swap::Swapped>) -> Conclusion {
        let mut outcome = Outcome::worst(results.iter().map(|r| r.outcome));
        let mut message = match results.as_slice() {
            [one] => one.message.clone(),
            all => {
                let mut counts: Vec<(Outcome, usize)> = Vec::new();
                for r in all {
                    match counts.iter_mut().find(|(o, _)| *o == r.outcome) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((r.outcome, 1)),
                    }
                }
                let tally: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
                let mut text = format!("{} environments: {}", all.len(), tally.join(", "));
                for r in all.iter().filter(|r| !r.outcome.is_success() && r.outcome != Outcome::Skipped) {
                    text.push_str(&format!("; {}: {}", r.name, r.message));
                }
                text
            }
        };
        if let Some(s) = swapped {
            message = format!("{message}; {}", s.message);
            if !s.outcome.is_success() {
                outcome = Outcome::Failed;
                self.console.error(&s.message, Some(&Annotation::titled("eb-deploy: swap")));
            } else {
                self.console.notice(&s.message, Some(&Annotation::titled("eb-deploy: swap")));
            }
        }
        if results.len() > 1 {
            if outcome.is_success() {
                self.console.notice(&message, Some(&Annotation::titled("eb-deploy")));
            } else {
                self.console.error(&message, Some(&Annotation::titled("eb-deploy")));
            }
        }
        Conclusion { outcome, message }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stackkit::MUTATING;

    use super::fake_eb::{FakeEb, Scenario, snap};
    use super::*;
    use crate::inputs::RawInputs;
    use crate::report::{Heading, Report};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    struct FakeImages;
    impl ImageStage for FakeImages {
        async fn ship(
            &self,
            _plan: &crate::config::ImagePlan,
            _cache: &RunningImage,
            _console: &Console,
        ) -> Result<ShippedImage> {
            Ok(ShippedImage { reference: "repo@sha256:feed".into(), digest: Some("sha256:feed".into()) })
        }
    }

    struct Run {
        result: Result<Conclusion>,
        fake: FakeEb,
        report: Report,
        ledger: Ledger,
        log: String,
        ended: Duration,
    }

    impl Run {
        fn outcome(&self) -> Outcome {
            match &self.result {
                Ok(c) => c.outcome,
                Err(e) => panic!("expected an outcome, got error: {e:#}\n{}", self.log),
            }
        }
        fn error(&self) -> String {
            match &self.result {
                Ok(c) => panic!("expected an error, got {}\n{}", c.outcome, self.log),
                Err(e) => format!("{e:#}"),
            }
        }
        fn mutations(&self) -> Vec<&'static str> {
            self.fake.calls().iter().map(|c| c.op).filter(|op| MUTATING.contains(op)).collect()
        }
    }

    async fn run(sc: Scenario, inputs: &[(&'static str, &str)]) -> Run {
        run_fleet(vec![("web-prod".to_owned(), sc)], inputs).await
    }

    async fn run_fleet(envs: Vec<(String, Scenario)>, inputs: &[(&'static str, &str)]) -> Run {
        let names = envs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join("\n");
        run_with_names(envs, &names, inputs).await
    }

    fn deploy_events() -> Vec<(Duration, &'static str, &'static str, bool)> {
        vec![
            (secs(0.2), "INFO", "Environment update is starting.", true),
            (secs(5.0), "INFO", "Deploying new version to instance(s).", true),
            (secs(39.9), "INFO", "Environment update completed successfully.", true),
        ]
    }

    fn succeeds_at(at: f64) -> Scenario {
        Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(at), snap("Ready", "Green", "v2")),
            ],
            update_events: deploy_events(),
            new_version_status: "PROCESSED",
            ..Scenario::default()
        }
    }

    /// Beanstalk calls a minute while waiting, from the update to the verdict.
    fn calls_per_minute(r: &Run) -> f64 {
        let calls = r.fake.calls();
        let update = calls.iter().rposition(|c| c.op == "UpdateEnvironment").unwrap();
        let waiting = calls[update + 1..].iter().filter(|c| c.op.starts_with("Describe")).count();
        waiting as f64 / ((r.ended - calls[update].at).as_secs_f64() / 60.0)
    }

    #[tokio::test(start_paused = true)]
    async fn success_reaches_a_verdict_fast_and_cheaply() {
        let r = run(succeeds_at(40.0), &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        let settled = r.fake.updated_at().unwrap() + secs(40.0);
        let latency = r.ended.saturating_sub(settled);
        assert!(latency <= secs(2.1), "verdict {latency:?} after Beanstalk settled");
        assert!(calls_per_minute(&r) <= 30.0, "{} calls/min: {:?}", calls_per_minute(&r), r.fake.calls());
        assert_eq!(r.report.previous_version_label.as_deref(), Some("v1"));
        assert_eq!(r.report.running_version_label.as_deref(), Some("v2"));
        assert_eq!(r.report.image.as_deref(), Some("repo@sha256:feed"));
        assert_eq!(r.fake.created(), vec!["v2"]);
        assert_eq!(r.mutations(), vec!["CreateStorageLocation", "CreateApplicationVersion", "UpdateEnvironment"]);
        // Every event once, oldest first.
        let starting = r.log.find("Environment update is starting.").unwrap();
        let done = r.log.find("Environment update completed successfully.").unwrap();
        assert!(starting < done);
        assert_eq!(r.log.matches("Deploying new version to instance(s).").count(), 1, "{}", r.log);
    }

    #[tokio::test(start_paused = true)]
    async fn short_deploys_stay_within_the_call_budget() {
        // Beanstalk's own sequence: the "deployed to running instances" step comes before completion.
        let sc = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(8.0), snap("Ready", "Green", "v2")),
            ],
            update_events: vec![
                (secs(0.2), "INFO", "Environment update is starting.", true),
                (secs(1.5), "INFO", "Deploying new version to instance(s).", true),
                (secs(6.5), "INFO", "New application version was deployed to running EC2 instances.", true),
                (secs(8.0), "INFO", "Environment update completed successfully.", true),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        };
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed);
        assert!(calls_per_minute(&r) <= 30.0, "{} calls/min: {:?}", calls_per_minute(&r), r.fake.calls());
        // Event polls at 4, 6.5 and 9 s: the last sees the final event (8.0 s), and one describe confirms it.
        let verdict_at = r.ended - r.fake.updated_at().unwrap();
        assert!(verdict_at <= secs(9.2), "verdict at {verdict_at:?}: {:?}", r.fake.calls());
    }

    #[tokio::test(start_paused = true)]
    async fn deploys_of_any_length_keep_the_budget_and_a_prompt_verdict() {
        for at in [3.0, 4.5, 6.0, 7.3, 8.0, 9.9, 12.4, 15.0, 21.7, 64.0] {
            let sc = Scenario {
                update_events: vec![
                    (secs(0.2), "INFO", "Environment update is starting.", true),
                    (secs(at), "INFO", "Environment update completed successfully.", true),
                ],
                ..succeeds_at(at)
            };
            let r = run(sc, &[]).await;
            assert_eq!(r.outcome(), Outcome::Deployed, "{at} s: {}", r.log);
            let latency = r.ended - (r.fake.updated_at().unwrap() + secs(at));
            assert!(latency <= secs(2.1), "{at} s deploy: verdict {latency:?} after Beanstalk settled");
            let rate = calls_per_minute(&r);
            assert!(rate <= 30.0, "{at} s deploy: {rate} calls/min: {:?}", r.fake.calls());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn long_deploys_stay_within_the_call_budget() {
        let r = run(succeeds_at(900.0), &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed);
        assert!(calls_per_minute(&r) <= 30.0, "{} calls/min", calls_per_minute(&r));
    }

    #[tokio::test(start_paused = true)]
    async fn ready_on_the_previous_label_is_a_revert() {
        let sc = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(30.0), snap("Ready", "Red", "v1")),
            ],
            update_events: vec![
                (secs(0.2), "INFO", "Environment update is starting.", true),
                (secs(25.0), "ERROR", "Instance deployment failed. For details, see 'eb-engine.log'.", true),
                (secs(29.0), "ERROR", "Failed to deploy application.", true),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        };
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert!(r.report.message.contains("reverted the environment: it runs v1"), "{}", r.report.message);
        assert!(r.report.message.contains("Failed to deploy application."), "{}", r.report.message);
        assert_eq!(r.report.running_version_label.as_deref(), Some("v1"));
        // Within an event poll of the revert (then the failed instance's logs are fetched).
        let latency = verdict_at(&r, "web-prod").saturating_sub(r.fake.updated_at().unwrap() + secs(30.0));
        assert!(latency <= secs(2.1), "verdict {latency:?} after the revert: {:?}", r.fake.calls());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_revert_is_still_a_failure() {
        let sc = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(30.0), snap("Ready", "Green", "v1")),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        };
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert_eq!(r.report.running_version_label.as_deref(), Some("v1"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_event_on_the_target_label_fails() {
        let sc = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(20.0), snap("Ready", "Green", "v2")),
            ],
            update_events: vec![(
                secs(19.0),
                "ERROR",
                "Update environment operation is complete, but with errors.",
                true,
            )],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        };
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert!(r.report.message.contains("but with errors"), "{}", r.report.message);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_of_other_operations_are_not_ours() {
        let mut sc = succeeds_at(20.0);
        // Another operation's error, carrying another RequestId, arrives during our deploy.
        sc.update_events.push((secs(10.0), "ERROR", "Some other operation failed.", false));
        let r = run(sc, &[]).await;
        // No RequestId on it: attributed by time, so it counts.
        assert_eq!(r.outcome(), Outcome::Failed);
    }

    fn stuck_yellow() -> Scenario {
        Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(20.0), snap("Ready", "Yellow", "v2")),
            ],
            update_events: vec![(secs(19.9), "INFO", "Environment update completed successfully.", true)],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn health_stuck_yellow_fails_under_green_and_passes_under_yellow() {
        let r = run(stuck_yellow(), &[("health-grace", "60s")]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert!(r.report.message.contains("health is Yellow"), "{}", r.report.message);
        let waited = r.ended - r.fake.updated_at().unwrap();
        assert!(waited >= secs(80.0) && waited <= secs(90.0), "waited {waited:?}\n{}\n{:?}", r.log, r.fake.calls());

        let r = run(stuck_yellow(), &[("min-health", "yellow")]).await;
        assert_eq!(r.outcome(), Outcome::Deployed);
    }

    #[tokio::test(start_paused = true)]
    async fn health_recovering_within_the_grace_succeeds() {
        let mut sc = stuck_yellow();
        sc.after_update.push((secs(50.0), snap("Ready", "Green", "v2")));
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed);
    }

    fn busy_then_ready() -> Scenario {
        let mut sc = succeeds_at(20.0);
        sc.before = vec![(Duration::ZERO, snap("Updating", "Grey", "v1")), (secs(45.0), snap("Ready", "Green", "v1"))];
        sc
    }

    #[tokio::test(start_paused = true)]
    async fn busy_environment_is_waited_for() {
        let r = run(busy_then_ready(), &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert!(r.fake.updated_at().unwrap() >= secs(45.0));
        assert_eq!(r.fake.count("AbortEnvironmentUpdate"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_environment_is_aborted_with_on_busy_abort() {
        let mut sc = succeeds_at(20.0);
        sc.before = vec![(Duration::ZERO, snap("Updating", "Grey", "v1"))];
        sc.after_abort =
            vec![(Duration::ZERO, snap("Aborting", "Grey", "v1")), (secs(8.0), snap("Ready", "Green", "v1"))];
        let r = run(sc, &[("on-busy", "abort")]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(r.fake.count("AbortEnvironmentUpdate"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_environment_fails_at_once_with_on_busy_fail() {
        let r = run(busy_then_ready(), &[("on-busy", "fail")]).await;
        assert!(r.error().contains("on-busy is fail"), "{}", r.error());
        assert!(r.mutations().is_empty(), "{:?}", r.mutations());
    }

    #[tokio::test(start_paused = true)]
    async fn busy_for_too_long_times_out_and_drops_the_unused_version() {
        let mut sc = succeeds_at(20.0);
        sc.before = vec![(Duration::ZERO, snap("Updating", "Grey", "v1"))];
        let r = run(sc, &[("wait-timeout", "2m")]).await;
        assert_eq!(r.outcome(), Outcome::TimedOut);
        assert!(r.report.message.contains("stayed busy"), "{}", r.report.message);
        assert_eq!(r.fake.count("UpdateEnvironment"), 0);
        assert!(r.fake.created().is_empty(), "the version this run created is deleted");
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_refused_as_busy_waits_and_retries() {
        let mut sc = succeeds_at(20.0);
        sc.refuse_update_busy = 1;
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(r.fake.count("UpdateEnvironment"), 2);
    }

    fn stuck() -> Scenario {
        Scenario {
            after_update: vec![(Duration::ZERO, snap("Updating", "Grey", "v2"))],
            after_abort: vec![
                (Duration::ZERO, snap("Aborting", "Grey", "v2")),
                (secs(30.0), snap("Ready", "Green", "v1")),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_update_times_out_without_abort_by_default() {
        // The timing of the verdict alone (fetching the instance logs would come after it).
        let r = run(stuck(), &[("wait-timeout", "5m"), ("logs-on-failure", "false")]).await;
        assert_eq!(r.outcome(), Outcome::TimedOut);
        assert_eq!(r.fake.count("AbortEnvironmentUpdate"), 0);
        let waited = r.ended - r.fake.updated_at().unwrap();
        assert!(waited >= secs(300.0) && waited <= secs(301.0), "{waited:?}");
        assert!(r.report.message.contains("abort-on-timeout"), "{}", r.report.message);
        assert!(!r.ledger.updates_in_flight().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_update_is_aborted_with_abort_on_timeout() {
        let r = run(stuck(), &[("wait-timeout", "5m"), ("abort-on-timeout", "true")]).await;
        assert_eq!(r.outcome(), Outcome::TimedOut);
        assert_eq!(r.fake.count("AbortEnvironmentUpdate"), 1);
        assert!(r.report.message.contains("was aborted"), "{}", r.report.message);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_answers_do_not_fail_the_deploy() {
        let mut sc = succeeds_at(30.0);
        sc.throttle_first = 8;
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
    }

    #[tokio::test(start_paused = true)]
    async fn an_existing_label_is_reused_without_building() {
        let mut sc = succeeds_at(20.0);
        sc.versions = vec![("v1", "PROCESSED"), ("v2", "PROCESSED")];
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed);
        assert_eq!(r.fake.count("CreateApplicationVersion"), 0);
        assert_eq!(r.fake.count("CreateStorageLocation"), 0);
        assert!(r.log.contains("deploying it as is"), "{}", r.log);
    }

    #[tokio::test(start_paused = true)]
    async fn an_existing_label_is_refused_without_reuse() {
        let mut sc = succeeds_at(20.0);
        sc.versions = vec![("v2", "PROCESSED")];
        let r = run(sc, &[("reuse-existing-version", "false")]).await;
        assert!(r.error().contains("reuse-existing-version is false"), "{}", r.error());
        assert!(r.mutations().is_empty(), "{:?}", r.mutations());
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_environment_already_on_the_label_is_unchanged() {
        let mut sc = succeeds_at(20.0);
        sc.before = vec![(Duration::ZERO, snap("Ready", "Green", "v2"))];
        sc.versions = vec![("v2", "PROCESSED")];
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Unchanged);
        assert!(r.mutations().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn rollback_deploys_an_existing_label_and_names_the_replaced_one() {
        let mut sc = succeeds_at(20.0);
        sc.before = vec![(Duration::ZERO, snap("Ready", "Green", "v3"))];
        sc.versions = vec![("v1", "PROCESSED"), ("v2", "PROCESSED"), ("v3", "PROCESSED")];
        let r = run(sc, &[("mode", "rollback")]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(r.report.previous_version_label.as_deref(), Some("v3"));
        assert_eq!(r.mutations(), vec!["UpdateEnvironment"]);
    }

    #[tokio::test(start_paused = true)]
    async fn rollback_to_a_missing_label_lists_recent_ones() {
        let mut sc = succeeds_at(20.0);
        sc.versions = vec![("v1", "PROCESSED"), ("v3", "PROCESSED")];
        let r = run(sc, &[("mode", "rollback"), ("version-label", "v9")]).await;
        let err = r.error();
        assert!(err.contains("version v9 does not exist") && err.contains("v1") && err.contains("v3"), "{err}");
        assert!(r.mutations().is_empty());
    }

    /// A bundle directory with a `.ebextensions` config, which Beanstalk's processing validates.
    fn with_ebextensions(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("engine-bundle-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".ebextensions")).unwrap();
        std::fs::write(dir.join(".ebextensions/01.config"), "option_settings: []\n").unwrap();
        dir.to_string_lossy().into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_version_beanstalk_cannot_process_is_deleted() {
        let mut sc = succeeds_at(20.0);
        sc.new_version_status = "FAILED";
        let bundle = with_ebextensions("failed");
        let r = run(sc, &[("bundle-dir", &bundle)]).await;
        assert!(r.error().contains("could not process version v2"), "{}", r.error());
        assert_eq!(r.fake.count("DeleteApplicationVersion"), 1);
        assert_eq!(r.fake.count("UpdateEnvironment"), 0);
        assert!(r.fake.created().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_bundle_with_configuration_is_processed() {
        // Nothing to validate: created unprocessed, no wait for processing before the update.
        let r = run(succeeds_at(20.0), &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(r.fake.processed(), vec![false]);
        let calls = r.fake.calls();
        let create = calls.iter().position(|c| c.op == "CreateApplicationVersion").unwrap();
        let update = calls.iter().position(|c| c.op == "UpdateEnvironment").unwrap();
        assert_eq!(calls[update].at, calls[create].at, "no processing wait: {calls:?}");
        assert!(!calls[create..update].iter().any(|c| c.op == "DescribeApplicationVersions"), "{calls:?}");

        // With .ebextensions: processed, its status read soon (processing takes seconds), then the update.
        let bundle = with_ebextensions("ok");
        let r = run(succeeds_at(20.0), &[("bundle-dir", &bundle)]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(r.fake.processed(), vec![true]);
        let calls = r.fake.calls();
        let create = calls.iter().position(|c| c.op == "CreateApplicationVersion").unwrap();
        let update = calls.iter().position(|c| c.op == "UpdateEnvironment").unwrap();
        assert!(calls[update].at - calls[create].at <= secs(0.6), "the first look comes at 0.5 s: {calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_environment_changes_nothing() {
        let sc = Scenario { no_environment: true, ..Scenario::default() };
        let r = run(sc, &[]).await;
        assert!(r.error().contains("environment web-prod does not exist in application app"), "{}", r.error());
        assert!(r.mutations().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn termination_during_the_wait_fails() {
        let sc = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(10.0), snap("Terminated", "Grey", "v2")),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        };
        let r = run(sc, &[]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert!(r.report.message.contains("terminated"), "{}", r.report.message);
    }

    #[tokio::test(start_paused = true)]
    async fn without_wait_the_result_is_started() {
        let r = run(succeeds_at(20.0), &[("wait", "false")]).await;
        assert_eq!(r.outcome(), Outcome::Started);
        assert_eq!(r.fake.count("DescribeEvents"), 0);
    }

    // --- fleets ----------------------------------------------------------------------------------

    /// When the `i`th environment of a [`fleet`] settles, in seconds after its update.
    fn settle_at(at: f64, spread: f64, i: usize) -> f64 {
        at * (1.0 + spread * (i % 5) as f64)
    }

    /// A fleet of `n` environments, named `web-00`, `web-01`, …, whose deploys settle from `at` seconds after
    /// their update on, each of five groups `spread` × `at` later than the one before (as real ones do).
    fn fleet(n: usize, at: f64, spread: f64) -> Vec<(String, Scenario)> {
        (0..n)
            .map(|i| {
                let settle = settle_at(at, spread, i);
                let sc = Scenario {
                    update_events: vec![
                        (secs(0.2), "INFO", "Environment update is starting.", true),
                        (secs(settle), "INFO", "Environment update completed successfully.", true),
                    ],
                    ..succeeds_at(settle)
                };
                (format!("web-{i:02}"), sc)
            })
            .collect()
    }

    /// When each environment's verdict came, by the end of its deploy phase in the journal.
    fn verdict_at(r: &Run, env: &str) -> Duration {
        let facts = r.report.environments.iter().find(|e| e.name == env).unwrap();
        let span = facts.spans.iter().find(|s| s.name.starts_with("deploy")).unwrap();
        secs(span.end)
    }

    /// Beanstalk calls a minute while the fleet waits: Describe* calls from the first update to the end.
    fn fleet_calls_per_minute(r: &Run) -> f64 {
        let calls = r.fake.calls();
        let first = calls.iter().position(|c| c.op == "UpdateEnvironment").unwrap();
        let waiting = calls[first..].iter().filter(|c| c.op.starts_with("Describe")).count();
        waiting as f64 / ((r.ended - calls[first].at).as_secs_f64() / 60.0)
    }

    #[tokio::test(start_paused = true)]
    async fn fleets_keep_the_call_budget_and_each_verdict_is_prompt() {
        // Settling together, and spread out (each settle then needs its own environment read, which a wait of
        // a minute or more has room for; on shorter ones the budget delays them: see wait.rs's Cadence).
        for (n, spread) in [(1, 0.0), (5, 0.01), (25, 0.01), (5, 0.3), (25, 0.3)] {
            for at in [3.0, 8.0, 40.0, 300.0, 1200.0].into_iter().filter(|&at| spread < 0.1 || at >= 40.0) {
                let envs = fleet(n, at, spread);
                let settles: Vec<(String, f64)> =
                    (0..n).map(|i| (envs[i].0.clone(), settle_at(at, spread, i))).collect();
                let r = run_fleet(envs, &[("wait-timeout", "1h")]).await;
                assert_eq!(r.outcome(), Outcome::Deployed, "{n} x {at} s: {}", r.log);
                assert_eq!(r.fake.count("CreateApplicationVersion"), 1, "one version for the fleet");
                assert_eq!(r.fake.count("UpdateEnvironment"), n);
                let rate = fleet_calls_per_minute(&r);
                assert!(rate <= 30.0, "{n} x {at} s: {rate:.1} calls/min: {:?}", r.fake.calls());
                for (env, settle) in settles {
                    let settled = r.fake.updated_at_env(&env).unwrap() + secs(settle);
                    let latency = verdict_at(&r, &env).saturating_sub(settled);
                    assert!(latency <= secs(2.1), "{n} x {at} s: {env} verdict {latency:?} after it settled");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn short_fleets_settling_one_after_another_keep_the_call_budget_and_prompt_verdicts() {
        // Settles 2.4 s apart: reads of every environment follow an end while they keep finding ends (event polls
        // wait), so each verdict comes within a read of its settle and the budget holds.
        for n in [5, 25] {
            for at in [3.0, 8.0] {
                let envs = fleet(n, at, 0.3);
                let names: Vec<String> = envs.iter().map(|(name, _)| name.clone()).collect();
                let r = run_fleet(envs, &[("wait-timeout", "1h")]).await;
                assert_eq!(r.outcome(), Outcome::Deployed, "{n} x {at} s: {}", r.log);
                let rate = fleet_calls_per_minute(&r);
                assert!(rate <= 30.0, "{n} x {at} s: {rate:.1} calls/min: {:?}", r.fake.calls());
                let worst = names
                    .iter()
                    .enumerate()
                    .map(|(i, env)| {
                        let settled = r.fake.updated_at_env(env).unwrap() + secs(settle_at(at, 0.3, i));
                        verdict_at(&r, env).saturating_sub(settled)
                    })
                    .max()
                    .unwrap();
                assert!(worst <= secs(2.1), "{n} x {at} s: a verdict {worst:?} after its settle: {:?}", r.fake.calls());
            }
        }
    }

    fn fails_at(at: f64) -> Scenario {
        Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(at), snap("Ready", "Red", "v1")),
            ],
            update_events: vec![
                (secs(0.2), "INFO", "Environment update is starting.", true),
                (secs(at - 0.5), "ERROR", "Failed to deploy application.", true),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        }
    }

    fn rolls_back_at(at: f64, sc: Scenario) -> Scenario {
        Scenario {
            after_rollback: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(at), snap("Ready", "Green", "v1")),
            ],
            rollback_events: vec![(secs(at), "INFO", "Environment update completed successfully.", true)],
            ..sc
        }
    }

    fn outcomes(r: &Run) -> Vec<(String, Outcome)> {
        r.report.environments.iter().map(|e| (e.name.clone(), e.result.unwrap_or(Outcome::Cancelled))).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_canary_stops_a_sequential_fleet() {
        let envs = vec![
            ("canary".to_owned(), fails_at(20.0)),
            ("web-eu".to_owned(), succeeds_at(20.0)),
            ("web-us".to_owned(), succeeds_at(20.0)),
        ];
        let r = run_fleet(envs, &[("strategy", "sequential")]).await;
        assert_eq!(r.outcome(), Outcome::Failed, "{}", r.log);
        assert_eq!(
            outcomes(&r),
            vec![
                ("canary".into(), Outcome::Failed),
                ("web-eu".into(), Outcome::Skipped),
                ("web-us".into(), Outcome::Skipped)
            ]
        );
        let updated: Vec<_> =
            r.fake.calls().into_iter().filter(|c| c.op == "UpdateEnvironment").filter_map(|c| c.env).collect();
        assert_eq!(updated, vec!["canary"], "no environment after the canary was touched");
        assert!(r.report.message.contains("canary: the deploy of v2 failed"), "{}", r.report.message);
    }

    #[tokio::test(start_paused = true)]
    async fn sequential_fleets_go_in_the_order_given() {
        let envs = vec![
            ("web-c".to_owned(), succeeds_at(10.0)),
            ("web-a".to_owned(), succeeds_at(10.0)),
            ("web-b".to_owned(), succeeds_at(10.0)),
        ];
        let r = run_fleet(envs, &[("strategy", "sequential")]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        let calls = r.fake.calls();
        let updated: Vec<_> =
            calls.iter().filter(|c| c.op == "UpdateEnvironment").map(|c| (c.env.clone().unwrap(), c.at)).collect();
        assert_eq!(updated.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["web-c", "web-a", "web-b"]);
        assert!(updated[1].1 >= updated[0].1 + secs(10.0), "the second starts after the first settled: {updated:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn max_parallel_bounds_the_environments_under_way() {
        let envs = (0..4).map(|i| (format!("web-{i:02}"), succeeds_at(20.0))).collect();
        let r = run_fleet(envs, &[("max-parallel", "2")]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        let starts: Vec<Duration> =
            r.fake.calls().iter().filter(|c| c.op == "UpdateEnvironment").map(|c| c.at).collect();
        assert!(starts[1] < secs(1.0) && starts[2] >= secs(20.0) && starts[3] >= secs(20.0), "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn on_failure_continue_carries_on_and_reports_the_worst() {
        let envs = vec![
            ("web-a".to_owned(), succeeds_at(20.0)),
            ("web-b".to_owned(), fails_at(15.0)),
            ("web-c".to_owned(), succeeds_at(30.0)),
        ];
        let r = run_fleet(envs, &[("on-failure", "continue"), ("strategy", "sequential")]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert_eq!(
            outcomes(&r),
            vec![
                ("web-a".into(), Outcome::Deployed),
                ("web-b".into(), Outcome::Failed),
                ("web-c".into(), Outcome::Deployed)
            ]
        );
        let environments: serde_json::Value =
            serde_json::from_str(&r.report.outputs().into_iter().find(|(k, _)| k == "environments").unwrap().1)
                .unwrap();
        assert_eq!(environments[1]["name"], "web-b");
        assert_eq!(environments[1]["result"], "failed");
        assert_eq!(environments[1]["running_version_label"], "v1");
        assert_eq!(environments[2]["running_version_label"], "v2");
        let single: Vec<_> =
            r.report.outputs().into_iter().filter(|(k, v)| k == "environment-id" && !v.is_empty()).collect();
        assert!(single.is_empty(), "single-environment outputs stay empty for a fleet");
    }

    #[tokio::test(start_paused = true)]
    async fn on_failure_rollback_returns_every_moved_environment() {
        let envs = vec![
            ("web-a".to_owned(), rolls_back_at(12.0, succeeds_at(20.0))),
            ("web-b".to_owned(), rolls_back_at(12.0, fails_at(25.0))),
            ("web-c".to_owned(), rolls_back_at(12.0, succeeds_at(10.0))),
        ];
        let r = run_fleet(envs, &[("on-failure", "rollback")]).await;
        assert_eq!(r.outcome(), Outcome::Failed, "{}", r.log);
        // web-b was reverted by Beanstalk itself: it is not rolled back a second time.
        assert_eq!(
            outcomes(&r),
            vec![
                ("web-a".into(), Outcome::RolledBack),
                ("web-b".into(), Outcome::Failed),
                ("web-c".into(), Outcome::RolledBack)
            ]
        );
        let updates: Vec<_> =
            r.fake.calls().into_iter().filter(|c| c.op == "UpdateEnvironment").filter_map(|c| c.env).collect();
        assert_eq!(updates.iter().filter(|e| *e == "web-a").count(), 2);
        assert_eq!(updates.iter().filter(|e| *e == "web-b").count(), 1);
        assert_eq!(r.report.environments[0].running_version_label.as_deref(), Some("v1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_rollback_is_reported_loudly() {
        let broken_rollback = Scenario {
            after_rollback: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v1")),
                (secs(10.0), snap("Ready", "Red", "v2")),
            ],
            rollback_events: vec![(secs(9.0), "ERROR", "Failed to deploy application.", true)],
            ..succeeds_at(10.0)
        };
        let envs = vec![("web-a".to_owned(), broken_rollback), ("web-b".to_owned(), fails_at(20.0))];
        let r = run_fleet(envs, &[("on-failure", "rollback")]).await;
        assert_eq!(outcomes(&r)[0], ("web-a".into(), Outcome::Failed));
        assert!(
            r.report.environments[0].message.contains("ROLLING BACK TO v1 FAILED TOO"),
            "{}",
            r.report.environments[0].message
        );
    }

    fn blue_green() -> Vec<(String, Scenario)> {
        vec![("shop-green".to_owned(), succeeds_at(20.0)), ("shop-blue".to_owned(), Scenario::default())]
    }

    #[tokio::test(start_paused = true)]
    async fn blue_green_swaps_only_after_a_verified_deploy() {
        let envs = blue_green();
        let r = run_fleet(envs[..1].to_vec(), &[]).await;
        assert_eq!(r.fake.count("SwapEnvironmentCNAMEs"), 0);

        // The fake holds both; only the idle one is named in environment-name.
        let fake_envs = blue_green();
        let r = run_blue_green(fake_envs, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(r.fake.count("SwapEnvironmentCNAMEs"), 1);
        let calls = r.fake.calls();
        let swap = calls.iter().position(|c| c.op == "SwapEnvironmentCNAMEs").unwrap();
        let update = calls.iter().position(|c| c.op == "UpdateEnvironment").unwrap();
        assert!(swap > update, "the swap comes after the deploy's verdict");
        assert_eq!(r.report.live_environment.as_deref(), Some("shop-green"));
        assert!(
            r.report.message.contains("shop-green is live now at shop-blue.us-east-1.elasticbeanstalk.com"),
            "{}",
            r.report.message
        );

        let mut failing = blue_green();
        failing[0].1 = fails_at(20.0);
        let r = run_blue_green(failing, &[]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert_eq!(r.fake.count("SwapEnvironmentCNAMEs"), 0, "a failed deploy never swaps");
        assert_eq!(r.report.live_environment.as_deref(), Some("shop-blue"));
    }

    #[tokio::test(start_paused = true)]
    async fn mode_swap_swaps_without_deploying() {
        let r = run_blue_green(blue_green(), &[("mode", "swap")]).await;
        assert_eq!(r.outcome(), Outcome::Swapped, "{}", r.log);
        assert_eq!(r.fake.count("UpdateEnvironment") + r.fake.count("CreateApplicationVersion"), 0);
        // swap-with takes the CNAME environment-name held (the live one, after a release).
        assert_eq!(r.report.live_environment.as_deref(), Some("shop-blue"));
    }

    // --- settings, creation, termination ---------------------------------------------------------

    const VARS: &str = "aws:elasticbeanstalk:application:environment";

    /// The detail of the `n`th call of `op` to `env`.
    fn detail(r: &Run, op: &str, env: &str, n: usize) -> Vec<String> {
        let calls: Vec<_> =
            r.fake.calls().into_iter().filter(|c| c.op == op && c.env.as_deref() == Some(env)).collect();
        calls.get(n).unwrap_or_else(|| panic!("no call {n} of {op} to {env}: {:?}", r.fake.calls())).detail.clone()
    }

    fn with_settings(sc: Scenario) -> Scenario {
        Scenario { settings: vec![(VARS, "GREETING", "old-greeting"), (VARS, "DROP", "dropped-value")], ..sc }
    }

    #[tokio::test(start_paused = true)]
    async fn settings_go_with_the_version_and_a_rollback_restores_the_old_ones() {
        let envs = vec![
            ("web-a".to_owned(), with_settings(rolls_back_at(12.0, succeeds_at(20.0)))),
            ("web-b".to_owned(), with_settings(fails_at(25.0))),
        ];
        let inputs = [
            ("environment-variables", "GREETING=new-greeting\nNEW=new-value"),
            ("remove-environment-variables", "DROP"),
            ("on-failure", "rollback"),
        ];
        let r = run_fleet(envs, &inputs).await;
        assert_eq!(outcomes(&r), vec![("web-a".into(), Outcome::RolledBack), ("web-b".into(), Outcome::Failed)]);
        // One call carries the version and the settings.
        let forward = vec![
            "label=v2".to_owned(),
            format!("set {VARS} GREETING=new-greeting"),
            format!("set {VARS} NEW=new-value"),
            format!("remove {VARS} DROP"),
        ];
        assert_eq!(detail(&r, "UpdateEnvironment", "web-a", 0), forward);
        assert_eq!(detail(&r, "UpdateEnvironment", "web-b", 0), forward);
        // The rollback returns web-a to v1 with the settings v1 ran with.
        assert_eq!(
            detail(&r, "UpdateEnvironment", "web-a", 1),
            vec![
                "label=v1".to_owned(),
                format!("set {VARS} GREETING=old-greeting"),
                format!("set {VARS} DROP=dropped-value"),
                format!("remove {VARS} NEW"),
            ]
        );
        assert_eq!(r.fake.count("DescribeConfigurationSettings"), 2);
        assert!(r.log.contains("environment variables GREETING, NEW; removes DROP"), "{}", r.log);
        for value in ["new-greeting", "new-value", "old-greeting", "dropped-value"] {
            assert!(!r.log.contains(value), "a value was printed: {value}\n{}", r.log);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn settings_already_in_place_leave_the_environment_unchanged() {
        let on_v2 = || Scenario {
            before: vec![(Duration::ZERO, snap("Ready", "Green", "v2"))],
            versions: vec![("v2", "PROCESSED")],
            settings: vec![(VARS, "GREETING", "hello")],
            ..succeeds_at(10.0)
        };
        let r = run(on_v2(), &[("environment-variables", "GREETING=hello")]).await;
        assert_eq!(r.outcome(), Outcome::Unchanged, "{}", r.log);
        assert_eq!(r.fake.count("UpdateEnvironment"), 0);

        // A changed value is deployed with the version the environment runs already.
        let sc = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(10.0), snap("Ready", "Green", "v2")),
            ],
            ..on_v2()
        };
        let r = run(sc, &[("environment-variables", "GREETING=bonjour")]).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(
            detail(&r, "UpdateEnvironment", fake_eb::ENV, 0),
            vec!["label=v2".to_owned(), format!("set {VARS} GREETING=bonjour")]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn variables_that_would_outgrow_the_limit_change_nothing() {
        let big = "x".repeat(250);
        let existing: &'static str = Box::leak(big.clone().into_boxed_str());
        let settings = (0..16).map(|i| (VARS, &*Box::leak(format!("OLD_{i:02}").into_boxed_str()), existing)).collect();
        let sc = Scenario { settings, ..succeeds_at(10.0) };
        let r = run(sc, &[("environment-variables", &format!("NEW={big}"))]).await;
        let err = r.error();
        assert!(
            err.contains("input `environment-variables`") && err.contains("over Elastic Beanstalk's 4096"),
            "{err}"
        );
        assert!(r.mutations().is_empty(), "{:?}", r.mutations());
    }

    fn launches_at(at: f64) -> Scenario {
        Scenario {
            no_environment: true,
            after_update: vec![
                (Duration::ZERO, snap("Launching", "Grey", "")),
                (secs(at), snap("Ready", "Green", "v2")),
            ],
            update_events: vec![
                (secs(0.1), "INFO", "createEnvironment is starting.", true),
                (secs(at), "INFO", "Successfully launched environment: web-prod", true),
            ],
            new_version_status: "PROCESSED",
            ..Scenario::default()
        }
    }

    const CREATE: [(&str, &str); 3] =
        [("create-environment", "true"), ("tags", "team=web"), ("environment-variables", "GREETING=created-value")];

    #[tokio::test(start_paused = true)]
    async fn a_missing_environment_is_created_with_the_version_and_gets_a_verdict() {
        let r = run(launches_at(30.0), &CREATE).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(
            r.mutations(),
            vec!["CreateStorageLocation", "CreateApplicationVersion", "CreateEnvironment"],
            "created, never updated"
        );
        let created = detail(&r, "CreateEnvironment", fake_eb::ENV, 0);
        for want in [
            "label=v2",
            "stack 64bit Amazon Linux 2023 v4.4.1 running Docker",
            "tag team=web",
            "tag eb-deploy:repository=local",
            &format!("set {VARS} GREETING=created-value"),
        ] {
            assert!(created.iter().any(|d| d == want), "{want} missing from {created:?}");
        }
        assert_eq!(r.report.environment_created, Some(true));
        assert!(r.report.message.starts_with("web-prod was created and runs v2, Green"), "{}", r.report.message);
        // The launch's last event ends the wait: the verdict comes within one event poll.
        let latency = r.ended - (r.fake.calls().iter().find(|c| c.op == "CreateEnvironment").unwrap().at + secs(30.0));
        assert!(latency <= secs(2.6), "verdict {latency:?} after the launch ended");
        assert!(!r.log.contains("created-value"), "{}", r.log);
    }

    #[tokio::test(start_paused = true)]
    async fn creation_is_checked_before_anything_changes() {
        // The application is missing and may not be created.
        let r = run(Scenario { app_missing: true, ..launches_at(10.0) }, &CREATE).await;
        assert!(r.error().contains("set create-application: true"), "{}", r.error());
        assert!(r.mutations().is_empty());
        // It may: created just before its first version.
        let mut inputs = CREATE.to_vec();
        inputs.push(("create-application", "true"));
        let r = run(Scenario { app_missing: true, ..launches_at(10.0) }, &inputs).await;
        assert_eq!(r.outcome(), Outcome::Deployed, "{}", r.log);
        assert_eq!(
            r.mutations(),
            vec!["CreateStorageLocation", "CreateApplication", "CreateApplicationVersion", "CreateEnvironment"]
        );
        // The CNAME prefix is taken.
        inputs.push(("cname-prefix", "shop-preview"));
        let r = run(Scenario { cname_taken: true, ..launches_at(10.0) }, &inputs).await;
        assert!(
            r.error().contains("input `cname-prefix`: shop-preview.us-east-1.elasticbeanstalk.com is taken"),
            "{}",
            r.error()
        );
        assert!(r.mutations().is_empty());
        // Without create-environment, a missing environment is an error that says how to create it.
        let r = run(launches_at(10.0), &[]).await;
        assert!(r.error().contains("or set create-environment: true"), "{}", r.error());
    }

    #[tokio::test(start_paused = true)]
    async fn an_environment_created_meanwhile_by_another_run_is_waited_for() {
        let sc = Scenario { created_by_another: true, ..launches_at(30.0) };
        let r = run(sc, &[("create-environment", "true")]).await;
        assert_eq!(r.outcome(), Outcome::Unchanged, "{}", r.log);
        assert!(
            r.report.message.contains("created meanwhile by another run, which launched it with v2"),
            "{}",
            r.report.message
        );
        assert_eq!(r.report.environment_created, Some(false));
        assert_eq!(r.fake.count("UpdateEnvironment"), 0);
        assert!(r.ended >= secs(30.0), "it waited for the other run's launch");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_launch_says_what_to_do() {
        let sc = Scenario {
            after_update: vec![(Duration::ZERO, snap("Launching", "Grey", "")), (secs(20.0), snap("Ready", "Red", ""))],
            update_events: vec![(
                secs(19.0),
                "ERROR",
                "Create environment operation is complete, but with errors. For more information, see troubleshooting documentation.",
                true,
            )],
            ..launches_at(20.0)
        };
        let r = run(sc, &[("create-environment", "true")]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        let m = &r.report.message;
        assert!(m.contains("the launch of web-prod with v2 failed") && m.contains("mode: terminate"), "{m}");
    }

    fn ours(sc: Scenario) -> Scenario {
        Scenario { tags: vec![("eb-deploy:repository", "local"), ("team", "web")], terminate_after: secs(40.0), ..sc }
    }

    #[tokio::test(start_paused = true)]
    async fn terminate_waits_for_what_eb_deploy_created_and_refuses_the_rest() {
        let r = run(ours(Scenario::default()), &[("mode", "terminate")]).await;
        assert_eq!(r.outcome(), Outcome::Terminated, "{}", r.log);
        assert_eq!(r.mutations(), vec!["TerminateEnvironment"]);
        assert!(r.ended >= secs(40.0) && r.ended <= secs(46.0), "verdict at {:?}", r.ended);
        let calls = r.fake.calls();
        let waiting = calls.iter().filter(|c| c.op.starts_with("Describe")).count() as f64;
        assert!(waiting / (r.ended.as_secs_f64() / 60.0) <= 30.0, "{waiting} calls in {:?}", r.ended);
        assert!(r.log.contains("terminateEnvironment completed successfully."), "{}", r.log);
        assert_eq!(r.report.previous_version_label.as_deref(), Some("v1"));

        // Not created by eb-deploy, or for another repository: refused, nothing terminated.
        let foreign = Scenario { tags: vec![("team", "web")], ..Scenario::default() };
        let other = Scenario { tags: vec![("eb-deploy:repository", "team/other")], ..Scenario::default() };
        for sc in [foreign, other] {
            let r = run(sc, &[("mode", "terminate")]).await;
            assert!(r.error().contains("set force-terminate: true"), "{}", r.error());
            assert!(r.mutations().is_empty());
        }
        let r = run(
            Scenario { tags: vec![("team", "web")], ..ours(Scenario::default()) },
            &[("mode", "terminate"), ("force-terminate", "true")],
        )
        .await;
        assert_eq!(r.outcome(), Outcome::Terminated, "{}", r.log);

        // Already gone: nothing to do, and the step succeeds.
        let r = run(Scenario { no_environment: true, ..Scenario::default() }, &[("mode", "terminate")]).await;
        assert_eq!(r.outcome(), Outcome::Unchanged);
        assert!(r.mutations().is_empty());
        // Unless the application is not there either: then the names are wrong.
        let sc = Scenario { no_environment: true, app_missing: true, ..Scenario::default() };
        let r = run(sc, &[("mode", "terminate")]).await;
        assert!(r.error().contains("application app does not exist"), "{}", r.error());
    }

    #[tokio::test(start_paused = true)]
    async fn a_region_near_its_version_quota_is_warned_about() {
        let labels: Vec<(&'static str, &'static str)> =
            (0..950).map(|i| (&*Box::leak(format!("old-{i}").into_boxed_str()), "PROCESSED")).collect();
        let r = run(Scenario { versions: labels, ..succeeds_at(10.0) }, &[]).await;
        assert_eq!(r.outcome(), Outcome::Deployed);
        assert!(r.log.contains("this region holds 950 application versions"), "{}", r.log);
        let r = run(succeeds_at(10.0), &[]).await;
        assert!(!r.log.contains("application versions;"), "{}", r.log);
    }

    /// A fleet fake holding both environments of a blue/green pair, with only the first deployed to.
    async fn run_blue_green(envs: Vec<(String, Scenario)>, inputs: &[(&'static str, &str)]) -> Run {
        let live = envs[1].0.clone();
        let mut all: Vec<(&'static str, &str)> = vec![("swap-with", live.as_str())];
        all.extend_from_slice(inputs);
        let idle = envs[0].0.clone();
        run_with_names(envs, &idle, &all).await
    }

    async fn run_with_names(envs: Vec<(String, Scenario)>, names: &str, inputs: &[(&'static str, &str)]) -> Run {
        let workspace = std::env::temp_dir().join(format!("engine-ws-{}", std::process::id()));
        std::fs::create_dir_all(&workspace).unwrap();
        let mut raw = RawInputs::default();
        for (k, v) in
            [("application-name", "app"), ("environment-name", names), ("image", "nginx:1"), ("version-label", "v2")]
                .iter()
                .chain(inputs)
        {
            raw.set(k, v);
        }
        let cfg = Config::from_inputs(&raw, &crate::config::RunContext::default(), &workspace).unwrap();
        let fake = FakeEb::fleet(envs);
        let clients = fake.clients();
        let (console, buf) = Console::captured(false, true);
        let (journal, ledger) = (Journal::new(&cfg.environments), Ledger::default());
        let engine = Engine {
            cfg: &cfg,
            aws: &clients,
            console: &console,
            journal: &journal,
            ledger: &ledger,
            cadence: Cadence::default(),
            temp_dir: workspace.clone(),
            images: &FakeImages,
        };
        let t0 = Instant::now();
        let result = engine.run().await;
        let ended = t0.elapsed();
        let log = buf.text();
        let (outcome, message) = match &result {
            Ok(c) => (c.outcome, c.message.clone()),
            Err(e) => (Outcome::Failed, format!("{e:#}")),
        };
        let report = Report::new(Heading::default(), journal.snapshot(), outcome, message, 0.0);
        Run { result, fake, report, ledger, log, ended }
    }

    // --- rollback-on-failure -------------------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn rollback_on_failure_returns_a_failed_environment_and_says_so() {
        // Ready on the new label but an error event of this update: Beanstalk did not revert it.
        let sick = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(20.0), snap("Ready", "Green", "v2")),
            ],
            update_events: vec![(
                secs(19.0),
                "ERROR",
                "Update environment operation is complete, but with errors.",
                true,
            )],
            ..rolls_back_at(15.0, succeeds_at(20.0))
        };
        let r = run(sick, &[("rollback-on-failure", "true")]).await;
        assert_eq!(r.outcome(), Outcome::RolledBack, "{}", r.log);
        assert!(!r.outcome().is_success(), "the release did not go out: the step fails");
        let updates: Vec<_> = r.fake.calls().into_iter().filter(|c| c.op == "UpdateEnvironment").collect();
        assert_eq!(updates.len(), 2, "the deploy, then the rollback");
        assert_eq!(r.report.rolled_back_to.as_deref(), Some("v1"));
        assert_eq!(r.report.running_version_label.as_deref(), Some("v1"));
        assert!(
            r.report.message.contains("but with errors") && r.report.message.contains("rolled back to v1"),
            "{}",
            r.report.message
        );
        let outputs: std::collections::BTreeMap<_, _> = r.report.outputs().into_iter().collect();
        assert_eq!(outputs["result"], "rolled-back");
        assert_eq!(outputs["rolled-back-to"], "v1");
    }

    #[tokio::test(start_paused = true)]
    async fn what_rollback_on_failure_never_rolls_back() {
        // Beanstalk's own revert: already on v1, not deployed again.
        let r = run(rolls_back_at(10.0, fails_at(20.0)), &[("rollback-on-failure", "true")]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert_eq!(r.fake.count("UpdateEnvironment"), 1, "{}", r.log);
        assert_eq!(r.report.rolled_back_to, None);

        // Never updated by this step (it stayed busy): nothing of ours to undo.
        let mut busy = rolls_back_at(10.0, succeeds_at(20.0));
        busy.before = vec![(Duration::ZERO, snap("Updating", "Grey", "v1"))];
        let r = run(busy, &[("rollback-on-failure", "true"), ("wait-timeout", "1m")]).await;
        assert_eq!(r.outcome(), Outcome::TimedOut);
        assert_eq!(r.fake.count("UpdateEnvironment"), 0);

        // A success is never rolled back, nor a fleet's healthy environments (unless on-failure: rollback).
        let envs = vec![
            ("web-a".to_owned(), rolls_back_at(10.0, succeeds_at(20.0))),
            ("web-b".to_owned(), {
                let mut sick = rolls_back_at(10.0, succeeds_at(20.0));
                sick.update_events.push((
                    secs(19.0),
                    "ERROR",
                    "Update environment operation is complete, but with errors.",
                    true,
                ));
                sick
            }),
        ];
        let r = run_fleet(envs, &[("rollback-on-failure", "true"), ("on-failure", "continue")]).await;
        assert_eq!(outcomes(&r), vec![("web-a".into(), Outcome::Deployed), ("web-b".into(), Outcome::RolledBack)]);
        let updates: Vec<_> =
            r.fake.calls().into_iter().filter(|c| c.op == "UpdateEnvironment").filter_map(|c| c.env).collect();
        assert_eq!(updates, vec!["web-a", "web-b", "web-b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_that_fails_names_both_versions_loudly() {
        let sick = Scenario {
            after_update: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v2")),
                (secs(20.0), snap("Ready", "Green", "v2")),
            ],
            update_events: vec![(
                secs(19.0),
                "ERROR",
                "Update environment operation is complete, but with errors.",
                true,
            )],
            after_rollback: vec![
                (Duration::ZERO, snap("Updating", "Grey", "v1")),
                (secs(10.0), snap("Ready", "Red", "v2")),
            ],
            rollback_events: vec![(secs(9.0), "ERROR", "Failed to deploy application.", true)],
            ..succeeds_at(20.0)
        };
        let r = run(sick, &[("rollback-on-failure", "true")]).await;
        assert_eq!(r.outcome(), Outcome::Failed, "{}", r.log);
        assert!(r.report.message.contains("ROLLING BACK TO v1 FAILED TOO"), "{}", r.report.message);
        assert!(r.report.message.contains("v2"), "both versions named: {}", r.report.message);
        assert!(r.log.contains("error: eb-deploy: rollback of web-prod failed"), "an annotation of its own: {}", r.log);
        assert!(r.report.message.contains("web-prod runs v2, not v1"), "{}", r.report.message);
        assert_eq!(r.report.rolled_back_to, None);
    }

    #[tokio::test(start_paused = true)]
    async fn logs_are_requested_for_a_failure_and_their_trouble_is_one_warning() {
        let r = run(fails_at(20.0), &[]).await;
        assert_eq!(r.outcome(), Outcome::Failed);
        assert_eq!(r.fake.count("RequestEnvironmentInfo"), 1);
        assert_eq!(r.fake.count("RetrieveEnvironmentInfo"), 1);
        // The fake lists no instance logs: the verdict stands, with one warning.
        assert_eq!(r.log.matches("could not fetch the instance logs").count(), 1, "{}", r.log);
        let r = run(fails_at(20.0), &[("logs-on-failure", "false")]).await;
        assert_eq!(r.fake.count("RequestEnvironmentInfo"), 0);
        let r = run(succeeds_at(20.0), &[]).await;
        assert_eq!(r.fake.count("RequestEnvironmentInfo"), 0, "no logs for a success");
    }
}
