//! The API operations: validation, bookkeeping and the XML each one answers with.

use std::sync::Arc;

use tokio::sync::watch;

use crate::bundle;
use crate::deploy::{self, Control, Job, Kind, TargetVersion};
use crate::ids;
use crate::options;
use crate::protocol::Doc;
use crate::protocol::paging;
use crate::protocol::time::now_ms;
use crate::protocol::{ApiError, Params};
use crate::proxy::Proxy;
use crate::render;
use crate::state::{
    AppVersion, Application, EnvStatus, Environment, EventScope, Health, HealthStatus, Severity, Sim, VersionStatus,
};
use crate::store::StoreError;
use crate::tags;

/// Most applications an account may have.
pub const MAX_APPLICATIONS: usize = 75;

/// Runs operation `op`; `Ok(None)` for operations without output.
pub async fn dispatch(sim: &Arc<Sim>, op: &str, p: &Params, rid: &str) -> Result<Option<Doc>, ApiError> {
    let out = match op {
        "CreateStorageLocation" => create_storage_location(sim).await?,
        "CreateApplication" => create_application(sim, p)?,
        "DescribeApplications" => describe_applications(sim, p),
        "CreateApplicationVersion" => create_application_version(sim, p).await?,
        "DescribeApplicationVersions" => describe_application_versions(sim, p)?,
        "DeleteApplicationVersion" => {
            delete_application_version(sim, p).await?;
            return Ok(None);
        }
        "CreateEnvironment" => create_environment(sim, p, rid).await?,
        "DescribeEnvironments" => describe_environments(sim, p)?,
        "UpdateEnvironment" => update_environment(sim, p, rid)?,
        "DescribeEvents" => describe_events(sim, p)?,
        "DescribeEnvironmentHealth" => describe_environment_health(sim, p)?,
        "AbortEnvironmentUpdate" => {
            abort_environment_update(sim, p, rid)?;
            return Ok(None);
        }
        "SwapEnvironmentCNAMEs" => {
            swap_environment_cnames(sim, p, rid)?;
            return Ok(None);
        }
        "RequestEnvironmentInfo" => {
            crate::logs::request(sim, p, rid)?;
            return Ok(None);
        }
        "RetrieveEnvironmentInfo" => crate::logs::retrieve(sim, p).await?,
        "DescribeConfigurationSettings" => describe_configuration_settings(sim, p)?,
        "CheckDNSAvailability" => check_dns_availability(sim, p)?,
        "ListAvailableSolutionStacks" => list_available_solution_stacks(),
        "TerminateEnvironment" => terminate_environment(sim, p, rid)?,
        "ListTagsForResource" => tags::list(sim, p)?,
        "UpdateTagsForResource" => {
            tags::update(sim, p, rid)?;
            return Ok(None);
        }
        other => return Err(ApiError::invalid_action(other)),
    };
    Ok(Some(out))
}

/// Whether `op` is an operation ebsim implements.
pub fn known(op: &str) -> bool {
    matches!(
        op,
        "CreateStorageLocation"
            | "CreateApplication"
            | "DescribeApplications"
            | "CreateApplicationVersion"
            | "DescribeApplicationVersions"
            | "DeleteApplicationVersion"
            | "CreateEnvironment"
            | "DescribeEnvironments"
            | "UpdateEnvironment"
            | "DescribeEvents"
            | "DescribeEnvironmentHealth"
            | "AbortEnvironmentUpdate"
            | "SwapEnvironmentCNAMEs"
            | "RequestEnvironmentInfo"
            | "RetrieveEnvironmentInfo"
            | "DescribeConfigurationSettings"
            | "CheckDNSAvailability"
            | "ListAvailableSolutionStacks"
            | "TerminateEnvironment"
            | "ListTagsForResource"
            | "UpdateTagsForResource"
    )
}

// ---------- validation ----------

fn check_len(param: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max { Err(ApiError::length(param, value, min, max)) } else { Ok(()) }
}

fn opt_len(p: &Params, param: &str, max: usize) -> Result<Option<String>, ApiError> {
    let v = p.string(param);
    if let Some(v) = &v {
        check_len(param, v, 0, max)?;
    }
    Ok(v)
}

/// Environment names: 4–40 letters, digits or hyphens, no hyphen at either end.
pub fn check_env_name(name: &str) -> Result<(), ApiError> {
    check_len("EnvironmentName", name, 4, 40)?;
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(ApiError::invalid_value(format!(
            "Value {name} at 'EnvironmentName' failed to satisfy constraint: Member must contain only letters, digits, and the dash character and may not start or end with a dash"
        )));
    }
    Ok(())
}

fn app_name(p: &Params) -> Result<String, ApiError> {
    let name = p.required("ApplicationName")?;
    check_len("ApplicationName", &name, 1, 100)?;
    Ok(name)
}

fn no_app(name: &str) -> ApiError {
    ApiError::invalid_value(format!("No Application named '{name}' found."))
}

fn no_version(label: &str) -> ApiError {
    ApiError::invalid_value(format!("No Application Version named '{label}' found."))
}

