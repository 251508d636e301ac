//! Registry stage: log in to Amazon ECR, make sure the repository exists, and push the image
//! through the daemon with per-request credentials (nothing is written to disk or to the
//! daemon's configuration).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use base64::Engine as _;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{PushImageOptions, TagImageOptions};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::docker::{RegistryAuth, docker_message};
use crate::format::human_bytes;
use crate::gha::Console;
use crate::names::{host_of, reference_host, reference_path, strip_digest, strip_tag};

/// How many times a push whose connection dropped is attempted in all.
const PUSH_ATTEMPTS: u32 = 3;
/// Pause before retrying a push; doubled each time.
const PUSH_RETRY_DELAY: Duration = Duration::from_secs(2);
/// How often push progress is summarised in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// The daemon sends the push's response headers at once; the stream may then run for long.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// An image in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `host/repo:tag` (`host/repo@sha256:…` when a user-given image named a digest).
    pub reference: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
}

impl PushedImage {
    /// `host/repo@sha256:…`: the reference that cannot move.
    pub fn pinned(&self) -> String {
        let reference = strip_digest(&self.reference);
        format!("{}@{}", strip_tag(reference), self.digest)
    }
}

/// Whether `ensure_repository` found the repository or created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryState {
    Existing,
    Created,
}

/// Gets an ECR authorization token, masks it, and returns credentials for the registry
/// (`registry_override` replaces the host from the token's proxy endpoint).
pub async fn ecr_login(
    ecr: &aws_sdk_ecr::Client,
    registry_override: Option<&str>,
    console: &Console,
) -> Result<RegistryAuth> {
    let output = ecr.get_authorization_token().send().await.map_err(|err| {
        anyhow!(
            "failed to get an ECR authorization token: {}; check the AWS credentials and that they allow \
             ecr:GetAuthorizationToken",
            DisplayErrorContext(&err)
        )
    })?;
    let data = output
        .authorization_data()
        .first()
        .ok_or_else(|| anyhow!("failed to get an ECR authorization token: the response held no authorization data"))?;
    let token = data
        .authorization_token()
        .ok_or_else(|| anyhow!("failed to get an ECR authorization token: the response held no token"))?;
    console.mask(token);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| anyhow!("failed to decode the ECR authorization token: it is not valid base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| anyhow!("failed to decode the ECR authorization token: it is not UTF-8"))?;
    let Some((username, password)) = decoded.split_once(':') else {
        bail!("failed to decode the ECR authorization token: it is not of the form user:password");
    };
    console.mask(password);

    let endpoint_host = data.proxy_endpoint().map(host_of).filter(|h| !h.is_empty());
    let override_host = registry_override.map(host_of).filter(|h| !h.is_empty());
    let (registry, aliases) = match (override_host, endpoint_host) {
        (Some(host), Some(endpoint)) if host != endpoint => (host, vec![endpoint]),
        (Some(host), _) => (host, Vec::new()),
        (None, Some(endpoint)) => (endpoint, Vec::new()),
        (None, None) => bail!("failed to get an ECR authorization token: the response held no proxy endpoint"),
    };
    tracing::debug!(%registry, "logged in to ECR");
    Ok(RegistryAuth::new(registry, username, password).with_aliases(aliases))
}

/// Makes sure the ECR repository `name` exists, creating it when missing and `create` is set.
pub async fn ensure_repository(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    create: bool,
    console: &Console,
) -> Result<RepositoryState> {
    match ecr.describe_repositories().repository_names(name).send().await {
        Ok(_) => return Ok(RepositoryState::Existing),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => {}
        Err(err) => {
            return Err(anyhow!(
                "failed to look up the ECR repository {name} (input `ecr-repository`): {}{}",
                DisplayErrorContext(&err),
                permission_hint(err.code(), "ecr:DescribeRepositories")
            ));
        }
    }
    if !create {
        bail!(
            "the ECR repository {name} (input `ecr-repository`) does not exist; create it, or set \
             `create-repository: true` to let eb-deploy create it"
        );
    }
    let created = ecr
        .create_repository()
        .repository_name(name)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(false).build())
        .send()
        .await;
    match created {
        Ok(_) => {
            console.info(format!("Created ECR repository {name}"));
            Ok(RepositoryState::Created)
        }
        // Another deploy created it in the meantime: that is what we wanted.
        Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_already_exists_exception()) => {
            Ok(RepositoryState::Existing)
        }
        Err(err) => Err(anyhow!(
            "failed to create the ECR repository {name} (input `ecr-repository`, `create-repository: true`): {}{}",
            DisplayErrorContext(&err),
            permission_hint(err.code(), "ecr:CreateRepository")
        )),
    }
}

