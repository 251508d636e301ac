//! Which builder a build uses: BuildKit where the daemon has it (the default of `docker build` since
//! Engine 23, and what modern Dockerfiles need), the classic builder otherwise or when asked for.
//! [`choose`] decides from what the daemon says of itself; a daemon, or a socket proxy in front of it, that
//! then refuses the session or the build before any step is a [`Refusal`], after which `auto` builds with
//! the classic builder.

use std::fmt;

use anyhow::{Result, bail};
use bollard::Docker;

use super::build::Failure;
use super::buildkit::BuildRefused;
use super::session::Unavailable;
use crate::build_plan::Builder;

/// What the daemon says about itself (`GET /version`), as far as the builder choice goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DaemonFacts {
    /// `linux`, `windows`.
    pub os: Option<String>,
    /// The negotiated API version, e.g. (1, 45).
    pub api: Option<(u32, u32)>,
    /// The engine's product and version, e.g. "Docker Engine 26.1.5".
    pub engine: Option<String>,
    /// Podman's Docker-compatible API, which has no BuildKit sessions.
    pub podman: bool,
}

impl DaemonFacts {
    /// Asks the daemon; a failed call leaves the facts unknown (the choice then says so).
    pub(crate) async fn of(docker: &Docker) -> Self {
        let negotiated = docker.client_version();
        let api = Some((negotiated.major_version as u32, negotiated.minor_version as u32));
        match docker.version().await {
            Ok(version) => {
                let components = version.components.unwrap_or_default();
                let podman = components.iter().any(|c| c.name.to_ascii_lowercase().contains("podman"));
                let engine = components
                    .iter()
                    .find(|c| c.name.ends_with("Engine"))
                    .map(|c| format!("{} {}", product(&c.name), c.version))
                    .or_else(|| version.version.map(|v| format!("Docker Engine {v}")));
                Self { os: version.os, api, engine, podman }
            }
            Err(err) => {
                tracing::debug!(error = %err, "the daemon did not say its version");
                Self { api, ..Self::default() }
            }
        }
    }
}

fn product(component: &str) -> String {
    if component == "Engine" { "Docker Engine".to_owned() } else { component.to_owned() }
}

/// The first API version with the `/session` endpoint BuildKit builds need (Engine 18.09).
const SESSION_API: (u32, u32) = (1, 39);

/// The oldest engine eb-deploy's own session has built on (Engine 20.10, Debian 12's `docker.io`); `auto`
/// takes the classic builder on the two releases between this and [`SESSION_API`] (18.09 and 19.03), where
/// `builder: buildkit` may still try.
const CONFIRMED_API: (u32, u32) = (1, 41);

/// The builder a build uses and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub buildkit: bool,
    pub reason: String,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.buildkit { "BuildKit" } else { "classic builder" };
        write!(f, "Builder: {name} ({})", self.reason)
    }
}

