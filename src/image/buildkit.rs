//! BuildKit builds through the Engine API as `docker build` makes them: `POST /build?version=2&session=…
//! &remote=client-session` with no body, while this build's session (see `session`) serves the context and
//! the Dockerfile through BuildKit's file sync, and the registry credentials of the cache sources. Progress
//! arrives as `moby.buildkit.trace` messages, which [`Renderer`] turns into a readable log.

use std::collections::HashMap;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::anyhow;
use bollard::auth::DockerCredentials;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::build::{BuildRequest, Failure, Finished, Prepared, random_hex};
use super::context::ContextStats;
use super::dockerfile;
use super::progress::Renderer;
use super::{conn, filesync, session};
use crate::build_plan::CacheTo;
use crate::gha::Console;
use crate::names::reference_host;

/// The build argument that makes BuildKit write cache metadata into the image config (inline cache):
/// the pushed image then serves as the next build's cache source, on any runner.
const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// A cache source and why it is one, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CacheSource {
    pub reference: String,
    pub origin: String,
}

/// The cache sources of a build: the `cache-from` lines, then the image the environment runs now and those
/// of the application's recent versions, when they live on the registry this deploy pushes to (the only one
/// it has credentials for).
pub(super) fn cache_sources(request: &BuildRequest) -> (Vec<CacheSource>, Option<String>) {
    let mut sources: Vec<CacheSource> = request
        .plan
        .cache_from
        .iter()
        .map(|r| CacheSource { reference: r.clone(), origin: "cache-from".to_owned() })
        .collect();
    let ours = |image: &str| {
        reference_host(image).is_some_and(|host| request.registry_auth.as_ref().is_some_and(|auth| auth.serves(host)))
    };
    let mut note = None;
    let running = request.running_image.iter().map(|i| (i, "the image the environment runs now".to_owned()));
    let earlier = request.earlier_images.iter().map(|(label, i)| (i, format!("version {label}")));
    for (image, origin) in running.chain(earlier) {
        if !ours(image) {
            note.get_or_insert_with(|| {
                format!(
                    "not using {image} ({origin}) as a cache source: it is not on the registry this deploy pushes to"
                )
            });
        } else if !sources.iter().any(|s| s.reference == *image) {
            sources.push(CacheSource { reference: image.clone(), origin });
        }
    }
    (sources, note)
}

/// Registry credentials the session serves, for each cache source host this deploy's login covers.
fn session_credentials(request: &BuildRequest, sources: &[CacheSource]) -> HashMap<String, DockerCredentials> {
    let mut credentials = HashMap::new();
    let Some(auth) = &request.registry_auth else { return credentials };
    for source in sources {
        if let Some(host) = reference_host(&source.reference).filter(|h| auth.serves(h)) {
            let mut creds = auth.docker_credentials();
            creds.serveraddress = Some(host.to_owned());
            credentials.insert(host.to_owned(), creds);
        }
    }
    credentials
}

