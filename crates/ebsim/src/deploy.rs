//! Deployments: the background work behind CreateEnvironment and UpdateEnvironment. A deploy
//! fetches the bundle, starts the new instance, checks its health and only then moves the
//! environment's proxy to it; every failure leaves the previous instance serving.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use tokio::sync::watch;

use crate::bundle::{self, BundleError, Plan};
use crate::ids;
use crate::options;
use crate::protocol::time::now_ms;
use crate::proxy::Target;
use crate::rng::SplitMix64;
use crate::state::{EnvStatus, EventScope, FailedInstance, Health, HealthStatus, OptionSetting, Severity, Sim, State};

/// What an environment's background work is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Run,
    /// AbortEnvironmentUpdate: stop, roll back.
    Abort,
    /// The environment is being terminated: stop, clean up only.
    Terminate,
}

/// What the runtime is asked to start.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Name for the container (chosen beforehand so an interrupted launch can still be cleaned up).
    pub container_name: String,
    pub app: String,
    pub env_name: String,
    pub label: String,
    pub plan: Plan,
    /// The bundle itself (Dockerfile builds need it).
    pub bundle: Arc<Vec<u8>>,
    /// `aws:elasticbeanstalk:application:environment` options.
    pub env_vars: Vec<(String, String)>,
}

/// A started instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub container_id: String,
    /// Where it answers HTTP, on loopback.
    pub addr: SocketAddr,
}

/// Whether an instance still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Running,
    /// It stopped; why.
    Gone(String),
}

/// Why a deploy failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An ordinary failure: generic events, the reason only in logs and admin state.
    Generic(String),
    /// The bundle lacks Dockerfile and Dockerrun.aws.json (its own event text).
    MissingDockerfiles(String),
    /// Something the emulator does not do: an extra event saying so.
    Emulator { event: String, reason: String },
    /// A configuration file Beanstalk cannot read: its event, before any instance is touched.
    Config(String),
}

impl Failure {
    /// The short reason for logs and admin state.
    pub fn reason(&self) -> &str {
        match self {
            Self::Generic(r) | Self::MissingDockerfiles(r) | Self::Config(r) => r,
            Self::Emulator { reason, .. } => reason,
        }
    }
}

/// Runs instances (Docker in production, fakes in tests).
pub trait Runtime: Send + Sync {
    /// Starts an instance; on error nothing is left running.
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Instance, Failure>>;
    /// Whether a started instance still runs.
    fn liveness<'a>(&'a self, container: &'a str) -> BoxFuture<'a, Liveness>;
    /// Removes an instance by container name or id; missing ones are ignored.
    fn remove<'a>(&'a self, container: &'a str) -> BoxFuture<'a, ()>;
    /// Removes every instance this runtime started.
    fn remove_all(&self) -> BoxFuture<'_, ()>;
    /// The last `lines` lines an instance wrote (stdout and stderr), by container name or id; also
    /// after its removal, since a failed deploy's container is gone before anyone asks for logs.
    fn output<'a>(&'a self, container: &'a str, lines: usize) -> BoxFuture<'a, Vec<String>>;
}

/// A runtime that cannot run anything (API-only use).
#[derive(Debug, Default)]
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn launch(&self, _spec: LaunchSpec) -> BoxFuture<'_, Result<Instance, Failure>> {
        Box::pin(async {
            Err(Failure::Emulator {
                event: "Instance deployment: this ebsim has no container runtime, so it cannot run the application."
                    .into(),
                reason: "no container runtime configured".into(),
            })
        })
    }
    fn liveness<'a>(&'a self, _c: &'a str) -> BoxFuture<'a, Liveness> {
        Box::pin(async { Liveness::Gone("no container runtime".into()) })
    }
    fn remove<'a>(&'a self, _c: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn remove_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn output<'a>(&'a self, _c: &'a str, _lines: usize) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

/// Launch of a new environment, or update of an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Launch,
    Update,
}

/// The version a deploy installs.
#[derive(Debug, Clone)]
pub struct TargetVersion {
    pub label: String,
    /// `(bucket, key)`; none = sample application.
    pub bundle: Option<(String, String)>,
}

