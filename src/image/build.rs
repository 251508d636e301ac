//! `docker build` through the Engine API: the request, the streamed context, the classic builder, and
//! failures annotated at the Dockerfile line that caused them (BuildKit's side is in `buildkit.rs`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, CreateImageOptions};
use futures_util::StreamExt;

use super::builder::{self, Choice, DaemonFacts, Refusal};
use super::context::{self, ContextSpec, ContextStats, ExtraDockerfile};
use super::dockerfile;
use super::dockerignore::Matcher;
use crate::build_plan::{BuildPlan, Builder};
use crate::docker::{RegistryAuth, docker_message};
use crate::format::human_bytes;
use crate::gha::{Annotation, Console};
use crate::names::reference_host;

/// The classic builder answers only once the whole context is uploaded, and the client timeout
/// covers that wait; builds of big contexts over slow sockets need far more than the default.
pub(super) const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// What to build: the plan config made of the inputs, and what the image stage adds once it knows it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// Everything the user asked for the build.
    pub plan: BuildPlan,
    /// Full reference to tag the result with (empty: leave the image untagged).
    pub tag: String,
    /// Credentials for cache sources that live on this registry.
    pub registry_auth: Option<RegistryAuth>,
    /// The image the environment runs now: a BuildKit cache source when it lives in the registry pushed to.
    pub running_image: Option<String>,
    /// Images of the application's recent versions, (label, image): cache sources too (the engine finds them,
    /// see `engine/cache.rs`).
    pub earlier_images: Vec<(String, String)>,
    /// The daemon's address as given to [`crate::docker::connect`] (`DOCKER_HOST`; None: the local socket): a
    /// build with secrets opens a connection of its own to follow its progress.
    pub docker_host: Option<String>,
}

/// A successfully built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Image id (`sha256:…`).
    pub id: String,
}

/// Everything checked and read before the daemon is contacted.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The context as the classic builder takes it.
    pub spec: ContextSpec,
    /// `.dockerignore` as written: what a BuildKit session lists of the context.
    pub ignore: Matcher,
    /// The Dockerfile's file name and bytes, which a BuildKit session serves apart from the context.
    pub dockerfile_name: String,
    pub dockerfile_bytes: Vec<u8>,
    /// The `dockerfile` parameter: a path inside the context tar.
    pub dockerfile_param: String,
    /// The Dockerfile's text, to map steps to lines.
    pub dockerfile_text: String,
    /// The Dockerfile path for annotations (relative to the working directory when possible).
    pub dockerfile_display: String,
}

/// What a builder ran to the end.
pub(super) struct Finished {
    /// The image id, when the daemon reported it in the stream.
    pub image_id: Option<String>,
    pub stats: ContextStats,
    /// A note for the closing line (e.g. how many steps came from the cache).
    pub note: Option<String>,
}

/// Why a build failed, reported once its log group is closed so the annotation is not folded away.
#[derive(Debug)]
pub(super) enum Failure {
    /// The daemon's own message, the step and Dockerfile line it points at when known, and what to do.
    Daemon { message: String, step: Option<String>, line: Option<u32>, hint: Option<String> },
    /// Anything else (an unreadable context file, a lost connection), already with its context.
    Other(anyhow::Error),
}

impl Failure {
    /// Prints the annotation and returns the error the step fails with.
    pub(super) fn report(self, prepared: &Prepared, console: &Console) -> anyhow::Error {
        let (message, step, line, hint) = match self {
            Failure::Daemon { message, step, line, hint } => (message, step, line, hint),
            Failure::Other(err) => {
                let err = err.context("failed to build the image");
                console.error(format!("{err:#}"), Some(&Annotation::titled("Docker build failed")));
                return err;
            }
        };
        let message = match step {
            // BuildKit often starts its message with the step's name already.
            Some(step) if !message.trim().starts_with(&step) => format!("{step}: {}", message.trim()),
            _ => message.trim().to_owned(),
        };
        let shown = match &hint {
            Some(hint) => format!("{message}\n{hint}"),
            None => message.clone(),
        };
        let annotation = Annotation {
            title: Some("Docker build failed".to_owned()),
            file: Some(prepared.dockerfile_display.clone()),
            line,
            col: None,
        };
        console.error(&shown, Some(&annotation));
        let place = line.map(|l| format!(" ({}:{l})", prepared.dockerfile_display)).unwrap_or_default();
        let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
        anyhow!("failed to build the image: {message}{place}{hint}")
    }
}

