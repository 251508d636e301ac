//! Configuration options: which namespaces and options the Docker platform knows (anything else is
//! Beanstalk's `ConfigurationValidationException`), the defaults DescribeConfigurationSettings
//! shows beside the environment's own settings, and Beanstalk's merge of an update's settings.

use crate::protocol::{ApiError, Params};
use crate::state::OptionSetting;

/// Namespace of the variables the application's container gets.
pub const ENV_VARS: &str = "aws:elasticbeanstalk:application:environment";

/// Namespaces whose option names are free (environment variables, custom options).
const FREE: [&str; 2] = [ENV_VARS, "aws:elasticbeanstalk:customoption"];

/// Namespaces with a resource name in them (`aws:elbv2:listener:443`), by prefix, with their options.
const PREFIXED: [(&str, &[&str]); 2] = [
    (
        "aws:elasticbeanstalk:environment:process:",
        &[
            "DeregistrationDelay",
            "HealthCheckInterval",
            "HealthCheckPath",
            "HealthCheckTimeout",
            "HealthyThresholdCount",
            "MatcherHTTPCode",
            "Port",
            "Protocol",
            "StickinessEnabled",
            "StickinessLBCookieDuration",
            "StickinessType",
            "UnhealthyThresholdCount",
        ],
    ),
    (
        "aws:elbv2:listener:",
        &["DefaultProcess", "ListenerEnabled", "Protocol", "Rules", "SSLCertificateArns", "SSLPolicy"],
    ),
];

/// The general options of the AWS documentation ("General options for all environments") that a
/// Docker environment has, by namespace.
const KNOWN: [(&str, &[&str]); 19] = [
    (
        "aws:autoscaling:asg",
        &[
            "Availability Zones",
            "Cooldown",
            "Custom Availability Zones",
            "EnableCapacityRebalancing",
            "MinSize",
            "MaxSize",
        ],
    ),
    (
        "aws:autoscaling:launchconfiguration",
        &[
            "BlockDeviceMappings",
            "DisableIMDSv1",
            "EC2KeyName",
            "IamInstanceProfile",
            "ImageId",
            "InstanceType",
            "LaunchTemplateTagPropagationEnabled",
            "MonitoringInterval",
            "RootVolumeIOPS",
            "RootVolumeSize",
            "RootVolumeThroughput",
            "RootVolumeType",
            "SecurityGroups",
            "SSHSourceRestriction",
        ],
    ),
    (
        "aws:autoscaling:updatepolicy:rollingupdate",
        &["MaxBatchSize", "MinInstancesInService", "PauseTime", "RollingUpdateEnabled", "RollingUpdateType", "Timeout"],
    ),
    (
        "aws:ec2:instances",
        &[
            "EnableSpot",
            "InstanceTypes",
            "SpotFleetOnDemandAboveBasePercentage",
            "SpotFleetOnDemandBase",
            "SpotMaxPrice",
            "SupportedArchitectures",
        ],
    ),
    ("aws:ec2:vpc", &["AssociatePublicIpAddress", "DBSubnets", "ELBScheme", "ELBSubnets", "Subnets", "VPCId"]),
    ("aws:elasticbeanstalk:application", &["Application Healthcheck URL"]),
    ("aws:elasticbeanstalk:cloudwatch:logs", &["DeleteOnTerminate", "RetentionInDays", "StreamLogs"]),
    (
        "aws:elasticbeanstalk:cloudwatch:logs:health",
        &["DeleteOnTerminate", "HealthStreamingEnabled", "RetentionInDays"],
    ),
    (
        "aws:elasticbeanstalk:command",
        &["BatchSize", "BatchSizeType", "DeploymentPolicy", "IgnoreHealthCheck", "Timeout"],
    ),
    (
        "aws:elasticbeanstalk:environment",
        &["EnvironmentType", "LoadBalancerIsShared", "LoadBalancerType", "ServiceRole"],
    ),
    ("aws:elasticbeanstalk:environment:proxy", &["ProxyServer"]),
    (
        "aws:elasticbeanstalk:healthreporting:system",
        &["ConfigDocument", "EnhancedHealthAuthEnabled", "HealthCheckSuccessThreshold", "SystemType"],
    ),
    ("aws:elasticbeanstalk:hostmanager", &["LogPublicationControl"]),
    (
        "aws:elasticbeanstalk:managedactions",
        &["ManagedActionsEnabled", "PreferredStartTime", "ServiceRoleForManagedUpdates"],
    ),
    ("aws:elasticbeanstalk:managedactions:platformupdate", &["InstanceRefreshEnabled", "UpdateLevel"]),
    ("aws:elasticbeanstalk:monitoring", &["Automatically Terminate Unhealthy Instances"]),
    (
        "aws:elasticbeanstalk:sns:topics",
        &["Notification Endpoint", "Notification Protocol", "Notification Topic ARN", "Notification Topic Name"],
    ),
    ("aws:elasticbeanstalk:xray", &["XRayEnabled"]),
    (
        "aws:elbv2:loadbalancer",
        &[
            "AccessLogsS3Bucket",
            "AccessLogsS3Enabled",
            "AccessLogsS3Prefix",
            "IdleTimeout",
            "ManagedSecurityGroup",
            "SecurityGroups",
        ],
    ),
];