fn not_ready(env: &str) -> ApiError {
    ApiError::invalid_value(format!(
        "Environment named {env} is in an invalid state for this operation. Must be Ready."
    ))
}

fn no_env(name: Option<&str>, id: Option<&str>) -> ApiError {
    match (name, id) {
        (Some(n), _) => ApiError::invalid_value(format!("No Environment found for EnvironmentName = '{n}'.")),
        (None, Some(i)) => ApiError::invalid_value(format!("No Environment found for EnvironmentId = '{i}'.")),
        (None, None) => ApiError::invalid_value("No Environment found."),
    }
}

// ---------- storage and applications ----------

async fn create_storage_location(sim: &Arc<Sim>) -> Result<Doc, ApiError> {
    let bucket = sim.cfg.storage_bucket();
    sim.store.ensure_bucket(&bucket).await.map_err(|e| {
        tracing::error!("failed to create storage bucket {bucket}: {e}");
        ApiError::internal()
    })?;
    let mut x = Doc::new();
    x.leaf("S3Bucket", &bucket);
    Ok(x)
}

fn create_application(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let name = app_name(p)?;
    let description = opt_len(p, "Description", 200)?;
    let tags = tags::from_params(p, "Tags")?;
    tags::check_count(&tags, &sim.app_arn(&name))?;
    let mut st = sim.state();
    if st.app(&name).is_some() {
        return Err(ApiError::invalid_value(format!("Application {name} already exists.")));
    }
    if st.apps.len() >= MAX_APPLICATIONS {
        return Err(ApiError::new(
            400,
            "TooManyApplicationsException",
            format!("You cannot have more than {MAX_APPLICATIONS} Applications."),
        ));
    }
    let now = now_ms();
    let seq = st.seq();
    st.apps.push(Application { seq, name: name.clone(), description, created_ms: now, updated_ms: now, tags });
    let mut x = Doc::new();
    x.open("Application");
    if let Some(app) = st.app(&name) {
        render::application(&mut x, sim, &st, app);
    }
    x.close("Application");
    Ok(x)
}

fn describe_applications(sim: &Arc<Sim>, p: &Params) -> Doc {
    let names = p.list("ApplicationNames");
    let st = sim.state();
    let apps: Vec<&Application> = st.apps.iter().filter(|a| names.is_empty() || names.contains(&a.name)).collect();
    let mut x = Doc::new();
    x.list("Applications", &apps, |x, a| render::application(x, sim, &st, a));
    x
}

// ---------- versions ----------

async fn create_application_version(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let app = app_name(p)?;
    let label = p.required("VersionLabel")?;
    check_len("VersionLabel", &label, 1, 100)?;
    let description = opt_len(p, "Description", 200)?;
    let auto_create = p.bool("AutoCreateApplication")?.unwrap_or(false);
    let process = p.bool("Process")?.unwrap_or(false);
    let tags = tags::from_params(p, "Tags")?;
    tags::check_count(&tags, &sim.version_arn(&app, &label))?;
    let bundle = match (p.member("SourceBundle", "S3Bucket"), p.member("SourceBundle", "S3Key")) {
        (Some(b), Some(k)) => {
            check_len("S3Bucket", &b, 0, 255)?;
            check_len("S3Key", &k, 0, 1024)?;
            Some((b, k))
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid_combination(
                "Both S3Bucket and S3Key must be specified in the source bundle.",
            ));
        }
    };
    // Cheap checks before the S3 round trip; repeated under the lock after it.
    pre_check_version(sim, &app, &label, auto_create)?;
    if let Some((b, k)) = &bundle {
        match sim.store.head(b, k).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(ApiError::invalid_combination(format!(
                    "Unable to download from S3 location (Bucket: {b}  Key: {k}). Reason: Not Found"
                )));
            }
            Err(StoreError::Other(e)) => {
                tracing::error!("failed to check source bundle s3://{b}/{k}: {e}");
                return Err(ApiError::internal());
            }
        }
    }
    let mut st = sim.state();
    pre_check_version_locked(sim, &st, &app, &label, auto_create)?;
    let now = now_ms();
    if st.app(&app).is_none() {
        let seq = st.seq();
        let tags = Vec::new();
        st.apps.push(Application { seq, name: app.clone(), description: None, created_ms: now, updated_ms: now, tags });
    }
    let status = match (&bundle, process) {
        (_, false) => VersionStatus::Unprocessed,
        (None, true) => VersionStatus::Processed,
        (Some(_), true) => VersionStatus::Processing,
    };
    let seq = st.seq();
    let v = AppVersion {
        seq,
        app: app.clone(),
        label: label.clone(),
        description,
        bundle: bundle.clone(),
        created_ms: now,
        updated_ms: now,
        status,
        tags,
    };
    let mut x = Doc::new();
    x.open("ApplicationVersion");
    render::version(&mut x, sim, &v);
    x.close("ApplicationVersion");
    st.versions.push(v);
    if let Some(a) = st.apps.iter_mut().find(|a| a.name == app) {
        a.updated_ms = now;
    }
    drop(st);
    if let (Some((b, k)), VersionStatus::Processing) = (bundle, status) {
        let delay = sim.cfg.timing.processing.draw(&mut sim.pace());
        tokio::spawn(process_version(Arc::clone(sim), seq, b, k, delay));
    }
    Ok(x)
}

