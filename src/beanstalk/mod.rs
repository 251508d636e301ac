//! Elastic Beanstalk calls, with the answers reduced to the [`model`] the engine reasons about.

pub mod model;

use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};
use aws_sdk_elasticbeanstalk::Client;
use aws_sdk_elasticbeanstalk::operation::RequestId;
use aws_sdk_elasticbeanstalk::types::{
    ConfigurationOptionSetting, EnvironmentInfoType, EventDescription, OptionSpecification, S3Location, Tag,
};
use aws_smithy_types::DateTime;

pub use model::{Environment, Event, Health, Status, Version, VersionStatus};

use crate::options::{Changes, OptionKey};
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
            arn: e.environment_arn().filter(|a| !a.is_empty()).map(str::to_owned),
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

/// What CreateEnvironment is asked to launch.
#[derive(Debug, Clone)]
pub struct NewEnvironment<'a> {
    pub application: &'a str,
    pub name: &'a str,
    pub label: &'a str,
    /// `Ok(solution stack name)` or `Err(platform ARN)`.
    pub platform: Result<&'a str, &'a str>,
    pub cname_prefix: Option<&'a str>,
    pub tags: &'a [(String, String)],
    /// Options it starts with (removals mean nothing to a new environment).
    pub settings: &'a Changes,
}

/// How a CreateEnvironment call ended.
#[derive(Debug, Clone)]
pub enum Launched {
    /// Launching, as the answer describes it.
    Started(Box<UpdateStarted>),
    /// Another caller created it first ("Environment N already exists.").
    AlreadyExists,
}

fn option_settings(set: &[(OptionKey, String)]) -> Vec<ConfigurationOptionSetting> {
    set.iter()
        .map(|(k, v)| {
            ConfigurationOptionSetting::builder()
                .namespace(&k.namespace)
                .option_name(&k.name)
                .set_resource_name(k.resource.clone())
                .value(v)
                .build()
        })
        .collect()
}