/// Decides the builder from the `builder` input and the daemon's facts; `builder: buildkit` on a daemon
/// that cannot do it is an error rather than a build that fails later for a less obvious reason.
pub(crate) fn choose(builder: Builder, daemon: &DaemonFacts) -> Result<Choice> {
    let engine = daemon.engine.clone().unwrap_or_else(|| "the Docker daemon".to_owned());
    let api = daemon.api.map(|(major, minor)| format!("API {major}.{minor}")).unwrap_or_default();
    let unsupported = if daemon.podman {
        Some(format!("{engine} is Podman, whose Docker API has no BuildKit sessions"))
    } else if let Some(os) = daemon.os.as_deref().filter(|os| !os.eq_ignore_ascii_case("linux")) {
        Some(format!("{engine} runs on {os}, where the Docker Engine has no BuildKit"))
    } else if let Some(version) = daemon.api.filter(|v| *v < SESSION_API) {
        Some(format!(
            "{engine} speaks API {}.{}, older than BuildKit sessions (API 1.39, Engine 18.09)",
            version.0, version.1
        ))
    } else if daemon.os.is_none() {
        Some("the daemon did not say which system it runs on".to_owned())
    } else {
        None
    };
    // Engines with BuildKit sessions on which eb-deploy's session has never run.
    let unconfirmed = daemon.api.filter(|v| *v < CONFIRMED_API).map(|(major, minor)| {
        format!(
            "{engine} speaks API {major}.{minor}; eb-deploy's BuildKit session is confirmed from Engine 20.10 (API \
             1.41) on"
        )
    });
    Ok(match (builder, unsupported) {
        (Builder::Classic, _) => Choice { buildkit: false, reason: "builder: classic".to_owned() },
        (Builder::BuildKit, None) => {
            let untried = if unconfirmed.is_some() { ", not confirmed with eb-deploy's session" } else { "" };
            Choice { buildkit: true, reason: format!("builder: buildkit; {engine}, {api}{untried}") }
        }
        (Builder::BuildKit, Some(why)) => bail!(
            "failed to build the image: input `builder` is buildkit, but {why}; set `builder: auto` (or classic) to \
             build with the classic builder"
        ),
        (Builder::Auto, None) => match unconfirmed {
            Some(why) => {
                Choice { buildkit: false, reason: format!("builder: auto; {why}; `builder: buildkit` tries it") }
            }
            None => Choice { buildkit: true, reason: format!("builder: auto; {engine}, {api}, supports BuildKit") },
        },
        (Builder::Auto, Some(why)) => Choice { buildkit: false, reason: format!("builder: auto; {why}") },
    })
}

/// Why a daemon `choose` took for a BuildKit one would not build with BuildKit after all, when nothing of the
/// build has run yet: a session that could not be opened (the daemon, or a socket proxy in front of it, refused
/// `POST /session` or dropped the connection), or a `version=2` build refused before any step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    Session(String),
    Build(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Session(answer) => write!(f, "the daemon refused a BuildKit session: {answer}"),
            Refusal::Build(answer) => write!(f, "the daemon refused a BuildKit build: {answer}"),
        }
    }
}

impl Refusal {
    /// The refusal a BuildKit build ended with, if it is one. A build that failed at a step, at the
    /// Dockerfile, or that lost its connection midway is not: the classic builder would not fix it.
    pub(super) fn of(failure: &Failure) -> Option<Refusal> {
        match failure {
            Failure::Other(err) => match (err.downcast_ref::<Unavailable>(), err.downcast_ref::<BuildRefused>()) {
                (Some(session), _) => Some(Refusal::Session(session.answer.clone())),
                (None, Some(build)) => Some(Refusal::Build(one_line(&build.answer))),
                (None, None) => None,
            },
            Failure::Daemon { message, step: None, line: None, hint: None } if refuses_buildkit(message) => {
                Some(Refusal::Build(one_line(message)))
            }
            Failure::Daemon { .. } => None,
        }
    }
}

/// One line for the log, however long the page that said it.
fn one_line(answer: &str) -> String {
    answer.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect()
}

/// Whether the daemon's answer to a `version=2` build refuses BuildKit itself. Such an answer comes before
/// any step: an HTTP status that is not the Engine's JSON (a proxy's page, which the build reads as
/// `<status>: <body>`), or the wordings the Engine refuses with (`invalid version "2"` before API 1.39;
/// `buildkit is not enabled on daemon` on 18.09 to 19.03 with BuildKit off).
fn refuses_buildkit(message: &str) -> bool {
    let message = message.trim();
    let proxy = message.split_once(' ').is_some_and(|(code, rest)| {
        code.len() == 3
            && code.bytes().all(|b| b.is_ascii_digit())
            && rest.starts_with(|c: char| c.is_ascii_uppercase())
    });
    let lower = message.to_ascii_lowercase();
    proxy
        || ["buildkit is not enabled", "buildkit not supported", "buildkit is not supported", "invalid version"]
            .iter()
            .any(|words| lower.contains(words))
}

