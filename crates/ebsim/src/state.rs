//! The emulated account: applications, versions, environments and events, behind one lock.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::admin::RequestLog;
use crate::config::Config;
use crate::deploy::{Control, Runtime};
use crate::faults::Faults;
use crate::protocol::time::now_ms;
use crate::proxy::Proxy;
use crate::rng::SplitMix64;
use crate::store::Store;

/// Environment lifecycle states (`EnvironmentStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvStatus {
    Launching,
    Updating,
    Ready,
    Aborting,
    Terminating,
    Terminated,
}

impl EnvStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Launching => "Launching",
            Self::Updating => "Updating",
            Self::Ready => "Ready",
            Self::Aborting => "Aborting",
            Self::Terminating => "Terminating",
            Self::Terminated => "Terminated",
        }
    }
}

/// Health colour (`EnvironmentHealth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Green,
    Yellow,
    Red,
    Grey,
}

impl Health {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Green => "Green",
            Self::Yellow => "Yellow",
            Self::Red => "Red",
            Self::Grey => "Grey",
        }
    }
}

/// Enhanced health status (`EnvironmentHealthStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthStatus {
    NoData,
    Unknown,
    Pending,
    Ok,
    Info,
    Warning,
    Degraded,
    Severe,
    Suspended,
}

impl HealthStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoData => "NoData",
            Self::Unknown => "Unknown",
            Self::Pending => "Pending",
            Self::Ok => "Ok",
            Self::Info => "Info",
            Self::Warning => "Warning",
            Self::Degraded => "Degraded",
            Self::Severe => "Severe",
            Self::Suspended => "Suspended",
        }
    }
}

/// Event severity, ordered TRACE < … < FATAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARN" => Self::Warn,
            "ERROR" => Self::Error,
            "FATAL" => Self::Fatal,
            _ => return None,
        })
    }
}

/// Application version processing state, sent uppercase like the live service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStatus {
    Unprocessed,
    Processing,
    Processed,
    Failed,
}

impl VersionStatus {
    /// The wire name (uppercase).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unprocessed => "UNPROCESSED",
            Self::Processing => "PROCESSING",
            Self::Processed => "PROCESSED",
            Self::Failed => "FAILED",
        }
    }
}

/// An application.
#[derive(Debug, Clone)]
pub struct Application {
    pub seq: u64,
    pub name: String,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub tags: Vec<(String, String)>,
}

/// An application version.
#[derive(Debug, Clone)]
pub struct AppVersion {
    pub seq: u64,
    pub app: String,
    pub label: String,
    pub description: Option<String>,
    /// `(bucket, key)`; none = the sample application.
    pub bundle: Option<(String, String)>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub status: VersionStatus,
    pub tags: Vec<(String, String)>,
}

/// One configuration option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSetting {
    pub namespace: String,
    pub name: String,
    pub value: String,
}

/// An event, as DescribeEvents lists it.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: u64,
    pub time_ms: i64,
    pub message: String,
    pub app: Option<String>,
    pub env: Option<String>,
    pub label: Option<String>,
    pub request_id: Option<String>,
    pub severity: Severity,
}

/// Lines of an environment's engine log kept (the tail shows the last 100).
pub const ENGINE_LOG_LINES: usize = 1000;

/// The instance of a failed deploy, removed, and what it wrote before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedInstance {
    /// Container name.
    pub container: String,
    /// Its last lines of output.
    pub output: Vec<String>,
}

/// What RequestEnvironmentInfo compiles (`EnvironmentInfoType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoType {
    Tail,
    Bundle,
}

impl InfoType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tail => "tail",
            Self::Bundle => "bundle",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tail" => Some(Self::Tail),
            "bundle" => Some(Self::Bundle),
            _ => None,
        }
    }
}

/// Logs compiled by RequestEnvironmentInfo and stored in S3 until `expires_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSample {
    pub info_type: InfoType,
    pub instance_id: String,
    pub bucket: String,
    pub key: String,
    pub sample_ms: i64,
    pub expires_ms: i64,
}