/// One deploy, as the operation that started it prepared it.
#[derive(Debug, Clone)]
pub struct Job {
    pub env_seq: u64,
    pub generation: u64,
    pub kind: Kind,
    /// None: a configuration-only update, or a launch of the sample application.
    pub target: Option<TargetVersion>,
    /// A configuration-only update that changes what the application sees restarts it on this version.
    pub restart: Option<TargetVersion>,
    pub prev_options: Vec<OptionSetting>,
    pub request_id: String,
    pub app: String,
    pub env_name: String,
    pub instance_id: String,
    pub started_ms: i64,
}

/// The job's environment changed hands (aborted, terminated, superseded).
#[derive(Debug)]
struct Stale;

/// Message of the missing-Dockerfile failure.
pub const MISSING_DOCKERFILES: &str = "Instance deployment: Both 'Dockerfile' and 'Dockerrun.aws.json' are missing in your source bundle. Include at least one of them. The deployment failed.";

/// Starts a job's background work. `control` is the receiving end of the environment's channel.
pub fn spawn(sim: Arc<Sim>, job: Job, control: watch::Receiver<Control>) {
    let pace = Mutex::new(sim.pace());
    tokio::spawn(run(Ctx { sim, job, slot: Arc::new(Mutex::new(None)), pace }, control));
}

async fn run(ctx: Ctx, mut control: watch::Receiver<Control>) {
    let outcome = tokio::select! {
        r = ctx.pipeline() => Some(r),
        _ = wait_for_stop(&mut control) => None,
    };
    let signal = *control.borrow();
    match (outcome, signal) {
        (Some(Ok(())), _) => {}
        (Some(Err(PipelineError::Failed(f))), _) => ctx.fail(f).await,
        (_, Control::Abort) => ctx.aborted().await,
        (_, _) => ctx.discard().await,
    }
}

async fn wait_for_stop(rx: &mut watch::Receiver<Control>) {
    loop {
        if *rx.borrow_and_update() != Control::Run {
            return;
        }
        if rx.changed().await.is_err() {
            // The sender is gone (environment forgotten): keep running to completion.
            std::future::pending::<()>().await;
        }
    }
}

enum PipelineError {
    Failed(Failure),
    Stale,
}

impl From<Stale> for PipelineError {
    fn from(_: Stale) -> Self {
        Self::Stale
    }
}

struct Ctx {
    sim: Arc<Sim>,
    job: Job,
    /// Name of the container this deploy started, until it serves.
    slot: Arc<Mutex<Option<String>>>,
    /// Draws the duration of each step.
    pace: Mutex<SplitMix64>,
}

impl Ctx {
    fn scope(&self, request: bool) -> EventScope {
        EventScope {
            app: Some(self.job.app.clone()),
            env: Some(self.job.env_name.clone()),
            label: self.job.target.as_ref().map(|t| t.label.clone()),
            request_id: request.then(|| self.job.request_id.clone()),
        }
    }

    /// Runs `f` on the state and the job's environment index while the job is still current.
    fn with_env<R>(&self, f: impl FnOnce(&mut State, usize) -> R) -> Result<R, Stale> {
        let mut st = self.sim.state();
        let i = st.env_index_by_seq(self.job.env_seq).ok_or(Stale)?;
        if st.envs[i].generation != self.job.generation {
            return Err(Stale);
        }
        Ok(f(&mut st, i))
    }

    fn event(&self, severity: Severity, message: &str) -> Result<(), Stale> {
        let scope = self.scope(true);
        self.with_env(|st, _| st.event(&scope, severity, message))
    }

    /// A line of the environment's engine log (kept whatever happened to the job since).
    fn engine(&self, level: &str, message: &str) {
        let mut st = self.sim.state();
        if let Some(i) = st.env_index_by_seq(self.job.env_seq) {
            st.envs[i].engine(level, message);
        }
    }

    fn health_event(&self, severity: Severity, message: &str) -> Result<(), Stale> {
        let scope = self.scope(false);
        self.with_env(|st, _| st.event(&scope, severity, message))
    }

    async fn step(&self) {
        let pause = self.sim.cfg.timing.step.draw(&mut self.pace.lock().unwrap_or_else(|p| p.into_inner()));
        tokio::time::sleep(pause).await;
    }

