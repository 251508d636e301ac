//! BuildKit builds through the Engine API as `docker build` makes them: `POST /build?version=2&session=…
//! &remote=client-session` with no body, while this build's session (see `session`) serves the context and
//! the Dockerfile through BuildKit's file sync, and the registry credentials of the cache sources. Progress
//! arrives as `moby.buildkit.trace` messages, which [`Renderer`] turns into a readable log.

use std::collections::HashMap;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::anyhow;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::build::{BUILD_TIMEOUT, BuildRequest, Failure, Finished, Prepared, random_hex};
use super::context::ContextStats;
use super::dockerfile;
use super::progress::Renderer;
use super::{conn, filesync, secrets, session};
use crate::build_plan::CacheTo;
use crate::docker::RegistryAuth;
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

/// Runs a BuildKit build to its end.
pub(super) async fn build(request: &BuildRequest, prepared: &Prepared, console: &Console) -> Result<Finished, Failure> {
    secrets::mask_values(&request.plan.secrets, console).map_err(Failure::Other)?;
    if !request.plan.secrets.is_empty() {
        let ids: Vec<&str> = request.plan.secrets.iter().map(|s| s.id.as_str()).collect();
        console.info(format!("Secrets: {} (served by this build's session when a step mounts them)", ids.join(", ")));
    }
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
    // The registry pushed to, for the cache sources on it and for a `FROM` one of its images.
    let credentials = request.registry_auth.as_ref().map(RegistryAuth::credentials_by_host).unwrap_or_default();
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

    let root = prepared.spec.root.clone();
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
    let shared_key = hex::encode(&Sha256::digest(prepared.spec.root.as_os_str().as_encoded_bytes())[..16]);
    let secrets = secrets::Served::new(&request.plan.secrets);
    let session = session::start(host, session_id, shared_key, files, credentials, secrets)
        .await
        .map_err(|e| Failure::Other(e.context("failed to open a BuildKit session with the Docker daemon")))?;

    let mut renderer = Renderer::new(console, prepared.dockerfile_display.clone());
    let mut image_id = None;
    let follow = follow_build(host, &options, |info| {
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
    });
    let outcome = tokio::time::timeout(BUILD_TIMEOUT, follow).await.unwrap_or(Err(Ended::TimedOut));
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

/// A `POST /build` the daemon refused for who asks or for what, before anything of the build ran.
#[derive(Debug)]
pub(super) struct BuildRefused {
    /// The status and what came with it, e.g. `403 Forbidden: authorization denied by plugin authz: …`.
    pub answer: String,
}

impl std::fmt::Display for BuildRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the daemon refused the build: {}", self.answer)
    }
}

impl std::error::Error for BuildRefused {}

/// Whether a status answering `POST /build` refuses the request itself rather than this build: not allowed
/// (401, 403, 407: an authorization plugin or a proxy), or not there (404, 405, 501). A 400 or a 500 comes with
/// the Engine's reason about this build, which the classic builder would not fix.
fn refuses_the_request(status: hyper::StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403 | 404 | 405 | 407 | 501)
}

/// How the build's `remote` parameter names a context that comes through the session.
const SESSION_REMOTE: &str = "client-session";

/// Why a build's answer ended in error.
#[derive(Debug)]
enum Ended {
    /// The daemon's message: an error in the build's stream.
    Daemon(String),
    /// `POST /build` answered `status`, not 2xx: nothing of the build ran. `message` is the Engine's own when the
    /// answer is the Engine API's JSON (`engine`), else the answer's body.
    Refused { status: hyper::StatusCode, message: String, engine: bool },
    /// No answer, or one that is not the Engine API's.
    Lost(anyhow::Error),
    /// Still building when the build's time was up.
    TimedOut,
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
    // Ends the connection however this function ends (a dropped build cancels it on the daemon).
    let _connection = AbortOnDrop(tokio::spawn(connection));
    let request = hyper::Request::post(format!("/build?{query}"))
        .header(hyper::header::HOST, "docker")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| Ended::Lost(e.into()))?;
    let response = sender.send_request(request).await.map_err(|e| Ended::Lost(e.into()))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut lines = Lines::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Ended::Lost(e.into()))?;
        let Some(data) = frame.data_ref() else { continue };
        lines.push(data);
        if status.is_success() {
            while let Some(line) = lines.next_line() {
                take_message(&line, &mut each)?;
            }
        }
    }
    let rest = lines.rest();
    if !status.is_success() {
        #[derive(serde::Deserialize)]
        struct EngineError {
            message: String,
        }
        return Err(match serde_json::from_slice::<EngineError>(&rest) {
            Ok(answer) => Ended::Refused { status, message: answer.message, engine: true },
            Err(_) => {
                Ended::Refused { status, message: String::from_utf8_lossy(&rest).trim().to_owned(), engine: false }
            }
        });
    }
    if !rest.iter().all(u8::is_ascii_whitespace) {
        take_message(&rest, &mut each)?;
    }
    Ok(())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Newline-separated messages arriving in pieces.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// Where the next line starts.
    start: usize,
    /// How far the buffer has been searched for a newline.
    searched: usize,
}