fn permission_hint(code: Option<&str>, action: &str) -> String {
    match code {
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation") => {
            format!("; allow {action} for the deploying IAM identity")
        }
        _ => String::new(),
    }
}

/// Tags `local` (an image id or reference in the daemon) as `<registry>/<repository>:<tag>` and pushes it.
pub async fn push(
    docker: &Docker,
    auth: &RegistryAuth,
    local: &str,
    repository: &str,
    tag: &str,
    console: &Console,
) -> Result<PushedImage> {
    let target = format!("{}/{}", auth.registry(), repository);
    let reference = format!("{target}:{tag}");
    docker
        .tag_image(local, Some(TagImageOptions { repo: Some(target.clone()), tag: Some(tag.to_owned()) }))
        .await
        .map_err(|err| anyhow!("failed to tag the image {local} as {reference}: {}", docker_message(&err)))?;

    let group = console.group(format!("Push {reference}"));
    let docker = docker.clone().with_timeout(PUSH_TIMEOUT);
    let mut delay = PUSH_RETRY_DELAY;
    let mut attempt = 1;
    let digest = loop {
        match push_once(&docker, auth, &target, tag, &reference, console).await {
            Ok(Some(digest)) => break digest,
            Ok(None) => break digest_from_daemon(&docker, &target, &reference).await?,
            Err(PushFailure::Transient(message)) if attempt < PUSH_ATTEMPTS => {
                console.warning(
                    format!(
                        "the push of {reference} was interrupted ({}); retrying in {}s (attempt {} of {PUSH_ATTEMPTS})",
                        auth.redact(&message),
                        delay.as_secs(),
                        attempt + 1
                    ),
                    None,
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(failure) => {
                drop(group);
                return Err(failure.into_error(auth, &reference));
            }
        }
    };
    drop(group);
    console.info(format!("Pushed {reference} ({digest})"));
    Ok(PushedImage { reference, digest })
}

/// Uses a user-given image: already in the registry → resolve its digest; only in the local
/// daemon → push it to `repository:tag`; neither → an error naming the `image` input.
pub async fn ensure_pushed(
    docker: &Docker,
    auth: &RegistryAuth,
    image: &str,
    repository: &str,
    tag: &str,
    console: &Console,
) -> Result<PushedImage> {
    let image = image.trim();
    let on_our_registry = reference_host(image).is_some_and(|host| auth.serves(host));
    let mut registry_error = None;
    if on_our_registry {
        // The registry is the truth for a reference that names it; aliases resolve to the push host.
        let canonical = format!("{}/{}", auth.registry(), reference_path(image));
        match registry_digest(docker, &canonical, Some(auth)).await {
            Ok(digest) => {
                console.info(format!("Using {canonical} from the registry ({digest})"));
                return Ok(PushedImage { reference: canonical, digest });
            }
            Err(RegistryLookup::Denied(message)) => bail!(
                "failed to look up the image {image} (input `image`): the registry {} refused the credentials: {}",
                auth.registry(),
                auth.redact(&message)
            ),
            Err(RegistryLookup::Missing(message)) => registry_error = Some(auth.redact(&message)),
        }
    }
    match docker.inspect_image(image).await {
        Ok(_) => {
            console.info(format!("Pushing the local image {image} to ECR"));
            return push(docker, auth, image, repository, tag, console).await;
        }
        Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(err) => {
            return Err(anyhow!(
                "failed to look up the image {image} (input `image`) in the Docker daemon: {}",
                docker_message(&err)
            ));
        }
    }
    if !on_our_registry {
        // A public image elsewhere (e.g. Docker Hub): Beanstalk can pull it; pin what we resolved.
        match registry_digest(docker, image, None).await {
            Ok(digest) => {
                console.info(format!("Using {image} from its registry ({digest})"));
                return Ok(PushedImage { reference: image.to_owned(), digest });
            }
            Err(RegistryLookup::Denied(message) | RegistryLookup::Missing(message)) => registry_error = Some(message),
        }
    }
    let registry = reference_host(image).unwrap_or("docker.io");
    let detail = registry_error.map(|m| format!(" (registry said: {m})")).unwrap_or_default();
    bail!(
        "the image {image} (input `image`) was found neither in the registry {registry} nor in the local Docker \
         daemon{detail}; push it first, build it in an earlier step, or leave `image` empty to build from `context`"
    )
}

enum RegistryLookup {
    Denied(String),
    Missing(String),
}

/// The manifest digest the registry serves for `reference`, asked through the daemon (which
/// already knows how to reach it: HTTPS for ECR, plain HTTP for loopback registries).
async fn registry_digest(
    docker: &Docker,
    reference: &str,
    auth: Option<&RegistryAuth>,
) -> Result<String, RegistryLookup> {
    let credentials = auth.map(RegistryAuth::docker_credentials);
    match docker.inspect_registry_image(reference, credentials).await {
        Ok(inspect) => inspect
            .descriptor
            .digest
            .filter(|d| d.starts_with("sha256:"))
            .ok_or_else(|| RegistryLookup::Missing("the registry returned no digest".to_owned())),
        Err(err) => {
            let message = docker_message(&err);
            if is_denied(&message) && !is_missing(&message) {
                Err(RegistryLookup::Denied(message))
            } else {
                Err(RegistryLookup::Missing(message))
            }
        }
    }
}

enum PushFailure {
    /// The connection dropped (to the daemon or between it and the registry): worth retrying.
    Transient(String),
    /// The registry refused the credentials.
    Denied(String),
    Other(String),
}

impl PushFailure {
    fn classify(err: &DockerError) -> Self {
        match err {
            DockerError::DockerStreamError { error } => {
                if is_denied(error) {
                    PushFailure::Denied(error.clone())
                } else if is_transient(error) {
                    PushFailure::Transient(error.clone())
                } else {
                    PushFailure::Other(error.clone())
                }
            }
            DockerError::DockerResponseServerError { status_code, message } => {
                if is_denied(message) {
                    PushFailure::Denied(message.clone())
                } else if *status_code >= 500 && is_transient(message) {
                    PushFailure::Transient(message.clone())
                } else {
                    PushFailure::Other(message.clone())
                }
            }
            DockerError::RequestTimeoutError
            | DockerError::HyperResponseError { .. }
            | DockerError::HyperLegacyError { .. }
            | DockerError::IOError { .. } => PushFailure::Transient(docker_message(err)),
            other => PushFailure::Other(docker_message(other)),
        }
    }

    fn into_error(self, auth: &RegistryAuth, reference: &str) -> anyhow::Error {
        match self {
            PushFailure::Denied(message) => anyhow!(
                "failed to push {reference}: the registry {} refused the credentials ({}); the ECR token may have \
                 expired, or the IAM identity lacks ecr:InitiateLayerUpload, ecr:UploadLayerPart, \
                 ecr:CompleteLayerUpload and ecr:PutImage on the repository",
                auth.registry(),
                auth.redact(&message)
            ),
            PushFailure::Transient(message) => anyhow!(
                "failed to push {reference}: the connection kept dropping ({}) after {PUSH_ATTEMPTS} attempts; check \
                 the network between the Docker daemon and {}",
                auth.redact(&message),
                auth.registry()
            ),
            PushFailure::Other(message) => anyhow!("failed to push {reference}: {}", auth.redact(&message)),
        }
    }
}

fn is_denied(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["unauthorized", "denied", "authentication required", "no basic auth credentials", "403 forbidden"]
        .iter()
        .any(|needle| m.contains(needle))
}

fn is_missing(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["manifest unknown", "not found", "name unknown", "does not exist"].iter().any(|needle| m.contains(needle))
}

fn is_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection reset",
        "broken pipe",
        "eof",
        "i/o timeout",
        "timeout",
        "connection refused",
        "connection closed",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway",
        "use of closed network connection",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// One push attempt: Ok(Some(digest)) from the final status line, Ok(None) if it did not say.
async fn push_once(
    docker: &Docker,
    auth: &RegistryAuth,
    target: &str,
    tag: &str,
    reference: &str,
    console: &Console,
) -> Result<Option<String>, PushFailure> {
    let options = PushImageOptions { tag: Some(tag.to_owned()), ..Default::default() };
    let mut stream = docker.push_image(target, Some(options), Some(auth.docker_credentials()));
    let mut progress = PushProgress::new(reference);
    let mut digest = None;
    let mut retrying = false;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|err| PushFailure::classify(&err))?;
        if let Some(status) = info.status.as_deref() {
            if let Some(found) = digest_from_status(status) {
                digest = Some(found);
            }
            // The daemon retries a failed layer upload itself, counting down "Retrying in N seconds":
            // say so once per episode, so a flaky registry connection is visible in the log.
            let retry = status.starts_with("Retrying in");
            if retry && !retrying {
                console
                    .info(format!("{reference}: a layer upload failed; the Docker daemon is retrying it ({status})"));
            }
            retrying = retry;
            progress.update(status, info.progress_detail.as_ref());
        }
        if progress.due() {
            console.info(progress.summary());
        }
    }
    console.info(progress.summary());
    Ok(digest)
}

