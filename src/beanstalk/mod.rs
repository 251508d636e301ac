//! Elastic Beanstalk calls, with the answers reduced to the [`model`] the engine reasons about.

pub mod model;

use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};
use aws_sdk_elasticbeanstalk::Client;
use aws_sdk_elasticbeanstalk::operation::RequestId;
use aws_sdk_elasticbeanstalk::types::{EnvironmentInfoType, EventDescription, S3Location};
use aws_smithy_types::DateTime;

pub use model::{Environment, Event, Health, Status, Version, VersionStatus};

use crate::sdk::{AwsContext, describe, error_code, error_message};

/// Builds an [`Environment`] from any SDK shape that describes one (`EnvironmentDescription`, and
/// `UpdateEnvironmentOutput`, which repeats its fields).
macro_rules! environment_from {
    ($e:expr) => {{
        let e = $e;
        Environment {
            id: e.environment_id().unwrap_or_default().to_owned(),
            name: e.environment_name().unwrap_or_default().to_owned(),
            application: e.application_name().unwrap_or_default().to_owned(),
            status: e.status().map(|s| Status::parse(s.as_str())).unwrap_or_default(),
            health: e.health().map(|h| Health::parse(h.as_str())).unwrap_or_default(),
            health_status: e.health_status().map(|h| h.as_str().to_owned()).unwrap_or_default(),
            version_label: e.version_label().filter(|l| !l.is_empty()).map(str::to_owned),
            cname: e.cname().filter(|c| !c.is_empty()).map(str::to_owned),
            endpoint_url: e.endpoint_url().filter(|c| !c.is_empty()).map(str::to_owned),
            updated_ms: e.date_updated().and_then(|d| d.to_millis().ok()),
        }
    }};
}

fn event_from_sdk(e: &EventDescription) -> Event {
    Event {
        date_ms: e.event_date().and_then(|d| d.to_millis().ok()).unwrap_or_default(),
        severity: e.severity().map(|s| s.as_str().to_uppercase()).unwrap_or_else(|| "INFO".to_owned()),
        message: e.message().unwrap_or_default().to_owned(),
        request_id: e.request_id().filter(|r| !r.is_empty()).map(str::to_owned),
        environment: e.environment_name().filter(|n| !n.is_empty()).map(str::to_owned),
    }
}

/// Why `UpdateEnvironment` was refused, when the engine can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRefusal {
    /// "… is in an invalid state for this operation. Must be Ready."
    Busy,
}

/// Classifies an update error message (the code is `InvalidParameterValue`).
pub fn classify_update_refusal(message: &str) -> Option<UpdateRefusal> {
    message.contains("invalid state for this operation").then_some(UpdateRefusal::Busy)
}

/// One instance's compiled logs, as `RetrieveEnvironmentInfo` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub instance: String,
    /// A presigned URL (it expires: download it at once).
    pub url: String,
    pub sampled_ms: i64,
}

/// Result of an `UpdateEnvironment` call.
#[derive(Debug, Clone)]
pub struct UpdateStarted {
    pub environment: Environment,
    pub request_id: Option<String>,
}

/// A refused `UpdateEnvironment`, with the service's message.
#[derive(Debug, Clone)]
pub struct Refused {
    pub reason: Option<UpdateRefusal>,
    pub message: String,
}

/// The Elastic Beanstalk client, narrowed to what eb-deploy does.
#[derive(Debug, Clone)]
pub struct Beanstalk {
    client: Client,
}

impl Beanstalk {
    /// Wraps an SDK client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The environment `name` of `application`, if it exists (terminated ones excluded).
    pub async fn environment(&self, application: &str, name: &str) -> Result<Option<Environment>> {
        let out = self
            .client
            .describe_environments()
            .application_name(application)
            .environment_names(name)
            .include_deleted(false)
            .send()
            .await
            .aws_context(|| format!("failed to describe environment {name} of application {application}"))?;
        Ok(out
            .environments()
            .iter()
            .map(|e| environment_from!(e))
            .find(|e| e.name.eq_ignore_ascii_case(name) && !e.is_terminated()))
    }

    /// The live environments of `application` among `names` (unknown names are left out), in one call.
    pub async fn environments(&self, application: &str, names: &[String]) -> Result<Vec<Environment>> {
        let out = self
            .client
            .describe_environments()
            .application_name(application)
            .set_environment_names(Some(names.to_vec()))
            .include_deleted(false)
            .send()
            .await
            .aws_context(|| format!("failed to describe the environments of application {application}"))?;
        Ok(out.environments().iter().map(|e| environment_from!(e)).filter(|e| !e.is_terminated()).collect())
    }

