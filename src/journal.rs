//! What the run has learnt so far, recorded as the stages go: the image, the bundle, the environment's
//! latest state, its events, and how long each phase took. Whatever ends the run (verdict, error, cancel)
//! reports from it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::beanstalk::{Environment, Event};

/// One timed phase of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

/// What is known of the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvironmentFacts {
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
    /// Every event logged during the wait, oldest first.
    pub events: Vec<Event>,
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
}

/// Everything learnt so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The image reference written into the bundle (or the one an existing version deploys).
    pub image: Option<String>,
    pub image_digest: Option<String>,
    /// `s3://bucket/key` of the source bundle.
    pub bundle: Option<String>,
    pub environment: EnvironmentFacts,
    pub phases: Vec<Phase>,
}

/// The facts, shared between the running stages and whoever ends the run; clone freely.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Facts>>);

impl Journal {
    /// Records something.
    pub fn record<T>(&self, f: impl FnOnce(&mut Facts) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Takes in the environment's latest state.
    pub fn observe(&self, env: &Environment) {
        self.record(|f| f.environment.observe(env));
    }

    /// Records how long a phase took.
    pub fn phase(&self, name: &str, took: Duration) {
        let seconds = (took.as_secs_f64() * 10.0).round() / 10.0;
        self.record(|f| f.phases.push(Phase { name: name.to_owned(), seconds }));
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
}
