//! The step's result, output only: outputs for `GITHUB_OUTPUT`, the Markdown job summary, and the text/JSON
//! printed outside Actions, built once from what the run learnt ([`Facts`]) and how it ended.

use std::fmt;

use serde::Serialize;

use crate::beanstalk::Event;
use crate::config::Mode;
use crate::format::clock;
use crate::journal::{EnvironmentFacts, Facts, Phase, Span};
use crate::logs::InstanceLog;
use crate::verdict::Outcome;

/// Everything known about the run; rendered as outputs, summary, text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub result: Option<Outcome>,
    /// One sentence on what happened (and what to do, on failure).
    pub message: String,
    pub mode: Mode,
    pub application: String,
    pub environment: String,
    pub version_label: String,
    pub previous_version_label: Option<String>,
    pub running_version_label: Option<String>,
    pub rolled_back_to: Option<String>,
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
    /// One entry per environment, in the order given.
    pub environments: Vec<EnvironmentReport>,
    /// With blue/green: the environment serving the live CNAME now.
    pub live_environment: Option<String>,
    /// Whether this step created the environment (one environment; `None` with several).
    pub environment_created: Option<bool>,
    /// Versions `keep-versions` deleted.
    pub deleted_versions: Vec<String>,
    #[serde(skip)]
    pub events: Vec<Event>,
    /// Links for the summary.
    #[serde(skip)]
    pub run_url: Option<String>,
}

/// One environment's line of the report (and of the `environments` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentReport {
    pub name: String,
    pub id: Option<String>,
    /// Its own result: `deployed`, `unchanged`, `failed`, `skipped`, …
    pub result: Option<Outcome>,
    pub version_label: String,
    pub previous_version_label: Option<String>,
    pub running_version_label: Option<String>,
    pub status: Option<String>,
    pub health: Option<String>,
    pub url: Option<String>,
    pub seconds: f64,
    pub message: String,
    /// The version a rollback returned it to.
    pub rolled_back_to: Option<String>,
    /// This step created it (`create-environment`).
    pub created: bool,
    #[serde(skip)]
    pub spans: Vec<Span>,
    #[serde(skip)]
    pub logs: Vec<InstanceLog>,
}

/// What the report says before anything is learnt: the step's own inputs.
#[derive(Debug, Clone, Default)]
pub struct Heading {
    pub mode: Mode,
    pub application: String,
    pub environment: String,
    pub version_label: String,
    pub run_url: Option<String>,
}

impl Report {
    /// The report of a run that ended with `result` after `seconds`, from what it learnt.
    pub fn new(heading: Heading, facts: Facts, result: Outcome, message: String, seconds: f64) -> Self {
        let environments: Vec<EnvironmentReport> = facts
            .environments
            .iter()
            .map(|e| EnvironmentReport {
                name: e.name.clone(),
                id: e.id.clone(),
                result: e.result,
                version_label: heading.version_label.clone(),
                previous_version_label: e.previous_version_label.clone(),
                running_version_label: e.running_version_label.clone(),
                status: e.status.clone(),
                health: e.health.clone(),
                url: e.url.clone(),
                seconds: (e.seconds() * 10.0).round() / 10.0,
                message: e.message.clone(),
                rolled_back_to: e.rolled_back_to.clone(),
                created: e.created,
                spans: e.spans.clone(),
                logs: e.logs.clone(),
            })
            .collect();
        // The single-environment outputs describe the one environment; with several, see `environments`.
        let (one, environment_created) = match facts.environments.as_slice() {
            [one] => (one.clone(), Some(one.created)),
            _ => (EnvironmentFacts::default(), None),
        };
        Self {
            result: Some(result),
            message,
            mode: heading.mode,
            application: heading.application,
            environment: heading.environment,
            version_label: heading.version_label,
            previous_version_label: one.previous_version_label,
            running_version_label: one.running_version_label,
            rolled_back_to: one.rolled_back_to,
            image: facts.image,
            image_digest: facts.image_digest,
            bundle: facts.bundle,
            environment_id: one.id,
            environment_url: one.url,
            environment_cname: one.cname,
            status: one.status,
            health: one.health,
            health_status: one.health_status,
            duration_seconds: seconds,
            phases: facts.phases,
            environments,
            live_environment: facts.live_environment,
            environment_created,
            deleted_versions: facts.deleted_versions,
            events: one.events,
            run_url: heading.run_url,
        }
    }

