//! The Docker Engine connection (`DOCKER_HOST` or the local socket, API version negotiated), how its
//! errors read, and the registry credentials it takes per request. A leaf: it imports nothing of the crate.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::{API_DEFAULT_VERSION, Docker};

/// Where the daemon is when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Default per-request timeout (seconds) for ordinary API calls.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How long to wait for the daemon to answer the first calls before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

const CONNECT_HINT: &str = "start Docker, or set DOCKER_HOST to the daemon's address (unix:///path/to/docker.sock or \
     tcp://host:port); in GitHub Actions the runner mounts /var/run/docker.sock into the action's container";

/// Makes the AWS SDK's aws-lc-rs the process's one rustls provider. bollard's BuildKit session is built
/// without a provider of its own (no ring beside aws-lc-rs); rustls then looks up this default when it
/// needs one (e.g. to fetch a registry token for a cache source), and panics when none was installed.
pub fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed: that one serves.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Connects to the Docker Engine at `docker_host` (the `DOCKER_HOST` value, read by the caller) or
/// the local socket, negotiates the API version and checks the daemon answers.
pub async fn connect(docker_host: Option<&str>) -> Result<Docker> {
    install_crypto_provider();
    let host = docker_host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or(DEFAULT_DOCKER_HOST);
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        if !Path::new(path).exists() {
            bail!("failed to connect to the Docker daemon at {host}: the socket {path} does not exist; {CONNECT_HINT}");
        }
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        bail!(
            "failed to connect to the Docker daemon: DOCKER_HOST={host} uses a scheme eb-deploy does not support; \
             use unix:///path/to/docker.sock or tcp://host:port"
        );
    }
    .map_err(|e| {
        anyhow::anyhow!("failed to connect to the Docker daemon at {host}: {}; {CONNECT_HINT}", docker_message(&e))
    })?;

    let unreachable =
        |cause: String| anyhow::anyhow!("failed to connect to the Docker daemon at {host}: {cause}; {CONNECT_HINT}");
    // Runners have newer engines than the local 20.10: ask the daemon rather than assume a version.
    let docker = match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => docker,
        Ok(Err(err)) => return Err(unreachable(docker_message(&err))),
        Err(_) => return Err(unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(unreachable(docker_message(&err))),
        Err(_) => return Err(unreachable(format!("no answer to ping within {}s", CONNECT_TIMEOUT.as_secs()))),
    }
    let version = docker.client_version();
    tracing::debug!(host, api = %format!("{}.{}", version.major_version, version.minor_version), "connected to Docker");
    Ok(docker)
}

/// Credentials for one registry. Debug output never shows the password.
#[derive(Clone)]
pub struct RegistryAuth {
    registry: String,
    aliases: Vec<String>,
    username: String,
    password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("aliases", &self.aliases)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl RegistryAuth {
    /// Credentials for `registry` (host[:port]); the caller must already have masked `password`.
    pub fn new(registry: impl Into<String>, username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { registry: registry.into(), aliases: Vec::new(), username: username.into(), password: password.into() }
    }

    /// The same credentials, also good for `aliases` (e.g. the ECR endpoint a local registry stands in for).
    pub(crate) fn with_aliases(mut self, aliases: Vec<String>) -> Self {
        self.aliases = aliases;
        self
    }

    /// The registry host images are pushed to.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The user name (`AWS` for ECR).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password, for handing to another client (e.g. an HTTP request); never log it.
    pub fn expose_password(&self) -> &str {
        &self.password
    }

    /// True if `host` names this registry (its push host or the ECR endpoint it stands in for).
    pub fn serves(&self, host: &str) -> bool {
        host == self.registry || self.aliases.iter().any(|a| a == host)
    }

    /// The per-request credentials the Engine API takes.
    pub fn docker_credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.registry.clone()),
            ..Default::default()
        }
    }

    /// The credentials for each host this login covers, as a build takes them (`X-Registry-Config` for the
    /// classic builder, the session's `Auth` service for BuildKit): a `FROM` an image of this registry pulls
    /// with them, as after `docker login`.
    pub fn credentials_by_host(&self) -> HashMap<String, DockerCredentials> {
        std::iter::once(&self.registry)
            .chain(&self.aliases)
            .map(|host| {
                (host.clone(), DockerCredentials { serveraddress: Some(host.clone()), ..self.docker_credentials() })
            })
            .collect()
    }

    /// `text` with the password replaced by `***` (registry errors may echo it).
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.password.is_empty() { text.to_owned() } else { text.replace(&self.password, "***") }
    }
}

/// The daemon's own message from a bollard error, without bollard's wrapping.
pub fn docker_message(err: &DockerError) -> String {
    match err {
        DockerError::DockerStreamError { error } => error.clone(),
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => error_chain(other),
    }
}

/// An error and its sources on one line, skipping sources whose text is already included.
fn error_chain(err: &DockerError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsupported_and_missing_hosts_are_clear() {
        let err = connect(Some("ssh://user@host")).await.unwrap_err();
        assert!(format!("{err:#}").contains("does not support"), "{err:#}");
        let err = connect(Some("unix:///nonexistent/docker.sock")).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("/nonexistent/docker.sock") && text.contains("DOCKER_HOST"), "{text}");
    }

    #[test]
    fn a_build_gets_the_login_for_the_registry_and_its_aliases_only() {
        let auth = RegistryAuth::new("127.0.0.1:5000", "AWS", "pw")
            .with_aliases(vec!["123456789012.dkr.ecr.eu-west-1.amazonaws.com".into()]);
        let by_host = auth.credentials_by_host();
        let mut hosts: Vec<&String> = by_host.keys().collect();
        hosts.sort();
        assert_eq!(hosts, ["123456789012.dkr.ecr.eu-west-1.amazonaws.com", "127.0.0.1:5000"]);
        for (host, creds) in &by_host {
            assert_eq!(creds.serveraddress.as_deref(), Some(host.as_str()));
            assert_eq!((creds.username.as_deref(), creds.password.as_deref()), (Some("AWS"), Some("pw")));
        }
    }
}
