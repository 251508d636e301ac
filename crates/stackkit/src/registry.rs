//! The local registry's HTTP API, with the ECR password: what a push really left there.

use anyhow::{Context, Result};
use base64::Engine as _;

use crate::{StackEnv, http};

/// `Authorization` for the local registry: basic auth with user `AWS` and moto's ECR password.
pub fn authorization(stack: &StackEnv) -> Result<String> {
    let token = format!("AWS:{}", stack.registry_password()?);
    Ok(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(token)))
}

/// The `Docker-Content-Digest` the local registry serves for `repository:reference`.
pub fn digest(stack: &StackEnv, repository: &str, reference: &str) -> Result<String> {
    let auth = authorization(stack)?;
    let answer = http::request(
        stack.require("LOCAL_REGISTRY")?,
        "HEAD",
        &format!("/v2/{repository}/manifests/{reference}"),
        &[("Authorization", &auth), ("Accept", "application/vnd.docker.distribution.manifest.v2+json")],
        b"",
    )?
    .ok()?;
    answer.header("docker-content-digest").map(str::to_owned).context("the registry sent no Docker-Content-Digest")
}

/// Tags of a repository, sorted (none when the repository does not exist).
pub fn tags(stack: &StackEnv, repository: &str) -> Result<Vec<String>> {
    let auth = authorization(stack)?;
    let path = format!("/v2/{repository}/tags/list");
    let answer = http::request(stack.require("LOCAL_REGISTRY")?, "GET", &path, &[("Authorization", &auth)], b"")?;
    if answer.status == 404 {
        return Ok(Vec::new());
    }
    let json: serde_json::Value = serde_json::from_slice(&answer.ok()?.body).context("tags/list is not JSON")?;
    let mut tags: Vec<String> =
        json["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect();
    tags.sort();
    Ok(tags)
}