    fn running_secs(&self) -> i64 {
        ((now_ms() - self.job.started_ms) / 1000).max(0)
    }

    async fn pipeline(&self) -> Result<(), PipelineError> {
        let launch = self.job.kind == Kind::Launch;
        let what = match (&self.job.target, launch) {
            (Some(t), true) => format!("launch of environment {} with version {}", self.job.env_name, t.label),
            (None, true) => format!("launch of environment {} with the sample application", self.job.env_name),
            (Some(t), false) => format!("deployment of version {} to environment {}", t.label, self.job.env_name),
            (None, false) => format!("configuration update of environment {}", self.job.env_name),
        };
        self.engine("INFO", &format!("Starting the {what} (request {})", self.job.request_id));
        self.step().await;
        if launch {
            let msg =
                format!("Using {} as Amazon S3 storage bucket for environment data.", self.sim.cfg.storage_bucket());
            self.event(Severity::Info, &msg)?;
            self.step().await;
            self.event(Severity::Info, &format!("Added instance [{}] to your environment.", self.job.instance_id))?;
            self.step().await;
        }
        let Some(target) = self.job.target.clone() else {
            return if launch { self.commit_launch(None).await } else { self.config_update().await };
        };
        // Beanstalk reads the bundle's configuration files before it touches an instance; a
        // download failure shows at the instance step, where the instance would have met it.
        let bundle = self.fetch(&target).await;
        if let (Some(Ok(bytes)), Some((b, k))) = (&bundle, &target.bundle) {
            self.engine("INFO", &format!("Downloaded the source bundle s3://{b}/{k} ({} bytes)", bytes.len()));
            if let Err(BundleError::BadConfig(e)) = bundle::check_config(bytes) {
                self.engine(
                    "ERROR",
                    &format!("Reading the configuration files failed: {}", BundleError::BadConfig(e.clone())),
                );
                return Err(PipelineError::Failed(Failure::Config(e.event(&target.label))));
            }
        }
        if !launch {
            self.event(Severity::Info, "Deploying new version to instance(s).")?;
            if self.sim.faults().take_stuck_update(&self.job.app, &self.job.env_name) {
                tracing::warn!(env = %self.job.env_name, "update held in Updating by the stuck_next_updates fault");
                std::future::pending::<()>().await;
            }
        }
        let instance = self.install(&target, bundle).await?;
        self.step().await;
        self.event(Severity::Info, "Instance deployment completed successfully.")?;
        if launch {
            return self.commit_launch(instance).await;
        }
        self.step().await;
        let msg = format!(
            "Environment health has transitioned from Ok to Info. Application update in progress on 1 instance. 0 out of 1 instance completed (running for {} seconds).",
            self.running_secs()
        );
        self.health_event(Severity::Info, &msg)?;
        self.switch_proxy(instance.as_ref())?;
        self.step().await;
        self.event(Severity::Info, "New application version was deployed to running EC2 instances.")?;
        self.step().await;
        self.commit_update(target, instance).await
    }

    /// Downloads the target version's bundle; `None` = sample application.
    async fn fetch(&self, target: &TargetVersion) -> Option<Result<Vec<u8>, String>> {
        let (bucket, key) = target.bundle.as_ref()?;
        Some(
            self.sim
                .store
                .get(bucket, key)
                .await
                .map_err(|e| format!("failed to download source bundle s3://{bucket}/{key}: {e}")),
        )
    }

