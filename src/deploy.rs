//! The deploy and rollback engine: checks everything it can before the first change, then image → bundle →
//! version → update → wait, recording progress so any ending (verdict, error, cancel) reports what is known
//! and leaves nothing half-made behind.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use crate::aws::Clients;
use crate::beanstalk::{Environment, UpdateRefusal, Version, now_ms};
use crate::bundle::{self, Template};
use crate::config::{BundlePlan, Config, ImagePlan, ImageSource, MAX_BUNDLE_BYTES, Mode, OnBusy, format_duration};
use crate::gha::{Annotation, Console};
use crate::report::{Outcome, Progress};
use crate::wait::{Cadence, Failure, Target, Verdict, Waiter, health_ok};

/// What the image stage produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedImage {
    /// The reference written into Dockerrun.aws.json (digest-pinned by default).
    pub reference: String,
    pub digest: Option<String>,
}

/// The image half of a deploy (build and push), injected so the engine can be tested without a daemon.
pub trait ImageStage {
    /// Builds or resolves the image and pushes it; returns the reference to deploy.
    fn ship(&self, plan: &ImagePlan, console: &Console) -> impl Future<Output = Result<ShippedImage>>;
}

/// The real image stage: the Docker Engine builds (or finds) the image, and it is pushed to ECR.
pub struct DockerImages {
    /// `DOCKER_HOST`, read at the edge.
    pub docker_host: Option<String>,
    pub ecr: aws_sdk_ecr::Client,
}

impl ImageStage for DockerImages {
    async fn ship(&self, plan: &ImagePlan, console: &Console) -> Result<ShippedImage> {
        let docker = crate::image::connect(self.docker_host.as_deref()).await?;
        let auth = crate::registry::ecr_login(&self.ecr, plan.registry.as_deref(), console).await?;
        let pushed = match &plan.source {
            ImageSource::Build(spec) => {
                let reference = format!("{}/{}:{}", auth.registry(), plan.repository, plan.tag);
                let request = crate::image::BuildRequest {
                    tag: reference.clone(),
                    registry_auth: Some(auth.clone()),
                    docker_host: self.docker_host.clone(),
                    ..spec.as_ref().clone()
                };
                // Build before creating anything in ECR: a failing build leaves no trace there.
                crate::image::build(&docker, &request, console).await?;
                crate::registry::ensure_repository(&self.ecr, &plan.repository, plan.create_repository, console)
                    .await?;
                crate::registry::push(&docker, &auth, &reference, &plan.repository, &plan.tag, console).await?
            }
            ImageSource::Given(image) => {
                // A repository is needed only when the image has to be pushed (it exists only locally).
                if docker.inspect_image(image).await.is_ok() {
                    crate::registry::ensure_repository(&self.ecr, &plan.repository, plan.create_repository, console)
                        .await?;
                }
                crate::registry::ensure_pushed(&docker, &auth, image, &plan.repository, &plan.tag, console).await?
            }
        };
        let reference = if plan.pin_digest { pushed.pinned() } else { pushed.reference.clone() };
        Ok(ShippedImage { reference, digest: Some(pushed.digest) })
    }
}

/// Everything the engine works with.
pub struct Engine<'a, I: ImageStage> {
    pub cfg: &'a Config,
    pub aws: &'a Clients,
    pub console: &'a Console,
    pub progress: &'a Progress,
    pub cadence: Cadence,
    /// Where the bundle zip is written.
    pub temp_dir: PathBuf,
    pub images: &'a I,
}

/// How long Beanstalk may take to process a new version.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(300);
/// Refused updates (another update got in first) tried again before giving up.
const MAX_UPDATE_ATTEMPTS: u32 = 5;
/// Versions listed when a rollback label does not exist.
const RECENT_VERSIONS: i32 = 10;