/// Falls back to the daemon's record of the pushed manifest.
async fn digest_from_daemon(docker: &Docker, target: &str, reference: &str) -> Result<String> {
    let inspect = docker
        .inspect_image(reference)
        .await
        .map_err(|err| anyhow!("failed to read the digest of {reference} after the push: {}", docker_message(&err)))?;
    let prefix = format!("{target}@");
    inspect
        .repo_digests
        .unwrap_or_default()
        .iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_owned))
        .ok_or_else(|| anyhow!("failed to read the digest of {reference}: the push did not report one"))
}

/// "latest: digest: sha256:… size: 528" → "sha256:…".
fn digest_from_status(status: &str) -> Option<String> {
    let at = status.find("digest: sha256:")? + "digest: ".len();
    let candidate = &status[at..];
    let end = candidate.find(|c: char| c.is_whitespace()).unwrap_or(candidate.len());
    let digest = &candidate[..end];
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_owned())
}

/// Summarised push progress. The push stream carries no layer ids through bollard's model, so
/// layers are counted from their status changes and bytes tracked per layer size.
struct PushProgress {
    reference: String,
    layers: usize,
    done: usize,
    /// Bytes sent so far for each in-flight layer, keyed by its total size.
    bytes: HashMap<i64, i64>,
    last: Instant,
}