    /// Checks and starts the target version from its downloaded bundle; `None` = sample application.
    async fn install(
        &self,
        target: &TargetVersion,
        bundle: Option<Result<Vec<u8>, String>>,
    ) -> Result<Option<Instance>, PipelineError> {
        if self.sim.faults().take_failing_deploy(&self.job.app, &self.job.env_name) {
            return Err(PipelineError::Failed(Failure::Generic(
                "injected fault: fail_next_deploys (the instance step failed)".into(),
            )));
        }
        let Some(bytes) = bundle else { return Ok(None) };
        let fail = |r: String| PipelineError::Failed(Failure::Generic(r));
        let bytes = bytes.map_err(fail)?;
        let plan = bundle::plan(&bytes).map_err(|e| match e {
            BundleError::MissingDockerfiles => PipelineError::Failed(Failure::MissingDockerfiles(e.to_string())),
            other => fail(other.to_string()),
        })?;
        self.engine("INFO", &describe_plan(&plan));
        if let Plan::Compose(why) = &plan {
            return Err(PipelineError::Failed(Failure::Emulator {
                event: format!(
                    "Instance deployment: ebsim, the local Elastic Beanstalk emulator, runs only the image of the first docker-compose.yml service, and {why}."
                ),
                reason: format!("unsupported docker-compose.yml: {why}"),
            }));
        }
        // Variables from the bundle's .ebextensions, overridden by the environment's own settings.
        let mut env_vars = bundle::ebextensions(&bytes).map(|c| options::ebextensions_env(&c)).unwrap_or_default();
        if !env_vars.is_empty() {
            let names: Vec<&str> = env_vars.iter().map(|(k, _)| k.as_str()).collect();
            self.engine("INFO", &format!("Environment variables from .ebextensions: {}", names.join(", ")));
        }
        let (health_path, set) = self.with_env(|st, i| {
            let env = &st.envs[i];
            let path = healthcheck_path(env.option("aws:elasticbeanstalk:application", "Application Healthcheck URL"));
            let vars = env
                .options
                .iter()
                .filter(|o| o.namespace == options::ENV_VARS)
                .map(|o| (o.name.clone(), o.value.clone()))
                .collect::<Vec<_>>();
            (path, vars)
        })?;
        env_vars.retain(|(k, _)| !set.iter().any(|(s, _)| s == k));
        env_vars.extend(set);
        let name = format!("ebsim-{}-{}", self.job.env_name, ids::short_suffix());
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(name.clone());
        let spec = LaunchSpec {
            container_name: name.clone(),
            app: self.job.app.clone(),
            env_name: self.job.env_name.clone(),
            label: target.label.clone(),
            plan,
            bundle: Arc::new(bytes),
            env_vars,
        };
        self.engine("INFO", &format!("Starting container {name}"));
        let instance = self.sim.runtime.launch(spec).await.map_err(PipelineError::Failed)?;
        let short = &instance.container_id[..instance.container_id.len().min(12)];
        self.engine("INFO", &format!("Container {short} is running, listening on {}", instance.addr));
        self.wait_healthy(&instance, &health_path).await.map_err(fail)?;
        self.engine("INFO", &format!("Health check GET {health_path} passed"));
        Ok(Some(instance))
    }