/// A change of an environment's visible state, with its wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub time_ms: i64,
    pub status: EnvStatus,
    pub health: Health,
    pub health_status: HealthStatus,
    pub version_label: Option<String>,
}

/// An environment and the handles of what runs it.
#[derive(Debug)]
pub struct Environment {
    pub seq: u64,
    pub id: String,
    pub name: String,
    pub app: String,
    pub description: Option<String>,
    pub cname: String,
    pub endpoint: String,
    pub solution_stack: Option<String>,
    pub platform_arn: Option<String>,
    pub template_name: Option<String>,
    pub tier: (String, String, String),
    /// What DescribeEnvironments shows (the target while a deploy runs).
    pub version_label: Option<String>,
    /// The last label that deployed successfully.
    pub deployed_label: Option<String>,
    pub status: EnvStatus,
    pub health: Health,
    pub health_status: HealthStatus,
    pub causes: Vec<String>,
    pub abortable: bool,
    /// A CNAME swap involving this environment is under way.
    pub swapping: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub health_refreshed_ms: i64,
    pub options: Vec<OptionSetting>,
    /// Tags given at creation or by UpdateTagsForResource (Beanstalk's own are added when listed).
    pub tags: Vec<(String, String)>,
    pub instance_id: String,
    /// Container id of the serving instance (none = sample application).
    pub container: Option<String>,
    /// Address the instance listens on (loopback).
    pub instance_addr: Option<std::net::SocketAddr>,
    pub last_failure: Option<String>,
    pub transitions: Vec<Transition>,
    /// What ebsim did for this environment's deploys, as Beanstalk's `eb-engine.log` would say it.
    pub engine_log: std::collections::VecDeque<String>,
    /// The last failed deploy's instance and its output.
    pub failed_instance: Option<FailedInstance>,
    /// Logs compiled by RequestEnvironmentInfo.
    pub info: Vec<InfoSample>,
    /// Bumped by every operation; background work of an older one stops touching the environment.
    pub generation: u64,
    pub deployments: u64,
    pub control: Option<tokio::sync::watch::Sender<Control>>,
    pub proxy: Option<Arc<Proxy>>,
}

impl Environment {
    /// Whether the environment still exists (not Terminated).
    pub fn live(&self) -> bool {
        self.status != EnvStatus::Terminated
    }

    /// Sets the visible state and records a transition when anything changed.
    pub fn set(&mut self, status: EnvStatus, health: Health, health_status: HealthStatus) {
        self.status = status;
        self.health = health;
        self.health_status = health_status;
        self.touch();
    }

    /// Records a transition if the visible state differs from the last one.
    pub fn touch(&mut self) {
        let now = now_ms();
        let t = Transition {
            time_ms: now,
            status: self.status,
            health: self.health,
            health_status: self.health_status,
            version_label: self.version_label.clone(),
        };
        let changed = self.transitions.last().is_none_or(|last| {
            (last.status, last.health, last.health_status, &last.version_label)
                != (t.status, t.health, t.health_status, &t.version_label)
        });
        if changed {
            self.transitions.push(t);
            self.updated_ms = now;
            self.health_refreshed_ms = now;
        }
    }

    /// Appends a line to the engine log: `2024/01/02 03:04:05.123000 [INFO] message`.
    pub fn engine(&mut self, level: &str, message: &str) {
        let stamp = crate::protocol::time::format_iso(now_ms()).replace('-', "/").replace('T', " ").replace('Z', "000");
        for line in message.lines() {
            self.engine_log.push_back(format!("{stamp} [{level}] {line}"));
        }
        while self.engine_log.len() > ENGINE_LOG_LINES {
            self.engine_log.pop_front();
        }
    }

    /// A configuration option's value.
    pub fn option(&self, namespace: &str, name: &str) -> Option<&str> {
        self.options.iter().find(|o| o.namespace == namespace && o.name == name).map(|o| o.value.as_str())
    }
}

/// Everything the account holds.
#[derive(Debug, Default)]
pub struct State {
    next_seq: u64,
    pub apps: Vec<Application>,
    pub versions: Vec<AppVersion>,
    pub envs: Vec<Environment>,
    pub events: Vec<Event>,
}