/// What DescribeConfigurationSettings shows for options nobody set: the documented defaults of the
/// settings ebsim's single instance behind its load balancer reflects.
pub const DEFAULTS: [(&str, &str, &str); 11] = [
    ("aws:autoscaling:asg", "MaxSize", "1"),
    ("aws:autoscaling:asg", "MinSize", "1"),
    ("aws:elasticbeanstalk:application", "Application Healthcheck URL", ""),
    ("aws:elasticbeanstalk:command", "BatchSize", "100"),
    ("aws:elasticbeanstalk:command", "BatchSizeType", "Percentage"),
    ("aws:elasticbeanstalk:command", "DeploymentPolicy", "AllAtOnce"),
    ("aws:elasticbeanstalk:command", "IgnoreHealthCheck", "false"),
    ("aws:elasticbeanstalk:command", "Timeout", "600"),
    ("aws:elasticbeanstalk:environment", "EnvironmentType", "LoadBalanced"),
    ("aws:elasticbeanstalk:environment", "LoadBalancerType", "application"),
    ("aws:elasticbeanstalk:healthreporting:system", "SystemType", "enhanced"),
];

/// Whether the Docker platform has option `name` in `namespace`.
pub fn known(namespace: &str, name: &str) -> bool {
    if FREE.contains(&namespace) {
        return !name.is_empty();
    }
    let listed = |options: &[&str]| options.contains(&name);
    KNOWN.iter().any(|(ns, options)| *ns == namespace && listed(options))
        || PREFIXED.iter().any(|(prefix, options)| {
            namespace.strip_prefix(prefix).is_some_and(|resource| !resource.is_empty()) && listed(options)
        })
}

/// `ConfigurationValidationException` for the first option the platform does not know, in the
/// service's words.
pub fn validate(options: &[OptionSetting]) -> Result<(), ApiError> {
    match options.iter().find(|o| !known(&o.namespace, &o.name)) {
        None => Ok(()),
        Some(o) => Err(ApiError::new(
            400,
            "ConfigurationValidationException",
            format!(
                "Configuration validation exception: Invalid option specification (Namespace: '{}', OptionName: '{}'): Unknown configuration setting.",
                o.namespace, o.name
            ),
        )),
    }
}

/// The option list `name` of a request (`OptionSettings`, `OptionsToRemove`).
pub fn from_params(p: &Params, name: &str) -> Vec<OptionSetting> {
    p.struct_list(name)
        .into_iter()
        .map(|m| OptionSetting {
            namespace: m.get("Namespace").cloned().unwrap_or_default(),
            name: m.get("OptionName").cloned().unwrap_or_default(),
            value: m.get("Value").cloned().unwrap_or_default(),
        })
        .collect()
}

/// Beanstalk's merge: removed options go, set options replace or join; options not named stay.
pub fn merge(current: &mut Vec<OptionSetting>, set: Vec<OptionSetting>, remove: &[OptionSetting]) {
    current.retain(|o| !remove.iter().any(|r| r.namespace == o.namespace && r.name == o.name));
    for s in set {
        match current.iter_mut().find(|o| o.namespace == s.namespace && o.name == s.name) {
            Some(o) => o.value = s.value,
            None => current.push(s),
        }
    }
}

/// What DescribeConfigurationSettings lists: the defaults overridden by `set`, sorted.
pub fn effective(set: &[OptionSetting]) -> Vec<OptionSetting> {
    let mut all: Vec<OptionSetting> = DEFAULTS
        .iter()
        .map(|(ns, name, value)| OptionSetting {
            namespace: (*ns).into(),
            name: (*name).into(),
            value: (*value).into(),
        })
        .collect();
    merge(&mut all, set.to_vec(), &[]);
    all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    all
}