    /// Environments by id, in one call, including terminated ones (so a wait can tell one disappeared).
    pub async fn environments_by_id(&self, ids: &[String]) -> Result<Vec<Environment>> {
        let out = self
            .client
            .describe_environments()
            .set_environment_ids(Some(ids.to_vec()))
            .include_deleted(true)
            .send()
            .await
            .aws_context(|| format!("failed to describe environment(s) {}", ids.join(", ")))?;
        Ok(out.environments().iter().map(|e| environment_from!(e)).collect())
    }

    /// Whether the application exists (for a clearer error when the environment is missing).
    pub async fn application_exists(&self, application: &str) -> Result<bool> {
        let out = self
            .client
            .describe_applications()
            .application_names(application)
            .send()
            .await
            .aws_context(|| format!("failed to describe application {application}"))?;
        Ok(out.applications().iter().any(|a| a.application_name() == Some(application)))
    }

    /// Names of the application's live environments.
    pub async fn environment_names(&self, application: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_environments()
            .application_name(application)
            .include_deleted(false)
            .send()
            .await
            .aws_context(|| format!("failed to list environments of application {application}"))?;
        Ok(out.environments().iter().filter_map(|e| e.environment_name().map(str::to_owned)).collect())
    }

    /// One application version, if it exists.
    pub async fn version(&self, application: &str, label: &str) -> Result<Option<Version>> {
        let out = self
            .client
            .describe_application_versions()
            .application_name(application)
            .version_labels(label)
            .send()
            .await
            .aws_context(|| format!("failed to look up version {label} of application {application}"))?;
        Ok(out.application_versions().iter().map(version_from_sdk).find(|v| v.label == label))
    }

