//! A scripted Elastic Beanstalk for tests of the logic that reacts to its states: the environment follows a
//! timeline on tokio's (paused) clock, events appear at set offsets, and every call is recorded. Served through
//! `aws-smithy-mocks`, so the real SDK serializes requests and parses answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_elasticbeanstalk::Client;
use aws_sdk_elasticbeanstalk::operation::abort_environment_update::AbortEnvironmentUpdateOutput;
use aws_sdk_elasticbeanstalk::operation::check_dns_availability::CheckDnsAvailabilityOutput;
use aws_sdk_elasticbeanstalk::operation::create_application::CreateApplicationOutput;
use aws_sdk_elasticbeanstalk::operation::create_application_version::CreateApplicationVersionOutput;
use aws_sdk_elasticbeanstalk::operation::create_environment::CreateEnvironmentOutput;
use aws_sdk_elasticbeanstalk::operation::create_storage_location::CreateStorageLocationOutput;
use aws_sdk_elasticbeanstalk::operation::delete_application_version::DeleteApplicationVersionOutput;
use aws_sdk_elasticbeanstalk::operation::describe_application_versions::DescribeApplicationVersionsOutput;
use aws_sdk_elasticbeanstalk::operation::describe_applications::DescribeApplicationsOutput;
use aws_sdk_elasticbeanstalk::operation::describe_configuration_settings::DescribeConfigurationSettingsOutput;
use aws_sdk_elasticbeanstalk::operation::describe_environments::DescribeEnvironmentsOutput;
use aws_sdk_elasticbeanstalk::operation::describe_events::DescribeEventsOutput;
use aws_sdk_elasticbeanstalk::operation::list_available_solution_stacks::ListAvailableSolutionStacksOutput;
use aws_sdk_elasticbeanstalk::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_elasticbeanstalk::operation::terminate_environment::TerminateEnvironmentOutput;
use aws_sdk_elasticbeanstalk::types::{
    ApplicationDescription, ApplicationVersionDescription, ApplicationVersionStatus, ConfigurationOptionSetting,
    ConfigurationSettingsDescription, EnvironmentDescription, EnvironmentHealth, EnvironmentStatus, EventDescription,
    EventSeverity, OptionSpecification, S3Location, Tag,
};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use tokio::time::Instant;

use crate::aws::{Clients, retry_config};
use crate::beanstalk::Beanstalk;

/// The EB clock at the start of every test (2023-11-14T22:13:20Z).
pub const BASE_MS: i64 = 1_700_000_000_000;
pub const APP: &str = "app";
pub const ENV: &str = "web-prod";
pub const ENV_ID: &str = "e-abcdef1234";
pub const REQUEST_ID: &str = "11111111-2222-3333-4444-555555555555";

/// One look at the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snap {
    pub status: &'static str,
    pub health: &'static str,
    pub label: &'static str,
}

/// Shorthand for a [`Snap`].
pub const fn snap(status: &'static str, health: &'static str, label: &'static str) -> Snap {
    Snap { status, health, label }
}