/// The environment variables `.ebextensions/*.config` files set (`option_settings`, in either of
/// its forms), in file order; settings made through the API win over them.
pub fn ebextensions_env(configs: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| match vars.iter_mut().find(|(n, _)| *n == k) {
        Some(slot) => slot.1 = v,
        None => vars.push((k, v)),
    };
    for (_, raw) in configs {
        let Ok(doc) = serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(raw) else { continue };
        match doc.get("option_settings") {
            Some(serde_yaml_ng::Value::Mapping(namespaces)) => {
                if let Some(serde_yaml_ng::Value::Mapping(options)) = namespaces.get(ENV_VARS) {
                    for (k, v) in options {
                        if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                            set(k, v);
                        }
                    }
                }
            }
            Some(serde_yaml_ng::Value::Sequence(items)) => {
                for item in items {
                    let ns = item.get("namespace").and_then(scalar);
                    if ns.as_deref() == Some(ENV_VARS)
                        && let Some(k) = item.get("option_name").and_then(scalar)
                    {
                        set(k, item.get("value").and_then(scalar).unwrap_or_default());
                    }
                }
            }
            _ => {}
        }
    }
    vars
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        serde_yaml_ng::Value::Null => Some(String::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(ns: &str, n: &str, v: &str) -> OptionSetting {
        OptionSetting { namespace: ns.into(), name: n.into(), value: v.into() }
    }

    #[test]
    fn known_options_and_the_services_error() {
        assert!(known(ENV_VARS, "DATABASE_URL"));
        assert!(known("aws:elasticbeanstalk:command", "DeploymentPolicy"));
        assert!(known("aws:elasticbeanstalk:environment:process:default", "HealthCheckPath"));
        assert!(known("aws:elbv2:listener:443", "SSLCertificateArns"));
        assert!(!known("aws:elbv2:listener:", "Protocol"));
        assert!(!known("aws:elasticbeanstalk:command", "Deployment Policy"));
        assert!(!known("aws:elasticbeanstalk:application:environmen", "FOO"));
        assert!(!known(ENV_VARS, ""));
        let e =
            validate(&[o(ENV_VARS, "A", "1"), o("aws:elasticbeanstalk:healthreporting:system", "ConfigDocumet", "{}")])
                .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "ConfigurationValidationException"));
        assert_eq!(
            e.message,
            "Configuration validation exception: Invalid option specification (Namespace: 'aws:elasticbeanstalk:healthreporting:system', OptionName: 'ConfigDocumet'): Unknown configuration setting."
        );
    }

    #[test]
    fn merge_replaces_removes_and_keeps_the_rest() {
        let mut cur = vec![o("a", "x", "1"), o("a", "y", "2"), o("b", "keep", "k")];
        merge(&mut cur, vec![o("a", "x", "9"), o("b", "z", "3")], &[o("a", "y", "")]);
        assert_eq!(cur, vec![o("a", "x", "9"), o("b", "keep", "k"), o("b", "z", "3")]);
    }

    #[test]
    fn effective_settings_are_defaults_overridden() {
        let all =
            effective(&[o("aws:elasticbeanstalk:command", "DeploymentPolicy", "Immutable"), o(ENV_VARS, "A", "1")]);
        let get = |ns: &str, n: &str| all.iter().find(|x| x.namespace == ns && x.name == n).map(|x| x.value.as_str());
        assert_eq!(get("aws:elasticbeanstalk:command", "DeploymentPolicy"), Some("Immutable"));
        assert_eq!(get("aws:elasticbeanstalk:command", "Timeout"), Some("600"));
        assert_eq!(get(ENV_VARS, "A"), Some("1"));
        assert!(all.windows(2).all(|w| (&w[0].namespace, &w[0].name) <= (&w[1].namespace, &w[1].name)));
    }

    #[test]
    fn environment_variables_from_ebextensions() {
        let map = b"option_settings:\n  aws:elasticbeanstalk:application:environment:\n    GREETING: hello\n    PORT: 8080\n  aws:elasticbeanstalk:command:\n    Timeout: 900\n".to_vec();
        let list = br#"{"option_settings": [{"namespace": "aws:elasticbeanstalk:application:environment", "option_name": "GREETING", "value": "hi"}, {"namespace": "other", "option_name": "X", "value": "y"}]}"#.to_vec();
        let vars = ebextensions_env(&[
            ("01.config".into(), map),
            ("02.config".into(), list),
            ("03.config".into(), b"{{".to_vec()),
        ]);
        assert_eq!(vars, vec![("GREETING".to_string(), "hi".to_string()), ("PORT".to_string(), "8080".to_string())]);
    }
}
