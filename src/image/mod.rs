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

pub use build::{BuildRequest, BuiltImage, build};
pub use builder::{Builder, CacheTo};

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
}