/// Builds the image described by `request` with the builder the `builder` input and the daemon decide,
/// streaming the log into a log group.
pub async fn build(docker: &Docker, request: &BuildRequest, console: &Console) -> Result<BuiltImage> {
    let prepared = prepare(&request.plan)?;
    let mut choice = builder::choose(request.plan.builder, &DaemonFacts::of(docker).await)?;
    let group = console.group(format!("Build image {}", request.tag));
    console.info(choice.to_string());
    let docker = docker.clone().with_timeout(BUILD_TIMEOUT);
    let mut outcome = None;
    if choice.buildkit {
        let buildkit = super::buildkit::build(request, &prepared, console).await;
        // Refused before anything of the build ran: `auto` builds with the classic builder instead.
        match buildkit.as_ref().err().and_then(Refusal::of) {
            Some(refusal) => match builder::after_refusal(request.plan.builder, &refusal) {
                Ok(classic) => {
                    choice = classic;
                    console.info(choice.to_string());
                }
                Err(err) => {
                    drop(group);
                    return Err(err);
                }
            },
            None => outcome = Some(buildkit),
        }
    }
    let outcome = match outcome {
        Some(outcome) => outcome,
        None if !request.plan.secrets.is_empty() => {
            drop(group);
            bail!(
                "failed to build the image: input `secrets` needs BuildKit, and this build uses the classic builder \
                 ({}); set `builder: auto` on a daemon with BuildKit",
                choice.reason
            );
        }
        None => build_classic(&docker, request, &prepared, &choice, console).await,
    };
    let finished = match outcome {
        Ok(finished) => finished,
        Err(failure) => {
            drop(group);
            return Err(failure.report(&prepared, console));
        }
    };
    let id = match finished.image_id {
        Some(id) => id,
        None if !request.tag.is_empty() => docker
            .inspect_image(&request.tag)
            .await
            .ok()
            .and_then(|i| i.id)
            .ok_or_else(|| anyhow!("failed to build the image: the daemon did not report an image id"))?,
        None => bail!("failed to build the image: the daemon did not report an image id"),
    };
    drop(group);
    let note = finished.note.map(|n| format!("; {n}")).unwrap_or_default();
    console.info(format!("Built {} ({}) from {}{note}", request.tag, short_id(&id), describe_stats(finished.stats)));
    Ok(BuiltImage { id })
}