fn pre_check_version(sim: &Arc<Sim>, app: &str, label: &str, auto_create: bool) -> Result<(), ApiError> {
    let st = sim.state();
    pre_check_version_locked(sim, &st, app, label, auto_create)
}

fn pre_check_version_locked(
    sim: &Sim,
    st: &crate::state::State,
    app: &str,
    label: &str,
    auto_create: bool,
) -> Result<(), ApiError> {
    if st.app(app).is_none() && !auto_create {
        return Err(no_app(app));
    }
    if st.version(app, label).is_some() {
        return Err(ApiError::invalid_value(format!("Application Version {label} already exists.")));
    }
    let max = sim.cfg.max_versions;
    if st.versions.len() >= max {
        return Err(ApiError::new(
            400,
            "TooManyApplicationVersionsException",
            format!(
                "You cannot have more than {max} Application Versions. Either remove some Application Versions or request a limit increase."
            ),
        ));
    }
    Ok(())
}

/// Process=true: PROCESSING for `delay` (a short wait of its own, not a lifecycle step), then
/// PROCESSED, or FAILED when a configuration file is neither YAML nor JSON or the bundle holds
/// nothing the Docker platform runs. Beanstalk says no more than FAILED (no event), so the reason
/// goes only to the log.
async fn process_version(sim: Arc<Sim>, seq: u64, bucket: String, key: String, delay: std::time::Duration) {
    tokio::time::sleep(delay).await;
    let verdict = match sim.store.get(&bucket, &key).await {
        Ok(bytes) => bundle::check(&bytes).map_err(|e| e.to_string()),
        Err(e) => Err(format!("failed to download s3://{bucket}/{key}: {e}")),
    };
    let mut st = sim.state();
    if let Some(v) = st.versions.iter_mut().find(|v| v.seq == seq) {
        v.status = match &verdict {
            Ok(()) => VersionStatus::Processed,
            Err(reason) => {
                tracing::warn!(app = %v.app, label = %v.label, "application version failed processing: {reason}");
                VersionStatus::Failed
            }
        };
        v.updated_ms = now_ms();
    }
}

fn describe_application_versions(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let app = p.string("ApplicationName");
    let labels = p.list("VersionLabels");
    let max = paging::max_records(p.int("MaxRecords")?)?;
    let st = sim.state();
    let mut items: Vec<&AppVersion> = st
        .versions
        .iter()
        .filter(|v| app.as_ref().is_none_or(|a| &v.app == a))
        .filter(|v| labels.is_empty() || labels.contains(&v.label))
        .collect();
    items.sort_by_key(|v| std::cmp::Reverse(v.seq));
    let (page, next) =
        paging::page("DescribeApplicationVersions", items, |v| v.seq, true, max, p.string("NextToken").as_deref())?;
    let mut x = Doc::new();
    x.list("ApplicationVersions", &page, |x, v| render::version(x, sim, v));
    x.opt("NextToken", next.as_deref());
    Ok(x)
}

async fn delete_application_version(sim: &Arc<Sim>, p: &Params) -> Result<(), ApiError> {
    let app = app_name(p)?;
    let label = p.required("VersionLabel")?;
    check_len("VersionLabel", &label, 1, 100)?;
    let delete_bundle = p.bool("DeleteSourceBundle")?.unwrap_or(false);
    let busy = || {
        ApiError::new(
            400,
            "OperationInProgressFailure",
            format!(
                "Unable to delete application version '{label}'. An operation is already in progress, please retry again shortly."
            ),
        )
    };
    let bundle = {
        let st = sim.state();
        if st.app(&app).is_none() {
            return Err(no_app(&app));
        }
        let v = st.version(&app, &label).ok_or_else(|| no_version(&label))?;
        let deploying = st.envs.iter().any(|e| {
            e.app == app
                && matches!(e.status, EnvStatus::Launching | EnvStatus::Updating | EnvStatus::Aborting)
                && e.version_label.as_deref() == Some(label.as_str())
        });
        if deploying || v.status == VersionStatus::Processing {
            return Err(busy());
        }
        v.bundle.clone()
    };
    if delete_bundle && let Some((b, k)) = &bundle {
        sim.store.delete(b, k).await.map_err(|e| {
            ApiError::new(
                400,
                "SourceBundleDeletionFailure",
                format!("Unable to delete source bundle (Bucket: {b}  Key: {k}). Reason: {e}"),
            )
        })?;
    }
    let mut st = sim.state();
    st.versions.retain(|v| !(v.app == app && v.label == label));
    let now = now_ms();
    if let Some(a) = st.apps.iter_mut().find(|a| a.name == app) {
        a.updated_ms = now;
    }
    Ok(())
}

// ---------- environments ----------