impl<I: ImageStage> Engine<'_, I> {
    /// Runs the configured mode to its outcome. Errors are failures the caller reports as `failed`.
    pub async fn run(&self) -> Result<Outcome> {
        // Local checks first: a bad bundle must fail before anything is asked of AWS.
        let prepared = match (&self.cfg.mode, &self.cfg.bundle) {
            (Mode::Deploy, Some(plan)) => {
                let started = Instant::now();
                let _group = self.console.group("Check bundle content");
                let prepared = prepare_bundle(plan, &self.temp_dir)?;
                self.phase("Check bundle content", started);
                Some(prepared)
            }
            _ => None,
        };
        let started = Instant::now();
        let env = self.check_environment().await?;
        let label = self.cfg.version_label.as_str();
        let existing = self.eb().version(&self.cfg.application, label).await?;
        self.phase("Check environment", started);

        match self.cfg.mode {
            Mode::Rollback => {
                let Some(version) = existing else {
                    bail!(self.missing_version_message(label).await);
                };
                self.check_deployable(&version)?;
                self.report_image_of(&version).await;
                if self.already_running(&env) {
                    return Ok(self.unchanged(&env));
                }
                self.console.info(format!(
                    "Rolling back {} from {} to {label}",
                    self.cfg.environment,
                    env.version_label.as_deref().unwrap_or("(no version)")
                ));
                self.deploy_version(env, false).await
            }
            Mode::Deploy => match existing {
                Some(version) => {
                    if !self.cfg.reuse_existing_version {
                        bail!(
                            "version {label} already exists in application {}, and reuse-existing-version is false; choose a new version-label, or set reuse-existing-version: true to deploy the existing one",
                            self.cfg.application
                        );
                    }
                    self.check_deployable(&version)?;
                    self.report_image_of(&version).await;
                    if self.already_running(&env) {
                        return Ok(self.unchanged(&env));
                    }
                    self.console.info(format!(
                        "Version {label} already exists: deploying it as is (reuse-existing-version); nothing is built or uploaded"
                    ));
                    self.deploy_version(env, false).await
                }
                None => {
                    let Some((content, template)) = prepared else {
                        bail!("internal: deploy mode without bundle settings");
                    };
                    self.create_version(&content, &template).await?;
                    self.deploy_version(env, true).await
                }
            },
        }
    }

    fn eb(&self) -> &crate::beanstalk::Beanstalk {
        &self.aws.eb
    }

    fn phase(&self, name: &str, since: Instant) {
        self.progress.update(|r| r.phase(name, since.elapsed()));
    }

    fn observe(&self, env: &Environment) {
        self.progress.update(|r| r.observe(env));
    }

    /// The environment must exist in the application; nothing is changed when it does not.
    async fn check_environment(&self) -> Result<Environment> {
        let (app, name) = (self.cfg.application.as_str(), self.cfg.environment.as_str());
        let _group = self.console.group(format!("Check {name}"));
        let Some(env) = self.eb().environment(app, name).await? else {
            if !self.eb().application_exists(app).await? {
                bail!(
                    "application {app} does not exist in {}; check application-name and region (create the application and environment once, e.g. with the console or `eb create`)",
                    self.aws.region
                );
            }
            let names = self.eb().environment_names(app).await?;
            let known =
                if names.is_empty() { "it has none".to_owned() } else { format!("it has: {}", names.join(", ")) };
            bail!(
                "environment {name} does not exist in application {app} ({known}); check environment-name and region"
            );
        };
        self.progress.update(|r| {
            r.previous_version_label = env.version_label.clone();
            r.observe(&env);
        });
        self.console.info(format!(
            "{name} ({}) runs {}: {} / {}",
            env.id,
            env.version_label.as_deref().unwrap_or("no version"),
            env.status,
            env.health
        ));
        if !env.is_ready() && self.cfg.on_busy == OnBusy::Fail {
            bail!(
                "environment {name} is {} (another operation is in progress) and on-busy is fail; retry later, or set on-busy: wait or abort",
                env.status
            );
        }
        Ok(env)
    }

    fn already_running(&self, env: &Environment) -> bool {
        env.is_ready()
            && env.version_label.as_deref() == Some(self.cfg.version_label.as_str())
            && health_ok(&env.health, self.cfg.wait.min_health)
    }

    fn unchanged(&self, env: &Environment) -> Outcome {
        self.console.info(format!(
            "{} already runs {} and is {}: nothing to do",
            self.cfg.environment, self.cfg.version_label, env.health
        ));
        self.progress.update(|r| {
            r.message = format!("{} already ran {}; no update was made", self.cfg.environment, self.cfg.version_label)
        });
        Outcome::Unchanged
    }

    fn check_deployable(&self, version: &Version) -> Result<()> {
        if version.status == "FAILED" {
            bail!(
                "version {} exists but Elastic Beanstalk could not process its bundle (status FAILED); deploy another version-label",
                version.label
            );
        }
        if let (Some(bucket), Some(key)) = (&version.bucket, &version.key) {
            self.progress.update(|r| r.bundle = Some(format!("s3://{bucket}/{key}")));
        }
        Ok(())
    }

    /// Reads which image an existing version deploys, for the `image` output (best effort).
    async fn report_image_of(&self, version: &Version) {
        let (Some(bucket), Some(key)) = (&version.bucket, &version.key) else { return };
        match bundle::image_of(&self.aws.s3, bucket, key).await {
            Ok(Some(image)) => {
                self.console.info(format!("Version {} deploys {image}", version.label));
                let digest = image.split_once('@').map(|(_, d)| d.to_owned()).filter(|d| d.starts_with("sha256:"));
                self.progress.update(|r| {
                    r.image = Some(image);
                    r.image_digest = digest;
                });
            }
            Ok(None) => {}
            Err(e) => self.console.debug(format!("could not read the image of version {}: {e:#}", version.label)),
        }
    }

    async fn missing_version_message(&self, label: &str) -> String {
        let app = &self.cfg.application;
        let recent = match self.eb().recent_versions(app, RECENT_VERSIONS).await {
            Ok(v) if v.is_empty() => "it has no versions".to_owned(),
            Ok(v) => format!("most recent: {}", v.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(", ")),
            Err(_) => "its versions could not be listed".to_owned(),
        };
        format!(
            "version {label} does not exist in application {app} ({recent}); give an existing version-label to roll back to"
        )
    }

    /// Image, bundle, upload and CreateApplicationVersion, checking what can be checked before any change.
    async fn create_version(&self, content: &bundle::Content, template: &Template) -> Result<()> {
        let (Some(image_plan), Some(bundle_plan)) = (&self.cfg.image, &self.cfg.bundle) else {
            bail!("internal: deploy mode without image and bundle settings");
        };
        if let Some(bucket) = &bundle_plan.bucket {
            self.check_bucket(bucket).await?;
        }

        let started = Instant::now();
        let image_plan = &self.with_running_image(image_plan).await;
        let shipped = self.images.ship(image_plan, self.console).await?;
        self.progress.update(|r| {
            r.image = Some(shipped.reference.clone());
            r.image_digest = shipped.digest.clone();
        });
        self.phase("Build and push image", started);

        let started = Instant::now();
        let uploaded = {
            let _group = self.console.group("Upload source bundle");
            let dockerrun = template.render(&shipped.reference, bundle_plan.container_port);
            let built = bundle::build(content, &dockerrun, &self.temp_dir)?;
            let bucket = match &bundle_plan.bucket {
                Some(b) => b.clone(),
                None => self.eb().storage_location().await?,
            };
            let key = bundle::key(&bundle_plan.prefix, &self.cfg.version_label, &built.sha256);
            let uploaded = bundle::upload(&self.aws.s3, &bucket, &key, &built).await?;
            if uploaded.reused {
                self.console.info(format!("{} already holds this exact bundle; not uploading again", uploaded.url()));
            } else {
                self.console.info(format!("Uploaded {} ({} bytes)", uploaded.url(), built.size));
            }
            self.progress.update(|r| r.bundle = Some(uploaded.url()));
            uploaded
        };
        self.phase("Upload bundle", started);

        let started = Instant::now();
        let _group = self.console.group(format!("Create version {}", self.cfg.version_label));
        let (app, label) = (&self.cfg.application, &self.cfg.version_label);
        let created = self
            .eb()
            .create_version(app, label, &self.cfg.version_description, &uploaded.bucket, &uploaded.key)
            .await?;
        if created.is_none() {
            // Someone created the same label between our check and now (a concurrent run of this workflow).
            if !self.cfg.reuse_existing_version {
                bail!("version {label} was created by someone else meanwhile, and reuse-existing-version is false");
            }
            self.console
                .warning(format!("version {label} was created concurrently by another run; deploying it"), None);
        } else {
            self.progress.update(|r| r.created_version = Some(label.clone()));
            if let Err(e) = self.eb().wait_processed(app, label, PROCESS_TIMEOUT).await {
                self.discard_created_version(!uploaded.reused).await;
                return Err(e);
            }
            self.console.info(format!("Created version {label}"));
        }
        self.phase("Create version", started);
        Ok(())
    }

    /// Adds the image the environment runs now (and the application's recent ones) to a build's cache
    /// sources: a fresh runner's daemon has no build cache, and BuildKit fetches the matching layers of those
    /// images instead of rebuilding them.
    async fn with_running_image(&self, plan: &ImagePlan) -> ImagePlan {
        let mut plan = plan.clone();
        if let ImageSource::Build(request) = &mut plan.source
            && !request.no_cache
            && request.builder != crate::image::Builder::Classic
        {
            let label = self.progress.snapshot().previous_version_label;
            let found = crate::image::cache::running_image(
                self.eb(),
                &self.aws.s3,
                &self.cfg.application,
                label.as_deref(),
                &plan.repository,
            )
            .await;
            for warning in found.warnings {
                self.console.warning(warning, None);
            }
            request.running_image = found.image;
            request.earlier_images = found.earlier;
        }
        plan
    }

    async fn check_bucket(&self, bucket: &str) -> Result<()> {
        match self.aws.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let why = match status {
                    Some(404) => "does not exist".to_owned(),
                    Some(403) => "is not accessible with these credentials".to_owned(),
                    _ => {
                        format!("could not be checked ({})", aws_smithy_types::error::display::DisplayErrorContext(&e))
                    }
                };
                bail!("bucket {bucket} {why}; check the `bucket` input (it must be in {})", self.aws.region)
            }
        }
    }

    /// Deletes a version this run created that will never be deployed, so a re-run does not trip on it.
    async fn discard_created_version(&self, delete_bundle: bool) {
        let Some(label) = self.progress.update(|r| r.created_version.take()) else { return };
        match self.eb().delete_version(&self.cfg.application, &label, delete_bundle).await {
            Ok(()) => {
                self.console.info(format!("Deleted version {label}, which this run created and could not deploy"))
            }
            Err(e) => self.console.warning(format!("could not delete version {label}: {e:#}"), None),
        }
    }

    /// Waits out (or aborts) another update, starts ours, and waits for the verdict.
    async fn deploy_version(&self, env: Environment, created_here: bool) -> Result<Outcome> {
        let label = self.cfg.version_label.as_str();
        let mut waiter = Waiter::new(self.eb(), self.console, self.cadence, now_ms());
        let observe = |e: &Environment| self.observe(e);
        let mut env = env;
        let mut attempts = 0;
        let started = loop {
            attempts += 1;
            if !env.is_ready() {
                env = match self.make_ready(&mut waiter, &env, &observe).await {
                    Ok(env) => env,
                    Err(verdict) => {
                        if created_here {
                            self.discard_created_version(false).await;
                        }
                        if let Verdict::TimedOut { .. } = verdict {
                            let message = format!(
                                "{} stayed busy for {} (on-busy: wait); nothing was deployed",
                                self.cfg.environment,
                                format_duration(self.cfg.wait.timeout)
                            );
                            return Ok(self.finish(Outcome::TimedOut, message));
                        }
                        return Ok(self.conclude(verdict, None));
                    }
                };
            }
            match self.eb().update_environment(&env.id, label).await? {
                Ok(started) => break started,
                Err(refused) if refused.reason == Some(UpdateRefusal::Busy) && attempts < MAX_UPDATE_ATTEMPTS => {
                    self.console
                        .info(format!("{} became busy before our update: {}", self.cfg.environment, refused.message));
                    if self.cfg.on_busy == OnBusy::Fail {
                        bail!("{}; on-busy is fail", refused.message);
                    }
                    env.status = "Updating".to_owned();
                }
                Err(refused) => {
                    bail!("Elastic Beanstalk refused to update {}: {}", self.cfg.environment, refused.message)
                }
            }
        };
        self.progress.update(|r| {
            r.created_version = None;
            r.update_in_flight = Some(started.environment.id.clone());
            r.observe(&started.environment);
        });
        self.console.info(format!(
            "Deploying {label} to {} (request {})",
            self.cfg.environment,
            started.request_id.as_deref().unwrap_or("unknown")
        ));

        if !self.cfg.wait.enabled {
            self.progress.update(|r| {
                r.update_in_flight = None;
                r.message =
                    format!("update to {label} started; not waiting (wait: false), so the result is not verified");
            });
            return Ok(Outcome::Started);
        }

        let wait_started = Instant::now();
        let started_ms = started.environment.updated_ms.unwrap_or_else(now_ms);
        let mut waiter = Waiter::new(self.eb(), self.console, self.cadence, started_ms - 1_000);
        let target = Target {
            application: &self.cfg.application,
            env_id: &started.environment.id,
            label,
            request_id: started.request_id.as_deref(),
            started_ms,
        };
        let outcome = waiter.settle(&target, &self.cfg.wait, Some(started.environment.clone()), &observe).await;
        self.progress.update(|r| r.events = waiter.timeline.clone());
        self.phase("Deploy and wait", wait_started);
        let mut verdict = outcome.verdict;
        if let Verdict::TimedOut { .. } = verdict
            && self.cfg.abort_on_timeout
        {
            verdict = Verdict::TimedOut { aborted: self.abort(&started.environment.id).await };
        }
        if !matches!(verdict, Verdict::TimedOut { aborted: false }) {
            self.progress.update(|r| r.update_in_flight = None);
        }
        Ok(self.conclude(verdict, outcome.environment))
    }

    /// Brings a busy environment to Ready per `on-busy`; `Err` carries the verdict when it cannot.
    async fn make_ready(
        &self,
        waiter: &mut Waiter<'_>,
        env: &Environment,
        observe: &dyn Fn(&Environment),
    ) -> Result<Environment, Verdict> {
        let name = &self.cfg.environment;
        match self.cfg.on_busy {
            OnBusy::Fail => {
                return Err(Verdict::Failed(Failure::Busy { status: env.status.clone() }));
            }
            OnBusy::Abort => {
                self.console.info(format!("{name} is {}: aborting that update (on-busy: abort)", env.status));
                if let Err(e) = self.eb().abort_update(&env.id).await {
                    // It may have finished meanwhile; waiting tells.
                    self.console.warning(format!("{e:#}"), None);
                }
            }
            OnBusy::Wait => {
                self.console.info(format!(
                    "{name} is {}: waiting up to {} for it to be Ready (on-busy: wait)",
                    env.status,
                    format_duration(self.cfg.wait.timeout)
                ));
            }
        }
        let started = Instant::now();
        let result = waiter.until_ready(&self.cfg.application, &env.id, self.cfg.wait.timeout, observe).await;
        self.phase("Wait for the environment to be Ready", started);
        result
    }

    async fn abort(&self, env_id: &str) -> bool {
        match self.eb().abort_update(env_id).await {
            Ok(()) => {
                self.console.info(
                    "Aborted the update (abort-on-timeout); Elastic Beanstalk rolls back to the previous version",
                );
                true
            }
            Err(e) => {
                self.console.warning(format!("could not abort the update: {e:#}"), None);
                false
            }
        }
    }

    /// Turns a verdict into the outcome, the message and the annotation.
    fn conclude(&self, verdict: Verdict, env: Option<Environment>) -> Outcome {
        if let Some(env) = &env {
            self.observe(env);
        }
        let label = &self.cfg.version_label;
        let (outcome, message) = match &verdict {
            Verdict::Deployed => {
                let env = env.unwrap_or_default();
                let url = env.url().map(|u| format!(" at {u}")).unwrap_or_default();
                (Outcome::Deployed, format!("{} runs {label}, {}{url}", self.cfg.environment, env.health))
            }
            Verdict::Failed(failure) => (Outcome::Failed, failure.describe(label, &self.cfg.wait)),
            Verdict::TimedOut { aborted } => {
                let status = env.map(|e| e.status).unwrap_or_else(|| "unknown".to_owned());
                let what = if *aborted {
                    "the update was aborted and Elastic Beanstalk is rolling back"
                } else {
                    "the update goes on; set abort-on-timeout: true to abort it instead"
                };
                (
                    Outcome::TimedOut,
                    format!(
                        "{} did not settle on {label} within {} (status {status}); {what}",
                        self.cfg.environment,
                        format_duration(self.cfg.wait.timeout)
                    ),
                )
            }
        };
        self.finish(outcome, message)
    }

    /// Announces the outcome (a notice or an error annotation) and records its message.
    fn finish(&self, outcome: Outcome, message: String) -> Outcome {
        if outcome.is_success() {
            self.console.notice(&message, Some(&Annotation::titled("eb-deploy")));
        } else {
            self.console.error(&message, Some(&Annotation::titled("eb-deploy")));
        }
        self.progress.update(|r| r.message = message);
        outcome
    }
}