/// The classic builder (`version=1`): the daemon answers once the whole context is in, then logs
/// "Step N/M" lines.
async fn build_classic(
    docker: &Docker,
    request: &BuildRequest,
    prepared: &Prepared,
    choice: &Choice,
    console: &Console,
) -> Result<Finished, Failure> {
    let features = dockerfile::buildkit_features(&prepared.dockerfile_text);
    let what_to_do = if request.plan.builder == Builder::Classic {
        "set `builder: auto` to build with BuildKit".to_owned()
    } else {
        format!("this Docker daemon has none ({})", choice.reason)
    };
    // What the classic builder would build into another image without an error is refused before it starts.
    let mut misbuilt = features.iter().filter_map(|f| match f.classic {
        dockerfile::Classic::Misbuilds(instead) if !f.given_by(&request.plan.build_args) => Some((f, instead)),
        _ => None,
    });
    if let Some((first, instead)) = misbuilt.next() {
        let others: Vec<String> = misbuilt.map(|(f, _)| format!("{} (line {})", f.what, f.line)).collect();
        let others = if others.is_empty() { String::new() } else { format!("; so would {}", others.join(", ")) };
        return Err(Failure::Daemon {
            message: format!(
                "{} (line {}) needs BuildKit: {instead}, and succeed all the same{others}",
                first.what, first.line
            ),
            step: None,
            line: Some(first.line),
            hint: Some(what_to_do),
        });
    }
    for feature in features.iter().filter(|f| f.ignored_by_classic()) {
        let dockerfile::Classic::Ignores(why) = feature.classic else { continue };
        console.warning(
            format!("{} (line {}) is ignored by the classic builder: {why}", feature.what, feature.line),
            Some(&Annotation {
                title: Some("Dockerfile".to_owned()),
                file: Some(prepared.dockerfile_display.clone()),
                line: Some(feature.line),
                col: None,
            }),
        );
    }
    let cache_from = pull_cache_from(docker, request, console).await;

    let options = BuildImageOptions {
        dockerfile: prepared.dockerfile_param.clone(),
        t: (!request.tag.is_empty()).then(|| request.tag.clone()),
        nocache: request.plan.no_cache,
        cachefrom: (!cache_from.is_empty()).then_some(cache_from),
        pull: request.plan.pull.then(|| "1".to_owned()),
        rm: true,
        // Without it a failed RUN leaves its container behind.
        forcerm: true,
        buildargs: (!request.plan.build_args.is_empty()).then(|| request.plan.build_args.iter().cloned().collect()),
        labels: (!request.plan.labels.is_empty())
            .then(|| request.plan.labels.iter().cloned().collect::<HashMap<_, _>>()),
        platform: request.plan.platform.clone().unwrap_or_default(),
        target: request.plan.target.clone().unwrap_or_default(),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };

    let (body, upload) = context::stream_context(prepared.spec.clone());
    let mut log = BuildLog::new(console);
    let mut image_id = None;
    let outcome = {
        // The registry pushed to, for a `FROM` one of its images (the cache sources are pulled above).
        let credentials = request.registry_auth.as_ref().map(RegistryAuth::credentials_by_host);
        let mut stream = docker.build_image(options, credentials, Some(bollard::body_try_stream(body)));
        loop {
            match stream.next().await {
                None => break Ok(()),
                Some(Ok(info)) => {
                    if let Some(BuildInfoAux::Default(aux)) = &info.aux
                        && let Some(id) = aux.id.clone()
                    {
                        image_id = Some(id);
                    }
                    log.handle(&info);
                }
                Some(Err(err)) => break Err(err),
            }
        }
    };
    log.flush();
    let upload = upload.await.map_err(|e| anyhow!("the build context task failed: {e}")).and_then(|r| r);

    if let Err(err) = outcome {
        let mut failure = classic_failure(err, upload.err(), log.step, prepared);
        if let Failure::Daemon { hint, .. } = &mut failure
            && let Some(feature) = features.iter().find(|f| f.classic == dockerfile::Classic::Refuses)
        {
            *hint = Some(format!("{} (line {}) needs BuildKit: {what_to_do}", feature.what, feature.line));
        }
        return Err(failure);
    }
    let stats = upload.context("failed to send the build context").map_err(Failure::Other)?;
    Ok(Finished { image_id, stats, note: None })
}