impl PushProgress {
    fn new(reference: &str) -> Self {
        Self { reference: reference.to_owned(), layers: 0, done: 0, bytes: HashMap::new(), last: Instant::now() }
    }

    fn update(&mut self, status: &str, detail: Option<&bollard::models::ProgressDetail>) {
        match status {
            "Preparing" => self.layers += 1,
            "Pushed" | "Layer already exists" => self.done += 1,
            s if s.starts_with("Mounted from") => self.done += 1,
            "Pushing" => {
                if let Some((Some(current), Some(total))) = detail.map(|d| (d.current, d.total)) {
                    let entry = self.bytes.entry(total).or_default();
                    *entry = (*entry).max(current.min(total));
                }
            }
            _ => {}
        }
    }

    fn due(&mut self) -> bool {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }

    fn summary(&self) -> String {
        let sent: i64 = self.bytes.values().sum();
        let total: i64 = self.bytes.keys().sum();
        let mut line = format!("{}: {}/{} layers done", self.reference, self.done, self.layers.max(self.done));
        if total > 0 {
            let sent = u64::try_from(sent).unwrap_or_default();
            let total = u64::try_from(total).unwrap_or_default();
            line.push_str(&format!(", {} of {} uploaded", human_bytes(sent), human_bytes(total)));
        }
        line
    }
}