/// Collects the bundle's extra content and its template, and checks its size, before anything changes.
fn prepare_bundle(plan: &BundlePlan, temp_dir: &std::path::Path) -> Result<(bundle::Content, Template)> {
    let content = bundle::collect(&plan.workspace, plan.bundle_dir.as_deref()).context("input `bundle-dir`")?;
    let template = plan.template.clone().unwrap_or_else(|| Template::generated(plan.container_port));
    let total = content.total_bytes()?;
    // Deflate never grows data by more than a fraction of a percent; only near the limit is a real zip needed.
    if total > MAX_BUNDLE_BYTES - MAX_BUNDLE_BYTES / 100 {
        let probe = bundle::build(&content, &template.render("probe", plan.container_port), temp_dir)
            .context("input `bundle-dir`")?;
        drop(probe);
    }
    Ok((content, template))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::inputs::RawInputs;
    use crate::testing::{FakeEb, Scenario, snap};

    const MUTATING: &[&str] = &[
        "CreateApplicationVersion",
        "UpdateEnvironment",
        "AbortEnvironmentUpdate",
        "DeleteApplicationVersion",
        "CreateStorageLocation",
    ];

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    struct FakeImages;
    impl ImageStage for FakeImages {
        async fn ship(&self, _plan: &ImagePlan, _console: &Console) -> Result<ShippedImage> {
            Ok(ShippedImage { reference: "repo@sha256:feed".into(), digest: Some("sha256:feed".into()) })
        }
    }

    struct Run {
        result: Result<Outcome>,
        fake: FakeEb,
        report: crate::report::Report,
        log: String,
        ended: Duration,
    }

    impl Run {
        fn outcome(&self) -> Outcome {
            match &self.result {
                Ok(o) => *o,
                Err(e) => panic!("expected an outcome, got error: {e:#}\n{}", self.log),
            }
        }
        fn error(&self) -> String {
            match &self.result {
                Ok(o) => panic!("expected an error, got {o}\n{}", self.log),
                Err(e) => format!("{e:#}"),
            }
        }
        fn mutations(&self) -> Vec<&'static str> {
            self.fake.calls().iter().map(|c| c.op).filter(|op| MUTATING.contains(op)).collect()
        }
    }

    async fn run(sc: Scenario, inputs: &[(&'static str, &str)]) -> Run {
        let workspace = std::env::temp_dir().join(format!("engine-ws-{}", std::process::id()));
        std::fs::create_dir_all(&workspace).unwrap();
        let mut raw = RawInputs::default();
        for (k, v) in [
            ("application-name", "app"),
            ("environment-name", "web-prod"),
            ("image", "nginx:1"),
            ("version-label", "v2"),
        ]
        .iter()
        .chain(inputs)
        {
            raw.set(k, v);
        }
        let cfg = Config::from_inputs(&raw, &crate::config::RunContext::default(), &workspace).unwrap();
        let fake = FakeEb::new(sc);
        let clients = fake.clients();
        let (console, buf) = Console::captured(false, true);
        let progress = Progress::default();
        let engine = Engine {
            cfg: &cfg,
            aws: &clients,
            console: &console,
            progress: &progress,
            cadence: Cadence::default(),
            temp_dir: workspace.clone(),
            images: &FakeImages,
        };
        let t0 = Instant::now();
        let result = engine.run().await;
        let ended = t0.elapsed();
        let log = buf.text();
        Run { result, fake, report: progress.snapshot(), log, ended }
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
        assert!(latency <= secs(2.6), "verdict {latency:?} after Beanstalk settled");
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
            assert!(latency <= secs(2.6), "{at} s deploy: verdict {latency:?} after Beanstalk settled");
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
        assert!(r.ended <= r.fake.updated_at().unwrap() + secs(32.0), "ended at {:?}", r.ended);
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
        let r = run(stuck(), &[("wait-timeout", "5m")]).await;
        assert_eq!(r.outcome(), Outcome::TimedOut);
        assert_eq!(r.fake.count("AbortEnvironmentUpdate"), 0);
        let waited = r.ended - r.fake.updated_at().unwrap();
        assert!(waited >= secs(300.0) && waited <= secs(301.0), "{waited:?}");
        assert!(r.report.message.contains("abort-on-timeout"), "{}", r.report.message);
        assert!(r.report.update_in_flight.is_some());
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

    #[tokio::test(start_paused = true)]
    async fn a_version_beanstalk_cannot_process_is_deleted() {
        let mut sc = succeeds_at(20.0);
        sc.new_version_status = "FAILED";
        let r = run(sc, &[]).await;
        assert!(r.error().contains("could not process version v2"), "{}", r.error());
        assert_eq!(r.fake.count("DeleteApplicationVersion"), 1);
        assert_eq!(r.fake.count("UpdateEnvironment"), 0);
        assert!(r.fake.created().is_empty());
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
}