/// Checks the context and the Dockerfile and reads what the build needs of them, before the daemon is asked.
pub(super) fn prepare(plan: &BuildPlan) -> Result<Prepared> {
    let context_dir = &plan.context;
    match fs::metadata(context_dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!(
            "failed to build the image: the build context {} (input `context`) is not a directory",
            context_dir.display()
        ),
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "failed to build the image: the build context directory {} (input `context`) does not exist; \
             set `context` to a directory of the repository",
            context_dir.display()
        ),
        Err(err) => {
            return Err(err).with_context(|| {
                format!("failed to read the build context directory {} (input `context`)", context_dir.display())
            });
        }
    }
    let root = context_dir
        .canonicalize()
        .with_context(|| format!("failed to resolve the build context {} (input `context`)", context_dir.display()))?;

    let dockerfile_path = plan.dockerfile.clone().unwrap_or_else(|| context_dir.join("Dockerfile"));
    let dockerfile_bytes = match fs::read(&dockerfile_path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "failed to build the image: the Dockerfile {} (input `dockerfile`) does not exist; add it, or set \
             `dockerfile` to its path",
            dockerfile_path.display()
        ),
        Err(err) => {
            return Err(err).with_context(|| {
                format!("failed to read the Dockerfile {} (input `dockerfile`)", dockerfile_path.display())
            });
        }
    };
    let dockerfile_text = String::from_utf8_lossy(&dockerfile_bytes).into_owned();
    let canonical = dockerfile_path.canonicalize().with_context(|| {
        format!("failed to resolve the Dockerfile {} (input `dockerfile`)", dockerfile_path.display())
    })?;

    let ignore_path = root.join(".dockerignore");
    let mut matcher = match fs::read(&ignore_path) {
        Ok(bytes) => Matcher::parse(&String::from_utf8_lossy(&bytes))
            .map_err(|err| anyhow!("failed to read {}: {err}; fix or remove that pattern", ignore_path.display()))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => Matcher::default(),
        Err(err) => return Err(err).with_context(|| format!("failed to read {}", ignore_path.display())),
    };
    // A BuildKit session lists the context with the rules as written and serves the Dockerfile apart; the
    // classic daemon reads both files from the tar and leaves them out of the context itself.
    let ignore = matcher.clone();
    matcher.keep(".dockerignore");

    let (dockerfile_param, outside_dockerfile) = match canonical.strip_prefix(&root) {
        Ok(rel) if !rel.as_os_str().is_empty() => {
            let rel = rel.to_string_lossy().into_owned();
            matcher.keep(&rel);
            (rel, None)
        }
        _ => {
            // As the docker CLI does: send it under a name nothing in the context can clash with.
            let name = format!(".dockerfile.{}", random_hex(10));
            (name.clone(), Some(ExtraDockerfile { name, contents: dockerfile_bytes.clone() }))
        }
    };
    let dockerfile_name =
        canonical.file_name().map_or_else(|| "Dockerfile".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(Prepared {
        spec: ContextSpec { root, matcher, outside_dockerfile },
        ignore,
        dockerfile_param,
        dockerfile_name,
        dockerfile_bytes,
        dockerfile_text,
        dockerfile_display: display_path(&dockerfile_path),
    })
}

/// Pulls each cache source so the classic builder can use it; returns the list to pass on.
async fn pull_cache_from(docker: &Docker, request: &BuildRequest, console: &Console) -> Vec<String> {
    for image in &request.plan.cache_from {
        let credentials = request
            .registry_auth
            .as_ref()
            .filter(|auth| reference_host(image).is_some_and(|host| auth.serves(host)))
            .map(RegistryAuth::docker_credentials);
        let options = CreateImageOptions { from_image: Some(image.clone()), ..Default::default() };
        let mut stream = docker.create_image(Some(options), None, credentials);
        let mut failure = None;
        while let Some(item) = stream.next().await {
            if let Err(err) = item {
                failure = Some(err);
                break;
            }
        }
        match failure {
            None => console.info(format!("Pulled cache source {image}")),
            Some(err) => console.warning(
                format!("could not pull the cache-from image {image} ({}); building without it", docker_message(&err)),
                None,
            ),
        }
    }
    request.plan.cache_from.clone()
}

/// What to do when an image a classic build was using disappeared midway.
const LOST_IMAGE_HINT: &str = "an image this build was using was removed while it ran (another job removing images \
     on this Docker daemon, such as `docker image prune`); run the deploy again, and keep image cleanup apart from \
     builds on a shared daemon";

/// Whether the classic builder failed because an image it was using was removed while it ran: it lists the
/// daemon's images to probe its cache and then reads each, and reads each step's parent again (moby/moby#29011).
fn lost_image(message: &str) -> bool {
    ["unable to find image \"sha256:", "No such image: sha256:", "unknown parent image ID sha256:"]
        .iter()
        .any(|words| message.contains(words))
}