    /// The most recent version labels, newest first (for "did you mean" lists).
    pub async fn recent_versions(&self, application: &str, max: i32) -> Result<Vec<Version>> {
        let out = self
            .client
            .describe_application_versions()
            .application_name(application)
            .max_records(max.clamp(1, 1000))
            .send()
            .await
            .aws_context(|| format!("failed to list versions of application {application}"))?;
        let mut versions: Vec<Version> = out.application_versions().iter().map(version_from_sdk).collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.created_ms));
        Ok(versions)
    }

    /// Elastic Beanstalk's own bucket for this account and region, created if absent.
    pub async fn storage_location(&self) -> Result<String> {
        let out = self
            .client
            .create_storage_location()
            .send()
            .await
            .aws_context(|| "failed to get Elastic Beanstalk's S3 storage location (CreateStorageLocation); set `bucket` to use your own")?;
        out.s3_bucket().map(str::to_owned).context("CreateStorageLocation returned no bucket")
    }

    /// Creates a version from a bundle in S3, asking Beanstalk to process (validate) it when `process`.
    /// Returns `Ok(None)` when the label already exists.
    pub async fn create_version(
        &self,
        application: &str,
        label: &str,
        description: &str,
        bucket: &str,
        key: &str,
        process: bool,
    ) -> Result<Option<Version>> {
        let result = self
            .client
            .create_application_version()
            .application_name(application)
            .version_label(label)
            .description(description)
            .source_bundle(S3Location::builder().s3_bucket(bucket).s3_key(key).build())
            .process(process)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.application_version().map(version_from_sdk)),
            Err(e) if error_message(&e).is_some_and(|m| m.contains("already exists")) => Ok(None),
            Err(e) => {
                let hint = match error_code(&e) {
                    Some("TooManyApplicationVersionsException") => {
                        "; delete old versions or set a version lifecycle policy on the application"
                    }
                    Some("InsufficientPrivilegesException") => {
                        "; the credentials need elasticbeanstalk:CreateApplicationVersion and s3:GetObject on the bundle"
                    }
                    _ => "",
                };
                Err(anyhow!("{}{hint}", describe(&e)))
                    .with_context(|| format!("failed to create application version {label} of {application}"))
            }
        }
    }

    /// Deletes a version (and its bundle in S3 when `delete_bundle`).
    pub async fn delete_version(&self, application: &str, label: &str, delete_bundle: bool) -> Result<()> {
        self.client
            .delete_application_version()
            .application_name(application)
            .version_label(label)
            .delete_source_bundle(delete_bundle)
            .send()
            .await
            .aws_context(|| format!("failed to delete application version {label}"))?;
        Ok(())
    }

    /// Starts deploying `label` to the environment. `Err(Refused)` carries what the engine can act on.
    pub async fn update_environment(&self, env_id: &str, label: &str) -> Result<Result<UpdateStarted, Refused>> {
        let result = self.client.update_environment().environment_id(env_id).version_label(label).send().await;
        match result {
            Ok(out) => {
                let request_id = out.request_id().map(str::to_owned);
                let mut environment = environment_from!(&out);
                if environment.id.is_empty() {
                    env_id.clone_into(&mut environment.id);
                }
                Ok(Ok(UpdateStarted { environment, request_id }))
            }
            Err(e) => match error_message(&e) {
                Some(message) if error_code(&e).is_some_and(|c| c.starts_with("InvalidParameter")) => {
                    Ok(Err(Refused { reason: classify_update_refusal(message), message: message.to_owned() }))
                }
                _ => Err(e).aws_context(|| format!("failed to update environment {env_id} to version {label}")),
            },
        }
    }

    /// Swaps the CNAMEs of two environments (blue/green); the answer carries only the request's id, the
    /// swap itself completes later (an event says so).
    pub async fn swap_cnames(&self, source_id: &str, destination_id: &str) -> Result<Option<String>> {
        let out = self
            .client
            .swap_environment_cnames()
            .source_environment_id(source_id)
            .destination_environment_id(destination_id)
            .send()
            .await
            .aws_context(|| format!("failed to swap the CNAMEs of environments {source_id} and {destination_id}"))?;
        Ok(out.request_id().map(str::to_owned))
    }

    /// Asks Beanstalk to compile the last lines of the instances' logs; the RequestId its events carry.
    pub async fn request_tail_logs(&self, env_id: &str) -> Result<Option<String>> {
        let out = self
            .client
            .request_environment_info()
            .environment_id(env_id)
            .info_type(EnvironmentInfoType::Tail)
            .send()
            .await
            .aws_context(|| format!("failed to request the logs of environment {env_id} (RequestEnvironmentInfo)"))?;
        Ok(out.request_id().map(str::to_owned))
    }

    /// The compiled tail logs: one presigned URL per instance.
    pub async fn retrieve_tail_logs(&self, env_id: &str) -> Result<Vec<LogEntry>> {
        let out = self
            .client
            .retrieve_environment_info()
            .environment_id(env_id)
            .info_type(EnvironmentInfoType::Tail)
            .send()
            .await
            .aws_context(|| format!("failed to retrieve the logs of environment {env_id} (RetrieveEnvironmentInfo)"))?;
        Ok(out
            .environment_info()
            .iter()
            .filter_map(|i| {
                Some(LogEntry {
                    instance: i.ec2_instance_id().unwrap_or("instance").to_owned(),
                    url: i.message().filter(|m| !m.is_empty())?.to_owned(),
                    sampled_ms: i.sample_timestamp().and_then(|d| d.to_millis().ok()).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Aborts the environment's in-progress update (Beanstalk then rolls back).
    pub async fn abort_update(&self, env_id: &str) -> Result<()> {
        self.client
            .abort_environment_update()
            .environment_id(env_id)
            .send()
            .await
            .aws_context(|| format!("failed to abort the update of environment {env_id}"))?;
        Ok(())
    }

    /// Events of every environment of the application at or after `since_ms`, oldest first (all pages).
    pub async fn events_since(&self, application: &str, since_ms: i64) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        // A bounded number of pages: a verdict never needs more than the newest few thousand events.
        for _ in 0..5 {
            let out = self
                .client
                .describe_events()
                .application_name(application)
                .start_time(DateTime::from_millis(since_ms))
                .set_next_token(token.clone())
                .send()
                .await
                .aws_context(|| "failed to read environment events")?;
            events.extend(out.events().iter().map(event_from_sdk));
            token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        events.sort_by_key(|e| e.date_ms);
        Ok(events)
    }
}

fn version_from_sdk(v: &aws_sdk_elasticbeanstalk::types::ApplicationVersionDescription) -> Version {
    Version {
        label: v.version_label().unwrap_or_default().to_owned(),
        status: v.status().map(|s| VersionStatus::parse(s.as_str())).unwrap_or_default(),
        bucket: v.source_bundle().and_then(|b| b.s3_bucket()).map(str::to_owned),
        key: v.source_bundle().and_then(|b| b.s3_key()).map(str::to_owned),
        created_ms: v.date_created().and_then(|d| d.to_millis().ok()),
    }
}

/// Milliseconds since the epoch, by the local clock (used only when the service gave no time).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_from_the_real_texts() {
        assert_eq!(
            classify_update_refusal(
                "Environment named my-env is in an invalid state for this operation. Must be Ready."
            ),
            Some(UpdateRefusal::Busy)
        );
        assert_eq!(classify_update_refusal("something else"), None);
    }
}