/// What the fake does; offsets are from the call that triggers them.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// The environment from the start of the test (offsets from t0); the last entry at or before now applies.
    pub before: Vec<(Duration, Snap)>,
    /// After UpdateEnvironment.
    pub after_update: Vec<(Duration, Snap)>,
    /// Events after UpdateEnvironment: (offset, severity, message, carries the update's RequestId).
    pub update_events: Vec<(Duration, &'static str, &'static str, bool)>,
    /// After AbortEnvironmentUpdate.
    pub after_abort: Vec<(Duration, Snap)>,
    /// After the second and later UpdateEnvironment calls (a rollback), with their events.
    pub after_rollback: Vec<(Duration, Snap)>,
    pub rollback_events: Vec<(Duration, &'static str, &'static str, bool)>,
    /// Existing versions: (label, status).
    pub versions: Vec<(&'static str, &'static str)>,
    /// Status a newly created version reports.
    pub new_version_status: &'static str,
    /// The first DescribeEvents and DescribeEnvironments calls answer `Throttling` this many times before
    /// the SDK's retries get through (the mocks replay retries from the same rule, so these are scripted
    /// as a sequence ending in a neutral answer: no events; the environment as it is at the start).
    pub throttle_first: usize,
    /// The first N UpdateEnvironment calls are refused as busy.
    pub refuse_update_busy: u32,
    /// The environment does not exist (CreateEnvironment launches it on the `after_update` timeline, with the
    /// `update_events`).
    pub no_environment: bool,
    /// CreateEnvironment finds it created by another run at that moment: "already exists", and it launches on
    /// the `after_update` timeline all the same.
    pub created_by_another: bool,
    /// Its settings, as DescribeConfigurationSettings lists them: (namespace, option name, value).
    pub settings: Vec<(&'static str, &'static str, &'static str)>,
    /// Its tags, as ListTagsForResource lists them.
    pub tags: Vec<(&'static str, &'static str)>,
    /// How long TerminateEnvironment takes (Terminating until then).
    pub terminate_after: Duration,
    /// First environment only: the application does not exist (until CreateApplication).
    pub app_missing: bool,
    /// First environment only: CheckDNSAvailability says every prefix is taken.
    pub cname_taken: bool,
}

/// A call the fake received, with its time since t0.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub at: Duration,
    pub op: &'static str,
    /// The environment it named, when it named one.
    pub env: Option<String>,
    /// What it asked besides (UpdateEnvironment and CreateEnvironment: `label=L`, `set NS NAME=VALUE`,
    /// `remove NS NAME`, `tag K=V`, `stack S`).
    pub detail: Vec<String>,
}

/// One environment of the fake.
#[derive(Debug)]
struct Env {
    name: String,
    id: String,
    request_id: String,
    sc: Scenario,
    timeline: Vec<(Duration, Snap)>,
    /// (offset from t0, severity, message, request id)
    events: Vec<(Duration, &'static str, &'static str, Option<String>)>,
    refused: u32,
    updates: u32,
    cname: String,
}

impl Env {
    fn snap(&self, now: Duration) -> Snap {
        self.timeline.iter().rev().find(|(at, _)| *at <= now).map(|(_, s)| *s).unwrap_or(snap("Ready", "Green", "v1"))
    }

    /// Replaces the future of the timeline with `steps` starting `now`.
    fn schedule(&mut self, now: Duration, steps: &[(Duration, Snap)]) {
        self.timeline.retain(|(at, _)| *at <= now);
        self.timeline.extend(steps.iter().map(|(off, s)| (now + *off, *s)));
    }

    fn description(&self, now: Duration) -> EnvironmentDescription {
        let s = self.snap(now);
        EnvironmentDescription::builder()
            .environment_name(&self.name)
            .environment_id(&self.id)
            .application_name(APP)
            .status(EnvironmentStatus::from(s.status))
            .health(EnvironmentHealth::from(s.health))
            .version_label(s.label)
            .cname(&self.cname)
            .environment_arn(self.arn())
            .date_updated(millis(BASE_MS + now.as_millis() as i64))
            .build()
    }

    fn arn(&self) -> String {
        format!("arn:aws:elasticbeanstalk:us-east-1:123456789012:environment/{APP}/{}", self.name)
    }
}

#[derive(Debug)]
struct World {
    t0: Instant,
    envs: Vec<Env>,
    /// Existing versions: (label, status).
    versions: Vec<(&'static str, &'static str)>,
    /// Status a newly created version reports.
    new_version_status: &'static str,
    calls: Vec<Call>,
    created: Vec<String>,
    /// `Process` of each CreateApplicationVersion.
    processed: Vec<bool>,
    /// The application does not exist (yet).
    app_missing: bool,
    cname_taken: bool,
}

impl World {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn record(&mut self, op: &'static str, env: Option<&str>) {
        self.record_detail(op, env, Vec::new());
    }

