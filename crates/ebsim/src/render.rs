//! XML shapes of the service's result structures.

use crate::protocol::Doc;
use crate::state::{AppVersion, Application, Environment, Event, Sim, State};

/// `ApplicationDescription` fields.
pub fn application(x: &mut Doc, sim: &Sim, st: &State, app: &Application) {
    let mut labels: Vec<(u64, String)> =
        st.versions.iter().filter(|v| v.app == app.name).map(|v| (v.seq, v.label.clone())).collect();
    labels.sort_by_key(|l| std::cmp::Reverse(l.0));
    let labels: Vec<String> = labels.into_iter().map(|(_, l)| l).collect();
    x.leaf("ApplicationArn", &sim.app_arn(&app.name))
        .leaf("ApplicationName", &app.name)
        .opt("Description", app.description.as_deref())
        .time("DateCreated", app.created_ms)
        .time("DateUpdated", app.updated_ms)
        .strings("Versions", &labels)
        .strings("ConfigurationTemplates", &[]);
}

/// `ApplicationVersionDescription` fields.
pub fn version(x: &mut Doc, sim: &Sim, v: &AppVersion) {
    x.leaf("ApplicationVersionArn", &sim.version_arn(&v.app, &v.label))
        .leaf("ApplicationName", &v.app)
        .opt("Description", v.description.as_deref())
        .leaf("VersionLabel", &v.label);
    if let Some((bucket, key)) = &v.bundle {
        x.open("SourceBundle").leaf("S3Bucket", bucket).leaf("S3Key", key).close("SourceBundle");
    }
    x.time("DateCreated", v.created_ms).time("DateUpdated", v.updated_ms).leaf("Status", v.status.as_str());
}

/// `EnvironmentDescription` fields.
pub fn environment(x: &mut Doc, sim: &Sim, e: &Environment) {
    x.leaf("EnvironmentName", &e.name)
        .leaf("EnvironmentId", &e.id)
        .leaf("ApplicationName", &e.app)
        .opt("VersionLabel", e.version_label.as_deref())
        .opt("SolutionStackName", e.solution_stack.as_deref())
        .opt("PlatformArn", e.platform_arn.as_deref())
        .opt("TemplateName", e.template_name.as_deref())
        .opt("Description", e.description.as_deref());
    if e.live() {
        x.leaf("EndpointURL", &e.endpoint).leaf("CNAME", &e.cname);
    }
    x.time("DateCreated", e.created_ms)
        .time("DateUpdated", e.updated_ms)
        .leaf("Status", e.status.as_str())
        .bool("AbortableOperationInProgress", e.abortable)
        .leaf("Health", e.health.as_str())
        .leaf("HealthStatus", e.health_status.as_str())
        .open("Tier")
        .leaf("Name", &e.tier.0)
        .leaf("Type", &e.tier.1)
        .leaf("Version", &e.tier.2)
        .close("Tier")
        .list::<()>("EnvironmentLinks", &[], |_, _| {})
        .leaf("EnvironmentArn", &sim.env_arn(&e.app, &e.name));
}

/// `EventDescription` fields.
pub fn event(x: &mut Doc, e: &Event) {
    x.time("EventDate", e.time_ms)
        .leaf("Message", &e.message)
        .opt("ApplicationName", e.app.as_deref())
        .opt("EnvironmentName", e.env.as_deref())
        .opt("VersionLabel", e.label.as_deref())
        .opt("RequestId", e.request_id.as_deref())
        .leaf("Severity", e.severity.as_str());
}