/// What a failed classic build means: the daemon's message at the step's line, or the upload's error.
fn classic_failure(
    err: DockerError,
    upload_error: Option<anyhow::Error>,
    step: Option<u32>,
    prepared: &Prepared,
) -> Failure {
    match &err {
        DockerError::DockerStreamError { error } => Failure::Daemon {
            message: error.clone(),
            step: None,
            line: step.and_then(|s| dockerfile::step_line(&prepared.dockerfile_text, s)),
            hint: lost_image(error).then(|| LOST_IMAGE_HINT.to_owned()),
        },
        DockerError::DockerResponseServerError { message, .. } => Failure::Daemon {
            message: message.clone(),
            step: None,
            line: dockerfile::parse_error_line(message),
            hint: None,
        },
        // The upload failing (an unreadable file) is the cause; the transport error only its echo.
        _ => Failure::Other(match upload_error {
            Some(upload) => upload.context("failed to send the build context"),
            None => anyhow::Error::new(err).context("lost the connection to the Docker daemon during the build"),
        }),
    }
}

#[cfg(test)]
fn report_failure(
    err: DockerError,
    upload_error: Option<anyhow::Error>,
    step: Option<u32>,
    prepared: &Prepared,
    console: &Console,
) -> anyhow::Error {
    classic_failure(err, upload_error, step, prepared).report(prepared, console)
}

/// Assembles the build stream into lines: the daemon sends "Step 1/4 : …" and its newline apart.
struct BuildLog<'a> {
    console: &'a Console,
    pending: String,
    step: Option<u32>,
}

impl<'a> BuildLog<'a> {
    fn new(console: &'a Console) -> Self {
        Self { console, pending: String::new(), step: None }
    }

    fn handle(&mut self, info: &BuildInfo) {
        if let Some(text) = &info.stream {
            self.pending.push_str(text);
            while let Some(end) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=end).collect();
                self.line(line.trim_end_matches(['\n', '\r']));
            }
        }
        if let Some(status) = &info.status {
            // Base-image pulls: print state changes, not every progress tick.
            let ticking = info.progress_detail.as_ref().is_some_and(|p| p.current.is_some());
            if !ticking {
                match &info.id {
                    Some(id) => self.console.info(format!("{id}: {status}")),
                    None => self.console.info(status),
                }
            }
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(step) = dockerfile::parse_step(line) {
            self.step = Some(step);
        }
        self.console.info(line);
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(rest.trim_end());
        }
    }
}

pub(super) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// "a 12-entry, 5.1 MB context", and what of it the daemon already had.
fn describe_stats(stats: ContextStats) -> String {
    let sent = match stats.sent {
        // Worth a word when the daemon had most of it (a rebuild of the same directory on the same daemon).
        Some(sent) if sent < stats.bytes / 10 * 9 => {
            format!(" ({} of it sent, the rest was in the daemon's cache)", human_bytes(sent))
        }
        _ => String::new(),
    };
    format!("a {}-entry, {} context{sent}", stats.entries, human_bytes(stats.bytes))
}

