//! Which builder a build uses: BuildKit where the daemon has it (the default of `docker build` since
//! Engine 23, and what modern Dockerfiles need), the classic builder otherwise or when asked for.

use std::fmt;

use anyhow::{Result, bail};
use bollard::Docker;

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
    Ok(match (builder, unsupported) {
        (Builder::Classic, _) => Choice { buildkit: false, reason: "builder: classic".to_owned() },
        (Builder::BuildKit, None) => Choice { buildkit: true, reason: format!("builder: buildkit; {engine}, {api}") },
        (Builder::BuildKit, Some(why)) => bail!(
            "failed to build the image: input `builder` is buildkit, but {why}; set `builder: auto` (or classic) to \
             build with the classic builder"
        ),
        (Builder::Auto, None) => {
            Choice { buildkit: true, reason: format!("builder: auto; {engine}, {api}, supports BuildKit") }
        }
        (Builder::Auto, Some(why)) => Choice { buildkit: false, reason: format!("builder: auto; {why}") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(os: Option<&str>, api: (u32, u32), engine: &str, podman: bool) -> DaemonFacts {
        DaemonFacts { os: os.map(str::to_owned), api: Some(api), engine: Some(engine.to_owned()), podman }
    }

    #[test]
    fn auto_takes_buildkit_where_the_daemon_has_it() {
        let runner = facts(Some("linux"), (1, 48), "Docker Engine 28.0.4", false);
        let local = facts(Some("linux"), (1, 45), "Docker Engine 26.1.5", false);
        let debian12 = facts(Some("linux"), (1, 41), "Docker Engine 20.10.24", false);
        let windows = facts(Some("windows"), (1, 45), "Docker Engine 26.1.5", false);
        let ancient = facts(Some("linux"), (1, 38), "Docker Engine 18.06.3", false);
        let podman = facts(Some("linux"), (1, 41), "Podman Engine 5.2.2", true);
        let unknown = DaemonFacts { api: Some((1, 45)), ..DaemonFacts::default() };
        let table = [
            (&runner, true, "Docker Engine 28.0.4, API 1.48, supports BuildKit"),
            (&local, true, "Docker Engine 26.1.5, API 1.45, supports BuildKit"),
            (&debian12, true, "supports BuildKit"),
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
    }
}