impl Lines {
    fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.searched -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete, non-blank line.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let Some(at) = self.buf[self.searched..].iter().position(|&b| b == b'\n') else {
                self.searched = self.buf.len();
                return None;
            };
            let end = self.searched + at;
            let line = self.buf[self.start..end].to_vec();
            self.start = end + 1;
            self.searched = self.start;
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line);
            }
        }
    }

    /// What follows the last newline (all of it when nothing was taken).
    fn rest(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

const ERROR_KEY: &[u8] = b"\"error\"";

fn take_message(line: &[u8], each: &mut impl FnMut(&BuildInfo)) -> Result<(), Ended> {
    /// The Engine's older error field, which `BuildInfo` does not carry.
    #[derive(serde::Deserialize)]
    struct Error {
        error: Option<String>,
    }
    let unreadable = |e: serde_json::Error| {
        Ended::Lost(anyhow!(
            "the daemon sent a build message eb-deploy cannot read ({e}): {}",
            String::from_utf8_lossy(line).trim()
        ))
    };
    let info: BuildInfo = serde_json::from_slice(line).map_err(unreadable)?;
    let error = info.error_detail.as_ref().and_then(|d| d.message.clone()).or_else(|| {
        // Read again only when the field may be there: progress lines are long.
        let mentioned = line.windows(ERROR_KEY.len()).any(|w| w == ERROR_KEY);
        mentioned.then(|| serde_json::from_slice::<Error>(line).ok().and_then(|e| e.error)).flatten()
    });
    if let Some(message) = error {
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
        // Refused for who asks or for what: by an authorization plugin, a proxy in front of the daemon, or a
        // daemon without this endpoint. `auto` then builds with the classic builder.
        Ended::Refused { status, message, .. } if refuses_the_request(status) => {
            return Failure::Other(anyhow::Error::new(BuildRefused { answer: format!("{status}: {message}") }));
        }
        Ended::Refused { message, engine: true, .. } => message,
        Ended::Refused { status, message, engine: false } => format!("{status}: {message}"),
        Ended::Lost(err) => {
            return Failure::Other(err.context("lost the connection to the Docker daemon during the build"));
        }
        Ended::TimedOut => {
            return Failure::Other(anyhow!(
                "the build did not end within {} minutes; look for a step that waits (the log's last lines)",
                BUILD_TIMEOUT.as_secs() / 60
            ));
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
              blocks connection upgrades (/session)"
                .to_owned(),
        )
    } else if let Some(id) = missing_secret(&message) {
        Some(format!(
            "the step mounts secret {id} with required=true: name it in the `secrets` input (id={id},env=VAR or \
             id={id},src=PATH)"
        ))
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

/// The id in BuildKit's "secret ID: not found".
fn missing_secret(message: &str) -> Option<&str> {
    let (before, _) = message.split_once(": not found")?;
    let id = before.rsplit_once("secret ")?.1;
    (!id.is_empty() && !id.contains(char::is_whitespace)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_is_named() {
        let message =
            "[stage-0 3/3] RUN --mount=type=secret,id=pip,required=true cat /run/secrets/pip: secret pip: not found";
        assert_eq!(missing_secret(message), Some("pip"));
        assert_eq!(missing_secret("failed to compute cache key: \"/app\": not found"), None);
    }
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

        request.running_image = Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:feed".into());
        request.earlier_images.clear();
        let (sources, note) = cache_sources(&request);
        assert_eq!(sources.len(), 2);
        assert!(note.unwrap().contains("not on the registry this deploy pushes to"));
    }

    #[test]
    fn messages_split_anywhere_are_read_whole_and_errors_end_the_build() {
        let stream = b"{\"stream\":\"one\"}\n\n{\"aux\":{\"ID\":\"sha256:abc\"}}\r\n{\"stream\":\"tail\"}";
        for split in 1..stream.len() {
            let mut lines = Lines::default();
            let mut got = Vec::new();
            for piece in [&stream[..split], &stream[split..]] {
                lines.push(piece);
                while let Some(line) = lines.next_line() {
                    got.push(line);
                }
            }
            got.push(lines.rest());
            assert_eq!(got.len(), 3, "split at {split}: {got:?}");
            assert_eq!(got[2], b"{\"stream\":\"tail\"}");
        }
        let mut seen = Vec::new();
        take_message(br#"{"aux":{"ID":"sha256:abc"}}"#, &mut |i| seen.push(i.clone())).unwrap();
        assert!(matches!(&seen[0].aux, Some(BuildInfoAux::Default(id)) if id.id.as_deref() == Some("sha256:abc")));
        for failed in [&br#"{"errorDetail":{"message":"boom"},"error":"boom"}"#[..], br#"{"error":"boom"}"#] {
            match take_message(failed, &mut |_| panic!("an error is not a message")) {
                Err(Ended::Daemon(message)) => assert_eq!(message, "boom"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(take_message(b"<html>", &mut |_| {}), Err(Ended::Lost(_))));
    }

    #[test]
    fn the_build_query_names_the_session_and_its_context() {
        let options = BuildImageOptions {
            dockerfile: "Dockerfile.prod".into(),
            t: Some("app:1".into()),
            remote: Some(SESSION_REMOTE.into()),
            buildargs: Some(HashMap::from([("A".to_owned(), "b c".to_owned())])),
            version: BuilderVersion::BuilderBuildKit,
            session: Some("eb-deploy-1".into()),
            ..Default::default()
        };
        let query = serde_urlencoded::to_string(&options).unwrap();
        for part in
            ["dockerfile=Dockerfile.prod", "t=app%3A1", "remote=client-session", "version=2", "session=eb-deploy-1"]
        {
            assert!(query.split('&').any(|p| p == part), "{part} in {query}");
        }
        assert!(query.contains("buildargs=%7B%22A%22%3A%22b+c%22%7D"), "{query}");
    }
}