    async fn wait_healthy(&self, instance: &Instance, path: &str) -> Result<(), String> {
        let timeout = Duration::from_millis(self.sim.cfg.timing.health_timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last;
        loop {
            if let Liveness::Gone(why) = self.sim.runtime.liveness(&instance.container_id).await {
                return Err(format!("the application container stopped: {why}"));
            }
            match probe(instance.addr, path).await {
                Ok(code) if (200..400).contains(&code) => return Ok(()),
                Ok(code) => last = format!("GET {path} answered HTTP {code}"),
                Err(e) => last = format!("GET {path} failed: {e}"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("health check did not pass within {} ms ({last})", timeout.as_millis()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn switch_proxy(&self, instance: Option<&Instance>) -> Result<(), Stale> {
        let target = instance.map_or(Target::Sample, |i| Target::Instance(i.addr));
        self.engine(
            "INFO",
            &match instance {
                Some(i) => format!("The load balancer now routes to the new instance ({})", i.addr),
                None => "The load balancer now serves the sample application".to_string(),
            },
        );
        self.with_env(|st, i| {
            if let Some(p) = &st.envs[i].proxy {
                p.set_target(target);
            }
        })
    }

    /// Makes the new instance the environment's; returns the container it replaced.
    fn adopt(st: &mut State, i: usize, instance: Option<Instance>) -> Option<String> {
        let env = &mut st.envs[i];
        let old = env.container.take();
        env.instance_addr = instance.as_ref().map(|n| n.addr);
        env.container = instance.map(|n| n.container_id);
        env.abortable = false;
        env.control = None;
        old
    }

    async fn commit_update(&self, target: TargetVersion, instance: Option<Instance>) -> Result<(), PipelineError> {
        let settle = self.sim.faults().settle_health(&self.job.app, &self.job.env_name);
        let (health, status) = settle.health();
        let took = self.running_secs();
        let scope = self.scope(true);
        let plain = self.scope(false);
        let new_id = instance.as_ref().map(|n| n.container_id.clone());
        let old = self.with_env(|st, i| {
            let old = Self::adopt(st, i, instance);
            let env = &mut st.envs[i];
            env.version_label = Some(target.label.clone());
            env.deployed_label = Some(target.label.clone());
            env.causes = causes_for(status);
            env.failed_instance = None;
            env.engine("INFO", &format!("Version {} is deployed; the previous instance is removed", target.label));
            env.set(EnvStatus::Ready, health, status);
            st.event(&scope, Severity::Info, "Environment update completed successfully.");
            let (sev, tail) = match status {
                HealthStatus::Ok => {
                    (Severity::Info, format!("Application update completed 1 second ago and took {took} seconds."))
                }
                _ => (Severity::Warn, causes_for(status).join(" ")),
            };
            let msg = format!("Environment health has transitioned from Info to {}. {tail}", status.as_str());
            st.event(&plain, sev, msg);
            old
        })?;
        self.switch_over(old, new_id).await;
        Ok(())
    }

    async fn commit_launch(&self, instance: Option<Instance>) -> Result<(), PipelineError> {
        self.switch_proxy(instance.as_ref())?;
        let settle = if instance.is_some() {
            self.sim.faults().settle_health(&self.job.app, &self.job.env_name)
        } else {
            crate::faults::SettleHealth::Green
        };
        let (health, status) = settle.health();
        let took = self.running_secs();
        let scope = self.scope(true);
        let plain = self.scope(false);
        let label = self.job.target.as_ref().map(|t| t.label.clone());
        let name = self.job.env_name.clone();
        self.with_env(|st, i| {
            Self::adopt(st, i, instance);
            let env = &mut st.envs[i];
            env.version_label = label.clone();
            env.deployed_label = label;
            env.causes = causes_for(status);
            env.engine("INFO", &format!("Environment {name} is launched"));
            env.set(EnvStatus::Ready, health, status);
            let cname = env.cname.clone();
            st.event(&scope, Severity::Info, format!("Application available at {cname}."));
            st.event(&scope, Severity::Info, format!("Successfully launched environment: {name}"));
            let sev = if status == HealthStatus::Ok { Severity::Info } else { Severity::Warn };
            let msg = format!(
                "Environment health has transitioned from Pending to {}. Initialization completed 1 second ago and took {took} seconds.",
                status.as_str()
            );
            st.event(&plain, sev, msg);
        })?;
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// The container this deploy started now serves (nothing is left for `clean_up` to remove); the one the
    /// environment ran before goes, unless it is the same one.
    async fn switch_over(&self, old: Option<String>, new_id: Option<String>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(old) = old
            && Some(&old) != new_id.as_ref()
        {
            self.sim.runtime.remove(&old).await;
        }
    }

    async fn config_update(&self) -> Result<(), PipelineError> {
        let msg = format!("Updating environment {}'s configuration settings.", self.job.env_name);
        self.event(Severity::Info, &msg)?;
        let mut restarted = None;
        if let Some(target) = self.job.restart.clone() {
            self.engine(
                "INFO",
                &format!("The application's settings changed: restarting version {} with them", target.label),
            );
            let bundle = self.fetch(&target).await;
            let instance = self.install(&target, bundle).await?;
            self.switch_proxy(instance.as_ref())?;
            restarted = Some(instance);
        }
        self.step().await;
        self.event(Severity::Info, "Successfully deployed new configuration to environment.")?;
        self.step().await;
        let scope = self.scope(true);
        let new_id = restarted.as_ref().and_then(|i| i.as_ref().map(|n| n.container_id.clone()));
        let old = self.with_env(|st, i| {
            let old = match restarted {
                Some(instance) => Self::adopt(st, i, instance),
                None => None,
            };
            let env = &mut st.envs[i];
            env.abortable = false;
            env.control = None;
            env.causes.clear();
            env.engine("INFO", "The new configuration is deployed");
            env.set(EnvStatus::Ready, Health::Green, HealthStatus::Ok);
            st.event(&scope, Severity::Info, "Environment update completed successfully.");
            old
        })?;
        self.switch_over(old, new_id).await;
        Ok(())
    }

    /// Keeps the last output of the instance this deploy started (if it got that far), for logs.
    async fn keep_failed_output(&self) {
        let started = self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(container) = started else { return };
        let output = self.sim.runtime.output(&container, 100).await;
        let mut st = self.sim.state();
        if let Some(i) = st.env_index_by_seq(self.job.env_seq) {
            let env = &mut st.envs[i];
            env.engine(
                "INFO",
                &format!(
                    "Removed the failed container {container}; the environment stays on {}",
                    env.deployed_label.as_deref().unwrap_or("the sample application")
                ),
            );
            env.failed_instance = Some(FailedInstance { container, output });
        }
    }

    /// Removes whatever this deploy started and puts the proxy back on the serving instance.
    /// Runs after an abort too, when the job is no longer current, so it does not check that.
    async fn clean_up(&self) {
        let started = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        {
            let st = self.sim.state();
            if let Some(i) = st.env_index_by_seq(self.job.env_seq) {
                let env = &st.envs[i];
                if let Some(p) = &env.proxy
                    && p.target() != Target::Down
                {
                    p.set_target(env.instance_addr.map_or(Target::Sample, Target::Instance));
                }
            }
        }
        if let Some(name) = started {
            self.sim.runtime.remove(&name).await;
        }
    }

    /// Superseded or terminated: clean up, touch nothing else.
    async fn discard(&self) {
        let started = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(name) = started {
            self.sim.runtime.remove(&name).await;
        }
    }

    async fn fail(&self, failure: Failure) {
        let reason = failure.reason().to_string();
        tracing::warn!(
            env = %self.job.env_name,
            label = self.job.target.as_ref().map(|t| t.label.as_str()).unwrap_or("-"),
            "deploy failed: {reason}"
        );
        self.engine("ERROR", &format!("Deployment failed: {reason}"));
        self.keep_failed_output().await;
        self.clean_up().await;
        let iid = self.job.instance_id.clone();
        let first = match &failure {
            Failure::MissingDockerfiles(_) => Some(MISSING_DOCKERFILES.to_string()),
            Failure::Emulator { event, .. } => Some(event.clone()),
            Failure::Generic(_) => None,
            Failure::Config(event) => return self.config_failed(&reason, event).await,
        };
        // From here on the update can no longer be aborted: it is already rolling back.
        let r = self.with_env(|st, i| {
            st.envs[i].last_failure = Some(reason.clone());
            st.envs[i].abortable = false;
        });
        if r.is_err() {
            return;
        }
        let emit = |sev, msg: &str| self.event(sev, msg);
        let mut ok = true;
        if let Some(m) = first {
            ok &= emit(Severity::Error, &m).is_ok();
        }
        ok &= emit(Severity::Error, "Instance deployment failed. For details, see 'eb-engine.log'.").is_ok();
        ok &= emit(
            Severity::Error,
            &format!("[Instance: {iid}] Command failed on instance. Return code: 1 Output: Engine execution has encountered an error.."),
        )
        .is_ok();
        if !ok {
            return;
        }
        self.step().await;
        let _ =
            emit(Severity::Info, "Command execution completed on all instances. Summary: [Successful: 0, Failed: 1].");
        let _ = emit(
            Severity::Error,
            &format!("Unsuccessful command execution on instance id(s) '{iid}'. Aborting the operation."),
        );
        self.step().await;
        let launch = self.job.kind == Kind::Launch;
        let configuration = self.job.target.is_none();
        let scope = self.scope(true);
        let plain = self.scope(false);
        let prev_options = self.job.prev_options.clone();
        let committed = self.with_env(|st, i| {
            let env = &mut st.envs[i];
            env.version_label = env.deployed_label.clone();
            env.options = prev_options;
            env.abortable = false;
            env.control = None;
            let (from, to) = if launch {
                (HealthStatus::Pending, HealthStatus::Severe)
            } else {
                (HealthStatus::Info, HealthStatus::Degraded)
            };
            env.causes = vec!["Command failed on all instances.".into()];
            env.set(EnvStatus::Ready, Health::Red, to);
            let last = match (launch, configuration) {
                (true, _) => {
                    "Create environment operation is complete, but with errors. For more information, see troubleshooting documentation."
                }
                (false, true) => "Failed to deploy configuration.",
                (false, false) => "Failed to deploy application.",
            };
            st.event(&scope, Severity::Error, last);
            st.event(
                &plain,
                Severity::Warn,
                format!(
                    "Environment health has transitioned from {} to {}. Command failed on all instances.",
                    from.as_str(),
                    to.as_str()
                ),
            );
        });
        if committed.is_ok() {
            schedule_recovery(
                Arc::clone(&self.sim),
                self.job.env_seq,
                self.job.generation,
                self.job.env_name.clone(),
                self.job.app.clone(),
            );
        }
    }

    /// A configuration file Beanstalk cannot read: its event, then the operation's failure, with no
    /// instance touched, so the environment keeps its version, settings and health.
    async fn config_failed(&self, reason: &str, event: &str) {
        let launch = self.job.kind == Kind::Launch;
        let scope = self.scope(true);
        let prev_options = self.job.prev_options.clone();
        let r = self.with_env(|st, i| {
            st.envs[i].last_failure = Some(reason.to_string());
            st.envs[i].abortable = false;
            st.event(&scope, Severity::Error, event);
        });
        if r.is_err() {
            return;
        }
        self.step().await;
        let committed = self.with_env(|st, i| {
            let env = &mut st.envs[i];
            env.version_label = env.deployed_label.clone();
            env.options = prev_options;
            env.control = None;
            let (status, health, health_status, last) = if launch {
                (
                    EnvStatus::Ready,
                    Health::Red,
                    HealthStatus::Severe,
                    "Create environment operation is complete, but with errors. For more information, see troubleshooting documentation.",
                )
            } else {
                // The update found the environment Ready and left its instances as they were.
                (EnvStatus::Ready, Health::Green, HealthStatus::Ok, "Failed to deploy application.")
            };
            env.causes = if launch { vec!["Command failed on all instances.".into()] } else { Vec::new() };
            env.set(status, health, health_status);
            st.event(&scope, Severity::Error, last);
        });
        if launch && committed.is_ok() {
            schedule_recovery(
                Arc::clone(&self.sim),
                self.job.env_seq,
                self.job.generation,
                self.job.env_name.clone(),
                self.job.app.clone(),
            );
        }
    }

    async fn aborted(&self) {
        self.clean_up().await;
        self.step().await;
        let scope = EventScope { request_id: None, ..self.scope(false) };
        let prev_options = self.job.prev_options.clone();
        let seq = self.job.env_seq;
        let mut st = self.sim.state();
        let Some(i) = st.env_index_by_seq(seq) else { return };
        if st.envs[i].status != EnvStatus::Aborting {
            return;
        }
        let env = &mut st.envs[i];
        env.version_label = env.deployed_label.clone();
        env.options = prev_options;
        env.abortable = false;
        env.control = None;
        env.causes.clear();
        env.engine(
            "INFO",
            &format!(
                "The update was aborted; the environment is back on {}",
                env.deployed_label.as_deref().unwrap_or("the sample application")
            ),
        );
        env.set(EnvStatus::Ready, Health::Green, HealthStatus::Ok);
        st.event(
            &scope,
            Severity::Info,
            "Environment update was aborted; the environment is back on its previous version.",
        );
    }
}

/// After a failure, health goes back to Green once `red_ms` passed, unless something else happened.
fn schedule_recovery(sim: Arc<Sim>, seq: u64, generation: u64, env: String, app: String) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(sim.cfg.timing.red_ms)).await;
        let mut st = sim.state();
        let Some(i) = st.env_index_by_seq(seq) else { return };
        let e = &mut st.envs[i];
        if e.generation != generation || e.health != Health::Red || e.status != EnvStatus::Ready {
            return;
        }
        let from = e.health_status;
        e.causes.clear();
        e.set(EnvStatus::Ready, Health::Green, HealthStatus::Ok);
        let scope = EventScope { app: Some(app), env: Some(env), label: e.version_label.clone(), request_id: None };
        st.event(&scope, Severity::Info, format!("Environment health has transitioned from {} to Ok.", from.as_str()));
    });
}

/// Terminates an environment (TerminateEnvironment, or the admin API without a request id):
/// Terminating, instance removed, Terminated.
pub fn terminate(sim: &Arc<Sim>, name: &str, request_id: Option<&str>) -> Result<(), String> {
    let (seq, generation, scope) = {
        let mut st = sim.state();
        let i = st.live_env_index(Some(name), None).ok_or_else(|| format!("no live environment named {name}"))?;
        let env = &mut st.envs[i];
        if env.status == EnvStatus::Terminating {
            return Err(format!("environment {name} is already terminating"));
        }
        env.generation += 1;
        if let Some(c) = env.control.take() {
            let _ = c.send(Control::Terminate);
        }
        env.abortable = false;
        env.set(EnvStatus::Terminating, Health::Grey, HealthStatus::Suspended);
        let scope = EventScope {
            app: Some(env.app.clone()),
            env: Some(env.name.clone()),
            label: None,
            request_id: request_id.map(str::to_string),
        };
        let out = (env.seq, env.generation, scope);
        st.event(&out.2, Severity::Info, "terminateEnvironment is starting.");
        out
    };
    let sim = Arc::clone(sim);
    let mut pace = sim.pace();
    tokio::spawn(async move {
        tokio::time::sleep(sim.cfg.timing.step.draw(&mut pace)).await;
        let container = {
            let mut st = sim.state();
            let Some(i) = st.env_index_by_seq(seq) else { return };
            let env = &mut st.envs[i];
            if env.generation != generation {
                return;
            }
            if let Some(p) = &env.proxy {
                p.set_target(Target::Down);
            }
            env.instance_addr = None;
            env.container.take()
        };
        if let Some(c) = container {
            sim.runtime.remove(&c).await;
        }
        tokio::time::sleep(sim.cfg.timing.step.draw(&mut pace)).await;
        let mut st = sim.state();
        let Some(i) = st.env_index_by_seq(seq) else { return };
        let env = &mut st.envs[i];
        if env.generation != generation {
            return;
        }
        env.proxy = None;
        env.set(EnvStatus::Terminated, Health::Grey, HealthStatus::Suspended);
        st.event(&scope, Severity::Info, "terminateEnvironment completed successfully.");
    });
    Ok(())
}

/// One engine-log line saying what a bundle makes the Docker platform run.
fn describe_plan(plan: &Plan) -> String {
    match plan {
        Plan::Image(s) => format!("Docker platform: running image {} (container port {})", s.name, s.port),
        Plan::Dockerfile { port } => format!(
            "Docker platform: building the image from the bundle's Dockerfile (container port {})",
            port.map_or("from EXPOSE".to_string(), |p| p.to_string())
        ),
        Plan::Compose(why) => format!("Docker platform: docker-compose.yml cannot run here: {why}"),
    }
}

/// The health-check path from the `Application Healthcheck URL` option (`/path` or `HTTP:80/path`).
pub fn healthcheck_path(option: Option<&str>) -> String {
    let Some(v) = option.map(str::trim).filter(|v| !v.is_empty()) else { return "/".into() };
    if v.starts_with('/') {
        return v.to_string();
    }
    match v.find('/') {
        Some(i) => v[i..].to_string(),
        None => "/".into(),
    }
}

fn causes_for(status: HealthStatus) -> Vec<String> {
    match status {
        HealthStatus::Warning => vec!["20.0 % of the requests are erroring with HTTP 4xx.".into()],
        HealthStatus::Degraded | HealthStatus::Severe => {
            vec!["100.0 % of the requests are failing with HTTP 5xx.".into()]
        }
        _ => Vec::new(),
    }
}

/// One HTTP GET against an instance; the status code.
pub async fn probe(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}{path}").parse().map_err(|e| format!("bad health check URL: {e}"))?;
    let req = hyper::Request::get(uri)
        .header("user-agent", "ELB-HealthChecker/2.0")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req))
        .await
        .map_err(|_| "timed out after 2 s".to_string())?
        .map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthcheck_paths() {
        assert_eq!(healthcheck_path(None), "/");
        assert_eq!(healthcheck_path(Some("")), "/");
        assert_eq!(healthcheck_path(Some("/health")), "/health");
        assert_eq!(healthcheck_path(Some("HTTP:80/status?x=1")), "/status?x=1");
        assert_eq!(healthcheck_path(Some("HTTP:80")), "/");
    }
}