    fn record_detail(&mut self, op: &'static str, env: Option<&str>, detail: Vec<String>) {
        let at = self.now();
        self.calls.push(Call { at, op, env: env.map(str::to_owned), detail });
    }

    fn env_by_id(&mut self, id: &str) -> Option<&mut Env> {
        self.envs.iter_mut().find(|e| e.id == id && !e.sc.no_environment)
    }
}

/// A call's option settings as `set NS NAME=VALUE` and `remove NS NAME` lines.
fn settings_detail(set: &[ConfigurationOptionSetting], remove: &[OptionSpecification]) -> Vec<String> {
    let set = set.iter().map(|o| {
        format!(
            "set {} {}={}",
            o.namespace().unwrap_or_default(),
            o.option_name().unwrap_or_default(),
            o.value().unwrap_or_default()
        )
    });
    let remove = remove
        .iter()
        .map(|o| format!("remove {} {}", o.namespace().unwrap_or_default(), o.option_name().unwrap_or_default()));
    set.chain(remove).collect()
}

/// The fake service; clone freely, all clones share the world.
#[derive(Debug, Clone)]
pub struct FakeEb {
    world: Arc<Mutex<World>>,
}

fn millis(ms: i64) -> DateTime {
    DateTime::from_millis(ms)
}

fn query_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<ErrorResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>err-1</RequestId></ErrorResponse>"
    );
    let mut resp = HttpResponse::new(
        StatusCode::try_from(status).unwrap_or(StatusCode::try_from(500).unwrap()),
        SdkBody::from(body),
    );
    resp.headers_mut().insert("Content-Type", "text/xml");
    resp
}

