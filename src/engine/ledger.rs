//! What this run changed that must be undone if it ends early: a version it created that no update uses
//! yet, and updates it started that have not settled. Errors and cancel share it. Also what a rollback needs
//! to undo a settings change: the settings each environment had before this step changed them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::beanstalk::Beanstalk;
use crate::gha::Console;
use crate::options::Changes;

/// An environment's settings before this step, as far as the step's changes touch them.
#[derive(Debug)]
struct SettingsBefore {
    environment: String,
    /// The version it ran with them.
    label: Option<String>,
    /// The step's changes would change something.
    differ: bool,
    /// What puts them back.
    restore: Changes,
}

#[derive(Debug, Default)]
struct Entries {
    /// (application, label) of a version this run created and no update uses yet.
    created_version: Option<(String, String)>,
    /// Environments (by id) whose update this run started and has not seen settle.
    updates_in_flight: Vec<String>,
    /// Per environment, read before anything changed.
    settings_before: Vec<SettingsBefore>,
}

/// The record of what to undo; clone freely, all clones share it.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Entries>>);

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A version was created by this run.
    pub fn version_created(&self, application: &str, label: &str) {
        self.with(|e| e.created_version = Some((application.to_owned(), label.to_owned())));
    }

    /// An update now uses the version: it is no longer this run's to delete.
    pub fn version_used(&self) {
        self.with(|e| e.created_version = None);
    }

    /// An update of `env_id` was started.
    pub fn update_started(&self, env_id: &str) {
        self.with(|e| e.updates_in_flight.push(env_id.to_owned()));
    }

    /// The update of `env_id` settled (or was aborted): nothing to abort any more.
    pub fn update_settled(&self, env_id: &str) {
        self.with(|e| e.updates_in_flight.retain(|id| id != env_id));
    }

    /// Records what the step's settings would do to `environment`, which runs `label` now: whether they change
    /// anything, and what puts its settings back.
    pub fn settings_read(&self, environment: &str, label: Option<String>, differ: bool, restore: Changes) {
        self.with(|e| {
            e.settings_before.retain(|s| !s.environment.eq_ignore_ascii_case(environment));
            e.settings_before.push(SettingsBefore { environment: environment.to_owned(), label, differ, restore });
        });
    }

    /// Whether the step's settings would change something in `environment` (`None`: not read).
    pub fn settings_differ(&self, environment: &str) -> Option<bool> {
        self.with(|e| {
            e.settings_before.iter().find(|s| s.environment.eq_ignore_ascii_case(environment)).map(|s| s.differ)
        })
    }

    /// The changes that return `environment` to the settings it ran `label` with before this step, when that
    /// is the version it ran then (a rollback to it); `None` otherwise.
    pub fn restore_for(&self, environment: &str, label: &str) -> Option<Changes> {
        self.with(|e| {
            e.settings_before
                .iter()
                .find(|s| s.environment.eq_ignore_ascii_case(environment) && s.label.as_deref() == Some(label))
                .map(|s| s.restore.clone())
        })
    }

    /// Environments whose update this run started and has not seen settle.
    pub fn updates_in_flight(&self) -> Vec<String> {
        self.with(|e| e.updates_in_flight.clone())
    }

    /// Deletes the version this run created and never deployed, so a re-run does not trip on it; with its
    /// bundle when `with_bundle` (only one this run uploaded).
    pub async fn discard_version(&self, eb: &Beanstalk, console: &Console, with_bundle: bool) {
        let Some((application, label)) = self.with(|e| e.created_version.take()) else { return };
        match eb.delete_version(&application, &label, with_bundle).await {
            Ok(()) => console.info(format!("Deleted version {label}, which this run created and could not deploy")),
            Err(e) => console.warning(format!("could not delete version {label}: {e:#}"), None),
        }
    }

    /// Undoes what it can within a few seconds (the runner kills the container 10 s after its first signal):
    /// aborts the updates in flight when `abort`, deletes a version nothing uses yet. Returns what was done,
    /// as clauses to append to the cancel message.
    pub async fn undo_on_cancel(&self, eb: &Beanstalk, abort: bool) -> String {
        let mut message = String::new();
        let in_flight = self.updates_in_flight();
        if !in_flight.is_empty() && !abort {
            let what =
                if in_flight.len() == 1 { "the environment update goes on" } else { "the environment updates go on" };
            message.push_str(&format!("; {what} (set abort-on-cancel: true to abort it)"));
        } else if !in_flight.is_empty() {
            // All at once: the runner's grace period does not grow with the fleet.
            let aborts = in_flight.iter().map(|id| tokio::time::timeout(Duration::from_secs(3), eb.abort_update(id)));
            let answers = futures_util::future::join_all(aborts).await;
            let aborted = answers.iter().filter(|a| matches!(a, Ok(Ok(())))).count();
            if in_flight.len() == 1 {
                match &answers[0] {
                    Ok(Ok(())) => message.push_str("; the update was aborted and Elastic Beanstalk is rolling back"),
                    Ok(Err(e)) => message.push_str(&format!("; aborting the update failed: {e:#}")),
                    Err(_) => message.push_str("; aborting the update did not answer in time"),
                }
            } else {
                message.push_str(&format!(
                    "; {aborted} of {} updates were aborted and Elastic Beanstalk is rolling them back",
                    in_flight.len()
                ));
            }
        }
        if let Some((application, label)) = self.with(|e| e.created_version.take()) {
            let delete = eb.delete_version(&application, &label, false);
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), delete).await {
                message.push_str(&format!("; version {label}, created by this run and never deployed, was deleted"));
            }
        }
        message
    }
}