/// Runs a BuildKit build to its end.
pub(super) async fn build(request: &BuildRequest, prepared: &Prepared, console: &Console) -> Result<Finished, Failure> {
    let (sources, note) = if request.plan.no_cache { (Vec::new(), None) } else { cache_sources(request) };
    if let Some(note) = note {
        console.info(note);
    }
    for source in &sources {
        console.info(format!("Cache source: {} ({})", source.reference, source.origin));
    }
    let mut build_args: HashMap<String, String> = request.plan.build_args.iter().cloned().collect();
    // Also with no-cache: this build ignores old layers, the next one can still use its own.
    if request.plan.cache_to == CacheTo::Inline {
        build_args.entry(INLINE_CACHE_ARG.to_owned()).or_insert_with(|| "1".to_owned());
    }
    let credentials = session_credentials(request, &sources);
    // The daemon finds this build's session by its id; one per build.
    let session_id = format!("eb-deploy-{}", random_hex(12));
    let options = BuildImageOptions {
        dockerfile: prepared.dockerfile_name.clone(),
        t: (!request.tag.is_empty()).then(|| request.tag.clone()),
        remote: Some(SESSION_REMOTE.to_owned()),
        nocache: request.plan.no_cache,
        cachefrom: (!sources.is_empty()).then(|| sources.iter().map(|s| s.reference.clone()).collect()),
        pull: request.plan.pull.then(|| "1".to_owned()),
        buildargs: (!build_args.is_empty()).then_some(build_args),
        labels: (!request.plan.labels.is_empty()).then(|| request.plan.labels.iter().cloned().collect()),
        platform: request.plan.platform.clone().unwrap_or_default(),
        target: request.plan.target.clone().unwrap_or_default(),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(session_id.clone()),
        ..Default::default()
    };

    let root = prepared.buildkit_spec.root.clone();
    let ignore = prepared.ignore.clone();
    let (context, stats) = tokio::task::spawn_blocking(move || filesync::list_context(&root, &ignore))
        .await
        .map_err(|e| Failure::Other(anyhow!("listing the build context failed: {e}")))?
        .map_err(|e| Failure::Other(e.context("failed to read the build context")))?;
    let dockerfile = filesync::single_file(&prepared.dockerfile_name, &prepared.dockerfile_bytes);
    let files = filesync::Served::new(HashMap::from([
        (filesync::CONTEXT.to_owned(), Arc::new(context)),
        (filesync::DOCKERFILE.to_owned(), Arc::new(dockerfile)),
    ]));
    let (unreadable, sent) = (files.failed.clone(), files.sent.clone());
    let host = request.docker_host.as_deref();
    // One key per context directory, as the docker CLI keys it: a rebuild of the same directory on the same
    // daemon sends only the files that changed.
    let shared_key = hex::encode(&Sha256::digest(prepared.buildkit_spec.root.as_os_str().as_encoded_bytes())[..16]);
    let session = session::start(host, session_id, shared_key, files, credentials)
        .await
        .map_err(|e| Failure::Other(e.context("failed to open a BuildKit session with the Docker daemon")))?;

    let mut renderer = Renderer::new(console, prepared.dockerfile_display.clone());
    let mut image_id = None;
    let outcome = follow_build(host, &options, |info| {
        match &info.aux {
            Some(BuildInfoAux::BuildKit(status)) => renderer.handle(status),
            Some(BuildInfoAux::Default(aux)) => image_id = aux.id.clone().or(image_id.take()),
            None => {}
        }
        // The daemon's own notes (rare with BuildKit) are kept, one per line.
        for line in info.stream.iter().chain(info.status.iter()).flat_map(|t| t.lines()) {
            if !line.trim().is_empty() {
                console.info(line.trim_end());
            }
        }
    })
    .await;
    drop(session);
    renderer.finish();
    renderer.warn_unused_cache();
    if let Err(ended) = outcome {
        let unreadable = unreadable.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        return Err(failure(ended, unreadable, &renderer, prepared));
    }
    let stats = ContextStats { sent: Some(sent.load(Ordering::Relaxed)), ..stats };
    Ok(Finished { image_id, stats, note: cached_note(&renderer) })
}

/// How the build's `remote` parameter names a context that comes through the session.
const SESSION_REMOTE: &str = "client-session";

/// Why a build's answer ended in error.
#[derive(Debug)]
enum Ended {
    /// The daemon's message: the request refused, or an error in the build's stream.
    Daemon(String),
    /// No answer, or one that is not the Engine API's.
    Lost(anyhow::Error),
}

/// `POST /build` on a connection of our own (bollard would also send a context body), handing each
/// message of the answer to `each`.
async fn follow_build(
    docker_host: Option<&str>,
    options: &BuildImageOptions,
    mut each: impl FnMut(&BuildInfo),
) -> Result<(), Ended> {
    let query = serde_urlencoded::to_string(options).map_err(|e| Ended::Lost(e.into()))?;
    let stream = conn::connect(docker_host).await.map_err(|e| Ended::Lost(e.context("failed to reach the daemon")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| Ended::Lost(e.into()))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::post(format!("/build?{query}"))
        .header(hyper::header::HOST, "docker")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| Ended::Lost(e.into()))?;
    let response = sender.send_request(request).await.map_err(|e| Ended::Lost(e.into()))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut refused = Vec::new();
    let result = loop {
        let Some(frame) = body.frame().await else { break Ok(()) };
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => break Err(Ended::Lost(err.into())),
        };
        let Some(data) = frame.data_ref() else { continue };
        if !status.is_success() {
            refused.extend_from_slice(data);
            continue;
        }
        pending.extend_from_slice(data);
        if let Err(ended) = take_messages(&mut pending, &mut each) {
            break Err(ended);
        }
    };
    driver.abort();
    result?;
    if !status.is_success() {
        #[derive(serde::Deserialize)]
        struct Refusal {
            message: String,
        }
        let message = serde_json::from_slice::<Refusal>(&refused)
            .map(|r| r.message)
            .unwrap_or_else(|_| format!("{status}: {}", String::from_utf8_lossy(&refused).trim()));
        return Err(Ended::Daemon(message));
    }
    take_messages(&mut pending, &mut each)?;
    if !pending.iter().all(u8::is_ascii_whitespace) {
        take_message(&pending, &mut each)?;
    }
    Ok(())
}

