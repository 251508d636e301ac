//! End-to-end tests of the image stage with the classic builder (BuildKit's are in `buildkit_e2e.rs`)
//! against the local stack: a real Docker daemon, the htpasswd
//! registry (`LOCAL_REGISTRY`, the push target) and moto's ECR (`AWS_ENDPOINT_URL_ECR`). `make test`
//! sources `.local-stack/env` for these variables. Every test also checks that the ECR password
//! never appears in what the user sees: the captured console output and the error chain.
#![cfg(feature = "e2e")]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_config::BehaviorVersion;
use base64::Engine as _;
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use eb_deploy::build_plan::{BuildPlan, Builder, oci_labels};
use eb_deploy::docker::RegistryAuth;
use eb_deploy::gha::Console;
use eb_deploy::image::{self, BuildRequest};
use eb_deploy::registry::{self, RepositoryState};
use support::console::{Captured, console};
use support::image::FreshDaemon;
use support::unique;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A classic-builder build of `context`, tagged `tag`.
fn classic(context: PathBuf, tag: impl Into<String>) -> BuildRequest {
    BuildRequest {
        plan: BuildPlan { context, builder: Builder::Classic, ..Default::default() },
        tag: tag.into(),
        ..Default::default()
    }
}

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: run `make test`, or source .local-stack/env first"))
}

fn registry_host() -> String {
    required("LOCAL_REGISTRY")
}

async fn docker() -> Docker {
    let host = std::env::var("DOCKER_HOST").ok();
    eb_deploy::docker::connect(host.as_deref()).await.expect("the local Docker daemon must be running")
}

async fn ecr() -> aws_sdk_ecr::Client {
    required("AWS_ENDPOINT_URL_ECR");
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    aws_sdk_ecr::Client::new(&config)
}

/// Logs in the way a deploy does (registry override = the local registry).
async fn login(console: &Console) -> RegistryAuth {
    let registry = registry_host();
    registry::ecr_login(&ecr().await, Some(&registry), console).await.expect("ECR login against moto")
}

/// What a push test starts from: the daemon, a login as a deploy makes it, and a new ECR repository.
struct PushFixture {
    docker: Docker,
    registry: String,
    console: Console,
    out: Captured,
    auth: RegistryAuth,
    password: String,
    repo: String,
}

async fn push_fixture(name: &str) -> PushFixture {
    let docker = docker().await;
    let registry = registry_host();
    let (console, out) = console();
    let auth = login(&console).await;
    let password = auth.expose_password().to_owned();
    let repo = unique(&format!("eb-deploy-e2e/{name}"));
    registry::ensure_repository(&ecr().await, &repo, true, &console).await.unwrap();
    PushFixture { docker, registry, console, out, auth, password, repo }
}

/// The password users must never see: the one moto's token decodes to.
async fn ecr_password() -> String {
    let (console, _) = console();
    login(&console).await.expose_password().to_owned()
}

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "{what} contains a secret:\n{text}");
    }
}

/// A temporary build context, removed when dropped; the images the test tagged are discarded
/// (`stackkit::discard_images`).
struct Scratch {
    dir: PathBuf,
    images: Vec<String>,
}

impl Scratch {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(unique("image-e2e"));
        for (rel, contents) in files {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
        Self { dir, images: Vec::new() }
    }

    /// Adds a static busybox so RUN steps work in a FROM scratch image.
    fn with_busybox(self) -> Self {
        let source = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists());
        fs::copy(source.expect("busybox-static is installed"), self.dir.join("busybox")).unwrap();
        self
    }

    fn image(&mut self, reference: impl Into<String>) -> String {
        let reference = reference.into();
        self.images.push(reference.clone());
        reference
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        stackkit::discard_images(&self.images);
    }
}

