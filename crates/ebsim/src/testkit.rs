//! Helpers for other crates' end-to-end tests: the local stack's env file and an admin client.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let stack = ebsim::testkit::StackEnv::load()?;
//! let admin = stack.admin()?;
//! admin.set_faults(&serde_json::json!({"throttle_fraction": 0.3, "seed": 7})).await?;
//! let env = admin.environment("my-env").await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admin::{EnvironmentView, RequestRecord};
use crate::faults::FaultSettings;

/// The variables of `.local-stack/env`.
#[derive(Debug, Clone)]
pub struct StackEnv {
    vars: BTreeMap<String, String>,
    path: PathBuf,
}

impl StackEnv {
    /// Loads the file named by `LOCAL_STACK_ENV`, else the first `.local-stack/env` found walking up
    /// from the current directory to the workspace root.
    pub fn load() -> Result<Self> {
        if let Some(p) = std::env::var_os("LOCAL_STACK_ENV") {
            return Self::from_file(Path::new(&p));
        }
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        match find_env_file(&cwd) {
            Some(p) => Self::from_file(&p),
            None => bail!(
                "no .local-stack/env found above {}; start the stack with scripts/local-stack up or set LOCAL_STACK_ENV",
                cwd.display()
            ),
        }
    }

    /// Loads a specific env file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read local stack env {}", path.display()))?;
        Ok(Self { vars: parse_env(&text), path: path.to_path_buf() })
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every variable, e.g. for `Command::envs`.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// One variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// One variable that must be there.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name).with_context(|| format!("{} does not set {name}", self.path.display()))
    }

    /// `EBSIM_URL` (the Beanstalk endpoint; admin API under `/_ebsim/`).
    pub fn ebsim_url(&self) -> Result<&str> {
        self.require("EBSIM_URL")
    }

    /// `AWS_REGION`.
    pub fn region(&self) -> Result<&str> {
        self.require("AWS_REGION")
    }

    /// `AWS_ACCOUNT_ID`.
    pub fn account_id(&self) -> Result<&str> {
        self.require("AWS_ACCOUNT_ID")
    }

    /// `AWS_ENDPOINT_URL_S3`.
    pub fn s3_endpoint(&self) -> Result<&str> {
        self.require("AWS_ENDPOINT_URL_S3")
    }

    /// `AWS_ENDPOINT_URL_ECR`.
    pub fn ecr_endpoint(&self) -> Result<&str> {
        self.require("AWS_ENDPOINT_URL_ECR")
    }

    /// `LOCAL_REGISTRY` (`127.0.0.1:PORT`).
    pub fn registry(&self) -> Result<&str> {
        self.require("LOCAL_REGISTRY")
    }

    /// `LOCAL_STACK_AWS_CLI`.
    pub fn aws_cli(&self) -> Result<&str> {
        self.require("LOCAL_STACK_AWS_CLI")
    }

    /// `MOTO_URL`.
    pub fn moto_url(&self) -> Result<&str> {
        self.require("MOTO_URL")
    }

    /// An admin client for ebsim.
    pub fn admin(&self) -> Result<Admin> {
        Ok(Admin::new(self.ebsim_url()?))
    }
}

fn find_env_file(start: &Path) -> Option<PathBuf> {
    for dir in start.ancestors() {
        let candidate = dir.join(".local-stack").join("env");
        if candidate.is_file() {
            return Some(candidate);
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.lines().any(|l| l.trim() == "[workspace]") {
            return None;
        }
    }
    None
}

/// Parses shell `export NAME=value` lines (values bare, 'single' or "double" quoted).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, raw)) = line.split_once('=') else { continue };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(name.to_string(), unquote(raw.trim()));
    }
    out
}