/// Hands every complete line of `pending` to `each`, keeping what follows the last newline.
fn take_messages(pending: &mut Vec<u8>, each: &mut impl FnMut(&BuildInfo)) -> Result<(), Ended> {
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        if !line.iter().all(u8::is_ascii_whitespace) {
            take_message(&line, each)?;
        }
    }
    Ok(())
}

fn take_message(line: &[u8], each: &mut impl FnMut(&BuildInfo)) -> Result<(), Ended> {
    let info: BuildInfo = serde_json::from_slice(line).map_err(|e| {
        Ended::Lost(anyhow!(
            "the daemon sent a build message eb-deploy cannot read ({e}): {}",
            String::from_utf8_lossy(line).trim()
        ))
    })?;
    if let Some(message) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
        return Err(Ended::Daemon(message));
    }
    each(&info);
    Ok(())
}

/// "3 steps CACHED", counting the Dockerfile's own steps.
pub(super) fn cached_note(renderer: &Renderer<'_>) -> Option<String> {
    let cached =
        renderer.cached().iter().filter(|name| name.starts_with('[') && !name.starts_with("[internal]")).count();
    (cached > 0).then(|| format!("{cached} step{} CACHED", if cached == 1 { "" } else { "s" }))
}

/// What a failed BuildKit build means: the failed step and its line, a Dockerfile parse error's line,
/// or a context file that could not be read.
fn failure(ended: Ended, unreadable: Option<String>, renderer: &Renderer<'_>, prepared: &Prepared) -> Failure {
    if let Some(unreadable) = unreadable {
        return Failure::Other(
            anyhow!("{unreadable}: check its permissions").context("failed to send the build context"),
        );
    }
    let message = match ended {
        Ended::Daemon(message) => message,
        Ended::Lost(err) => {
            return Failure::Other(err.context("lost the connection to the Docker daemon during the build"));
        }
    };
    let step = renderer.failed().map(|f| f.name.clone());
    let line = step
        .as_deref()
        .and_then(|name| dockerfile::step_line_of_vertex(&prepared.dockerfile_text, name))
        .or_else(|| dockerfile::parse_error_line(&message));
    let hint = if message.contains("no active session") {
        Some(
            "the daemon lost the build's session; retry, and check that nothing between eb-deploy and the daemon \
              blocks connection upgrades (/session, /grpc)"
                .to_owned(),
        )
    } else if message.contains("failed to resolve source metadata") && message.contains("docker/dockerfile") {
        Some(
            "a `# syntax=` line makes the daemon pull that frontend image from its registry: allow that, or \
              remove the line to use the daemon's built-in Dockerfile frontend"
                .to_owned(),
        )
    } else {
        None
    };
    Failure::Daemon { message, step, line, hint }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_plan::BuildPlan;
    use crate::docker::RegistryAuth;

    #[test]
    fn the_running_image_is_a_cache_source_only_on_our_registry() {
        let auth = RegistryAuth::new("127.0.0.1:5000", "AWS", "pw");
        let mut request = BuildRequest {
            plan: BuildPlan {
                cache_from: vec!["127.0.0.1:5000/app:cache".into(), "ghcr.io/team/base:1".into()],
                ..Default::default()
            },
            running_image: Some("127.0.0.1:5000/app@sha256:feed".into()),
            registry_auth: Some(auth),
            ..Default::default()
        };
        request.earlier_images = vec![
            ("v1".into(), "127.0.0.1:5000/app@sha256:beef".into()),
            ("v0".into(), "127.0.0.1:5000/app@sha256:feed".into()),
        ];
        let (sources, note) = cache_sources(&request);
        let refs: Vec<&str> = sources.iter().map(|s| s.reference.as_str()).collect();
        assert_eq!(
            refs,
            [
                "127.0.0.1:5000/app:cache",
                "ghcr.io/team/base:1",
                "127.0.0.1:5000/app@sha256:feed",
                "127.0.0.1:5000/app@sha256:beef"
            ]
        );
        assert_eq!(sources[2].origin, "the image the environment runs now");
        assert_eq!(sources[3].origin, "version v1");
        assert!(note.is_none());
        // Credentials go to our registry only, never to another host.
        let creds = session_credentials(&request, &sources);
        assert_eq!(creds.keys().collect::<Vec<_>>(), ["127.0.0.1:5000"]);
        assert_eq!(creds["127.0.0.1:5000"].password.as_deref(), Some("pw"));

        request.running_image = Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:feed".into());
        request.earlier_images.clear();
        let (sources, note) = cache_sources(&request);
        assert_eq!(sources.len(), 2);
        assert!(note.unwrap().contains("not on the registry this deploy pushes to"));
    }
}