/// What a build does once the daemon refused BuildKit: `auto` builds with the classic builder and says why;
/// `buildkit` fails, naming the input.
pub(super) fn after_refusal(builder: Builder, refusal: &Refusal) -> Result<Choice> {
    if builder == Builder::BuildKit {
        bail!(
            "failed to build the image: input `builder` is buildkit, but {refusal}; set `builder: auto` (or \
             classic) to build with the classic builder"
        );
    }
    Ok(Choice { buildkit: false, reason: format!("builder: auto; {refusal}") })
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;

    use super::*;

    fn facts(os: Option<&str>, api: (u32, u32), engine: &str, podman: bool) -> DaemonFacts {
        DaemonFacts { os: os.map(str::to_owned), api: Some(api), engine: Some(engine.to_owned()), podman }
    }

    #[test]
    fn auto_takes_buildkit_where_the_daemon_has_it() {
        let runner = facts(Some("linux"), (1, 48), "Docker Engine 28.0.4", false);
        let local = facts(Some("linux"), (1, 45), "Docker Engine 26.1.5", false);
        let debian12 = facts(Some("linux"), (1, 41), "Docker Engine 20.10.24", false);
        let engine1903 = facts(Some("linux"), (1, 40), "Docker Engine 19.03.15", false);
        let engine1809 = facts(Some("linux"), (1, 39), "Docker Engine 18.09.9", false);
        let windows = facts(Some("windows"), (1, 45), "Docker Engine 26.1.5", false);
        let ancient = facts(Some("linux"), (1, 38), "Docker Engine 18.06.3", false);
        let podman = facts(Some("linux"), (1, 41), "Podman Engine 5.2.2", true);
        let unknown = DaemonFacts { api: Some((1, 45)), ..DaemonFacts::default() };
        let table = [
            (&runner, true, "Docker Engine 28.0.4, API 1.48, supports BuildKit"),
            (&local, true, "Docker Engine 26.1.5, API 1.45, supports BuildKit"),
            (&debian12, true, "Docker Engine 20.10.24, API 1.41, supports BuildKit"),
            (&engine1903, false, "speaks API 1.40; eb-deploy's BuildKit session is confirmed from Engine 20.10"),
            (&engine1809, false, "speaks API 1.39; eb-deploy's BuildKit session is confirmed from Engine 20.10"),
            (&windows, false, "runs on windows"),
            (&ancient, false, "older than BuildKit sessions"),
            (&podman, false, "Podman"),
            (&unknown, false, "did not say"),
        ];
        for (daemon, buildkit, why) in table {
            let choice = choose(Builder::Auto, daemon).unwrap();
            assert_eq!(choice.buildkit, buildkit, "{daemon:?}");
            assert!(choice.reason.starts_with("builder: auto; ") && choice.reason.contains(why), "{choice}");
        }
        assert_eq!(
            choose(Builder::Auto, &local).unwrap().to_string(),
            "Builder: BuildKit (builder: auto; Docker Engine 26.1.5, API 1.45, supports BuildKit)"
        );
    }

    #[test]
    fn explicit_choices() {
        let local = facts(Some("linux"), (1, 45), "Docker Engine 26.1.5", false);
        let classic = choose(Builder::Classic, &local).unwrap();
        assert!(!classic.buildkit);
        assert_eq!(classic.to_string(), "Builder: classic builder (builder: classic)");
        assert!(choose(Builder::BuildKit, &local).unwrap().buildkit);
        let windows = facts(Some("windows"), (1, 45), "Docker Engine 26.1.5", false);
        let err = choose(Builder::BuildKit, &windows).unwrap_err().to_string();
        assert!(err.contains("input `builder` is buildkit") && err.contains("runs on windows"), "{err}");
        // The classic builder works everywhere, whatever the daemon says.
        assert!(!choose(Builder::Classic, &windows).unwrap().buildkit);
        // Sessions exist before 20.10, untried with eb-deploy's: `buildkit` may try, `auto` does not.
        let engine1903 = facts(Some("linux"), (1, 40), "Docker Engine 19.03.15", false);
        let tried = choose(Builder::BuildKit, &engine1903).unwrap();
        assert!(tried.buildkit);
        assert_eq!(
            tried.reason,
            "builder: buildkit; Docker Engine 19.03.15, API 1.40, not confirmed with eb-deploy's session"
        );
        assert_eq!(
            choose(Builder::Auto, &engine1903).unwrap().to_string(),
            "Builder: classic builder (builder: auto; Docker Engine 19.03.15 speaks API 1.40; eb-deploy's BuildKit \
             session is confirmed from Engine 20.10 (API 1.41) on; `builder: buildkit` tries it)"
        );
        let ancient = facts(Some("linux"), (1, 38), "Docker Engine 18.06.3", false);
        let err = choose(Builder::BuildKit, &ancient).unwrap_err().to_string();
        assert!(err.contains("older than BuildKit sessions"), "{err}");
    }

    fn daemon(message: &str, step: Option<&str>, line: Option<u32>, hint: Option<&str>) -> Failure {
        Failure::Daemon {
            message: message.to_owned(),
            step: step.map(str::to_owned),
            line,
            hint: hint.map(str::to_owned),
        }
    }

    #[test]
    fn refusals_before_any_step_are_told_from_build_failures() {
        // As the BuildKit build wraps a session that did not open.
        let session = Unavailable { answer: "POST /session answered 404 Not Found (page not found)".to_owned() };
        let failed = Failure::Other(
            anyhow::Error::new(session).context("failed to open a BuildKit session with the Docker daemon"),
        );
        let refusal = Refusal::of(&failed).unwrap();
        assert_eq!(
            refusal.to_string(),
            "the daemon refused a BuildKit session: POST /session answered 404 Not Found (page not found)"
        );
        let refused = [
            (
                "403 Forbidden: <html>\n<h1>403 Forbidden</h1>\n</html>\n",
                "403 Forbidden: <html> <h1>403 Forbidden</h1> </html>",
            ),
            ("404 Not Found: page not found", "404 Not Found: page not found"),
            ("buildkit is not enabled on daemon", "buildkit is not enabled on daemon"),
            ("invalid version \"2\"", "invalid version \"2\""),
        ];
        for (message, said) in refused {
            let refusal = Refusal::of(&daemon(message, None, None, None));
            assert_eq!(refusal, Some(Refusal::Build(said.to_owned())), "{message}");
        }
        // As the BuildKit build reports a status that refuses the request itself (here an authorization plugin's).
        let answer = "403 Forbidden: authorization denied by plugin authz:\n  no BuildKit".to_owned();
        let refusal = Refusal::of(&Failure::Other(anyhow::Error::new(BuildRefused { answer })));
        assert_eq!(
            refusal,
            Some(Refusal::Build("403 Forbidden: authorization denied by plugin authz: no BuildKit".into()))
        );
        let build_failures = [
            // A failing RUN, a Dockerfile error at a line, one without, a lost session, a lost connection.
            daemon(
                "process \"/bin/sh -c false\" did not complete successfully: exit code: 1",
                Some("[2/2] RUN false"),
                Some(3),
                None,
            ),
            daemon("dockerfile parse error on line 2: unknown instruction: COPPY", None, Some(2), None),
            daemon("failed to solve: base name (${BASE}) should not be blank", None, None, None),
            daemon("no active session for eb-deploy-1: context deadline exceeded", None, None, Some("retry")),
            Failure::Other(
                anyhow!("connection reset").context("lost the connection to the Docker daemon during the build"),
            ),
        ];
        for failure in &build_failures {
            assert_eq!(Refusal::of(failure), None, "{failure:?}");
        }
    }

    #[test]
    fn auto_falls_back_after_a_refusal_and_buildkit_fails_naming_the_input() {
        let refusal = Refusal::Session("POST /session answered 400 Bad Request".to_owned());
        let choice = after_refusal(Builder::Auto, &refusal).unwrap();
        assert!(!choice.buildkit);
        assert_eq!(
            choice.to_string(),
            "Builder: classic builder (builder: auto; the daemon refused a BuildKit session: POST /session answered \
             400 Bad Request)"
        );
        let err = after_refusal(Builder::BuildKit, &refusal).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "failed to build the image: input `builder` is buildkit, but the daemon refused a BuildKit \
                             session: POST /session answered 400 Bad Request;"
            ) && err.contains("`builder: auto`"),
            "{err}"
        );
    }
}
