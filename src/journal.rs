//! What the run has learnt so far, recorded as the stages go: the image, the bundle, each environment's
//! latest state, events, result and timed phases. Whatever ends the run (verdict, error, cancel) reports from
//! it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::beanstalk::{Environment, Event};
use crate::logs::InstanceLog;
use crate::verdict::Outcome;

/// One timed phase of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

/// A phase of one environment's rollout, placed in time (seconds since the run started), for the picture of
/// the rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    pub start: f64,
    pub end: f64,
}

/// What is known of one environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvironmentFacts {
    pub name: String,
    pub id: Option<String>,
    pub url: Option<String>,
    pub cname: Option<String>,
    /// The version it ran before this step.
    pub previous_version_label: Option<String>,
    /// The version it runs now.
    pub running_version_label: Option<String>,
    pub status: Option<String>,
    pub health: Option<String>,
    pub health_status: Option<String>,
    /// Every event logged during the waits, oldest first.
    pub events: Vec<Event>,
    /// How its rollout ended, once it has.
    pub result: Option<Outcome>,
    /// This step created it (`create-environment`).
    pub created: bool,
    /// The sentence that says so.
    pub message: String,
    pub spans: Vec<Span>,
    /// The version a rollback returned it to (rollback-on-failure, on-failure: rollback).
    pub rolled_back_to: Option<String>,
    /// The instances' last log lines, fetched after a failure.
    pub logs: Vec<InstanceLog>,
}

impl EnvironmentFacts {
    /// Takes in the environment's latest state (an answer without an id, CNAME or URL keeps the earlier one).
    pub fn observe(&mut self, env: &Environment) {
        self.id = Some(env.id.clone()).filter(|s| !s.is_empty()).or(self.id.take());
        self.cname = env.cname.clone().or(self.cname.take());
        self.url = env.url().or(self.url.take());
        self.running_version_label = env.version_label.clone();
        self.status = Some(env.status.as_str().to_owned()).filter(|s| !s.is_empty());
        self.health = Some(env.health.as_str().to_owned()).filter(|s| !s.is_empty());
        self.health_status = Some(env.health_status.clone());
    }

    /// Seconds from its first phase's start to its last phase's end.
    pub fn seconds(&self) -> f64 {
        let start = self.spans.iter().map(|s| s.start).fold(f64::INFINITY, f64::min);
        let end = self.spans.iter().map(|s| s.end).fold(0.0, f64::max);
        if start.is_finite() { (end - start).max(0.0) } else { 0.0 }
    }
}

/// Everything learnt so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The image reference written into the bundle (or the one an existing version deploys).
    pub image: Option<String>,
    pub image_digest: Option<String>,
    /// `s3://bucket/key` of the source bundle.
    pub bundle: Option<String>,
    /// One entry per environment of the step, in the order given.
    pub environments: Vec<EnvironmentFacts>,
    /// With blue/green: the environment that serves the live CNAME now.
    pub live_environment: Option<String>,
    /// Versions `keep-versions` deleted.
    pub deleted_versions: Vec<String>,
    pub phases: Vec<Phase>,
}

impl Facts {
    /// The facts of environment `name` (added when new).
    pub fn environment(&mut self, name: &str) -> &mut EnvironmentFacts {
        match self.environments.iter().position(|e| e.name.eq_ignore_ascii_case(name)) {
            Some(i) => &mut self.environments[i],
            None => {
                self.environments.push(EnvironmentFacts { name: name.to_owned(), ..EnvironmentFacts::default() });
                self.environments.last_mut().expect("just pushed")
            }
        }
    }
}

/// The facts, shared between the running stages and whoever ends the run; clone freely.
#[derive(Debug, Clone)]
pub struct Journal {
    facts: Arc<Mutex<Facts>>,
    started: Instant,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Journal {
    /// A journal for a run over `environments` (listed in this order in the report), starting now.
    pub fn new(environments: &[String]) -> Self {
        let mut facts = Facts::default();
        for name in environments {
            facts.environment(name);
        }
        Self { facts: Arc::new(Mutex::new(facts)), started: Instant::now() }
    }

    /// Records something.
    pub fn record<T>(&self, f: impl FnOnce(&mut Facts) -> T) -> T {
        f(&mut self.facts.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Takes in an environment's latest state.
    pub fn observe(&self, name: &str, env: &Environment) {
        self.record(|f| f.environment(name).observe(env));
    }

    /// Records how long a phase of the run took.
    pub fn phase(&self, name: &str, took: Duration) {
        let seconds = (took.as_secs_f64() * 10.0).round() / 10.0;
        self.record(|f| f.phases.push(Phase { name: name.to_owned(), seconds }));
    }

    /// Records a phase of one environment's rollout that began at `since` and ends now.
    pub fn span(&self, environment: &str, name: &str, since: Instant) {
        let start = since.saturating_duration_since(self.started).as_secs_f64();
        let end = self.started.elapsed().as_secs_f64();
        self.record(|f| f.environment(environment).spans.push(Span { name: name.to_owned(), start, end }));
    }

    /// A copy of the facts as they are now.
    pub fn snapshot(&self) -> Facts {
        self.record(|f| f.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beanstalk::{Health, Status};

    #[test]
    fn observe_takes_the_environment_state() {
        let mut r = EnvironmentFacts::default();
        r.observe(&Environment {
            id: "e-abc".into(),
            status: Status::Ready,
            health: Health::Green,
            cname: Some("x.us-east-1.elasticbeanstalk.com".into()),
            version_label: Some("v3".into()),
            ..Environment::default()
        });
        assert_eq!(r.url.as_deref(), Some("http://x.us-east-1.elasticbeanstalk.com"));
        assert_eq!(r.running_version_label.as_deref(), Some("v3"));
        assert_eq!(r.status.as_deref(), Some("Ready"));
        r.observe(&Environment { status: Status::Updating, ..Environment::default() });
        assert_eq!(r.id.as_deref(), Some("e-abc"), "an answer without an id keeps the known one");
    }

    #[test]
    fn environments_keep_the_order_given() {
        let j = Journal::new(&["b-env".into(), "a-env".into()]);
        j.observe("A-ENV", &Environment { id: "e-a".into(), ..Environment::default() });
        let f = j.snapshot();
        assert_eq!(f.environments.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b-env", "a-env"]);
        assert_eq!(f.environments[1].id.as_deref(), Some("e-a"));
    }
}
