//! Build secrets (`RUN --mount=type=secret`): the BuildKit build that serves them (the `secrets` input's
//! specs are parsed with the rest of the build plan, in `build_plan`).
//!
//! bollard 0.21.1's `build_image` session serves registry credentials only; secrets are served by its
//! `Moby` driver's `docker_build`, a `Control.Solve` over the daemon's `/grpc` endpoint that returns no
//! progress. This build asks the daemon for that progress itself (`Control.Status` for the build's ref, on a
//! gRPC channel of its own over `/grpc`), so its log reads like any other BuildKit build. Two differences
//! remain: that path takes the context as one upload, so it is held in memory (at most
//! [`MAX_CONTEXT_BYTES`]); and the values are read when the daemon asks for them, from the process
//! environment or the file, never written anywhere.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use anyhow::{Result, anyhow};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::grpc::BuildRef;
use bollard::grpc::build::{ImageBuildFrontendOptions, ImageBuildLoadInput, ImageBuildPlatform, SecretSource};
use bollard::grpc::driver::Build as _;
use bollard::grpc::driver::moby::Moby;
use bollard::moby::buildkit::v1::control_client::ControlClient;
use bollard::moby::buildkit::v1::{CacheOptionsEntry, StatusRequest};
use hyper_util::rt::TokioIo;

use super::build::{BuildRequest, Failure, Finished, Prepared};
use super::buildkit::{CacheSource, cache_sources};
use super::conn::{self, Conn};
use super::context::{self, ContextStats};
use super::dockerfile;
use super::progress::Renderer;
use crate::build_plan::{BuildSecret, CacheTo, SecretFrom};
use crate::gha::Console;
use crate::names::reference_host;

/// The largest context a build with secrets holds in memory.
pub const MAX_CONTEXT_BYTES: u64 = 1024 * 1024 * 1024;

/// Reads every secret's value once, to register it with the console (so no log line can show it) and to
/// fail before the build when one is missing. The values are not kept: the daemon asks for them again.
pub(crate) fn mask_values(secrets: &[BuildSecret], console: &Console) -> Result<()> {
    for secret in secrets {
        let value = match &secret.from {
            // The build's session reads the same variable when the daemon asks; this is that edge, early.
            SecretFrom::Env(var) => std::env::var(var).map_err(|_| {
                anyhow!(
                    "failed to build the image: input `secrets`: the environment variable {var} (secret {}) is not \
                     set; give it to the step with `env: {var}: ${{{{ secrets.… }}}}`",
                    secret.id
                )
            })?,
            SecretFrom::File(path) => {
                std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).map_err(|e| {
                    anyhow!("failed to read {} (input `secrets`, secret {}): {e}", path.display(), secret.id)
                })?
            }
        };
        console.mask(&value);
    }
    Ok(())
}

/// Runs a BuildKit build that serves `request.plan.secrets`.
pub(super) async fn build(
    docker: &Docker,
    request: &BuildRequest,
    prepared: &Prepared,
    console: &Console,
) -> Result<Finished, Failure> {
    mask_values(&request.plan.secrets, console).map_err(Failure::Other)?;
    let (sources, note) = if request.plan.no_cache { (Vec::new(), None) } else { cache_sources(request) };
    if let Some(note) = note {
        console.info(note);
    }
    for source in &sources {
        console.info(format!("Cache source: {} ({})", source.reference, source.origin));
    }
    let (context, stats) = context_in_memory(prepared).map_err(Failure::Other)?;
    console.info(format!(
        "Secrets: {} (served by this build's session; the context is sent in one piece of {})",
        request.plan.secrets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", "),
        crate::format::human_bytes(stats.bytes)
    ));

    if !prepared.dockerfile_in_context {
        console.info(
            "Note: with secrets, BuildKit reads the Dockerfile from the context upload, so it is part of the \
             context although it lies outside it or .dockerignore leaves it out: `COPY .` copies it too",
        );
    }
    let build_ref = BuildRef::random();
    let status_ref = build_ref.as_ref().to_owned();
    let credentials = credentials(request, &sources);
    let credentials: HashMap<&str, DockerCredentials> =
        credentials.iter().map(|(host, creds)| (host.as_str(), creds.clone())).collect();
    let solve = Moby::new(docker).docker_build(
        &request.tag,
        frontend_options(request, prepared, &sources),
        ImageBuildLoadInput::Upload(context.into()),
        (!credentials.is_empty()).then_some(credentials),
        Some(build_ref),
    );
    let mut renderer = Renderer::new(console, prepared.dockerfile_display.clone());
    let host = request.docker_host.clone();
    let follow = follow_status(host.as_deref(), status_ref, &mut renderer);
    let (solved, followed) = tokio::join!(solve, follow);
    renderer.finish();
    if let Err(err) = followed {
        // The build is not affected; only its log is incomplete.
        console.warning(format!("could not follow the build's progress: {err:#}"), None);
    }
    renderer.warn_unused_cache();
    if let Err(err) = solved {
        let message = match &err {
            bollard::grpc::error::GrpcError::TonicStatus { err } => err.message().to_owned(),
            other => other.to_string(),
        };
        let step = renderer.failed().map(|f| f.name.clone());
        let line = step
            .as_deref()
            .and_then(|name| dockerfile::step_line_of_vertex(&prepared.dockerfile_text, name))
            .or_else(|| dockerfile::parse_error_line(&message));
        return Err(Failure::Daemon { message, step, line, hint: None });
    }
    Ok(Finished { image_id: None, stats, note: super::buildkit::cached_note(&renderer) })
}