fn unquote(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        c => out.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A client for ebsim's admin API.
#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Admin {
    /// A client for the ebsim at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}/_ebsim{path}", self.base);
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(Full::new(payload))
            .with_context(|| format!("failed to build request {method} {url}"))?;
        let resp = self.http.request(req).await.with_context(|| format!("failed to call {method} {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.with_context(|| format!("failed to read {url}"))?.to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
    }

    async fn ok<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&Value>) -> Result<T> {
        let (status, json) = self.call(method, path, body).await?;
        if !(200..300).contains(&status) {
            bail!("ebsim admin {method} {path} answered {status}: {json}");
        }
        serde_json::from_value(json).with_context(|| format!("failed to decode ebsim admin {method} {path}"))
    }

    /// `GET /_ebsim/health`.
    pub async fn health(&self) -> Result<()> {
        self.ok::<Value>("GET", "/health", None).await.map(|_| ())
    }

    /// ebsim's configuration (`GET /_ebsim/config`): region, account, registry aliases, timing.
    pub async fn config(&self) -> Result<Value> {
        self.ok("GET", "/config", None).await
    }

    /// Merges fault settings (`POST /_ebsim/faults`); the settings now in force.
    pub async fn set_faults(&self, patch: &Value) -> Result<FaultSettings> {
        self.ok("POST", "/faults", Some(patch)).await
    }

    /// Clears every fault (`DELETE /_ebsim/faults`).
    pub async fn reset_faults(&self) -> Result<FaultSettings> {
        self.ok("DELETE", "/faults", None).await
    }

    /// API requests with `seq > since`.
    pub async fn requests_since(&self, since: u64) -> Result<Vec<RequestRecord>> {
        self.ok("GET", &format!("/requests?since={since}"), None).await
    }

    /// The sequence number of the newest request so far (0 when none).
    pub async fn last_request_seq(&self) -> Result<u64> {
        Ok(self.requests_since(0).await?.last().map_or(0, |r| r.seq))
    }

    /// An environment's internal state; `None` when ebsim has no such environment.
    pub async fn environment(&self, name: &str) -> Result<Option<EnvironmentView>> {
        let (status, json) = self.call("GET", &format!("/environments/{name}"), None).await?;
        match status {
            404 => Ok(None),
            200 => serde_json::from_value(json).map(Some).context("failed to decode environment state"),
            other => bail!("ebsim admin GET /environments/{name} answered {other}: {json}"),
        }
    }

    /// Terminates an environment (Terminating, then Terminated).
    pub async fn terminate(&self, name: &str) -> Result<()> {
        self.ok::<Value>("POST", &format!("/environments/{name}/terminate"), None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shell_env_lines() {
        let v = parse_env(
            "# local stack\nexport AWS_REGION=us-east-1\nexport EBSIM_URL='http://127.0.0.1:4567'\n\
             export Q=\"a \\\"b\\\" c\"\nPLAIN=x=y\nexport bad-name=1\n\nexport S='it'\\''s'\n",
        );
        assert_eq!(v.get("AWS_REGION").map(String::as_str), Some("us-east-1"));
        assert_eq!(v.get("EBSIM_URL").map(String::as_str), Some("http://127.0.0.1:4567"));
        assert_eq!(v.get("Q").map(String::as_str), Some("a \"b\" c"));
        assert_eq!(v.get("PLAIN").map(String::as_str), Some("x=y"));
        assert_eq!(v.get("S").map(String::as_str), Some("it's"));
        assert!(!v.contains_key("bad-name"));
    }

    #[test]
    fn finds_the_env_file_walking_up_but_not_past_the_workspace() {
        let root = std::env::temp_dir().join(format!("ebsim-testkit-{}", crate::ids::short_suffix()));
        let deep = root.join("ws").join("a").join("b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join("ws").join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        assert_eq!(find_env_file(&deep), None);
        std::fs::create_dir_all(root.join("ws").join(".local-stack")).unwrap();
        std::fs::write(root.join("ws").join(".local-stack").join("env"), "export X=1\n").unwrap();
        let found = find_env_file(&deep).unwrap();
        assert_eq!(StackEnv::from_file(&found).unwrap().require("X").unwrap(), "1");
        assert!(StackEnv::from_file(&found).unwrap().require("Y").is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
