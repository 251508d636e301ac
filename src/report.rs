//! The step's result: outputs for `GITHUB_OUTPUT`, the Markdown job summary, and the text/JSON printed
//! outside Actions. One [`Report`] value is filled in as stages finish, so whatever ends the run
//! (success, failure, cancel) reports what is known.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::beanstalk::{Environment, Event};
use crate::wait::clock;

/// How the step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The environment settled on the new version with acceptable health.
    Deployed,
    /// The environment already ran the version, healthy: nothing to do.
    Unchanged,
    /// The update was accepted but not waited for (`wait: false`).
    Started,
    Failed,
    TimedOut,
    Cancelled,
}

impl Outcome {
    /// The `result` output value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Unchanged => "unchanged",
            Outcome::Started => "started",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Whether the step succeeds (exit code 0).
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Deployed | Outcome::Unchanged | Outcome::Started)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One timed phase of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

/// Everything known about the run; rendered as outputs, summary, text or JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub result: Option<Outcome>,
    /// One sentence on what happened (and what to do, on failure).
    pub message: String,
    pub mode: String,
    pub application: String,
    pub environment: String,
    pub version_label: String,
    pub previous_version_label: Option<String>,
    pub running_version_label: Option<String>,
    pub image: Option<String>,
    pub image_digest: Option<String>,
    pub bundle: Option<String>,
    pub environment_id: Option<String>,
    pub environment_url: Option<String>,
    pub environment_cname: Option<String>,
    pub status: Option<String>,
    pub health: Option<String>,
    pub health_status: Option<String>,
    pub duration_seconds: f64,
    pub phases: Vec<Phase>,
    #[serde(skip)]
    pub events: Vec<Event>,
    /// The environment whose update this step started and has not seen settle (for abort on cancel).
    #[serde(skip)]
    pub update_in_flight: Option<String>,
    /// A version this step created that no update uses yet (deleted if the run ends before the update).
    #[serde(skip)]
    pub created_version: Option<String>,
    /// Links for the summary.
    #[serde(skip)]
    pub run_url: Option<String>,
}

impl Report {
    /// Takes the environment's latest state into the report.
    pub fn observe(&mut self, env: &Environment) {
        self.environment_id = Some(env.id.clone()).filter(|s| !s.is_empty()).or(self.environment_id.take());
        self.environment_cname = env.cname.clone().or(self.environment_cname.take());
        self.environment_url = env.url().or(self.environment_url.take());
        self.running_version_label = env.version_label.clone();
        self.status = Some(env.status.clone()).filter(|s| !s.is_empty());
        self.health = Some(env.health.clone()).filter(|s| !s.is_empty());
        self.health_status = Some(env.health_status.clone());
    }

    /// Output name/value pairs, in `action.yml` order.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let values = [
            ("result", self.result.map(Outcome::as_str).unwrap_or("failed").to_owned()),
            ("version-label", self.version_label.clone()),
            ("previous-version-label", s(&self.previous_version_label)),
            ("running-version-label", s(&self.running_version_label)),
            ("image", s(&self.image)),
            ("image-digest", s(&self.image_digest)),
            ("bundle", s(&self.bundle)),
            ("environment-id", s(&self.environment_id)),
            ("environment-url", s(&self.environment_url)),
            ("environment-cname", s(&self.environment_cname)),
            ("status", s(&self.status)),
            ("health", s(&self.health)),
            ("health-status", s(&self.health_status)),
            ("duration-seconds", format!("{:.0}", self.duration_seconds)),
        ];
        values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The Markdown job summary.
    pub fn summary(&self) -> String {
        let outcome = self.result.unwrap_or(Outcome::Failed);
        let rollback = self.mode == "rollback";
        let (label, env) = (&self.version_label, &self.environment);
        let what = if rollback { "Rollback" } else { "Deploy" };
        let (icon, headline) = match outcome {
            Outcome::Deployed if rollback => ("✅", format!("Rolled {env} back to {label}")),
            Outcome::Deployed => ("✅", format!("Deployed {label} to {env}")),
            Outcome::Unchanged => ("✅", format!("{env} already runs {label}")),
            Outcome::Started => ("🚀", format!("Started {} {label} on {env}", what.to_lowercase())),
            Outcome::Failed => ("❌", format!("{what} of {label} to {env} failed")),
            Outcome::TimedOut => ("⏱️", format!("{what} of {label} to {env} timed out")),
            Outcome::Cancelled => ("🚫", format!("{what} of {label} to {env} was cancelled")),
        };
        let mut md = format!("## {icon} {}\n\n", cell(&headline));
        if !self.message.is_empty() {
            md.push_str(&format!("{}\n\n", cell(&self.message)));
        }
        md.push_str("| | |\n|---|---|\n");
        let mut row = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                md.push_str(&format!("| {k} | {} |\n", cell(&v)));
            }
        };
        row("Result", Some(format!("`{outcome}`")));
        row("Application", Some(self.application.clone()));
        let env_id = self.environment_id.as_ref().map(|id| format!(" ({id})")).unwrap_or_default();
        row("Environment", Some(format!("{}{env_id}", self.environment)));
        row("URL", self.environment_url.clone());
        row("Version", Some(format!("`{}`", self.version_label)));
        row("Previous version", self.previous_version_label.as_ref().map(|v| format!("`{v}`")));
        if self.running_version_label.as_deref() != Some(self.version_label.as_str()) {
            row("Running now", self.running_version_label.as_ref().map(|v| format!("`{v}`")));
        }
        row("Image", self.image.as_ref().map(|v| format!("`{v}`")));
        row("Bundle", self.bundle.as_ref().map(|v| format!("`{v}`")));
        let health = match (&self.health, &self.health_status) {
            (Some(h), Some(s)) if !s.is_empty() => Some(format!("{h} ({s})")),
            (h, _) => h.clone(),
        };
        row("Status", self.status.clone());
        row("Health", health);
        row("Duration", Some(format!("{:.0} s", self.duration_seconds)));
        row("Run", self.run_url.clone());
        if !self.phases.is_empty() {
            md.push_str("\n### Phases\n\n| Phase | Seconds |\n|---|---:|\n");
            for p in &self.phases {
                md.push_str(&format!("| {} | {:.1} |\n", cell(&p.name), p.seconds));
            }
        }
        if !self.events.is_empty() {
            md.push_str(&format!(
                "\n<details><summary>Elastic Beanstalk events ({})</summary>\n\n| Time (UTC) | Severity | Message |\n|---|---|---|\n",
                self.events.len()
            ));
            for e in &self.events {
                md.push_str(&format!("| {} | {} | {} |\n", clock(e.date_ms), e.severity, cell(&e.message)));
            }
            md.push_str("\n</details>\n");
        }
        md
    }

    /// Records how long a phase took.
    pub fn phase(&mut self, name: &str, took: Duration) {
        self.phases.push(Phase { name: name.to_owned(), seconds: (took.as_secs_f64() * 10.0).round() / 10.0 });
    }
}

