//! Image stage: connect to the Docker Engine and build the app image from a streamed context, with
//! BuildKit where the daemon has it and the classic builder otherwise.
//!
//! The action runs in a container beside the host's daemon (its socket is mounted), so the
//! context always travels as a tar over the API; no host path is ever handed to the daemon.

mod build;
mod builder;
mod buildkit;
pub mod cache;
mod context;
pub mod dockerfile;
pub mod dockerignore;
mod progress;
pub mod secrets;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use bollard::{API_DEFAULT_VERSION, Docker};

pub use build::{BuildRequest, BuiltImage, build};
pub(crate) use build::{docker_message, human_bytes};
pub use builder::{Builder, CacheTo};

/// Where the daemon is when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Default per-request timeout (seconds) for ordinary API calls.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How long to wait for the daemon to answer the first calls before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

const CONNECT_HINT: &str = "start Docker, or set DOCKER_HOST to the daemon's address (unix:///path/to/docker.sock or \
     tcp://host:port); in GitHub Actions the runner mounts /var/run/docker.sock into the action's container";

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

/// The standard OCI annotations for provenance, as image labels (absent values are left out).
pub fn oci_labels(
    source_url: Option<&str>,
    revision: Option<&str>,
    version: &str,
    created_rfc3339: &str,
) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut push = |key: &str, value: Option<&str>| {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            labels.push((format!("org.opencontainers.image.{key}"), value.to_owned()));
        }
    };
    push("source", source_url);
    push("revision", revision);
    push("version", Some(version));
    push("created", Some(created_rfc3339));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_labels_cover_provenance() {
        let labels = oci_labels(Some("https://github.com/o/r"), Some("abc123"), "v1", "2024-05-01T10:00:00Z");
        assert_eq!(
            labels,
            vec![
                ("org.opencontainers.image.source".to_owned(), "https://github.com/o/r".to_owned()),
                ("org.opencontainers.image.revision".to_owned(), "abc123".to_owned()),
                ("org.opencontainers.image.version".to_owned(), "v1".to_owned()),
                ("org.opencontainers.image.created".to_owned(), "2024-05-01T10:00:00Z".to_owned()),
            ]
        );
        let minimal = oci_labels(None, Some(" "), "v2", "2024-05-01T10:00:00Z");
        assert_eq!(minimal.len(), 2);
        assert_eq!(minimal[0].0, "org.opencontainers.image.version");
    }

    #[tokio::test]
    async fn unsupported_and_missing_hosts_are_clear() {
        let err = connect(Some("ssh://user@host")).await.unwrap_err();
        assert!(format!("{err:#}").contains("does not support"), "{err:#}");
        let err = connect(Some("unix:///nonexistent/docker.sock")).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("/nonexistent/docker.sock") && text.contains("DOCKER_HOST"), "{text}");
    }
}