impl FakeEb {
    /// A fake with one environment per `(name, scenario)`; versions and the new version's status come from the
    /// first scenario.
    pub fn fleet(envs: Vec<(String, Scenario)>) -> Self {
        let (versions, new_version_status) =
            envs.first().map(|(_, sc)| (sc.versions.clone(), sc.new_version_status)).unwrap_or_default();
        let (app_missing, cname_taken) =
            envs.first().map(|(_, sc)| (sc.app_missing, sc.cname_taken)).unwrap_or_default();
        let envs = envs
            .into_iter()
            .enumerate()
            .map(|(i, (name, sc))| {
                let mut timeline = vec![(Duration::ZERO, snap("Ready", "Green", "v1"))];
                timeline.extend(sc.before.iter().copied());
                let (id, request_id) = if i == 0 {
                    (ENV_ID.to_owned(), REQUEST_ID.to_owned())
                } else {
                    (format!("e-fleet{i:05}"), format!("{REQUEST_ID}-{i}"))
                };
                let cname = format!("{name}.us-east-1.elasticbeanstalk.com");
                Env { name, id, request_id, sc, timeline, events: Vec::new(), refused: 0, updates: 0, cname }
            })
            .collect();
        let world = World {
            t0: Instant::now(),
            envs,
            versions,
            new_version_status,
            calls: Vec::new(),
            created: Vec::new(),
            processed: Vec::new(),
            app_missing,
            cname_taken,
        };
        Self { world: Arc::new(Mutex::new(world)) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|w| w.calls.clone())
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| c.op == op).count()
    }

    /// When UpdateEnvironment was (last) called.
    pub fn updated_at(&self) -> Option<Duration> {
        self.calls().iter().rev().find(|c| c.op == "UpdateEnvironment").map(|c| c.at)
    }

    /// When UpdateEnvironment was (last) called for environment `name`.
    pub fn updated_at_env(&self, name: &str) -> Option<Duration> {
        self.calls().iter().rev().find(|c| c.op == "UpdateEnvironment" && c.env.as_deref() == Some(name)).map(|c| c.at)
    }

    /// `Process` of each CreateApplicationVersion call.
    pub fn processed(&self) -> Vec<bool> {
        self.with(|w| w.processed.clone())
    }

    /// Labels created through CreateApplicationVersion.
    pub fn created(&self) -> Vec<String> {
        self.with(|w| w.created.clone())
    }

    /// The SDK client wired to this fake, with the production retry settings.
    pub fn client(&self) -> Client {
        let rules = self.rules();
        mock_client!(aws_sdk_elasticbeanstalk, RuleMode::MatchAny, rules.iter(), |c| c.retry_config(retry_config()))
    }

    /// Clients for the engine: this fake for Beanstalk, S3 answering "not found" to HEAD and OK to PUT.
    pub fn clients(&self) -> Clients {
        let head = mock!(aws_sdk_s3::Client::head_object)
            .then_http_response(|| HttpResponse::new(StatusCode::try_from(404).unwrap(), SdkBody::empty()));
        let put = mock!(aws_sdk_s3::Client::put_object)
            .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
        let get = mock!(aws_sdk_s3::Client::get_object)
            .then_http_response(|| HttpResponse::new(StatusCode::try_from(404).unwrap(), SdkBody::empty()));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head, &put, &get]);
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, Vec::<&Rule>::new());
        Clients { eb: Beanstalk::new(self.client()), s3, ecr, region: "us-east-1".into() }
    }

    fn rules(&self) -> Vec<Rule> {
        let f = self.clone();
        let describe_envs = mock!(Client::describe_environments).then_compute_response(move |req| {
            f.with(|w| {
                w.record("DescribeEnvironments", None);
                let now = w.now();
                let (names, ids) = (req.environment_names(), req.environment_ids());
                let envs = w
                    .envs
                    .iter()
                    .filter(|e| !e.sc.no_environment)
                    .filter(|e| names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(&e.name)))
                    .filter(|e| ids.is_empty() || ids.contains(&e.id))
                    .map(|e| e.description(now))
                    .collect();
                MockResponse::Output(DescribeEnvironmentsOutput::builder().set_environments(Some(envs)).build())
            })
        });
        let f = self.clone();
        let describe_events = mock!(Client::describe_events).then_compute_response(move |req| {
            f.with(|w| {
                w.record("DescribeEvents", req.environment_name());
                let now = w.now();
                let since = req.start_time().and_then(|t| t.to_millis().ok()).unwrap_or(i64::MIN);
                let mut all: Vec<(Duration, EventDescription)> = Vec::new();
                for env in &w.envs {
                    if req.environment_name().is_some_and(|n| n != env.name)
                        || req.environment_id().is_some_and(|i| i != env.id)
                    {
                        continue;
                    }
                    for (at, sev, msg, rid) in
                        env.events.iter().filter(|(at, ..)| *at <= now && BASE_MS + at.as_millis() as i64 >= since)
                    {
                        let event = EventDescription::builder()
                            .event_date(millis(BASE_MS + at.as_millis() as i64))
                            .severity(EventSeverity::from(*sev))
                            .message(*msg)
                            .set_request_id(rid.clone())
                            .environment_name(&env.name)
                            .application_name(APP)
                            .build();
                        all.push((*at, event));
                    }
                }
                all.sort_by_key(|(at, _)| std::cmp::Reverse(*at)); // newest first, as the service answers
                let events = all.into_iter().map(|(_, e)| e).collect();
                MockResponse::Output(DescribeEventsOutput::builder().set_events(Some(events)).build())
            })
        });
        let f = self.clone();
        let update = mock!(Client::update_environment).then_compute_response(move |req| {
            f.with(|w| {
                let id = req.environment_id().unwrap_or_default().to_owned();
                let name = w.env_by_id(&id).map(|e| e.name.clone());
                let mut detail = vec![format!("label={}", req.version_label().unwrap_or_default())];
                detail.extend(settings_detail(req.option_settings(), req.options_to_remove()));
                w.record_detail("UpdateEnvironment", name.as_deref(), detail);
                let now = w.now();
                let Some(env) = w.env_by_id(&id) else {
                    return MockResponse::Http(query_error(400, "InvalidParameterValue", &format!("No Environment found for EnvironmentId = '{id}'.")));
                };
                if env.refused < env.sc.refuse_update_busy || env.snap(now).status != "Ready" {
                    env.refused += 1;
                    let message = format!("Environment named {} is in an invalid state for this operation. Must be Ready.", env.name);
                    return MockResponse::Http(query_error(400, "InvalidParameterValue", &message));
                }
                let label = req.version_label().unwrap_or_default().to_owned();
                env.updates += 1;
                let (steps, events) = if env.updates == 1 {
                    (env.sc.after_update.clone(), env.sc.update_events.clone())
                } else {
                    (env.sc.after_rollback.clone(), env.sc.rollback_events.clone())
                };
                env.schedule(now, &steps);
                let rid = if env.updates == 1 { env.request_id.clone() } else { format!("{}-{}", env.request_id, env.updates) };
                let scheduled: Vec<_> = events
                    .iter()
                    .map(|(off, sev, msg, ours)| (now + *off, *sev, *msg, ours.then(|| rid.clone())))
                    .collect();
                env.events.extend(scheduled);
                let at = DateTime::from_millis(BASE_MS + now.as_millis() as i64)
                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                    .unwrap_or_default();
                let (name, id, cname) = (&env.name, &env.id, &env.cname);
                let body = format!(
                    "<UpdateEnvironmentResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><UpdateEnvironmentResult><EnvironmentName>{name}</EnvironmentName><EnvironmentId>{id}</EnvironmentId><ApplicationName>{APP}</ApplicationName><VersionLabel>{label}</VersionLabel><Status>Updating</Status><Health>Grey</Health><DateUpdated>{at}</DateUpdated><AbortableOperationInProgress>true</AbortableOperationInProgress><CNAME>{cname}</CNAME></UpdateEnvironmentResult><ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></UpdateEnvironmentResponse>"
                );
                let mut resp = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body));
                resp.headers_mut().insert("x-amzn-RequestId", rid);
                resp.headers_mut().insert("Content-Type", "text/xml");
                MockResponse::Http(resp)
            })
        });
        let f = self.clone();
        let abort = mock!(Client::abort_environment_update).then_compute_output(move |req| {
            f.with(|w| {
                let id = req.environment_id().unwrap_or_default().to_owned();
                let name = w.env_by_id(&id).map(|e| e.name.clone());
                w.record("AbortEnvironmentUpdate", name.as_deref());
                let now = w.now();
                if let Some(env) = w.env_by_id(&id) {
                    let steps = env.sc.after_abort.clone();
                    if !steps.is_empty() {
                        env.schedule(now, &steps);
                    }
                }
                AbortEnvironmentUpdateOutput::builder().build()
            })
        });
        let f = self.clone();
        let request_logs = mock!(Client::request_environment_info).then_compute_response(move |req| {
            f.with(|w| {
                let id = req.environment_id().unwrap_or_default().to_owned();
                let name = w.env_by_id(&id).map(|e| e.name.clone());
                w.record("RequestEnvironmentInfo", name.as_deref());
                let now = w.now();
                let rid = format!("logs-{id}");
                if let Some(env) = w.env_by_id(&id) {
                    env.events.push((now, "INFO", "requestEnvironmentInfo is starting.", Some(rid.clone())));
                    env.events.push((now + Duration::from_secs(1), "INFO", "Pulled logs for environment instances.", Some(rid.clone())));
                }
                let body = format!(
                    "<RequestEnvironmentInfoResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></RequestEnvironmentInfoResponse>"
                );
                let mut resp = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body));
                resp.headers_mut().insert("x-amzn-RequestId", rid);
                resp.headers_mut().insert("Content-Type", "text/xml");
                MockResponse::Http(resp)
            })
        });
        let f = self.clone();
        // No instance logs to download here (the end-to-end tests fetch real ones): an empty list.
        let retrieve_logs = mock!(Client::retrieve_environment_info).then_compute_output(move |_| {
            f.with(|w| w.record("RetrieveEnvironmentInfo", None));
            aws_sdk_elasticbeanstalk::operation::retrieve_environment_info::RetrieveEnvironmentInfoOutput::builder()
                .build()
        });
        let f = self.clone();
        let swap = mock!(Client::swap_environment_cnames).then_compute_output(move |req| {
            f.with(|w| {
                let (a, b) = (req.source_environment_id().unwrap_or_default(), req.destination_environment_id().unwrap_or_default());
                w.record("SwapEnvironmentCNAMEs", None);
                let now = w.now();
                let (Some(i), Some(j)) = (w.envs.iter().position(|e| e.id == a), w.envs.iter().position(|e| e.id == b)) else {
                    return aws_sdk_elasticbeanstalk::operation::swap_environment_cnames::SwapEnvironmentCnamEsOutput::builder().build();
                };
                let (ci, cj) = (w.envs[i].cname.clone(), w.envs[j].cname.clone());
                w.envs[i].cname = cj;
                w.envs[j].cname = ci;
                let done = "Completed swapping CNAMEs for environments.";
                for k in [i, j] {
                    w.envs[k].events.push((now + Duration::from_secs(3), "INFO", done, None));
                }
                aws_sdk_elasticbeanstalk::operation::swap_environment_cnames::SwapEnvironmentCnamEsOutput::builder().build()
            })
        });
        let f = self.clone();
        let versions = mock!(Client::describe_application_versions).then_compute_output(move |req| {
            f.with(|w| {
                w.record("DescribeApplicationVersions", None);
                let wanted = req.version_labels();
                let mut all: Vec<(String, String)> =
                    w.versions.iter().map(|(l, s)| ((*l).to_owned(), (*s).to_owned())).collect();
                all.extend(w.created.iter().map(|l| (l.clone(), w.new_version_status.to_owned())));
                let found = all
                    .into_iter()
                    .filter(|(l, _)| wanted.is_empty() || wanted.contains(l))
                    .map(|(l, s)| {
                        ApplicationVersionDescription::builder()
                            .application_name(APP)
                            .version_label(l.clone())
                            .status(ApplicationVersionStatus::from(s.as_str()))
                            .source_bundle(
                                S3Location::builder().s3_bucket("bucket").s3_key(format!("{APP}/{l}.zip")).build(),
                            )
                            .build()
                    })
                    .collect();
                DescribeApplicationVersionsOutput::builder().set_application_versions(Some(found)).build()
            })
        });
        let f = self.clone();
        let create = mock!(Client::create_application_version).then_compute_output(move |req| {
            f.with(|w| {
                w.record("CreateApplicationVersion", None);
                w.processed.push(req.process().unwrap_or(false));
                let label = req.version_label().unwrap_or_default().to_owned();
                w.created.push(label.clone());
                CreateApplicationVersionOutput::builder()
                    .application_version(
                        ApplicationVersionDescription::builder()
                            .version_label(label)
                            .status(ApplicationVersionStatus::from("PROCESSING"))
                            .build(),
                    )
                    .build()
            })
        });
        let f = self.clone();
        let delete = mock!(Client::delete_application_version).then_compute_output(move |req| {
            f.with(|w| {
                w.record("DeleteApplicationVersion", None);
                let label = req.version_label().unwrap_or_default();
                w.created.retain(|l| l != label);
                DeleteApplicationVersionOutput::builder().build()
            })
        });
        let f = self.clone();
        let storage = mock!(Client::create_storage_location).then_compute_output(move |_| {
            f.with(|w| w.record("CreateStorageLocation", None));
            CreateStorageLocationOutput::builder().s3_bucket("elasticbeanstalk-us-east-1-123456789012").build()
        });
        let f = self.clone();
        let apps = mock!(Client::describe_applications).then_compute_output(move |req| {
            let missing = f.with(|w| {
                w.record("DescribeApplications", None);
                w.app_missing
            });
            let apps = req
                .application_names()
                .iter()
                .filter(|n| *n == APP && !missing)
                .map(|n| ApplicationDescription::builder().application_name(n).build())
                .collect();
            DescribeApplicationsOutput::builder().set_applications(Some(apps)).build()
        });
        let f = self.clone();
        let settings = mock!(Client::describe_configuration_settings).then_compute_output(move |req| {
            f.with(|w| {
                let name = req.environment_name().unwrap_or_default().to_owned();
                w.record("DescribeConfigurationSettings", Some(&name));
                let options = w
                    .envs
                    .iter()
                    .find(|e| e.name == name)
                    .map(|e| e.sc.settings.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(ns, n, v)| {
                        ConfigurationOptionSetting::builder().namespace(ns).option_name(n).value(v).build()
                    })
                    .collect();
                DescribeConfigurationSettingsOutput::builder()
                    .configuration_settings(
                        ConfigurationSettingsDescription::builder()
                            .application_name(APP)
                            .environment_name(name)
                            .set_option_settings(Some(options))
                            .build(),
                    )
                    .build()
            })
        });
        let f = self.clone();
        let create_env = mock!(Client::create_environment).then_compute_response(move |req| {
            f.with(|w| {
                let name = req.environment_name().unwrap_or_default().to_owned();
                let mut detail = vec![format!("label={}", req.version_label().unwrap_or_default())];
                detail.extend(req.solution_stack_name().map(|s| format!("stack {s}")));
                detail.extend(req.cname_prefix().map(|c| format!("cname {c}")));
                detail.extend(
                    req.tags()
                        .iter()
                        .map(|t| format!("tag {}={}", t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                );
                detail.extend(settings_detail(req.option_settings(), &[]));
                w.record_detail("CreateEnvironment", Some(&name), detail);
                let now = w.now();
                let Some(env) = w.envs.iter_mut().find(|e| e.name == name) else {
                    return MockResponse::Http(query_error(
                        400,
                        "InvalidParameterValue",
                        "unknown environment in the fake",
                    ));
                };
                if !env.sc.no_environment {
                    let message = format!("Environment {name} already exists.");
                    return MockResponse::Http(query_error(400, "InvalidParameterValue", &message));
                }
                env.sc.no_environment = false;
                env.timeline = vec![(Duration::ZERO, snap("Launching", "Grey", ""))];
                let steps = env.sc.after_update.clone();
                env.schedule(now, &steps);
                let rid = env.request_id.clone();
                let events: Vec<_> = env
                    .sc
                    .update_events
                    .iter()
                    .map(|(off, sev, msg, ours)| (now + *off, *sev, *msg, ours.then(|| rid.clone())))
                    .collect();
                env.events.extend(events);
                if env.sc.created_by_another {
                    let message = format!("Environment {name} already exists.");
                    return MockResponse::Http(query_error(400, "InvalidParameterValue", &message));
                }
                MockResponse::Output(
                    CreateEnvironmentOutput::builder()
                        .environment_name(&env.name)
                        .environment_id(&env.id)
                        .application_name(APP)
                        .status(EnvironmentStatus::Launching)
                        .health(EnvironmentHealth::Grey)
                        .version_label(req.version_label().unwrap_or_default())
                        .cname(&env.cname)
                        .environment_arn(env.arn())
                        .date_updated(millis(BASE_MS + now.as_millis() as i64))
                        .build(),
                )
            })
        });
        let f = self.clone();
        let terminate = mock!(Client::terminate_environment).then_compute_output(move |req| {
            f.with(|w| {
                let id = req.environment_id().unwrap_or_default().to_owned();
                let name = w.env_by_id(&id).map(|e| e.name.clone());
                w.record("TerminateEnvironment", name.as_deref());
                let now = w.now();
                let mut out =
                    TerminateEnvironmentOutput::builder().environment_id(&id).status(EnvironmentStatus::Terminating);
                if let Some(env) = w.env_by_id(&id) {
                    let label = env.snap(now).label;
                    let after = env.sc.terminate_after;
                    env.schedule(
                        now,
                        &[
                            (Duration::ZERO, snap("Terminating", "Grey", label)),
                            (after, snap("Terminated", "Grey", label)),
                        ],
                    );
                    let events = [
                        (Duration::ZERO, "terminateEnvironment is starting."),
                        (after, "terminateEnvironment completed successfully."),
                    ];
                    env.events.extend(events.into_iter().map(|(off, msg)| (now + off, "INFO", msg, None)));
                    out = out.environment_name(&env.name).application_name(APP);
                }
                out.build()
            })
        });
        let f = self.clone();
        let tags = mock!(Client::list_tags_for_resource).then_compute_output(move |req| {
            f.with(|w| {
                w.record("ListTagsForResource", None);
                let arn = req.resource_arn().unwrap_or_default();
                let tags = w
                    .envs
                    .iter()
                    .find(|e| e.arn() == arn)
                    .map(|e| e.sc.tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect())
                    .unwrap_or_default();
                ListTagsForResourceOutput::builder().resource_arn(arn).set_resource_tags(Some(tags)).build()
            })
        });
        let f = self.clone();
        let dns = mock!(Client::check_dns_availability).then_compute_output(move |req| {
            f.with(|w| {
                w.record("CheckDNSAvailability", None);
                let cname = format!("{}.us-east-1.elasticbeanstalk.com", req.cname_prefix().unwrap_or_default());
                CheckDnsAvailabilityOutput::builder().available(!w.cname_taken).fully_qualified_cname(cname).build()
            })
        });
        let f = self.clone();
        let stacks = mock!(Client::list_available_solution_stacks).then_compute_output(move |_| {
            f.with(|w| w.record("ListAvailableSolutionStacks", None));
            ListAvailableSolutionStacksOutput::builder()
                .solution_stacks("64bit Amazon Linux 2023 v4.3.0 running Docker")
                .solution_stacks("64bit Amazon Linux 2023 v4.4.1 running Docker")
                .solution_stacks("64bit Amazon Linux 2 v4.0.0 running Docker")
                .build()
        });
        let f = self.clone();
        let create_app = mock!(Client::create_application).then_compute_output(move |req| {
            f.with(|w| {
                w.record("CreateApplication", None);
                w.app_missing = false;
                CreateApplicationOutput::builder()
                    .application(
                        ApplicationDescription::builder()
                            .application_name(req.application_name().unwrap_or_default())
                            .build(),
                    )
                    .build()
            })
        });
        let mut rules = Vec::new();
        let throttles = self.with(|w| w.envs.first().map_or(0, |e| e.sc.throttle_first));
        if throttles > 0 {
            let throttle = || query_error(400, "Throttling", "Rate exceeded");
            rules.push(
                mock!(Client::describe_events)
                    .sequence()
                    .http_response(throttle)
                    .times(throttles)
                    .output(|| DescribeEventsOutput::builder().build())
                    .build(),
            );
            rules.push(
                mock!(Client::describe_environments)
                    .sequence()
                    .http_response(throttle)
                    .times(throttles)
                    .output(|| {
                        let env = Env {
                            name: ENV.to_owned(),
                            id: ENV_ID.to_owned(),
                            request_id: REQUEST_ID.to_owned(),
                            sc: Scenario::default(),
                            timeline: Vec::new(),
                            events: Vec::new(),
                            refused: 0,
                            updates: 0,
                            cname: "web-prod.us-east-1.elasticbeanstalk.com".to_owned(),
                        };
                        DescribeEnvironmentsOutput::builder().environments(env.description(Duration::ZERO)).build()
                    })
                    .build(),
            );
        }
        rules.extend([
            describe_envs,
            describe_events,
            update,
            abort,
            swap,
            request_logs,
            retrieve_logs,
            versions,
            create,
            delete,
            storage,
            apps,
            settings,
            create_env,
            terminate,
            tags,
            dns,
            stacks,
            create_app,
        ]);
        rules
    }
}