/// Makes text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.outputs().iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in self.outputs() {
            writeln!(f, "{k:width$}  {v}")?;
        }
        Ok(())
    }
}

/// The report shared between the running stages and whoever ends the run (a signal, an error).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Report>>);

impl Progress {
    /// A shared report starting from `report`.
    pub fn new(report: Report) -> Self {
        Self(Arc::new(Mutex::new(report)))
    }

    /// Changes the report.
    pub fn update<T>(&self, f: impl FnOnce(&mut Report) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// A copy of the report as it is now.
    pub fn snapshot(&self) -> Report {
        self.update(|r| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            result: Some(Outcome::Failed),
            message: "the deploy of v2 failed | reverted".into(),
            application: "app".into(),
            environment: "env".into(),
            version_label: "v2".into(),
            previous_version_label: Some("v1".into()),
            running_version_label: Some("v1".into()),
            events: vec![Event {
                date_ms: 1_704_164_645_123,
                severity: "ERROR".into(),
                message: "Failed to deploy application.".into(),
                request_id: None,
            }],
            ..Report::default()
        }
    }

    #[test]
    fn outputs_follow_the_declared_order_and_names() {
        let names: Vec<String> = report().outputs().into_iter().map(|(k, _)| k).collect();
        let declared: Vec<&str> = crate::inputs::OUTPUTS.iter().map(|o| o.name).collect();
        assert_eq!(names, declared);
        let outputs = report().outputs();
        assert!(outputs.contains(&("result".into(), "failed".into())));
        assert!(outputs.contains(&("running-version-label".into(), "v1".into())));
    }

    #[test]
    fn summary_shows_the_revert_and_escapes_cells() {
        let md = report().summary();
        assert!(md.starts_with("## ❌ Deploy of v2 to env failed"), "{md}");
        assert!(md.contains("the deploy of v2 failed \\| reverted"), "{md}");
        assert!(md.contains("| Running now | `v1` |"), "{md}");
        assert!(md.contains("| 03:04:05 | ERROR | Failed to deploy application. |"), "{md}");
    }

    #[test]
    fn rollback_headlines_say_rollback() {
        let mut r = report();
        r.mode = "rollback".into();
        r.version_label = "v1".into();
        r.result = Some(Outcome::Deployed);
        assert!(r.summary().starts_with("## ✅ Rolled env back to v1"), "{}", r.summary());
        r.result = Some(Outcome::Failed);
        assert!(r.summary().starts_with("## ❌ Rollback of v1 to env failed"), "{}", r.summary());
    }

    #[test]
    fn observe_takes_the_environment_state() {
        let mut r = Report::default();
        r.observe(&Environment {
            id: "e-abc".into(),
            status: "Ready".into(),
            health: "Green".into(),
            cname: Some("x.us-east-1.elasticbeanstalk.com".into()),
            version_label: Some("v3".into()),
            ..Environment::default()
        });
        assert_eq!(r.environment_url.as_deref(), Some("http://x.us-east-1.elasticbeanstalk.com"));
        assert_eq!(r.running_version_label.as_deref(), Some("v3"));
        assert_eq!(r.status.as_deref(), Some("Ready"));
    }
}