/// What an event is about.
#[derive(Debug, Clone, Default)]
pub struct EventScope {
    pub app: Option<String>,
    pub env: Option<String>,
    pub label: Option<String>,
    pub request_id: Option<String>,
}

impl State {
    /// A fresh sequence number (orders everything created).
    pub fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Records an event.
    pub fn event(&mut self, scope: &EventScope, severity: Severity, message: impl Into<String>) {
        let seq = self.seq();
        let message = message.into();
        tracing::info!(env = scope.env.as_deref().unwrap_or("-"), severity = severity.as_str(), "event: {message}");
        self.events.push(Event {
            seq,
            time_ms: now_ms(),
            message,
            app: scope.app.clone(),
            env: scope.env.clone(),
            label: scope.label.clone(),
            request_id: scope.request_id.clone(),
            severity,
        });
    }

    /// An application by name.
    pub fn app(&self, name: &str) -> Option<&Application> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// A version by application and label.
    pub fn version(&self, app: &str, label: &str) -> Option<&AppVersion> {
        self.versions.iter().find(|v| v.app == app && v.label == label)
    }

    /// The live environment with this name, else the newest terminated one.
    pub fn env_by_name(&self, name: &str) -> Option<&Environment> {
        self.envs.iter().filter(|e| e.name == name).max_by_key(|e| (e.live(), e.seq))
    }

    /// Index of the live environment named `name` or with id `id`.
    pub fn live_env_index(&self, name: Option<&str>, id: Option<&str>) -> Option<usize> {
        self.envs.iter().position(|e| e.live() && id.is_none_or(|i| e.id == i) && name.is_none_or(|n| e.name == n))
    }

    /// Index of the environment with this sequence number.
    pub fn env_index_by_seq(&self, seq: u64) -> Option<usize> {
        self.envs.iter().position(|e| e.seq == seq)
    }
}

/// The running emulator: configuration, state and the backends deploys use.
pub struct Sim {
    pub cfg: Config,
    state: Mutex<State>,
    pub faults: Mutex<Faults>,
    pub requests: Mutex<RequestLog>,
    pub store: Arc<dyn Store>,
    pub runtime: Arc<dyn Runtime>,
    /// Draws the timing of deploys and processing, seeded by `cfg.seed`.
    timing_rng: Mutex<SplitMix64>,
}

impl Sim {
    /// A new, empty account.
    pub fn new(cfg: Config, store: Arc<dyn Store>, runtime: Arc<dyn Runtime>) -> Arc<Self> {
        let requests = RequestLog::new(cfg.request_log.clone());
        let timing_rng = Mutex::new(SplitMix64::new(cfg.seed));
        Arc::new(Self {
            cfg,
            timing_rng,
            state: Mutex::new(State::default()),
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(requests),
            store,
            runtime,
        })
    }

    /// Locks the state; a panic elsewhere must not wedge the emulator, so poison is ignored.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the fault settings.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the request log.
    pub fn requests(&self) -> MutexGuard<'_, RequestLog> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A generator for the steps of one deploy, launch or termination. Each operation draws its own
    /// when it starts, so its durations depend only on the seed and the order of operations, not on
    /// how operations running at the same time interleave.
    pub fn pace(&self) -> SplitMix64 {
        let seed = self.timing_rng.lock().unwrap_or_else(|p| p.into_inner()).next_u64();
        SplitMix64::new(seed)
    }

    /// ARN of an application.
    pub fn app_arn(&self, app: &str) -> String {
        format!("arn:aws:elasticbeanstalk:{}:{}:application/{app}", self.cfg.region, self.cfg.account_id)
    }

    /// ARN of an application version.
    pub fn version_arn(&self, app: &str, label: &str) -> String {
        format!("arn:aws:elasticbeanstalk:{}:{}:applicationversion/{app}/{label}", self.cfg.region, self.cfg.account_id)
    }

    /// ARN of an environment.
    pub fn env_arn(&self, app: &str, env: &str) -> String {
        format!("arn:aws:elasticbeanstalk:{}:{}:environment/{app}/{env}", self.cfg.region, self.cfg.account_id)
    }
}
