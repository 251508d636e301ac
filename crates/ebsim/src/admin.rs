//! The admin API under `/_ebsim/` (JSON; never throttled or faulted) and the request log it serves.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::deploy;
use crate::state::{EnvStatus, Health, HealthStatus, Sim, Transition};

/// One API request, as `GET /_ebsim/requests` lists it: the type the stack's test kit reads it back into.
pub use stackkit::admin::RequestRecord;

/// Every API request so far, optionally mirrored to a JSON-lines file.
#[derive(Debug)]
pub struct RequestLog {
    records: Vec<RequestRecord>,
    file: Option<PathBuf>,
}

impl RequestLog {
    /// An empty log writing to `file` if given.
    pub fn new(file: Option<PathBuf>) -> Self {
        Self { records: Vec::new(), file }
    }

    /// Appends a record (its `seq` is assigned here).
    pub fn push(&mut self, mut r: RequestRecord) {
        r.seq = self.records.len() as u64 + 1;
        if let Some(path) = &self.file {
            let line = serde_json::to_string(&r).unwrap_or_default();
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = res {
                tracing::warn!("failed to append to request log {}: {e}", path.display());
            }
        }
        self.records.push(r);
    }

    /// Records with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<RequestRecord> {
        self.records.iter().filter(|r| r.seq > since).cloned().collect()
    }
}

/// An environment's internal state, as `GET /_ebsim/environments/NAME` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentView {
    pub name: String,
    pub id: String,
    pub application: String,
    pub status: EnvStatus,
    pub health: Health,
    pub health_status: HealthStatus,
    pub version_label: Option<String>,
    /// The last label that deployed successfully.
    pub deployed_label: Option<String>,
    /// `127.0.0.1:PORT` of the environment's load balancer.
    pub endpoint: String,
    pub cname: String,
    pub instance_id: String,
    /// Container of the serving instance (none: sample application or terminated).
    pub container_id: Option<String>,
    pub abortable: bool,
    /// Short reason of the last failed deploy.
    pub last_failure: Option<String>,
    /// Every visible change, oldest first.
    pub transitions: Vec<Transition>,
}

/// An admin answer: status and JSON body.
pub type Answer = (u16, Value);

/// Serves one admin request; `path` is what follows `/_ebsim`.
pub fn handle(sim: &Arc<Sim>, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> Answer {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("GET", ["health"]) => (200, json!({"status": "ok"})),
        ("GET", ["config"]) => {
            let c = &sim.cfg;
            let aliases: BTreeMap<&str, &str> =
                c.registry_aliases.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            (
                200,
                json!({
                    "region": c.region,
                    "account_id": c.account_id,
                    "storage_bucket": c.storage_bucket(),
                    "registry_aliases": aliases,
                    "step_ms": [c.timing.step.min_ms, c.timing.step.max_ms],
                    "processing_ms": [c.timing.processing.min_ms, c.timing.processing.max_ms],
                    "seed": c.seed,
                    "red_ms": c.timing.red_ms,
                    "health_timeout_ms": c.timing.health_timeout_ms,
                    "max_versions": c.max_versions,
                    "proxy": c.proxy_listen.map(|a| a.to_string()),
                }),
            )
        }
        ("GET", ["faults"]) => (200, json!(sim.faults().settings())),
        ("POST", ["faults"]) => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return (400, json!({"error": format!("body is not JSON: {e}")})),
            };
            let mut f = sim.faults();
            match f.merge(&patch) {
                Ok(()) => {
                    tracing::info!("faults set: {}", json!(f.settings()));
                    (200, json!(f.settings()))
                }
                Err(e) => (400, json!({"error": e})),
            }
        }
        ("DELETE", ["faults"]) => {
            let mut f = sim.faults();
            f.reset();
            (200, json!(f.settings()))
        }
        ("GET", ["requests"]) => {
            let since = query
                .into_iter()
                .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.parse::<u64>());
            match since {
                Some(Err(_)) => (400, json!({"error": "since must be a whole number"})),
                Some(Ok(n)) => (200, json!(sim.requests().since(n))),
                None => (200, json!(sim.requests().since(0))),
            }
        }
        ("GET", ["environments"]) => {
            let st = sim.state();
            let names: Vec<Value> =
                st.envs.iter().map(|e| json!({"name": e.name, "id": e.id, "status": e.status})).collect();
            (200, Value::Array(names))
        }
        ("GET", ["environments", name]) => match view(sim, name) {
            Some(v) => (200, json!(v)),
            None => (404, json!({"error": format!("no environment named {name}")})),
        },
        ("POST", ["environments", name, "terminate"]) => match deploy::terminate(sim, name, None) {
            Ok(()) => (202, json!({"status": "Terminating"})),
            Err(e) => (409, json!({"error": e})),
        },
        _ => (404, json!({"error": format!("no admin route {method} /_ebsim{path}")})),
    }
}

/// The view of the live environment named `name`, else of the newest terminated one.
pub fn view(sim: &Sim, name: &str) -> Option<EnvironmentView> {
    let st = sim.state();
    let e = st.env_by_name(name)?;
    Some(EnvironmentView {
        name: e.name.clone(),
        id: e.id.clone(),
        application: e.app.clone(),
        status: e.status,
        health: e.health,
        health_status: e.health_status,
        version_label: e.version_label.clone(),
        deployed_label: e.deployed_label.clone(),
        endpoint: e.endpoint.clone(),
        cname: e.cname.clone(),
        instance_id: e.instance_id.clone(),
        container_id: e.container.clone(),
        abortable: e.abortable,
        last_failure: e.last_failure.clone(),
        transitions: e.transitions.clone(),
    })
}