/// Ids of the step images a classic build created (not the ones it took from the cache), from its log.
fn created_step_images(log: &str) -> Vec<String> {
    let mut created = Vec::new();
    let mut cached = false;
    for line in log.lines() {
        if line.starts_with("Step ") {
            cached = false;
        } else if line == " ---> Using cache" {
            cached = true;
        } else if let Some(id) = line.strip_prefix(" ---> ")
            && id.len() == 12
            && id.bytes().all(|b| b.is_ascii_hexdigit())
            && !cached
        {
            created.push(id.to_owned());
        }
    }
    created.reverse();
    created
}

/// `Docker-Content-Digest` the registry serves for `repo:tag`, over its HTTP API with basic auth.
async fn served_digest(registry: &str, repo: &str, tag: &str, password: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(registry).await.expect("connect to the registry");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    let request = format!(
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {registry}\r\nAuthorization: Basic {auth}\r\n\
         Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return None;
    }
    response.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("docker-content-digest").then(|| value.trim().to_owned())
    })
}

const SIMPLE_DOCKERFILE: &str = "FROM scratch\nCOPY hello.txt /hello.txt\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_push_and_digest_matches_the_registry() {
    let docker = docker().await;
    let ecr = ecr().await;
    let registry = registry_host();
    let (console, out) = console();
    let auth = registry::ecr_login(&ecr, Some(&registry), &console).await.unwrap();
    let password = auth.expose_password().to_owned();
    assert_eq!(auth.registry(), registry);

    let repo = unique("eb-deploy-e2e/app");
    assert_eq!(registry::ensure_repository(&ecr, &repo, true, &console).await.unwrap(), RepositoryState::Created);
    assert_eq!(registry::ensure_repository(&ecr, &repo, false, &console).await.unwrap(), RepositoryState::Existing);

    let mut ctx = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", &unique("hello"))]);
    let tag = ctx.image(unique("ebd-e2e-build") + ":local");
    ctx.image(format!("{registry}/{repo}:v1"));
    let labels = oci_labels(Some("https://github.com/team/eb-deploy"), Some("abc123"), "v1", "2024-05-01T10:00:00Z");
    let request = BuildRequest {
        plan: BuildPlan { context: ctx.dir.clone(), labels, builder: Builder::Classic, ..Default::default() },
        tag: tag.clone(),
        ..Default::default()
    };
    let built = image::build(&docker, &request, &console).await.unwrap();
    assert!(built.id.starts_with("sha256:"), "{built:?}");
    let inspect = docker.inspect_image(&tag).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(built.id.as_str()));
    let image_labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(image_labels.get("org.opencontainers.image.revision").map(String::as_str), Some("abc123"));

    let pushed = registry::push(&docker, &auth, &built.id, &repo, "v1", &console).await.unwrap();
    assert_eq!(pushed.reference, format!("{registry}/{repo}:v1"));
    let served = served_digest(&registry, &repo, "v1", &password).await.expect("the registry serves the tag");
    assert_eq!(pushed.digest, served);
    assert_eq!(pushed.pinned(), format!("{registry}/{repo}@{served}"));

    // A user-given image already in the registry is used as it is, digest resolved, nothing pushed.
    let existing = registry::ensure_pushed(&docker, &auth, &pushed.reference, &repo, "unused", &console).await.unwrap();
    assert_eq!(existing, pushed);
    assert!(served_digest(&registry, &repo, "unused", &password).await.is_none(), "nothing may be pushed");
    // Named by the ECR endpoint host from the token, it is the same image on the push host.
    let account = std::env::var("AWS_ACCOUNT_ID").unwrap_or_else(|_| "123456789012".to_owned());
    let endpoint = format!("{account}.dkr.ecr.{}.amazonaws.com", required("AWS_REGION"));
    let aliased = format!("{endpoint}/{repo}:v1");
    let via_alias = registry::ensure_pushed(&docker, &auth, &aliased, &repo, "unused", &console).await.unwrap();
    assert_eq!(via_alias, pushed);
    // And by digest.
    let by_digest = registry::ensure_pushed(&docker, &auth, &pushed.pinned(), &repo, "unused", &console).await.unwrap();
    assert_eq!(by_digest.digest, pushed.digest);
    assert_eq!(by_digest.pinned(), pushed.pinned());

    let text = out.text();
    assert!(text.contains("::group::Build image"), "{text}");
    // The labels become extra LABEL steps after the Dockerfile's own two.
    assert!(text.contains("Step 2/6 : COPY hello.txt /hello.txt\n"), "{text}");
    assert!(text.contains("layers done"), "{text}");
    assert!(text.contains(&format!("::add-mask::{password}")), "{text}");
    let mask_at = text.find("::add-mask::").unwrap();
    assert!(text[..mask_at].lines().all(|l| !l.contains("Push")), "the password is masked before any push");
    assert_no_secret("console output", &text.replace(&format!("::add-mask::{password}"), ""), &[&password]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_run_step_is_annotated_at_its_line() {
    let docker = docker().await;
    let password = ecr_password().await;
    let marker = unique("about-to-fail");
    let dockerfile = format!(
        "FROM scratch\n# a shell for RUN\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \\\n     \"echo {marker} && exit 3\"]\nCOPY Dockerfile /never\n"
    );
    let mut ctx = Scratch::new(&[("Dockerfile", &dockerfile)]).with_busybox();
    let tag = ctx.image(unique("ebd-e2e-fail") + ":x");
    let (console, out) = console();
    let request = classic(ctx.dir.clone(), tag);
    let err = image::build(&docker, &request, &console).await.unwrap_err();
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    assert!(message.starts_with("failed to build the image: "), "{message}");
    assert!(message.contains("returned a non-zero code: 3"), "{message}");
    assert!(message.ends_with("Dockerfile:6)"), "{message}");
    let text = out.text();
    // Steps before the failure left images nothing is tagged with: discard those this build made.
    ctx.images.extend(created_step_images(&text));
    assert!(text.contains(&marker), "the RUN output is in the log:\n{text}");
    let annotation = text.lines().find(|l| l.starts_with("::error ")).expect("an error annotation");
    assert!(annotation.contains("Dockerfile,line=6,title=Docker build failed::"), "{annotation}");
    // The group is closed before the annotation, so it is not folded away.
    assert!(text.find("::endgroup::").unwrap() < text.find("::error ").unwrap(), "{text}");
    // forcerm: the failed step's container is gone.
    let containers =
        docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await.unwrap();
    assert!(
        containers.iter().all(|c| !c.command.as_deref().unwrap_or_default().contains(&marker)),
        "a container of the failed step was left behind"
    );
    assert_no_secret("console output", &text, &[&password]);
    assert_no_secret("error", &message, &[&password]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_parse_error_is_annotated_at_its_line() {
    let docker = docker().await;
    let mut ctx = Scratch::new(&[("Dockerfile", "FROM scratch\n\nCOPPY a /a\n")]);
    let tag = ctx.image(unique("ebd-e2e-parse") + ":x");
    let (console, out) = console();
    let err = image::build(&docker, &classic(ctx.dir.clone(), tag), &console).await.unwrap_err();
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    assert!(message.starts_with("failed to build the image: "), "{message}");
    assert!(message.contains("COPPY") && message.ends_with("Dockerfile:3)"), "{message}");
    let text = out.text();
    assert!(text.contains(",line=3,title=Docker build failed::"), "{text}");
    let password = ecr_password().await;
    assert_no_secret("console output", &text, &[&password]);
    assert_no_secret("error", &message, &[&password]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_daemon_is_a_clear_error() {
    let password = ecr_password().await;
    let err = eb_deploy::docker::connect(Some("tcp://127.0.0.1:1")).await.unwrap_err();
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    assert!(message.contains("failed to connect to the Docker daemon at tcp://127.0.0.1:1"), "{message}");
    assert!(message.contains("DOCKER_HOST") && message.contains("/var/run/docker.sock"), "{message}");
    assert_no_secret("error", &message, &[&password]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_registry_password_is_a_clear_error() {
    let PushFixture { docker, registry, console, out, password: real_password, repo, .. } =
        push_fixture("denied").await;

    let mut ctx = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", &unique("denied"))]);
    let tag = ctx.image(unique("ebd-e2e-denied") + ":x");
    ctx.image(format!("{registry}/{repo}:v1"));
    let built = image::build(&docker, &classic(ctx.dir.clone(), tag), &console).await.unwrap();
    let wrong_password = unique("wrong-password");
    console.mask(&wrong_password);
    let wrong = RegistryAuth::new(registry.clone(), "AWS", wrong_password.clone());
    let err = registry::push(&docker, &wrong, &built.id, &repo, "v1", &console).await.unwrap_err();
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    assert!(message.contains(&format!("failed to push {registry}/{repo}:v1")), "{message}");
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(!message.contains("retrying"), "{message}");
    let text = out.text();
    assert!(!text.contains("retrying"), "a refused login is not retried:\n{text}");
    let shown =
        text.replace(&format!("::add-mask::{real_password}"), "").replace(&format!("::add-mask::{wrong_password}"), "");
    assert_no_secret("console output", &shown, &[&real_password, &wrong_password]);
    assert_no_secret("error", &message, &[&real_password, &wrong_password]);
    assert!(served_digest(&registry, &repo, "v1", &real_password).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_context_or_dockerfile_fails_before_the_daemon() {
    // A client for a daemon that does not exist: reaching it would give a connection error instead.
    let nowhere = Docker::connect_with_http("tcp://127.0.0.1:1", 5, bollard::API_DEFAULT_VERSION).unwrap();
    let (console, out) = console();
    let missing = std::env::temp_dir().join(unique("no-such-context"));
    let err = image::build(&nowhere, &classic(missing.clone(), "x:y"), &console).await.unwrap_err();
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    assert!(message.contains("input `context`") && message.contains(&*missing.to_string_lossy()), "{message}");

    let ctx = Scratch::new(&[("app.txt", "x")]);
    let err = image::build(&nowhere, &classic(ctx.dir.clone(), "x:y"), &console).await.unwrap_err();
    let message_df = format!("{err:#}");
    eprintln!("error: {message_df}");
    assert!(message_df.contains("input `dockerfile`") && message_df.contains("Dockerfile"), "{message_df}");

    let request = BuildRequest {
        plan: BuildPlan {
            context: ctx.dir.clone(),
            dockerfile: Some(ctx.dir.join("docker/Dockerfile.prod")),
            builder: Builder::Classic,
            ..Default::default()
        },
        tag: "x:y".into(),
        ..Default::default()
    };
    let err = image::build(&nowhere, &request, &console).await.unwrap_err();
    assert!(format!("{err:#}").contains("docker/Dockerfile.prod"), "{err:#}");
    let password = ecr_password().await;
    for text in [message, message_df, out.text()] {
        assert_no_secret("output", &text, &[&password]);
        assert!(!text.contains("127.0.0.1:1"), "the daemon was contacted: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_image_is_pushed_from_the_daemon_or_refused_when_nowhere() {
    let PushFixture { docker, registry, console, out, auth, password, repo } = push_fixture("given").await;

    // Only in the local daemon: tagged and pushed to the repository.
    let mut ctx = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", &unique("given"))]);
    let local = ctx.image(unique("ebd-e2e-given") + ":1");
    ctx.image(format!("{registry}/{repo}:from-local"));
    image::build(&docker, &classic(ctx.dir.clone(), local.clone()), &console).await.unwrap();
    let pushed = registry::ensure_pushed(&docker, &auth, &local, &repo, "from-local", &console).await.unwrap();
    assert_eq!(pushed.reference, format!("{registry}/{repo}:from-local"));
    assert_eq!(Some(pushed.digest.clone()), served_digest(&registry, &repo, "from-local", &password).await);

    // On the registry but not there, and not local either: an error naming the input.
    let absent = format!("{registry}/{repo}:no-such-tag");
    let err = registry::ensure_pushed(&docker, &auth, &absent, &repo, "x", &console).await.unwrap_err();
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    assert!(message.contains("input `image`") && message.contains(&absent), "{message}");

    let nowhere = unique("ebd-e2e-nowhere") + ":1";
    let err = registry::ensure_pushed(&docker, &auth, &nowhere, &repo, "x", &console).await.unwrap_err();
    let message_nowhere = format!("{err:#}");
    eprintln!("error: {message_nowhere}");
    assert!(message_nowhere.contains("input `image`") && message_nowhere.contains(&nowhere), "{message_nowhere}");

    let shown = out.text().replace(&format!("::add-mask::{password}"), "");
    for text in [shown, message, message_nowhere] {
        assert_no_secret("output", &text, &[&password]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_from_is_pulled_and_a_missing_one_only_warns() {
    let PushFixture { docker, registry, console, out, auth, password, repo } = push_fixture("cache").await;

    let content = unique("cached");
    let mut first = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", &content)]);
    let first_tag = first.image(unique("ebd-e2e-cache") + ":1");
    let remote = first.image(format!("{registry}/{repo}:cache"));
    let built = image::build(&docker, &classic(first.dir.clone(), first_tag), &console).await.unwrap();
    registry::push(&docker, &auth, &built.id, &repo, "cache", &console).await.unwrap();

    // The rebuild runs on a daemon with nothing in it (a new runner's), so only the registry has the image.
    let fresh = FreshDaemon::start();
    let second = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", &content)]);
    let missing = format!("{registry}/{repo}:does-not-exist");
    let request = BuildRequest {
        plan: BuildPlan {
            context: second.dir.clone(),
            cache_from: vec![missing.clone(), remote.clone()],
            builder: Builder::Classic,
            ..Default::default()
        },
        tag: unique("ebd-e2e-cache") + ":2",
        registry_auth: Some(auth.clone()),
        docker_host: Some(fresh.host.clone()),
        ..Default::default()
    };
    let fresh_docker = fresh.docker().await;
    assert!(fresh_docker.inspect_image(&built.id).await.is_err(), "the fresh daemon starts without the image");
    let rebuilt = image::build(&fresh_docker, &request, &console).await.unwrap();
    let text = out.text();
    let warning = text.lines().find(|l| l.starts_with("::warning")).expect("a warning for the missing cache source");
    assert!(warning.contains(&missing), "{warning}");
    assert!(text.contains(&format!("Pulled cache source {remote}")), "{text}");
    assert!(text.contains("Using cache"), "the pulled image served as cache:\n{text}");
    assert_eq!(rebuilt.id, built.id, "a fully cached build yields the same image");
    assert_no_secret("console output", &text.replace(&format!("::add-mask::{password}"), ""), &[&password]);
}

/// A TCP proxy to the registry that cuts the connection the first `drops` times it sees a manifest
/// upload (`PUT /v2/…/manifests/…`): the layers are in, the push as a whole fails mid-way.
async fn manifest_dropping_proxy(upstream: String, drops: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = client_read.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        let window = String::from_utf8_lossy(&tail).into_owned();
                        let manifest_put = window
                            .match_indices("PUT /v2/")
                            .any(|(i, _)| window[i..].split("\r\n").next().is_some_and(|l| l.contains("/manifests/")));
                        if manifest_put
                            && counter
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| (d < drops).then_some(d + 1))
                                .is_ok()
                        {
                            return;
                        }
                        let keep = tail.len().saturating_sub(256);
                        tail.drain(..keep);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = tokio::io::copy(&mut server_read, &mut client_write);
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    (addr, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_whose_connection_dropped_is_retried() {
    let docker = docker().await;
    let registry = registry_host();
    let (console, out) = console();
    let password = login(&console).await.expose_password().to_owned();
    let (proxy, dropped) = manifest_dropping_proxy(registry.clone(), 1).await;
    // The same registry, reached through the proxy: the daemon treats any loopback registry as plain HTTP.
    let auth = RegistryAuth::new(proxy.clone(), "AWS", password.clone());
    let repo = unique("eb-deploy-e2e/retry");

    let mut ctx = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", &unique("retry"))]);
    let tag = ctx.image(unique("ebd-e2e-retry") + ":1");
    ctx.image(format!("{proxy}/{repo}:v1"));
    let built = image::build(&docker, &classic(ctx.dir.clone(), tag), &console).await.unwrap();
    let pushed = registry::push(&docker, &auth, &built.id, &repo, "v1", &console).await.unwrap();
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 1, "the proxy cut one manifest upload");
    let text = out.text();
    let warning = text.lines().find(|l| l.starts_with("::warning")).expect("a retry warning");
    eprintln!("{warning}");
    assert!(warning.contains("was interrupted") && warning.contains("attempt 2 of 3"), "{warning}");
    assert_eq!(Some(pushed.digest), served_digest(&registry, &repo, "v1", &password).await);
    assert_no_secret("console output", &text.replace(&format!("::add-mask::{password}"), ""), &[&password]);
}

/// Peak resident memory of this process, from /proc.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_context_is_streamed_in_flat_memory() {
    const SIZE: u64 = 768 * 1024 * 1024;
    let docker = docker().await;
    let (console, out) = console();
    // Content of its own, so the COPY step cannot be taken from an image another run left (or is deleting).
    let small = unique("s");
    let mut ctx = Scratch::new(&[("Dockerfile", "FROM scratch\nCOPY small.txt /small.txt\n"), ("small.txt", &small)]);
    // Sparse: cheap to create, but every byte is read and sent.
    fs::File::create(ctx.dir.join("big.bin")).unwrap().set_len(SIZE).unwrap();
    let tag = ctx.image(unique("ebd-e2e-big") + ":1");
    let before = peak_rss_kib();
    image::build(&docker, &classic(ctx.dir.clone(), tag), &console).await.unwrap();
    let growth_mib = peak_rss_kib().saturating_sub(before) / 1024;
    eprintln!("peak memory grew by {growth_mib} MiB while sending {} MiB", SIZE >> 20);
    let text = out.text();
    assert!(text.contains("805.3 MB context"), "{text}");
    assert!(growth_mib < 64, "sending a {} MiB context grew memory by {growth_mib} MiB", SIZE >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_refused_before_the_upload_does_not_hang() {
    let docker = docker().await;
    // Big enough that the context cannot fit in the channel and socket buffers.
    let mut ctx = Scratch::new(&[("Dockerfile", SIMPLE_DOCKERFILE), ("hello.txt", "x")]);
    fs::File::create(ctx.dir.join("big.bin")).unwrap().set_len(256 * 1024 * 1024).unwrap();
    let tag = ctx.image("Not A Valid:Tag!");
    let (console, out) = console();
    let request = classic(ctx.dir.clone(), tag);
    let result = tokio::time::timeout(std::time::Duration::from_secs(120), image::build(&docker, &request, &console))
        .await
        .expect("the build must not hang when the daemon refuses the request");
    let message = format!("{:#}", result.unwrap_err());
    eprintln!("error: {message}");
    assert!(message.starts_with("failed to build the image: "), "{message}");
    assert!(message.to_ascii_lowercase().contains("invalid"), "{message}");
    let password = ecr_password().await;
    assert_no_secret("output", &format!("{message}\n{}", out.text()), &[&password]);
}