    /// Output name/value pairs, in `action.yml` order.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let values = [
            ("result", self.result.map(Outcome::as_str).unwrap_or("failed").to_owned()),
            ("version-label", self.version_label.clone()),
            ("previous-version-label", s(&self.previous_version_label)),
            ("running-version-label", s(&self.running_version_label)),
            ("rolled-back-to", s(&self.rolled_back_to)),
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
            ("environments", serde_json::to_string(&self.environments).unwrap_or_else(|_| "[]".to_owned())),
            ("live-environment", s(&self.live_environment)),
            ("environment-created", self.environment_created.map(|c| c.to_string()).unwrap_or_default()),
        ];
        values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The Markdown job summary.
    pub fn summary(&self) -> String {
        let outcome = self.result.unwrap_or(Outcome::Failed);
        let rollback = self.mode == Mode::Rollback;
        let (label, env) = (&self.version_label, &self.environment);
        let what = match self.mode {
            Mode::Rollback => "Rollback",
            Mode::Deploy => "Deploy",
            Mode::Swap => "Swap",
            Mode::Terminate => "Termination",
        };
        let terminate = self.mode == Mode::Terminate;
        let (icon, headline) = match outcome {
            Outcome::Terminated => ("🗑️", format!("Terminated {env}")),
            Outcome::Unchanged if terminate => ("✅", format!("{env}: nothing to terminate")),
            Outcome::Failed | Outcome::Skipped | Outcome::TimedOut | Outcome::Cancelled if terminate => (
                "❌",
                format!("Termination of {env} {}", if outcome == Outcome::TimedOut { "timed out" } else { "failed" }),
            ),
            Outcome::Started if terminate => ("🚀", format!("Started terminating {env}")),
            _ if self.mode == Mode::Swap && outcome.is_success() => {
                ("🔀", format!("{} is live", self.live_environment.as_deref().unwrap_or(env)))
            }
            Outcome::Deployed if rollback => ("✅", format!("Rolled {env} back to {label}")),
            Outcome::Deployed | Outcome::Swapped => ("✅", format!("Deployed {label} to {env}")),
            Outcome::Unchanged => ("✅", format!("{env} already runs {label}")),
            Outcome::Started => ("🚀", format!("Started {} {label} on {env}", what.to_lowercase())),
            Outcome::RolledBack => ("↩️", format!("{what} of {label} to {env} was rolled back")),
            Outcome::Failed | Outcome::Skipped => ("❌", format!("{what} of {label} to {env} failed")),
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
        if self.environment_created == Some(true) {
            row("Created", Some("yes, by this step".to_owned()));
        }
        if !terminate {
            row("Version", Some(format!("`{}`", self.version_label)));
        }
        row("Previous version", self.previous_version_label.as_ref().map(|v| format!("`{v}`")));
        if !terminate && self.running_version_label.as_deref() != Some(self.version_label.as_str()) {
            row("Running now", self.running_version_label.as_ref().map(|v| format!("`{v}`")));
        }
        row("Rolled back to", self.rolled_back_to.as_ref().map(|v| format!("`{v}`")));
        row("Image", self.image.as_ref().map(|v| format!("`{v}`")));
        row("Bundle", self.bundle.as_ref().map(|v| format!("`{v}`")));
        let health = match (&self.health, &self.health_status) {
            (Some(h), Some(s)) if !s.is_empty() => Some(format!("{h} ({s})")),
            (h, _) => h.clone(),
        };
        row("Status", self.status.clone());
        row("Health", health);
        row("Live now", self.live_environment.clone());
        if !self.deleted_versions.is_empty() {
            let deleted: Vec<String> = self.deleted_versions.iter().map(|v| format!("`{v}`")).collect();
            row("Versions deleted (keep-versions)", Some(deleted.join(", ")));
        }
        row("Duration", Some(format!("{:.0} s", self.duration_seconds)));
        row("Run", self.run_url.clone());
        if !self.phases.is_empty() {
            md.push_str("\n### Phases\n\n| Phase | Seconds |\n|---|---:|\n");
            for p in &self.phases {
                md.push_str(&format!("| {} | {:.1} |\n", cell(&p.name), p.seconds));
            }
        }
        if self.environments.len() > 1 || self.live_environment.is_some() {
            md.push_str(&self.environments_section());
        }
        if !self.events.is_empty() {
            md.push_str(&events_section("Elastic Beanstalk events", &self.events));
        }
        for e in &self.environments {
            for log in &e.logs {
                md.push_str(&logs_section(&e.name, log));
            }
        }
        md
    }

    /// One row per environment, and a Mermaid gantt chart of their phases (GitHub renders it).
    fn environments_section(&self) -> String {
        let mut md = String::from(
            "\n### Environments\n\n| Environment | Result | Running | Status | Health | Seconds | URL |\n|---|---|---|---|---|---:|---|\n",
        );
        for e in &self.environments {
            let opt = |v: &Option<String>| cell(v.as_deref().unwrap_or(""));
            md.push_str(&format!(
                "| {} | `{}` | {} | {} | {} | {:.0} | {} |\n",
                cell(&e.name),
                e.result.map_or("—", Outcome::as_str),
                e.running_version_label.as_ref().map(|v| format!("`{}`", cell(v))).unwrap_or_default(),
                opt(&e.status),
                opt(&e.health),
                e.seconds,
                opt(&e.url),
            ));
        }
        if self.environments.iter().any(|e| !e.spans.is_empty()) {
            md.push_str(&gantt(&self.environments));
        }
        if self.environments.len() > 1 {
            for e in
                self.environments.iter().filter(|e| !e.message.is_empty() && !e.result.is_some_and(Outcome::is_success))
            {
                md.push_str(&format!("\n**{}**: {}\n", cell(&e.name), cell(&e.message)));
            }
        }
        md
    }
}