fn frontend_options(request: &BuildRequest, prepared: &Prepared, sources: &[CacheSource]) -> ImageBuildFrontendOptions {
    let mut options = ImageBuildFrontendOptions::builder()
        .dockerfile(Path::new(&prepared.dockerfile_param))
        .nocache(request.plan.no_cache)
        .pull(request.plan.pull);
    for (key, value) in &request.plan.build_args {
        options = options.buildarg(key, value);
    }
    for (key, value) in &request.plan.labels {
        options = options.label(key, value);
    }
    if let Some(target) = &request.plan.target {
        options = options.target(target);
    }
    if let Some(platform) = &request.plan.platform {
        let mut parts = platform.splitn(3, '/');
        options = options.platforms(&ImageBuildPlatform {
            os: parts.next().unwrap_or_default().to_owned(),
            architecture: parts.next().unwrap_or_default().to_owned(),
            variant: parts.next().map(str::to_owned),
        });
    }
    for secret in &request.plan.secrets {
        let source = match &secret.from {
            SecretFrom::Env(var) => SecretSource::Env(var.clone()),
            SecretFrom::File(path) => SecretSource::File(path.clone()),
        };
        options = options.set_secret(&secret.id, &source);
    }
    for source in sources {
        let attrs = HashMap::from([("ref".to_owned(), source.reference.clone())]);
        options = options.cachefrom(&CacheOptionsEntry { r#type: "registry".to_owned(), attrs });
    }
    if request.plan.cache_to == CacheTo::Inline {
        options = options.cacheto(&CacheOptionsEntry { r#type: "inline".to_owned(), attrs: HashMap::new() });
    }
    options.build()
}

fn credentials(request: &BuildRequest, sources: &[CacheSource]) -> Vec<(String, DockerCredentials)> {
    let Some(auth) = &request.registry_auth else { return Vec::new() };
    let mut hosts: Vec<String> = sources
        .iter()
        .filter_map(|s| reference_host(&s.reference))
        .filter(|h| auth.serves(h))
        .map(str::to_owned)
        .collect();
    hosts.dedup();
    hosts
        .into_iter()
        .map(|host| {
            let mut creds = auth.docker_credentials();
            creds.serveraddress = Some(host.clone());
            (host, creds)
        })
        .collect()
}

/// The context tar, in memory (bollard's Solve path takes it in one piece).
fn context_in_memory(prepared: &Prepared) -> Result<(Vec<u8>, ContextStats)> {
    let limited = Limited { out: Vec::new(), max: MAX_CONTEXT_BYTES };
    let (limited, stats) = context::write_context(&prepared.buildkit_spec, limited).map_err(|err| {
        if format!("{err:#}").contains(TOO_BIG) {
            anyhow!(
                "the build context is larger than {}, the most a build with secrets holds in memory; shrink it with \
                 .dockerignore, or build the image in an earlier step and give it as `image`",
                crate::format::human_bytes(MAX_CONTEXT_BYTES)
            )
        } else {
            err
        }
    })?;
    Ok((limited.out, stats))
}

const TOO_BIG: &str = "context over the in-memory limit";

struct Limited {
    out: Vec<u8>,
    max: u64,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > self.max {
            return Err(io::Error::other(TOO_BIG));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Follows a build's progress: `Control.Status` for its ref, over a gRPC channel of our own to the daemon's
/// `/grpc` endpoint. BuildKit waits a few seconds for a ref it does not know yet, so this may start first.
async fn follow_status(docker_host: Option<&str>, build_ref: String, renderer: &mut Renderer<'_>) -> Result<()> {
    let stream = conn::upgrade(docker_host, "/grpc", &[]).await?;
    let connector = OneConnection(Arc::new(Mutex::new(Some(stream))));
    let channel =
        tonic::transport::Endpoint::try_from("http://docker.invalid")?.connect_with_connector(connector).await?;
    let mut control = ControlClient::new(channel);
    let mut updates = control.status(StatusRequest { r#ref: build_ref }).await?.into_inner();
    while let Some(update) = updates.message().await? {
        renderer.handle(&update);
    }
    Ok(())
}

/// A tonic connector that hands out one already-upgraded connection.
#[derive(Clone)]
struct OneConnection(Arc<Mutex<Option<Conn>>>);

impl tower_service::Service<tonic::transport::Uri> for OneConnection {
    type Response = TokioIo<Conn>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::transport::Uri) -> Self::Future {
        let taken = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Box::pin(async move { taken.map(TokioIo::new).ok_or_else(|| io::Error::other("the /grpc connection is used")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_and_a_missing_variable_is_an_error() {
        let dir = std::env::temp_dir().join(format!("secrets-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("value"), "file-secret-value\n").unwrap();
        let (console, out) = Console::captured(false, false);
        let secrets = vec![BuildSecret { id: "f".into(), from: SecretFrom::File(dir.join("value")) }];
        mask_values(&secrets, &console).unwrap();
        console.info("the value is file-secret-value");
        assert_eq!(out.text(), "the value is ***\n");
        let missing = vec![BuildSecret { id: "t".into(), from: SecretFrom::Env("EB_DEPLOY_TEST_UNSET_VAR".into()) }];
        let err = mask_values(&missing, &console).unwrap_err().to_string();
        assert!(err.contains("input `secrets`") && err.contains("EB_DEPLOY_TEST_UNSET_VAR"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_context_over_the_limit_is_refused_in_the_writer() {
        let mut limited = Limited { out: Vec::new(), max: 10 };
        assert!(limited.write(b"0123456789").is_ok());
        assert!(limited.write(b"x").unwrap_err().to_string().contains(TOO_BIG));
    }
}
