//! Image references, registry aliases, ECR credentials and manifest resolution over the registry
//! HTTP API (`/v2/<repo>/manifests/<ref>`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// Manifest media types a pull accepts.
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

/// A parsed image name: `registry/repository:tag` or `registry/repository@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    /// A tag or a digest.
    pub reference: String,
}

impl ImageRef {
    /// Parses a Docker image name with Docker's defaults (`docker.io`, `library/`, `latest`).
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("invalid image name {name:?}"));
        }
        let (rest, digest) = match name.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (name, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, p)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), p.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (path, None),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() {
            return Err(format!("invalid image name {name:?}"));
        }
        let reference = digest.or(tag).unwrap_or_else(|| "latest".into());
        Ok(Self { registry, repository, reference })
    }

    /// The same image with its registry host rewritten by the first matching alias.
    pub fn aliased(&self, aliases: &[(String, String)]) -> Self {
        let mut out = self.clone();
        if let Some((_, to)) = aliases.iter().find(|(from, _)| from.eq_ignore_ascii_case(&self.registry)) {
            out.registry = to.clone();
        }
        out
    }

    /// `registry/repository`.
    pub fn repo_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the reference is a digest.
    pub fn is_digest(&self) -> bool {
        self.reference.contains(':')
    }
}

/// Whether a registry host is an ECR registry (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`).
pub fn is_ecr_host(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h.contains(".dkr.ecr.") && (h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"))
}

/// Registry user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Decodes an ECR authorization token (`base64(user:password)`).
pub fn decode_token(token: &str) -> Result<Credentials, String> {
    let raw = STANDARD.decode(token.trim()).map_err(|e| format!("authorization token is not base64: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "authorization token is not UTF-8".to_string())?;
    let (u, p) = text.split_once(':').ok_or("authorization token has no user:password")?;
    Ok(Credentials { username: u.to_string(), password: p.to_string() })
}

/// ECR, for `GetAuthorizationToken`.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: aws_sdk_ecr::Client,
}

impl Ecr {
    /// A client on `endpoint`.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let mut b = aws_sdk_ecr::config::Builder::from(sdk);
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        Self { client: aws_sdk_ecr::Client::from_conf(b.build()) }
    }

    /// Fresh registry credentials.
    pub async fn credentials(&self) -> Result<Credentials, String> {
        let out = self.client.get_authorization_token().send().await.map_err(|e| {
            format!("ecr:GetAuthorizationToken failed: {}", aws_sdk_ecr::error::DisplayErrorContext(&e))
        })?;
        let token = out
            .authorization_data()
            .first()
            .and_then(|d| d.authorization_token())
            .ok_or("ecr:GetAuthorizationToken returned no token")?;
        decode_token(token)
    }
}

/// Whether ebsim can reach a registry host directly (plain HTTP on loopback).
pub fn reachable(host: &str) -> bool {
    let h =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// Talks to registries over their HTTP API.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self { http: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http() }
    }
}

impl RegistryClient {
    /// Resolves an image to its manifest digest, proving it exists and the credentials work.
    pub async fn resolve(&self, image: &ImageRef, creds: Option<&Credentials>) -> Result<String, String> {
        if !reachable(&image.registry) {
            return Err(format!(
                "registry {} is not reachable from ebsim; map it with --registry-alias {}=127.0.0.1:PORT",
                image.registry, image.registry
            ));
        }
        let url = format!("http://{}/v2/{}/manifests/{}", image.registry, image.repository, image.reference);
        let mut req = hyper::Request::get(&url).header("accept", MANIFEST_ACCEPT);
        if let Some(c) = creds {
            let basic = STANDARD.encode(format!("{}:{}", c.username, c.password));
            req = req.header("authorization", format!("Basic {basic}"));
        }
        let req = req.body(Empty::new()).map_err(|e| format!("bad registry request {url}: {e}"))?;
        let resp = tokio::time::timeout(Duration::from_secs(30), self.http.request(req))
            .await
            .map_err(|_| format!("registry {} did not answer within 30 s", image.registry))?
            .map_err(|e| format!("failed to reach registry {}: {e}", image.registry))?;
        let status = resp.status().as_u16();
        let digest = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let shown = format!("{}:{}", image.repo_path(), image.reference);
        match status {
            200 => match digest {
                Some(d) => Ok(d),
                None if image.is_digest() => Ok(image.reference.clone()),
                None => Err(format!("registry gave no Docker-Content-Digest for {shown}")),
            },
            401 | 403 => Err(format!(
                "unauthorized: registry {} rejected the {} for {shown}",
                image.registry,
                if creds.is_some() { "ECR credentials" } else { "anonymous request" }
            )),
            404 => Err(format!("manifest unknown: {shown} does not exist")),
            other => Err(format!(
                "registry answered HTTP {other} for {shown}: {}",
                String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_names() {
        let r = ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:v1.2").unwrap();
        assert_eq!(r.registry, "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.reference, "v1.2");
        let r = ImageRef::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("127.0.0.1:5000", "app", "latest")
        );
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.repo_path(), "docker.io/library/nginx");
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = ImageRef::parse(&format!("localhost:5000/a/b:ignored@{d}")).unwrap();
        assert_eq!(r.reference, d);
        assert!(r.is_digest());
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("a b").is_err());
    }

    #[test]
    fn aliases_rewrite_the_registry() {
        let aliases = vec![("123456789012.dkr.ecr.us-east-1.amazonaws.com".to_string(), "127.0.0.1:5000".to_string())];
        let r = ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1").unwrap().aliased(&aliases);
        assert_eq!(r.repo_path(), "127.0.0.1:5000/app");
        let other = ImageRef::parse("example.com/app:v1").unwrap();
        assert_eq!(other.aliased(&aliases), other);
    }

    #[test]
    fn ecr_hosts_and_reachability() {
        assert!(is_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!is_ecr_host("127.0.0.1:5000"));
        assert!(reachable("127.0.0.1:5000"));
        assert!(reachable("localhost:5000"));
        assert!(!reachable("docker.io"));
        assert!(!reachable("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
    }

    #[test]
    fn decodes_ecr_tokens() {
        let c = decode_token(&STANDARD.encode("AWS:123456789012-auth-token")).unwrap();
        assert_eq!(c.username, "AWS");
        assert_eq!(c.password, "123456789012-auth-token");
        assert!(!format!("{c:?}").contains("auth-token"));
        assert!(decode_token("!!!").is_err());
        assert!(decode_token(&STANDARD.encode("nocolon")).is_err());
    }
}