/// A collapsed table of events.
fn events_section(title: &str, events: &[Event]) -> String {
    let mut md = format!(
        "\n<details><summary>{} ({})</summary>\n\n| Time (UTC) | Severity | Message |\n|---|---|---|\n",
        cell(title),
        events.len()
    );
    for e in events {
        md.push_str(&format!("| {} | {} | {} |\n", clock(e.date_ms), e.severity, cell(&e.message)));
    }
    md.push_str("\n</details>\n");
    md
}

/// One instance's last log lines, collapsed.
fn logs_section(environment: &str, log: &InstanceLog) -> String {
    // A fence longer than any run of backticks in the logs, so none can close it.
    let longest = log.lines.iter().map(|l| l.split(|c| c != '`').map(str::len).max().unwrap_or(0)).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "\n<details><summary>Instance logs: {} {} (last {} lines)</summary>\n\n{fence}text\n{}\n{fence}\n\n</details>\n",
        cell(environment),
        cell(&log.instance),
        log.lines.len(),
        log.lines.join("\n")
    )
}

/// The rollout as a Mermaid `gantt` chart: one section per environment, one bar per phase, in seconds since
/// the step started (failed ones marked critical).
fn gantt(environments: &[EnvironmentReport]) -> String {
    // Mermaid reads `:` and `#` as syntax in task names.
    let name = |s: &str| s.replace([':', '#', ';'], " ");
    let mut chart = String::from(
        "\n```mermaid\ngantt\n    title Rollout (seconds since the step started)\n    dateFormat X\n    axisFormat %M:%S\n",
    );
    for e in environments.iter().filter(|e| !e.spans.is_empty()) {
        chart.push_str(&format!("    section {}\n", name(&e.name)));
        let failed = e.result.is_some_and(|o| !o.is_success());
        for (i, span) in e.spans.iter().enumerate() {
            let start = span.start.floor() as u64;
            let end = (span.end.ceil() as u64).max(start + 1);
            let last = i + 1 == e.spans.len();
            let tag = if failed && last { "crit, " } else { "done, " };
            chart.push_str(&format!("    {} :{tag}{start}, {end}\n", name(&span.name)));
        }
    }
    chart.push_str("```\n");
    chart
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let heading = Heading {
            mode: Mode::Deploy,
            application: "app".into(),
            environment: "env".into(),
            version_label: "v2".into(),
            run_url: None,
        };
        let mut facts = Facts::default();
        let env = facts.environment("env");
        env.previous_version_label = Some("v1".into());
        env.running_version_label = Some("v1".into());
        env.events = vec![Event {
            date_ms: 1_704_164_645_123,
            severity: "ERROR".into(),
            message: "Failed to deploy application.".into(),
            request_id: None,
            environment: None,
        }];
        Report::new(heading, facts, Outcome::Failed, "the deploy of v2 failed | reverted".into(), 0.0)
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
        r.mode = Mode::Rollback;
        r.version_label = "v1".into();
        r.result = Some(Outcome::Deployed);
        assert!(r.summary().starts_with("## ✅ Rolled env back to v1"), "{}", r.summary());
        r.result = Some(Outcome::Failed);
        assert!(r.summary().starts_with("## ❌ Rollback of v1 to env failed"), "{}", r.summary());
    }

    #[test]
    fn a_created_environment_and_a_termination_say_so() {
        let heading = |mode| Heading {
            mode,
            application: "app".into(),
            environment: "pr-12".into(),
            version_label: "v2".into(),
            run_url: None,
        };
        let mut facts = Facts::default();
        facts.environment("pr-12").created = true;
        facts.deleted_versions = vec!["v1".into()];
        let r = Report::new(heading(Mode::Deploy), facts.clone(), Outcome::Deployed, "created".into(), 1.0);
        let outputs: std::collections::BTreeMap<String, String> = r.outputs().into_iter().collect();
        assert_eq!(outputs["environment-created"], "true");
        assert!(outputs["environments"].contains("\"created\":true"), "{}", outputs["environments"]);
        let md = r.summary();
        assert!(
            md.contains("| Created | yes, by this step |")
                && md.contains("| Versions deleted (keep-versions) | `v1` |")
        );

        facts.environment("pr-13");
        let fleet = Report::new(heading(Mode::Deploy), facts.clone(), Outcome::Deployed, String::new(), 1.0);
        assert!(fleet.outputs().contains(&("environment-created".into(), String::new())), "empty with several");

        let gone = Report::new(heading(Mode::Terminate), Facts::default(), Outcome::Terminated, "gone".into(), 1.0);
        assert!(gone.summary().starts_with("## 🗑️ Terminated pr-12"), "{}", gone.summary());
        assert!(!gone.summary().contains("| Version |"), "a termination deploys no version");
        let refused = Report::new(heading(Mode::Terminate), Facts::default(), Outcome::Failed, "no".into(), 1.0);
        assert!(refused.summary().starts_with("## ❌ Termination of pr-12 failed"), "{}", refused.summary());
    }

    #[test]
    fn fleets_get_a_row_each_a_json_output_and_a_gantt_chart() {
        let heading = Heading {
            mode: Mode::Deploy,
            application: "app".into(),
            environment: "web-eu, web-us".into(),
            version_label: "v2".into(),
            run_url: None,
        };
        let mut facts = Facts::default();
        for (name, result, running) in [("web-eu", Outcome::Deployed, "v2"), ("web-us", Outcome::Failed, "v1")] {
            let env = facts.environment(name);
            env.result = Some(result);
            env.running_version_label = Some(running.into());
            env.message = format!("{name}: it {result}");
            env.spans = vec![Span { name: "deploy v2: now".into(), start: 1.2, end: 20.7 }];
        }
        let r = Report::new(heading, facts, Outcome::Failed, "2 environments".into(), 21.0);
        let outputs: std::collections::BTreeMap<String, String> = r.outputs().into_iter().collect();
        let json: serde_json::Value = serde_json::from_str(&outputs["environments"]).unwrap();
        assert_eq!(json[1]["name"], "web-us");
        assert_eq!(json[1]["result"], "failed");
        assert_eq!(json[0]["running_version_label"], "v2");
        assert_eq!(json[0]["seconds"], 19.5);
        assert_eq!(outputs["running-version-label"], "", "no single environment to speak of");
        let md = r.summary();
        assert!(md.starts_with("## ❌ Deploy of v2 to web-eu, web-us failed"), "{md}");
        assert!(md.contains("| web-us | `failed` | `v1` |"), "{md}");
        assert!(md.contains("```mermaid\ngantt\n"), "{md}");
        assert!(md.contains("    section web-eu\n    deploy v2  now :done, 1, 21\n"), "{md}");
        assert!(md.contains("    deploy v2  now :crit, 1, 21\n"), "the failed one is marked: {md}");
        assert!(md.contains("**web-us**: web-us: it failed"), "{md}");
    }
}