fn option_specs(remove: &[OptionKey]) -> Vec<OptionSpecification> {
    remove
        .iter()
        .map(|k| {
            OptionSpecification::builder()
                .namespace(&k.namespace)
                .option_name(&k.name)
                .set_resource_name(k.resource.clone())
                .build()
        })
        .collect()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
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

    /// The environments of `application` that are not Terminated (Terminating ones included): all of them, or
    /// those among `names`.
    pub async fn not_terminated(&self, application: &str, names: Option<&[String]>) -> Result<Vec<Environment>> {
        let out = self
            .client
            .describe_environments()
            .application_name(application)
            .set_environment_names(names.map(<[String]>::to_vec))
            .include_deleted(false)
            .send()
            .await
            .aws_context(|| format!("failed to describe the environments of application {application}"))?;
        Ok(out.environments().iter().map(|e| environment_from!(e)).filter(|e| e.status != Status::Terminated).collect())
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
                        "; the region holds as many application versions as its quota allows: set keep-versions (e.g. keep-versions: 50) so each deploy deletes the oldest ones nothing runs, set a version lifecycle policy on the application, or request a quota increase"
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

    /// Starts deploying `label` to the environment, with `settings` in the same call (so the version never runs
    /// with the settings of another). `Err(Refused)` carries what the engine can act on.
    pub async fn update_environment(
        &self,
        env_id: &str,
        label: &str,
        settings: &Changes,
    ) -> Result<Result<UpdateStarted, Refused>> {
        let mut call = self.client.update_environment().environment_id(env_id).version_label(label);
        if !settings.set.is_empty() {
            call = call.set_option_settings(Some(option_settings(&settings.set)));
        }
        if !settings.remove.is_empty() {
            call = call.set_options_to_remove(Some(option_specs(&settings.remove)));
        }
        let result = call.send().await;
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

    /// The environment's settings as DescribeConfigurationSettings lists them.
    pub async fn configuration(&self, application: &str, environment: &str) -> Result<Vec<(OptionKey, String)>> {
        let out = self
            .client
            .describe_configuration_settings()
            .application_name(application)
            .environment_name(environment)
            .send()
            .await
            .aws_context(|| format!("failed to read the configuration settings of environment {environment}"))?;
        Ok(out
            .configuration_settings()
            .iter()
            .flat_map(|c| c.option_settings())
            .filter_map(|o| {
                let key = OptionKey {
                    namespace: o.namespace()?.to_owned(),
                    name: o.option_name()?.to_owned(),
                    resource: o.resource_name().filter(|r| !r.is_empty()).map(str::to_owned),
                };
                Some((key, o.value().unwrap_or_default().to_owned()))
            })
            .collect())
    }

    /// Creates the application; `false` when it exists already (another run created it first).
    pub async fn create_application(&self, application: &str, tags: &[(String, String)]) -> Result<bool> {
        let result = self
            .client
            .create_application()
            .application_name(application)
            .description("Created by eb-deploy")
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if error_message(&e).is_some_and(|m| m.contains("already exists")) => Ok(false),
            Err(e) => Err(e).aws_context(|| format!("failed to create application {application}")),
        }
    }

    /// Whether `PREFIX.REGION.elasticbeanstalk.com` is free, and that name.
    pub async fn cname_available(&self, prefix: &str) -> Result<(bool, String)> {
        let out = self
            .client
            .check_dns_availability()
            .cname_prefix(prefix)
            .send()
            .await
            .aws_context(|| format!("failed to check whether the CNAME prefix {prefix} is available"))?;
        Ok((out.available().unwrap_or(false), out.fully_qualified_cname().unwrap_or(prefix).to_owned()))
    }

    /// The solution stacks Beanstalk offers.
    pub async fn solution_stacks(&self) -> Result<Vec<String>> {
        let out = self
            .client
            .list_available_solution_stacks()
            .send()
            .await
            .aws_context(|| "failed to list Elastic Beanstalk's solution stacks (ListAvailableSolutionStacks)")?;
        Ok(out.solution_stacks().to_vec())
    }

    /// Creates an environment launched with a version.
    pub async fn create_environment(&self, new: &NewEnvironment<'_>) -> Result<Launched> {
        let mut call = self
            .client
            .create_environment()
            .application_name(new.application)
            .environment_name(new.name)
            .version_label(new.label)
            .set_cname_prefix(new.cname_prefix.map(str::to_owned))
            .set_tags(Some(sdk_tags(new.tags)));
        call = match new.platform {
            Ok(stack) => call.solution_stack_name(stack),
            Err(arn) => call.platform_arn(arn),
        };
        if !new.settings.set.is_empty() {
            call = call.set_option_settings(Some(option_settings(&new.settings.set)));
        }
        match call.send().await {
            Ok(out) => {
                let request_id = out.request_id().map(str::to_owned);
                Ok(Launched::Started(Box::new(UpdateStarted { environment: environment_from!(&out), request_id })))
            }
            Err(e) if error_message(&e).is_some_and(|m| m.contains("already exists")) => Ok(Launched::AlreadyExists),
            Err(e) => {
                Err(e).aws_context(|| format!("failed to create environment {} in {}", new.name, new.application))
            }
        }
    }

    /// Starts terminating the environment; the answer describes it Terminating.
    pub async fn terminate(&self, env_id: &str, name: &str) -> Result<UpdateStarted> {
        let out = self
            .client
            .terminate_environment()
            .environment_id(env_id)
            .send()
            .await
            .aws_context(|| format!("failed to terminate environment {name}"))?;
        let request_id = out.request_id().map(str::to_owned);
        let mut environment = environment_from!(&out);
        if environment.id.is_empty() {
            env_id.clone_into(&mut environment.id);
        }
        Ok(UpdateStarted { environment, request_id })
    }

    /// The tags of a resource, by ARN.
    pub async fn tags(&self, arn: &str) -> Result<Vec<(String, String)>> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .aws_context(|| format!("failed to read the tags of {arn}"))?;
        Ok(out
            .resource_tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect())
    }

    /// Every version of `application` (every version of the region when `None`), newest first; at most
    /// `max_pages` pages of 1,000.
    pub async fn versions(&self, application: Option<&str>, max_pages: usize) -> Result<Vec<Version>> {
        let mut versions = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..max_pages.max(1) {
            let out = self
                .client
                .describe_application_versions()
                .set_application_name(application.map(str::to_owned))
                .max_records(1000)
                .set_next_token(token.clone())
                .send()
                .await
                .aws_context(|| match application {
                    Some(app) => format!("failed to list the versions of application {app}"),
                    None => "failed to list the region's application versions".to_owned(),
                })?;
            versions.extend(out.application_versions().iter().map(version_from_sdk));
            token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(v.created_ms));
        Ok(versions)
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