pub(super) fn display_path(path: &Path) -> String {
    if path.is_absolute()
        && let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.to_string_lossy().into_owned();
    }
    path.to_string_lossy().trim_start_matches("./").to_owned()
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // No OS randomness: time and pid still make a name that does not clash within one build.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = (nanos ^ u128::from(std::process::id())).to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed[i % seed.len()];
        }
    }
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn stream(text: &str) -> BuildInfo {
        BuildInfo { stream: Some(text.to_owned()), ..Default::default() }
    }

    #[test]
    fn log_lines_are_assembled_and_steps_tracked() {
        let (console, buf) = Console::captured(false, false);
        let mut log = BuildLog::new(&console);
        log.handle(&stream("Step 1/3 : FROM scratch"));
        log.handle(&stream("\n"));
        log.handle(&stream(" ---> Running in abc\nhello "));
        log.handle(&stream("world\nStep 2/3 : RUN x"));
        log.handle(&stream("\n"));
        log.handle(&stream("tail without newline"));
        log.flush();
        assert_eq!(
            buf.text(),
            "Step 1/3 : FROM scratch\n ---> Running in abc\nhello world\nStep 2/3 : RUN x\ntail without newline\n"
        );
        assert_eq!(log.step, Some(2));
    }

    #[test]
    fn pull_progress_ticks_are_not_logged() {
        let (console, buf) = Console::captured(false, false);
        let mut log = BuildLog::new(&console);
        let progress = bollard::models::ProgressDetail { current: Some(5), total: Some(10) };
        log.handle(&BuildInfo {
            status: Some("Downloading".into()),
            id: Some("abc".into()),
            progress_detail: Some(progress),
            ..Default::default()
        });
        log.handle(&BuildInfo { status: Some("Pull complete".into()), id: Some("abc".into()), ..Default::default() });
        assert_eq!(buf.text(), "abc: Pull complete\n");
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("build-{tag}-{}", random_hex(6)));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_context_and_dockerfile_name_their_inputs() {
        let missing = BuildPlan { context: PathBuf::from("/nonexistent/ctx"), ..Default::default() };
        let err = format!("{:#}", prepare(&missing).unwrap_err());
        assert!(err.contains("input `context`") && err.contains("/nonexistent/ctx"), "{err}");

        let dir = temp_dir("nodf");
        let plan = BuildPlan { context: dir.clone(), ..Default::default() };
        let err = format!("{:#}", prepare(&plan).unwrap_err());
        assert!(err.contains("input `dockerfile`") && err.contains("Dockerfile"), "{err}");

        let file = dir.join("plain");
        fs::write(&file, "x").unwrap();
        let plan = BuildPlan { context: file, ..Default::default() };
        let err = format!("{:#}", prepare(&plan).unwrap_err());
        assert!(err.contains("not a directory"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dockerfile_inside_and_outside_the_context() {
        let dir = temp_dir("df");
        fs::create_dir_all(dir.join("ctx/sub")).unwrap();
        fs::write(dir.join("ctx/sub/Dockerfile.prod"), "FROM scratch\n").unwrap();
        fs::write(dir.join("Dockerfile.outside"), "FROM scratch\n").unwrap();
        let inside = BuildPlan {
            context: dir.join("ctx"),
            dockerfile: Some(dir.join("ctx/sub/Dockerfile.prod")),
            ..Default::default()
        };
        let prepared = prepare(&inside).unwrap();
        assert_eq!(prepared.dockerfile_param, "sub/Dockerfile.prod");
        assert!(prepared.spec.outside_dockerfile.is_none());

        let outside = BuildPlan {
            context: dir.join("ctx"),
            dockerfile: Some(dir.join("Dockerfile.outside")),
            ..Default::default()
        };
        let prepared = prepare(&outside).unwrap();
        assert!(prepared.dockerfile_param.starts_with(".dockerfile."));
        let extra = prepared.spec.outside_dockerfile.unwrap();
        assert_eq!(extra.name, prepared.dockerfile_param);
        assert_eq!(extra.contents, b"FROM scratch\n");
        fs::remove_dir_all(dir).unwrap();
    }

    /// The paths a context spec sends.
    fn sent(spec: &ContextSpec) -> Vec<String> {
        let (tar, _) = context::write_context(spec, Vec::new()).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut paths: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        paths.sort();
        paths
    }

    #[test]
    fn buildkit_sessions_serve_the_dockerfile_apart_from_the_context() {
        let dir = temp_dir("bkctx");
        fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(dir.join("app.txt"), "a").unwrap();
        fs::write(dir.join(".dockerignore"), ".dockerignore\nDockerfile\n").unwrap();
        let prepared = prepare(&BuildPlan { context: dir.clone(), ..Default::default() }).unwrap();
        // The classic daemon reads both and removes them itself; a session lists what `.dockerignore` keeps.
        assert_eq!(sent(&prepared.spec), [".dockerignore", "Dockerfile", "app.txt"]);
        let listed = |p: &Prepared| {
            let (entries, _) = super::super::filesync::list_context(&p.spec.root, &p.ignore).unwrap();
            entries.into_iter().map(|e| e.stat.path).collect::<Vec<_>>()
        };
        assert_eq!(listed(&prepared), ["app.txt"]);
        assert_eq!(
            (prepared.dockerfile_name.as_str(), prepared.dockerfile_bytes.as_slice()),
            ("Dockerfile", &b"FROM scratch\n"[..])
        );

        // Outside the context: served under its own name, not part of the context.
        fs::remove_file(dir.join(".dockerignore")).unwrap();
        fs::write(dir.join("../Dockerfile.bkctx"), "FROM scratch\n").unwrap();
        let outside =
            BuildPlan { context: dir.clone(), dockerfile: Some(dir.join("../Dockerfile.bkctx")), ..Default::default() };
        let prepared = prepare(&outside).unwrap();
        assert_eq!(listed(&prepared), ["Dockerfile", "app.txt"]);
        assert_eq!(prepared.dockerfile_name, "Dockerfile.bkctx");
        assert!(sent(&prepared.spec).contains(&".dockerignore".to_owned()));
        fs::remove_file(dir.join("../Dockerfile.bkctx")).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_dockerignore_is_reported_with_its_line() {
        let dir = temp_dir("badignore");
        fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(dir.join(".dockerignore"), "ok\n[broken\n").unwrap();
        let err = format!("{:#}", prepare(&BuildPlan { context: dir.clone(), ..Default::default() }).unwrap_err());
        assert!(err.contains(".dockerignore") && err.contains("line 2"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failures_point_at_the_dockerfile_line() {
        let (console, buf) = Console::captured(true, false);
        let prepared = Prepared {
            spec: ContextSpec { root: PathBuf::from("/"), matcher: Matcher::default(), outside_dockerfile: None },
            ignore: Matcher::default(),
            dockerfile_param: "Dockerfile".into(),
            dockerfile_name: "Dockerfile".into(),
            dockerfile_bytes: Vec::new(),
            dockerfile_text: "FROM scratch\n# c\nCOPY a /a\nRUN a \\\n  b\nRUN false\n".into(),
            dockerfile_display: "app/Dockerfile".into(),
        };
        let err = DockerError::DockerStreamError { error: "The command 'false' returned a non-zero code: 1".into() };
        let err = report_failure(err, None, Some(4), &prepared, &console);
        assert_eq!(
            err.to_string(),
            "failed to build the image: The command 'false' returned a non-zero code: 1 (app/Dockerfile:6)"
        );
        assert!(buf.text().contains("::error file=app/Dockerfile,line=6,title=Docker build failed::The command"));

        let parse = DockerError::DockerResponseServerError {
            status_code: 400,
            message: "dockerfile parse error line 3: unknown instruction: COPPY".into(),
        };
        let err = report_failure(parse, None, None, &prepared, &console);
        assert!(err.to_string().contains("unknown instruction: COPPY (app/Dockerfile:3)"), "{err}");

        // An image removed under the build (a cleanup job on a shared daemon): the message says to run again.
        let lost = "unable to find image \"sha256:8eabefbb55628cb06ec94dabaa8c601cd96a71559ec7a5030ccc2d23704e60be\"";
        let err =
            report_failure(DockerError::DockerStreamError { error: lost.into() }, None, Some(2), &prepared, &console);
        assert_eq!(err.to_string(), format!("failed to build the image: {lost} (app/Dockerfile:3); {LOST_IMAGE_HINT}"));
        let other = DockerError::DockerStreamError { error: "COPY failed: file not found in build context".into() };
        let err = report_failure(other, None, Some(2), &prepared, &console);
        assert!(!err.to_string().contains(LOST_IMAGE_HINT), "{err}");

        let upload = anyhow!("failed to read /ctx/secret in the build context: check its permissions");
        let err = report_failure(DockerError::RequestTimeoutError, Some(upload), Some(1), &prepared, &console);
        assert!(format!("{err:#}").contains("/ctx/secret"), "{err:#}");
    }

    #[test]
    fn sizes_and_ids_are_readable() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
