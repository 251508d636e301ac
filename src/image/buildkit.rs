//! BuildKit builds through the Engine API: `POST /build?version=2&session=…` with the same streamed tar
//! context as the classic builder, while bollard holds a session over the daemon's `/session` and
//! `/grpc` endpoints that serves registry credentials (for cache sources). Progress arrives as
//! `moby.buildkit.trace` messages, which [`Renderer`] turns into a readable log.

use std::collections::HashMap;

use anyhow::anyhow;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use futures_util::StreamExt;

use super::build::{BuildRequest, Failure, Finished, Prepared, random_hex};
use super::context;
use super::dockerfile;
use super::progress::Renderer;
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
pub(super) async fn build(
    docker: &Docker,
    request: &BuildRequest,
    prepared: &Prepared,
    console: &Console,
) -> Result<Finished, Failure> {
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
    let options = BuildImageOptions {
        dockerfile: prepared.dockerfile_param.clone(),
        t: (!request.tag.is_empty()).then(|| request.tag.clone()),
        nocache: request.plan.no_cache,
        cachefrom: (!sources.is_empty()).then(|| sources.iter().map(|s| s.reference.clone()).collect()),
        pull: request.plan.pull.then(|| "1".to_owned()),
        buildargs: (!build_args.is_empty()).then_some(build_args),
        labels: (!request.plan.labels.is_empty()).then(|| request.plan.labels.iter().cloned().collect()),
        platform: request.plan.platform.clone().unwrap_or_default(),
        target: request.plan.target.clone().unwrap_or_default(),
        version: BuilderVersion::BuilderBuildKit,
        // The daemon finds our session (credentials) by this id; one per build.
        session: Some(format!("eb-deploy-{}", random_hex(12))),
        ..Default::default()
    };

    if !prepared.dockerfile_in_context {
        console.info(
            "Note: BuildKit reads the Dockerfile from the context eb-deploy sends (the Engine API has no other \
             way), so it is part of the context although it lies outside it or .dockerignore leaves it out: \
             `COPY .` copies it too",
        );
    }
    let (body, upload) = context::stream_context(prepared.buildkit_spec.clone());
    let mut renderer = Renderer::new(console, prepared.dockerfile_display.clone());
    let mut image_id = None;
    let outcome = {
        let mut stream = docker.build_image(
            options,
            (!credentials.is_empty()).then_some(credentials),
            Some(bollard::body_try_stream(body)),
        );
        loop {
            match stream.next().await {
                None => break Ok(()),
                Some(Ok(info)) => {
                    match &info.aux {
                        Some(BuildInfoAux::BuildKit(status)) => renderer.handle(status),
                        Some(BuildInfoAux::Default(aux)) => image_id = aux.id.clone().or(image_id),
                        None => {}
                    }
                    // The daemon's own notes (rare with BuildKit) are kept, one per line.
                    for line in info.stream.iter().chain(info.status.iter()).flat_map(|t| t.lines()) {
                        if !line.trim().is_empty() {
                            console.info(line.trim_end());
                        }
                    }
                }
                Some(Err(err)) => break Err(err),
            }
        }
    };
    renderer.finish();
    renderer.warn_unused_cache();
    let upload = upload.await.map_err(|e| anyhow!("the build context task failed: {e}")).and_then(|r| r);
    if let Err(err) = outcome {
        return Err(failure(err, upload.err(), &renderer, prepared));
    }
    let stats = upload.map_err(|e| Failure::Other(e.context("failed to send the build context")))?;
    Ok(Finished { image_id, stats, note: cached_note(&renderer) })
}

/// "3 steps CACHED", counting the Dockerfile's own steps.
pub(super) fn cached_note(renderer: &Renderer<'_>) -> Option<String> {
    let cached =
        renderer.cached().iter().filter(|name| name.starts_with('[') && !name.starts_with("[internal]")).count();
    (cached > 0).then(|| format!("{cached} step{} CACHED", if cached == 1 { "" } else { "s" }))
}

/// What a failed BuildKit build means: the failed step and its line, a Dockerfile parse error's line,
/// or the upload's error.
fn failure(
    err: DockerError,
    upload_error: Option<anyhow::Error>,
    renderer: &Renderer<'_>,
    prepared: &Prepared,
) -> Failure {
    let message = match &err {
        DockerError::DockerStreamError { error } => error.clone(),
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        _ => {
            return Failure::Other(match upload_error {
                Some(upload) => upload.context("failed to send the build context"),
                None => anyhow::Error::new(err).context("lost the connection to the Docker daemon during the build"),
            });
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