/// Strips a scheme and trailing slash: "https://1.dkr.ecr.x.amazonaws.com/" → "1.dkr.ecr.x.amazonaws.com".
#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::operation::create_repository::{CreateRepositoryError, CreateRepositoryOutput};
    use aws_sdk_ecr::operation::describe_repositories::{DescribeRepositoriesError, DescribeRepositoriesOutput};
    use aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenOutput;
    use aws_sdk_ecr::types::AuthorizationData;
    use aws_sdk_ecr::types::error::{RepositoryAlreadyExistsException, RepositoryNotFoundException};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn console(actions: bool) -> (Console, crate::gha::Captured) {
        Console::captured(actions, false)
    }

    const TOKEN: &str = "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu"; // AWS:123456789012-auth-token

    fn token_rule(endpoint: &'static str) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ecr::Client::get_authorization_token).then_output(move || {
            GetAuthorizationTokenOutput::builder()
                .authorization_data(
                    AuthorizationData::builder().authorization_token(TOKEN).proxy_endpoint(endpoint).build(),
                )
                .build()
        })
    }

    #[tokio::test]
    async fn login_decodes_masks_and_redacts() {
        let rule = token_rule("https://123456789012.dkr.ecr.us-east-1.amazonaws.com");
        let ecr = mock_client!(aws_sdk_ecr, [&rule]);
        let (console, buf) = console(true);
        let auth = ecr_login(&ecr, None, &console).await.unwrap();
        assert_eq!(auth.registry(), "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(auth.username(), "AWS");
        assert_eq!(auth.expose_password(), "123456789012-auth-token");
        let text = buf.text();
        assert!(text.contains(&format!("::add-mask::{TOKEN}")), "{text}");
        assert!(text.contains("::add-mask::123456789012-auth-token"), "{text}");
        let debug = format!("{auth:?}");
        assert!(!debug.contains("auth-token") && debug.contains("<redacted>"), "{debug}");
        console.info("password is 123456789012-auth-token");
        assert!(buf.text().ends_with("password is ***\n"));
        let creds = auth.docker_credentials();
        assert_eq!(creds.serveraddress.as_deref(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
    }

    #[tokio::test]
    async fn login_override_keeps_the_endpoint_as_an_alias() {
        let rule = token_rule("https://123456789012.dkr.ecr.us-east-1.amazonaws.com");
        let ecr = mock_client!(aws_sdk_ecr, [&rule]);
        let (console, _) = console(false);
        let auth = ecr_login(&ecr, Some("http://127.0.0.1:5000/"), &console).await.unwrap();
        assert_eq!(auth.registry(), "127.0.0.1:5000");
        assert!(auth.serves("127.0.0.1:5000"));
        assert!(auth.serves("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!auth.serves("docker.io"));
    }

    #[tokio::test]
    async fn login_rejects_malformed_tokens_without_echoing_them() {
        let rule = mock!(aws_sdk_ecr::Client::get_authorization_token).then_output(|| {
            GetAuthorizationTokenOutput::builder()
                .authorization_data(AuthorizationData::builder().authorization_token("bm9jb2xvbmhlcmU=").build())
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, [&rule]);
        let (console, _) = console(false);
        let err = format!("{:#}", ecr_login(&ecr, None, &console).await.unwrap_err());
        assert!(err.contains("user:password") && !err.contains("nocolonhere"), "{err}");
    }

    #[tokio::test]
    async fn existing_repository_is_left_alone() {
        let describe = mock!(aws_sdk_ecr::Client::describe_repositories)
            .match_requests(|r| r.repository_names() == ["my-app"])
            .then_output(|| DescribeRepositoriesOutput::builder().build());
        let create =
            mock!(aws_sdk_ecr::Client::create_repository).then_output(|| CreateRepositoryOutput::builder().build());
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &create]);
        let (console, _) = console(false);
        assert_eq!(ensure_repository(&ecr, "my-app", true, &console).await.unwrap(), RepositoryState::Existing);
        assert_eq!(create.num_calls(), 0);
    }

    fn not_found() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ecr::Client::describe_repositories).then_error(|| {
            DescribeRepositoriesError::RepositoryNotFoundException(
                RepositoryNotFoundException::builder().message("not found").build(),
            )
        })
    }

    #[tokio::test]
    async fn missing_repository_is_created_when_allowed() {
        let describe = not_found();
        let create = mock!(aws_sdk_ecr::Client::create_repository)
            .match_requests(|r| {
                r.repository_name() == Some("my-app")
                    && r.image_tag_mutability() == Some(&ImageTagMutability::Mutable)
                    && r.image_scanning_configuration().is_some_and(|c| !c.scan_on_push())
            })
            .then_output(|| CreateRepositoryOutput::builder().build());
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &create]);
        let (console, buf) = console(false);
        assert_eq!(ensure_repository(&ecr, "my-app", true, &console).await.unwrap(), RepositoryState::Created);
        assert_eq!(create.num_calls(), 1);
        assert!(buf.text().contains("Created ECR repository my-app"));
    }

    #[tokio::test]
    async fn missing_repository_without_create_names_the_inputs() {
        let describe = not_found();
        let create =
            mock!(aws_sdk_ecr::Client::create_repository).then_output(|| CreateRepositoryOutput::builder().build());
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &create]);
        let (console, _) = console(false);
        let err = ensure_repository(&ecr, "my-app", false, &console).await.unwrap_err().to_string();
        assert!(err.contains("ecr-repository") && err.contains("create-repository"), "{err}");
        assert_eq!(create.num_calls(), 0, "no repository may be created when create-repository is false");
    }

    #[tokio::test]
    async fn creation_race_counts_as_existing() {
        let describe = not_found();
        let create = mock!(aws_sdk_ecr::Client::create_repository).then_error(|| {
            CreateRepositoryError::RepositoryAlreadyExistsException(RepositoryAlreadyExistsException::builder().build())
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &create]);
        let (console, _) = console(false);
        assert_eq!(ensure_repository(&ecr, "my-app", true, &console).await.unwrap(), RepositoryState::Existing);
    }

    #[test]
    fn references_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let pushed = PushedImage { reference: "127.0.0.1:5000/team/app:v1".into(), digest: digest.clone() };
        assert_eq!(pushed.pinned(), format!("127.0.0.1:5000/team/app@{digest}"));
        let untagged = PushedImage { reference: "127.0.0.1:5000/app".into(), digest: digest.clone() };
        assert_eq!(untagged.pinned(), format!("127.0.0.1:5000/app@{digest}"));
        assert_eq!(digest_from_status(&format!("v1: digest: {digest} size: 528")), Some(digest.clone()));
        assert_eq!(digest_from_status("v1: digest: sha256:short size: 1"), None);
        assert_eq!(digest_from_status("Pushed"), None);
    }

    #[test]
    fn push_errors_are_classified_and_redacted() {
        let auth = RegistryAuth::new("127.0.0.1:5000", "AWS", "s3cret-pass");
        let denied = DockerError::DockerStreamError { error: "unauthorized: authentication required".into() };
        assert!(matches!(PushFailure::classify(&denied), PushFailure::Denied(_)));
        let dropped = DockerError::DockerStreamError { error: "Put http://x/v2/blobs: EOF".into() };
        assert!(matches!(PushFailure::classify(&dropped), PushFailure::Transient(_)));
        assert!(matches!(PushFailure::classify(&DockerError::RequestTimeoutError), PushFailure::Transient(_)));
        let missing = DockerError::DockerResponseServerError { status_code: 404, message: "No such image".into() };
        assert!(matches!(PushFailure::classify(&missing), PushFailure::Other(_)));
        let leaked = PushFailure::Denied("denied for AWS:s3cret-pass".into()).into_error(&auth, "r:t");
        let text = format!("{leaked:#}");
        assert!(!text.contains("s3cret-pass") && text.contains("refused the credentials"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_summarised_not_streamed() {
        let mut progress = PushProgress::new("r:t");
        for _ in 0..3 {
            progress.update("Preparing", None);
        }
        let detail = |current, total| bollard::models::ProgressDetail { current: Some(current), total: Some(total) };
        progress.update("Pushing", Some(&detail(500, 1000)));
        progress.update("Pushing", Some(&detail(1000, 1000)));
        progress.update("Pushing", Some(&detail(100, 3000)));
        progress.update("Pushed", None);
        progress.update("Layer already exists", None);
        assert!(!progress.due());
        tokio::time::advance(PROGRESS_EVERY).await;
        assert!(progress.due());
        assert!(!progress.due());
        assert_eq!(progress.summary(), "r:t: 2/3 layers done, 1.1 kB of 4.0 kB uploaded");
    }
}
