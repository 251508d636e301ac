//! Admin clients: ebsim's `/_ebsim/` API and faultproxy's admin port (JSON; never faulted themselves).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;

/// One Beanstalk API request ebsim answered, as `GET /_ebsim/requests` lists it (ebsim writes this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it arrived, Unix epoch milliseconds.
    pub time_ms: i64,
    /// The operation (`Action`), or empty when there was none.
    pub op: String,
    /// The form parameters except Action/Operation/Version.
    pub params: BTreeMap<String, String>,
    /// HTTP status answered.
    pub status: u16,
    /// Error code answered, if any.
    pub error_code: Option<String>,
    /// RequestId answered.
    pub request_id: String,
}

/// An environment's state inside ebsim, as `GET /_ebsim/environments/NAME` shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnvironmentView {
    pub name: String,
    pub id: String,
    pub application: String,
    /// `Ready`, `Updating`, …
    pub status: String,
    pub health: String,
    pub health_status: String,
    pub version_label: Option<String>,
    /// The last label that deployed successfully.
    pub deployed_label: Option<String>,
    /// `127.0.0.1:PORT` of the environment's load balancer.
    pub endpoint: String,
    pub cname: String,
    /// Container of the serving instance (none: sample application or terminated).
    pub container_id: Option<String>,
    /// Short reason of the last failed deploy.
    pub last_failure: Option<String>,
    /// Every visible change, oldest first.
    #[serde(default)]
    pub transitions: Vec<Value>,
}

async fn call<T: DeserializeOwned>(host: &str, method: &str, path: &str, body: Option<&Value>) -> Result<T> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let answer = http::send(host, method, path, &[("Content-Type", "application/json")], payload.as_bytes()).await?;
    if !(200..300).contains(&answer.status) {
        bail!("{method} {path} answered {}: {}", answer.status, answer.text());
    }
    serde_json::from_slice(&answer.body).with_context(|| format!("failed to decode the answer to {method} {path}"))
}

/// A client for ebsim's admin API.
#[derive(Debug, Clone)]
pub struct EbsimAdmin {
    host: String,
}

impl EbsimAdmin {
    /// A client for the ebsim at `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Self {
        Self { host: http::host_port(url).to_owned() }
    }

    async fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&Value>) -> Result<T> {
        call(&self.host, method, &format!("/_ebsim{path}"), body).await
    }

    /// `GET /_ebsim/health`.
    pub async fn health(&self) -> Result<()> {
        self.call::<Value>("GET", "/health", None).await.map(|_| ())
    }

    /// ebsim's configuration: region, account, registry aliases, timing.
    pub async fn config(&self) -> Result<Value> {
        self.call("GET", "/config", None).await
    }

    /// Merges fault settings; the settings now in force.
    pub async fn set_faults(&self, patch: &Value) -> Result<Value> {
        self.call("POST", "/faults", Some(patch)).await
    }

    /// Clears every fault.
    pub async fn reset_faults(&self) -> Result<Value> {
        self.call("DELETE", "/faults", None).await
    }

    /// Clears every fault, without a runtime (for `Drop`).
    pub fn reset_faults_now(&self) -> Result<()> {
        http::request(&self.host, "DELETE", "/_ebsim/faults", &[], b"")?.ok().map(|_| ())
    }

    /// API requests with `seq > since`.
    pub async fn requests_since(&self, since: u64) -> Result<Vec<RequestRecord>> {
        self.call("GET", &format!("/requests?since={since}"), None).await
    }

    /// The sequence number of the newest request so far (0 when none).
    pub async fn last_request_seq(&self) -> Result<u64> {
        Ok(self.requests_since(0).await?.last().map_or(0, |r| r.seq))
    }

    /// An environment's state; `None` when ebsim has no such environment.
    pub async fn environment(&self, name: &str) -> Result<Option<EnvironmentView>> {
        let path = format!("/_ebsim/environments/{name}");
        let answer = http::send(&self.host, "GET", &path, &[], b"").await?;
        match answer.status {
            404 => Ok(None),
            200 => serde_json::from_slice(&answer.body).map(Some).context("failed to decode the environment's state"),
            other => bail!("GET {path} answered {other}: {}", answer.text()),
        }
    }

    /// Terminates an environment (Terminating, then Terminated).
    pub async fn terminate(&self, name: &str) -> Result<()> {
        self.call::<Value>("POST", &format!("/environments/{name}/terminate"), None).await.map(|_| ())
    }
}

/// A client for faultproxy's admin port.
#[derive(Debug, Clone)]
pub struct ProxyAdmin {
    host: String,
}

impl ProxyAdmin {
    /// A client for the faultproxy admin port at `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Self {
        Self { host: http::host_port(url).to_owned() }
    }

    /// Replaces the fault settings (`{"next_5xx": 3, "match": {"service": "s3"}}`), without a runtime.
    pub fn set_faults_now(&self, settings: &Value) -> Result<()> {
        self.reset_faults_now()?;
        http::request(&self.host, "POST", "/faults", &[], settings.to_string().as_bytes())?.ok().map(|_| ())
    }

    /// Clears every fault, without a runtime (for `Drop`).
    pub fn reset_faults_now(&self) -> Result<()> {
        http::request(&self.host, "DELETE", "/faults", &[], b"")?.ok().map(|_| ())
    }

    /// The requests it forwarded, oldest first.
    pub fn requests_now(&self) -> Result<Vec<Value>> {
        let text = http::get(&self.host, "/requests")?;
        serde_json::from_str(&text).context("faultproxy's request log is not JSON")
    }
}