async fn create_environment(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<Doc, ApiError> {
    let app = app_name(p)?;
    let name = p.required("EnvironmentName")?;
    check_env_name(&name)?;
    let description = opt_len(p, "Description", 200)?;
    let prefix = p.string("CNAMEPrefix");
    if let Some(c) = &prefix {
        check_len("CNAMEPrefix", c, 4, 63)?;
    }
    let label = p.string("VersionLabel");
    if let Some(l) = &label {
        check_len("VersionLabel", l, 1, 100)?;
    }
    let stack = p.string("SolutionStackName");
    let platform = p.string("PlatformArn");
    if let Some(t) = p.string("TemplateName") {
        return Err(ApiError::invalid_value(format!("No Configuration Template named '{app}/{t}' found.")));
    }
    match (&stack, &platform) {
        (None, None) => {
            return Err(ApiError::invalid_combination(
                "Specify a solution stack name, a platform ARN or a configuration template for the environment.",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_combination(
                "You can't specify both a solution stack name and a platform ARN.",
            ));
        }
        _ => {}
    }
    if let Some(s) = &stack
        && !is_docker_stack(s)
    {
        return Err(ApiError::invalid_value(format!("No Solution Stack named '{s}' found.")));
    }
    let env_tags = tags::from_params(p, "Tags")?;
    tags::check_count(&env_tags, &sim.env_arn(&app, &name))?;
    let tier = (
        p.member("Tier", "Name").unwrap_or_else(|| "WebServer".into()),
        p.member("Tier", "Type").unwrap_or_else(|| "Standard".into()),
        p.member("Tier", "Version").unwrap_or_else(|| "1.0".into()),
    );
    let opts = options::from_params(p, "OptionSettings");
    options::validate(&opts)?;
    options::validate(&options::from_params(p, "OptionsToRemove"))?;
    let cname = format!("{}.{}.elasticbeanstalk.com", prefix.as_deref().unwrap_or(&name), sim.cfg.region);
    let validate = |st: &crate::state::State| -> Result<Option<TargetVersion>, ApiError> {
        if st.app(&app).is_none() {
            return Err(no_app(&app));
        }
        if st.live_env_index(Some(&name), None).is_some() {
            return Err(ApiError::invalid_value(format!("Environment {name} already exists.")));
        }
        if st.envs.iter().any(|e| e.live() && e.cname.eq_ignore_ascii_case(&cname)) {
            return Err(ApiError::invalid_value(format!("DNS name ({cname}) is not available.")));
        }
        match &label {
            None => Ok(None),
            Some(l) => {
                let v = st.version(&app, l).ok_or_else(|| no_version(l))?;
                Ok(Some(TargetVersion { label: l.clone(), bundle: v.bundle.clone() }))
            }
        }
    };
    validate(&sim.state())?;
    let proxy = Proxy::start(&name).await.map_err(|e| {
        tracing::error!("failed to start the load balancer of {name}: {e}");
        ApiError::internal()
    })?;
    let endpoint = proxy.addr().to_string();
    let mut st = sim.state();
    let target = validate(&st)?;
    let now = now_ms();
    let seq = st.seq();
    let (tx, rx) = watch::channel(Control::Run);
    let mut env = Environment {
        seq,
        id: ids::environment_id(),
        name: name.clone(),
        app: app.clone(),
        description,
        cname,
        endpoint,
        solution_stack: stack,
        platform_arn: platform,
        template_name: None,
        tier,
        version_label: label.clone(),
        deployed_label: None,
        status: EnvStatus::Launching,
        health: Health::Grey,
        health_status: HealthStatus::Pending,
        causes: Vec::new(),
        abortable: false,
        swapping: false,
        created_ms: now,
        updated_ms: now,
        health_refreshed_ms: now,
        options: opts,
        tags: env_tags,
        instance_id: ids::instance_id(),
        container: None,
        instance_addr: None,
        last_failure: None,
        transitions: Vec::new(),
        engine_log: Default::default(),
        failed_instance: None,
        info: Vec::new(),
        generation: 1,
        deployments: u64::from(target.is_some()),
        control: Some(tx),
        proxy: Some(Arc::new(proxy)),
    };
    env.touch();
    let mut x = Doc::new();
    render::environment(&mut x, sim, &env);
    let job = Job {
        env_seq: seq,
        generation: env.generation,
        kind: Kind::Launch,
        target,
        restart: None,
        prev_options: Vec::new(),
        request_id: rid.to_string(),
        app: app.clone(),
        env_name: name.clone(),
        instance_id: env.instance_id.clone(),
        started_ms: now,
    };
    st.envs.push(env);
    let scope = EventScope { app: Some(app), env: Some(name), label, request_id: Some(rid.to_string()) };
    st.event(&scope, Severity::Info, "createEnvironment is starting.");
    drop(st);
    deploy::spawn(Arc::clone(sim), job, rx);
    Ok(x)
}

fn describe_environments(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let app = p.string("ApplicationName");
    let label = p.string("VersionLabel");
    let ids = p.list("EnvironmentIds");
    let names = p.list("EnvironmentNames");
    let include_deleted = p.bool("IncludeDeleted")?.unwrap_or(true);
    let deleted_back_to = p.time("IncludedDeletedBackTo")?;
    let max = paging::max_records(p.int("MaxRecords")?)?;
    let st = sim.state();
    let items: Vec<&Environment> = st
        .envs
        .iter()
        .filter(|e| app.as_ref().is_none_or(|a| &e.app == a))
        .filter(|e| label.as_ref().is_none_or(|l| e.version_label.as_ref() == Some(l)))
        .filter(|e| ids.is_empty() || ids.contains(&e.id))
        .filter(|e| names.is_empty() || names.contains(&e.name))
        .filter(|e| e.live() || (include_deleted && deleted_back_to.is_none_or(|t| e.updated_ms >= t)))
        .collect();
    let (page, next) =
        paging::page("DescribeEnvironments", items, |e| e.seq, false, max, p.string("NextToken").as_deref())?;
    let mut x = Doc::new();
    x.list("Environments", &page, |x, e| render::environment(x, sim, e));
    x.opt("NextToken", next.as_deref());
    Ok(x)
}

/// Finds the live environment an update-style call names; the errors the service gives.
fn target_env(st: &crate::state::State, p: &Params) -> Result<usize, ApiError> {
    let name = p.string("EnvironmentName");
    let id = p.string("EnvironmentId");
    if name.is_none() && id.is_none() {
        return Err(ApiError::new(
            400,
            "MissingRequiredParameter",
            "Either EnvironmentName or EnvironmentId must be specified.",
        ));
    }
    let i = st.live_env_index(name.as_deref(), id.as_deref()).ok_or_else(|| no_env(name.as_deref(), id.as_deref()))?;
    if let Some(app) = p.string("ApplicationName")
        && st.envs[i].app != app
    {
        return Err(no_env(name.as_deref(), id.as_deref()));
    }
    Ok(i)
}

fn update_environment(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<Doc, ApiError> {
    let label = p.string("VersionLabel");
    if let Some(l) = &label {
        check_len("VersionLabel", l, 1, 100)?;
    }
    let description = opt_len(p, "Description", 200)?;
    let set = options::from_params(p, "OptionSettings");
    let remove = options::from_params(p, "OptionsToRemove");
    options::validate(&set)?;
    options::validate(&remove)?;
    let stack = p.string("SolutionStackName");
    let platform = p.string("PlatformArn");
    let mut st = sim.state();
    let i = target_env(&st, p)?;
    if let Some(t) = p.string("TemplateName") {
        return Err(ApiError::invalid_value(format!(
            "No Configuration Template named '{}/{t}' found.",
            st.envs[i].app
        )));
    }
    if st.envs[i].status != EnvStatus::Ready || st.envs[i].swapping {
        return Err(not_ready(&st.envs[i].name));
    }
    let target = match &label {
        None => None,
        Some(l) => {
            let v = st.version(&st.envs[i].app, l).ok_or_else(|| no_version(l))?;
            Some(TargetVersion { label: l.clone(), bundle: v.bundle.clone() })
        }
    };
    let config_change = !set.is_empty() || !remove.is_empty() || stack.is_some() || platform.is_some();
    // Settings the running application sees (its variables, its health check) restart it on the
    // version it runs, as Beanstalk does for a configuration-only update.
    let touches_app = |o: &crate::state::OptionSetting| {
        o.namespace == options::ENV_VARS
            || (o.namespace == "aws:elasticbeanstalk:application" && o.name == "Application Healthcheck URL")
    };
    let restart = match (&target, &st.envs[i].deployed_label) {
        (None, Some(l)) if set.iter().chain(&remove).any(touches_app) => {
            st.version(&st.envs[i].app, l).map(|v| TargetVersion { label: l.clone(), bundle: v.bundle.clone() })
        }
        _ => None,
    };
    let now = now_ms();
    let env = &mut st.envs[i];
    if let Some(d) = description {
        env.description = Some(d);
        env.updated_ms = now;
    }
    if target.is_none() && !config_change {
        let mut x = Doc::new();
        render::environment(&mut x, sim, env);
        return Ok(x);
    }
    let prev_options = env.options.clone();
    options::merge(&mut env.options, set, &remove);
    if stack.is_some() {
        env.solution_stack = stack;
    }
    if platform.is_some() {
        env.platform_arn = platform;
    }
    if let Some(t) = &target {
        env.version_label = Some(t.label.clone());
        env.deployments += 1;
    }
    env.generation += 1;
    env.abortable = true;
    env.last_failure = None;
    let (tx, rx) = watch::channel(Control::Run);
    env.control = Some(tx);
    env.set(EnvStatus::Updating, Health::Grey, HealthStatus::Info);
    let mut x = Doc::new();
    render::environment(&mut x, sim, env);
    let job = Job {
        env_seq: env.seq,
        generation: env.generation,
        kind: Kind::Update,
        target,
        restart,
        prev_options,
        request_id: rid.to_string(),
        app: env.app.clone(),
        env_name: env.name.clone(),
        instance_id: env.instance_id.clone(),
        started_ms: now,
    };
    let scope = EventScope {
        app: Some(job.app.clone()),
        env: Some(job.env_name.clone()),
        label: label.clone(),
        request_id: Some(rid.to_string()),
    };
    st.event(&scope, Severity::Info, "Environment update is starting.");
    drop(st);
    deploy::spawn(Arc::clone(sim), job, rx);
    Ok(x)
}

fn abort_environment_update(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<(), ApiError> {
    let mut st = sim.state();
    let i = target_env(&st, p)?;
    let env = &mut st.envs[i];
    if env.status != EnvStatus::Updating || !env.abortable {
        return Err(ApiError::invalid_value(format!(
            "Environment named {} is in an invalid state for this operation. Must be pending deployment.",
            env.name
        )));
    }
    env.generation += 1;
    env.abortable = false;
    if let Some(c) = env.control.take() {
        let _ = c.send(Control::Abort);
    }
    env.set(EnvStatus::Aborting, Health::Grey, HealthStatus::Info);
    let scope = EventScope {
        app: Some(env.app.clone()),
        env: Some(env.name.clone()),
        label: env.version_label.clone(),
        request_id: Some(rid.to_string()),
    };
    st.event(&scope, Severity::Info, "Abort of the environment update is in progress.");
    Ok(())
}

// ---------- configuration and lifecycle ----------

/// The solution stacks ListAvailableSolutionStacks names: Docker, the one platform ebsim runs.
pub const SOLUTION_STACKS: [&str; 2] =
    ["64bit Amazon Linux 2023 v4.3.0 running Docker", "64bit Amazon Linux 2 v4.0.0 running Docker"];

/// Whether `name` is a Docker solution stack (any version of the Amazon Linux Docker platform).
pub fn is_docker_stack(name: &str) -> bool {
    name.starts_with("64bit Amazon Linux ") && name.ends_with(" running Docker")
}

fn list_available_solution_stacks() -> Doc {
    let stacks: Vec<String> = SOLUTION_STACKS.iter().map(|s| s.to_string()).collect();
    let mut x = Doc::new();
    x.strings("SolutionStacks", &stacks).list("SolutionStackDetails", &stacks, |x, s| {
        // A Docker environment takes a zip bundle or a lone Dockerrun.aws.json.
        x.leaf("SolutionStackName", s).strings("PermittedFileTypes", &["zip".into(), "json".into()]);
    });
    x
}

fn check_dns_availability(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let prefix = p.required("CNAMEPrefix")?;
    check_len("CNAMEPrefix", &prefix, 4, 63)?;
    let cname = format!("{prefix}.{}.elasticbeanstalk.com", sim.cfg.region);
    let taken = sim.state().envs.iter().any(|e| e.live() && e.cname.eq_ignore_ascii_case(&cname));
    let mut x = Doc::new();
    x.bool("Available", !taken).leaf("FullyQualifiedCNAME", &cname);
    Ok(x)
}

/// The environment's settings: the documented defaults overridden by what was set at creation and
/// by updates (`deployed`; `pending` while an operation applies them).
fn describe_configuration_settings(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let app = app_name(p)?;
    let env_name = p.string("EnvironmentName");
    if let Some(t) = p.string("TemplateName") {
        return Err(ApiError::invalid_value(format!("No Configuration Template named '{app}/{t}' found.")));
    }
    let Some(env_name) = env_name else {
        return Err(ApiError::new(
            400,
            "MissingRequiredParameter",
            "Either EnvironmentName or TemplateName must be specified.",
        ));
    };
    let st = sim.state();
    if st.app(&app).is_none() {
        return Err(no_app(&app));
    }
    let i = st
        .live_env_index(Some(&env_name), None)
        .filter(|i| st.envs[*i].app == app)
        .ok_or_else(|| no_env(Some(&env_name), None))?;
    let e = &st.envs[i];
    let status = if e.status == EnvStatus::Ready { "deployed" } else { "pending" };
    let settings = options::effective(&e.options);
    let mut x = Doc::new();
    x.list("ConfigurationSettings", &[()], |x, _| {
        x.opt("SolutionStackName", e.solution_stack.as_deref())
            .opt("PlatformArn", e.platform_arn.as_deref())
            .leaf("ApplicationName", &e.app)
            .opt("TemplateName", e.template_name.as_deref())
            .opt("Description", e.description.as_deref())
            .leaf("EnvironmentName", &e.name)
            .leaf("DeploymentStatus", status)
            .time("DateCreated", e.created_ms)
            .time("DateUpdated", e.updated_ms)
            .list("OptionSettings", &settings, |x, o| {
                x.opt("ResourceName", None)
                    .leaf("Namespace", &o.namespace)
                    .leaf("OptionName", &o.name)
                    .leaf("Value", &o.value);
            });
    });
    Ok(x)
}

/// TerminateEnvironment: answers Terminating at once; the instance goes, then Terminated, with
/// `terminateEnvironment is starting.` / `… completed successfully.` carrying the call's RequestId.
fn terminate_environment(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<Doc, ApiError> {
    let name = {
        let st = sim.state();
        let i = target_env(&st, p)?;
        if st.envs[i].status == EnvStatus::Terminating {
            return Err(ApiError::invalid_value(format!(
                "Environment named {} is in an invalid state for this operation. Must be Ready.",
                st.envs[i].name
            )));
        }
        st.envs[i].name.clone()
    };
    deploy::terminate(sim, &name, Some(rid)).map_err(ApiError::invalid_value)?;
    let st = sim.state();
    let e = st.env_by_name(&name).ok_or_else(|| no_env(Some(&name), None))?;
    let mut x = Doc::new();
    render::environment(&mut x, sim, e);
    Ok(x)
}

// ---------- CNAME swap ----------

/// SwapEnvironmentCNAMEs: both environments Ready web servers; the answer comes at once (no
/// output), then Beanstalk's events on the source environment, the last one the marker the EB CLI
/// waits for. The CNAMEs change hands when "now points to" is emitted, and the CNAME proxy follows.
fn swap_environment_cnames(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<(), ApiError> {
    let (src_id, src_name) = (p.string("SourceEnvironmentId"), p.string("SourceEnvironmentName"));
    let (dst_id, dst_name) = (p.string("DestinationEnvironmentId"), p.string("DestinationEnvironmentName"));
    for (side, id, name) in [("Source", &src_id, &src_name), ("Destination", &dst_id, &dst_name)] {
        if id.is_none() && name.is_none() {
            return Err(ApiError::new(
                400,
                "MissingRequiredParameter",
                format!("Either {side}EnvironmentName or {side}EnvironmentId must be specified."),
            ));
        }
    }
    // The API reference: an id on one side needs an id on the other; so does a name.
    if src_id.is_some() != dst_id.is_some() {
        return Err(ApiError::invalid_combination(
            "SourceEnvironmentId and DestinationEnvironmentId must be specified together.",
        ));
    }
    if src_name.is_some() != dst_name.is_some() {
        return Err(ApiError::invalid_combination(
            "SourceEnvironmentName and DestinationEnvironmentName must be specified together.",
        ));
    }
    let mut st = sim.state();
    let find = |st: &crate::state::State, name: &Option<String>, id: &Option<String>| {
        st.live_env_index(name.as_deref(), id.as_deref()).ok_or_else(|| no_env(name.as_deref(), id.as_deref()))
    };
    let s = find(&st, &src_name, &src_id)?;
    let d = find(&st, &dst_name, &dst_id)?;
    if s == d {
        return Err(ApiError::invalid_value(format!(
            "Cannot swap the CNAME of environment {} with itself.",
            st.envs[s].name
        )));
    }
    for i in [s, d] {
        let e = &st.envs[i];
        if e.status != EnvStatus::Ready || e.swapping {
            return Err(not_ready(&e.name));
        }
        if e.tier.0 != "WebServer" {
            return Err(ApiError::invalid_value(format!(
                "Environment {} is a {} environment and has no CNAME; only web server environments can swap CNAMEs.",
                e.name, e.tier.0
            )));
        }
    }
    let (src, dst) = (st.envs[s].name.clone(), st.envs[d].name.clone());
    let (src_seq, dst_seq) = (st.envs[s].seq, st.envs[d].seq);
    st.envs[s].swapping = true;
    st.envs[d].swapping = true;
    let scope = EventScope {
        app: Some(st.envs[s].app.clone()),
        env: Some(src.clone()),
        label: None,
        request_id: Some(rid.into()),
    };
    st.event(&scope, Severity::Info, "swapEnvironmentCNAMEs is starting.");
    drop(st);
    let sim = Arc::clone(sim);
    let mut pace = sim.pace();
    tokio::spawn(async move {
        tokio::time::sleep(sim.cfg.timing.step.draw(&mut pace)).await;
        sim.state().event(&scope, Severity::Info, format!("Swapping CNAMEs for environments '{src}' and '{dst}'."));
        tokio::time::sleep(sim.cfg.timing.step.draw(&mut pace)).await;
        let mut st = sim.state();
        let (Some(s), Some(d)) = (st.env_index_by_seq(src_seq), st.env_index_by_seq(dst_seq)) else { return };
        for i in [s, d] {
            st.envs[i].swapping = false;
        }
        if !st.envs[s].live() || !st.envs[d].live() {
            // Terminated meanwhile: nothing left to swap with.
            return;
        }
        let src_cname = st.envs[s].cname.clone();
        let dst_cname = std::mem::replace(&mut st.envs[d].cname, src_cname.clone());
        st.envs[s].cname = dst_cname;
        let now = now_ms();
        st.envs[s].updated_ms = now;
        st.envs[d].updated_ms = now;
        let points_to = st.envs[d].endpoint.clone();
        st.event(&scope, Severity::Info, format!("'{src_cname}' now points to '{points_to}'."));
        st.event(&scope, Severity::Info, format!("Completed swapping CNAMEs for environments '{src}' and '{dst}'."));
    });
    Ok(())
}

// ---------- events and health ----------

fn describe_events(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let app = p.string("ApplicationName");
    let label = p.string("VersionLabel");
    let env_name = p.string("EnvironmentName");
    let env_id = p.string("EnvironmentId");
    let rid = p.string("RequestId");
    let severity = match p.string("Severity") {
        None => None,
        Some(s) => Some(crate::state::Severity::parse(&s).ok_or_else(|| {
            ApiError::new(
                400,
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{s}' at 'severity' failed to satisfy constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]"
                ),
            )
        })?),
    };
    let start = p.time("StartTime")?;
    let end = p.time("EndTime")?;
    let max = paging::max_records(p.int("MaxRecords")?)?;
    let st = sim.state();
    // Events name their environment; an id filter matches by the name it belongs to.
    let id_name =
        env_id.as_ref().map(|id| st.envs.iter().find(|e| &e.id == id).map(|e| e.name.clone()).unwrap_or_default());
    let mut items: Vec<&crate::state::Event> = st
        .events
        .iter()
        .filter(|e| app.is_none() || e.app == app)
        .filter(|e| label.is_none() || e.label == label)
        .filter(|e| env_name.is_none() || e.env == env_name)
        .filter(|e| id_name.is_none() || e.env == id_name)
        .filter(|e| rid.is_none() || e.request_id == rid)
        .filter(|e| severity.is_none_or(|s| e.severity >= s))
        .filter(|e| start.is_none_or(|t| e.time_ms >= t))
        .filter(|e| end.is_none_or(|t| e.time_ms < t))
        .collect();
    items.sort_by_key(|v| std::cmp::Reverse(v.seq));
    let (page, next) = paging::page("DescribeEvents", items, |e| e.seq, true, max, p.string("NextToken").as_deref())?;
    let mut x = Doc::new();
    x.list("Events", &page, |x, e| render::event(x, e));
    x.opt("NextToken", next.as_deref());
    Ok(x)
}

const HEALTH_ATTRIBUTES: [&str; 8] =
    ["Status", "Color", "Causes", "ApplicationMetrics", "InstancesHealth", "All", "HealthStatus", "RefreshedAt"];

fn describe_environment_health(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let name = p.string("EnvironmentName");
    let id = p.string("EnvironmentId");
    if name.is_none() && id.is_none() {
        return Err(ApiError::invalid_request("Specify either EnvironmentName or EnvironmentId."));
    }
    let attrs = p.list("AttributeNames");
    for a in &attrs {
        if !HEALTH_ATTRIBUTES.contains(&a.as_str()) {
            return Err(ApiError::new(
                400,
                "ValidationError",
                format!(
                    "1 validation error detected: Value '[{a}]' at 'attributeNames' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    HEALTH_ATTRIBUTES.join(", ")
                ),
            ));
        }
    }
    let want = |a: &str| attrs.iter().any(|x| x == a || x == "All");
    let st = sim.state();
    let env = match (&name, &id) {
        (_, Some(i)) => st.envs.iter().filter(|e| &e.id == i).max_by_key(|e| e.seq),
        (Some(n), None) => st.env_by_name(n),
        (None, None) => None,
    }
    .ok_or_else(|| ApiError::invalid_request(no_env(name.as_deref(), id.as_deref()).message))?;
    if env
        .option("aws:elasticbeanstalk:healthreporting:system", "SystemType")
        .is_some_and(|v| v.eq_ignore_ascii_case("basic"))
    {
        return Err(ApiError::invalid_request("DescribeEnvironmentHealth is not supported."));
    }
    let mut x = Doc::new();
    x.leaf("EnvironmentName", &env.name);
    if want("HealthStatus") {
        x.leaf("HealthStatus", env.health_status.as_str());
    }
    if want("Status") {
        x.leaf("Status", env.status.as_str());
    }
    if want("Color") {
        x.leaf("Color", env.health.as_str());
    }
    if want("Causes") {
        x.strings("Causes", &env.causes);
    }
    if want("ApplicationMetrics") {
        x.open("ApplicationMetrics").num("Duration", 10).num("RequestCount", 0).close("ApplicationMetrics");
    }
    if want("InstancesHealth") {
        x.open("InstancesHealth");
        let live = env.live() && env.status != EnvStatus::Terminating;
        for s in [
            HealthStatus::NoData,
            HealthStatus::Unknown,
            HealthStatus::Pending,
            HealthStatus::Ok,
            HealthStatus::Info,
            HealthStatus::Warning,
            HealthStatus::Degraded,
            HealthStatus::Severe,
        ] {
            x.num(s.as_str(), i64::from(live && env.health_status == s));
        }
        x.close("InstancesHealth");
    }
    if want("RefreshedAt") {
        x.time("RefreshedAt", env.health_refreshed_ms.max(now_ms() - 10_000));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_name_rules() {
        assert!(check_env_name("my-env-1").is_ok());
        assert!(check_env_name(&"a".repeat(40)).is_ok());
        assert_eq!(check_env_name("abc").map_err(|e| e.code), Err("ValidationError".into()));
        assert_eq!(check_env_name(&"a".repeat(41)).map_err(|e| e.code), Err("ValidationError".into()));
        for bad in ["-env", "env-", "my_env", "my env", "envé"] {
            assert_eq!(check_env_name(bad).map_err(|e| e.code), Err("InvalidParameterValue".into()), "{bad}");
        }
    }
}
