//! Configuration and lifecycle: settings stored per environment and merged as Beanstalk merges
//! them, variables the application sees, launches with a version, termination, CNAME checks,
//! solution stacks, tags.

mod common;

use common::{Harness, tag_in, tags_in};

const STACK: &str = "64bit Amazon Linux 2023 v4.3.0 running Docker";
const ENV_NS: &str = "aws:elasticbeanstalk:application:environment";

/// `(namespace, name, value)` of DescribeConfigurationSettings.
async fn settings(h: &Harness, app: &str, env: &str) -> Vec<(String, String, String)> {
    let a = h.call("DescribeConfigurationSettings", &[("ApplicationName", app), ("EnvironmentName", env)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let opts = a.body.split("<OptionSettings>").nth(1).unwrap_or_default().to_string();
    tags_in(&opts, "member")
        .into_iter()
        .map(|m| {
            (
                tag_in(&m, "Namespace").unwrap(),
                tag_in(&m, "OptionName").unwrap(),
                tag_in(&m, "Value").unwrap_or_default(),
            )
        })
        .collect()
}

fn value<'a>(all: &'a [(String, String, String)], ns: &str, name: &str) -> Option<&'a str> {
    all.iter().find(|(n, o, _)| n == ns && o == name).map(|(_, _, v)| v.as_str())
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

async fn messages_of(h: &Harness, rid: &str) -> Vec<String> {
    let mut m = h.call("DescribeEvents", &[("RequestId", rid)]).await.tags("Message");
    m.reverse();
    m
}

#[tokio::test]
async fn settings_are_stored_merged_and_reach_the_application() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("shop", "v2", "img:v2").await;
    h.version("shop", "bad", "img:unhealthy").await;
    let created = h
        .call(
            "CreateEnvironment",
            &[
                ("ApplicationName", "shop"),
                ("EnvironmentName", "shop-prod"),
                ("SolutionStackName", STACK),
                ("VersionLabel", "v1"),
                ("OptionSettings.member.1.Namespace", ENV_NS),
                ("OptionSettings.member.1.OptionName", "A"),
                ("OptionSettings.member.1.Value", "1"),
                ("OptionSettings.member.2.Namespace", ENV_NS),
                ("OptionSettings.member.2.OptionName", "B"),
                ("OptionSettings.member.2.Value", "2"),
                ("OptionSettings.member.3.Namespace", "aws:elasticbeanstalk:command"),
                ("OptionSettings.member.3.OptionName", "DeploymentPolicy"),
                ("OptionSettings.member.3.Value", "Immutable"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let ready = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(ready.tag("VersionLabel").as_deref(), Some("v1"));
    // A launch with a version, with Beanstalk's launch events.
    let launch = messages_of(&h, &created.header_rid).await;
    assert_eq!(launch.first().map(String::as_str), Some("createEnvironment is starting."));
    assert_eq!(
        launch[launch.len() - 3..],
        [
            "Instance deployment completed successfully.".to_string(),
            "Application available at shop-prod.us-east-1.elasticbeanstalk.com.".to_string(),
            "Successfully launched environment: shop-prod".to_string(),
        ]
    );
    assert_eq!(h.runtime.last_env(), vars(&[("A", "1"), ("B", "2")]));
    let s = settings(&h, "shop", "shop-prod").await;
    assert_eq!(value(&s, ENV_NS, "A"), Some("1"));
    assert_eq!(value(&s, "aws:elasticbeanstalk:command", "DeploymentPolicy"), Some("Immutable"));
    assert_eq!(value(&s, "aws:elasticbeanstalk:command", "Timeout"), Some("600"), "defaults too");

    // Version and settings in one call: named options change, removed ones go, the rest stay.
    let up = h
        .call(
            "UpdateEnvironment",
            &[
                ("EnvironmentName", "shop-prod"),
                ("VersionLabel", "v2"),
                ("OptionSettings.member.1.Namespace", ENV_NS),
                ("OptionSettings.member.1.OptionName", "A"),
                ("OptionSettings.member.1.Value", "9"),
                ("OptionsToRemove.member.1.Namespace", ENV_NS),
                ("OptionsToRemove.member.1.OptionName", "B"),
            ],
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let done = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(done.tag("VersionLabel").as_deref(), Some("v2"));
    assert_eq!(h.runtime.last_env(), vars(&[("A", "9")]), "the new code and settings land together");
    let s = settings(&h, "shop", "shop-prod").await;
    assert_eq!((value(&s, ENV_NS, "A"), value(&s, ENV_NS, "B")), (Some("9"), None));
    assert_eq!(value(&s, "aws:elasticbeanstalk:command", "DeploymentPolicy"), Some("Immutable"));

    // A failed deploy reverts both.
    h.call(
        "UpdateEnvironment",
        &[
            ("EnvironmentName", "shop-prod"),
            ("VersionLabel", "bad"),
            ("OptionSettings.member.1.Namespace", ENV_NS),
            ("OptionSettings.member.1.OptionName", "C"),
            ("OptionSettings.member.1.Value", "3"),
        ],
    )
    .await;
    let failed = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(failed.tag("VersionLabel").as_deref(), Some("v2"));
    assert_eq!(h.runtime.last_env(), vars(&[("A", "9"), ("C", "3")]), "the failed instance had both");
    let s = settings(&h, "shop", "shop-prod").await;
    assert_eq!((value(&s, ENV_NS, "A"), value(&s, ENV_NS, "C")), (Some("9"), None));
    let endpoint = failed.tag("EndpointURL").unwrap();
    assert_eq!(h.get(&format!("http://{endpoint}/")).await.1, "version v2");

    // Settings alone: the application restarts on its version with them.
    let launches = h.runtime.launches.lock().unwrap().len();
    let cfg = h
        .call(
            "UpdateEnvironment",
            &[
                ("EnvironmentName", "shop-prod"),
                ("OptionSettings.member.1.Namespace", ENV_NS),
                ("OptionSettings.member.1.OptionName", "D"),
                ("OptionSettings.member.1.Value", "4"),
            ],
        )
        .await;
    assert_eq!(cfg.tag("Status").as_deref(), Some("Updating"));
    let after = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(after.tag("VersionLabel").as_deref(), Some("v2"));
    assert_eq!(h.runtime.launches.lock().unwrap().len(), launches + 1);
    assert_eq!(h.runtime.last_env(), vars(&[("A", "9"), ("D", "4")]));
    assert_eq!(h.runtime.running_count(), 1, "the old instance is gone");
    assert_eq!(
        messages_of(&h, &cfg.header_rid).await,
        [
            "Environment update is starting.",
            "Updating environment shop-prod's configuration settings.",
            "Successfully deployed new configuration to environment.",
            "Environment update completed successfully.",
        ]
    );
    // Settings the application does not see do not restart it.
    let launches = h.runtime.launches.lock().unwrap().len();
    h.call(
        "UpdateEnvironment",
        &[
            ("EnvironmentName", "shop-prod"),
            ("OptionSettings.member.1.Namespace", "aws:elasticbeanstalk:command"),
            ("OptionSettings.member.1.OptionName", "Timeout"),
            ("OptionSettings.member.1.Value", "900"),
        ],
    )
    .await;
    h.wait_status("shop-prod", "Ready").await;
    assert_eq!(h.runtime.launches.lock().unwrap().len(), launches);
    assert_eq!(value(&settings(&h, "shop", "shop-prod").await, "aws:elasticbeanstalk:command", "Timeout"), Some("900"));
}

#[tokio::test]
async fn unknown_options_and_configuration_errors() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    let bad = h
        .call(
            "CreateEnvironment",
            &[
                ("ApplicationName", "shop"),
                ("EnvironmentName", "shop-prod"),
                ("SolutionStackName", STACK),
                ("OptionSettings.member.1.Namespace", "aws:elasticbeanstalk:application:environmen"),
                ("OptionSettings.member.1.OptionName", "FOO"),
                ("OptionSettings.member.1.Value", "1"),
            ],
        )
        .await;
    assert_eq!((bad.status, bad.code().as_deref()), (400, Some("ConfigurationValidationException")));
    assert_eq!(
        bad.tag("Message").as_deref(),
        Some(
            "Configuration validation exception: Invalid option specification (Namespace: 'aws:elasticbeanstalk:application:environmen', OptionName: 'FOO'): Unknown configuration setting."
        )
    );
    let listed = h.call("DescribeEnvironments", &[("ApplicationName", "shop")]).await;
    assert!(listed.body.contains("<Environments/>"), "nothing was created: {}", listed.body);
    h.ready_env("shop", "shop-prod").await;
    let typo = h
        .call(
            "UpdateEnvironment",
            &[
                ("EnvironmentName", "shop-prod"),
                ("VersionLabel", "v1"),
                ("OptionsToRemove.member.1.Namespace", "aws:elasticbeanstalk:command"),
                ("OptionsToRemove.member.1.OptionName", "Deployment Policy"),
            ],
        )
        .await;
    assert_eq!(typo.code().as_deref(), Some("ConfigurationValidationException"));
    let still = h.call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-prod")]).await;
    assert_eq!(still.tag("Status").as_deref(), Some("Ready"), "no update started");
    let other_stack = h
        .call(
            "CreateEnvironment",
            &[
                ("ApplicationName", "shop"),
                ("EnvironmentName", "shop-node"),
                ("SolutionStackName", "64bit Amazon Linux 2023 v6.1.0 running Node.js 20"),
            ],
        )
        .await;
    assert_eq!(
        other_stack.tag("Message").as_deref(),
        Some("No Solution Stack named '64bit Amazon Linux 2023 v6.1.0 running Node.js 20' found.")
    );
    let stacks = h.call("ListAvailableSolutionStacks", &[]).await;
    assert!(stacks.body.contains(&format!("<SolutionStacks><member>{STACK}</member>")), "{}", stacks.body);
    assert!(stacks.body.contains("<PermittedFileTypes><member>zip</member><member>json</member></PermittedFileTypes>"));
    let d = |p: &'static [(&'static str, &'static str)]| {
        let h = &h;
        async move { h.call("DescribeConfigurationSettings", p).await }
    };
    assert_eq!(d(&[("EnvironmentName", "shop-prod")]).await.code().as_deref(), Some("MissingParameter"));
    assert_eq!(d(&[("ApplicationName", "shop")]).await.code().as_deref(), Some("MissingRequiredParameter"));
    assert_eq!(
        d(&[("ApplicationName", "nope"), ("EnvironmentName", "shop-prod")]).await.tag("Message").as_deref(),
        Some("No Application named 'nope' found.")
    );
    assert_eq!(
        d(&[("ApplicationName", "shop"), ("EnvironmentName", "ghost-env")]).await.tag("Message").as_deref(),
        Some("No Environment found for EnvironmentName = 'ghost-env'.")
    );
    let deployed = d(&[("ApplicationName", "shop"), ("EnvironmentName", "shop-prod")]).await;
    assert_eq!(deployed.tag("DeploymentStatus").as_deref(), Some("deployed"));
    assert_eq!(deployed.tag("SolutionStackName").as_deref(), Some(STACK));
}

#[tokio::test]
async fn ebextensions_variables_reach_the_application_under_the_environments_own() {
    let h = Harness::start().await;
    let run = br#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"img:v1"},"Ports":[{"ContainerPort":"80"}]}"#;
    let config = b"option_settings:\n  aws:elasticbeanstalk:application:environment:\n    GREETING: hello from .ebextensions\n    MODE: bundle\n";
    h.store.insert(
        "bucket",
        "shop/v1.zip",
        ebsim::bundle::zip_of(&[("Dockerrun.aws.json", run), (".ebextensions/01-env.config", config)]),
    );
    h.call(
        "CreateApplicationVersion",
        &[
            ("ApplicationName", "shop"),
            ("VersionLabel", "v1"),
            ("SourceBundle.S3Bucket", "bucket"),
            ("SourceBundle.S3Key", "shop/v1.zip"),
            ("AutoCreateApplication", "true"),
        ],
    )
    .await;
    let a = h
        .call(
            "CreateEnvironment",
            &[
                ("ApplicationName", "shop"),
                ("EnvironmentName", "shop-prod"),
                ("SolutionStackName", STACK),
                ("VersionLabel", "v1"),
                ("OptionSettings.member.1.Namespace", ENV_NS),
                ("OptionSettings.member.1.OptionName", "MODE"),
                ("OptionSettings.member.1.Value", "environment"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    h.wait_status("shop-prod", "Ready").await;
    assert_eq!(h.runtime.last_env(), vars(&[("GREETING", "hello from .ebextensions"), ("MODE", "environment")]));
}

#[tokio::test]
async fn termination_cname_checks_and_tags() {
    let h = Harness::start().await;
    let app = h
        .call(
            "CreateApplication",
            &[("ApplicationName", "shop"), ("Tags.member.1.Key", "team"), ("Tags.member.1.Value", "web")],
        )
        .await;
    assert_eq!(app.status, 200, "{}", app.body);
    let env = h
        .call(
            "CreateEnvironment",
            &[
                ("ApplicationName", "shop"),
                ("EnvironmentName", "shop-prod"),
                ("SolutionStackName", STACK),
                ("CNAMEPrefix", "shop-live"),
                ("Tags.member.1.Key", "stage"),
                ("Tags.member.1.Value", "prod"),
            ],
        )
        .await;
    assert_eq!(env.status, 200, "{}", env.body);
    let env_id = env.tag("EnvironmentId").unwrap();
    let arn = env.tag("EnvironmentArn").unwrap();
    h.wait_status("shop-prod", "Ready").await;

    let check = |prefix: &'static str| {
        let h = &h;
        async move { h.call("CheckDNSAvailability", &[("CNAMEPrefix", prefix)]).await }
    };
    let taken = check("shop-live").await;
    assert_eq!(taken.tag("Available").as_deref(), Some("false"));
    assert_eq!(taken.tag("FullyQualifiedCNAME").as_deref(), Some("shop-live.us-east-1.elasticbeanstalk.com"));
    assert_eq!(check("shop-next").await.tag("Available").as_deref(), Some("true"));
    assert_eq!(check("abc").await.code().as_deref(), Some("ValidationError"));

    // Tags: the application's, the environment's with Beanstalk's own.
    let list = |arn: String| {
        let h = &h;
        async move {
            let a = h.call("ListTagsForResource", &[("ResourceArn", &arn)]).await;
            assert_eq!(a.status, 200, "{}", a.body);
            tags_in(&a.body, "member")
                .into_iter()
                .map(|m| (tag_in(&m, "Key").unwrap(), tag_in(&m, "Value").unwrap_or_default()))
                .collect::<Vec<_>>()
        }
    };
    let app_arn = "arn:aws:elasticbeanstalk:us-east-1:123456789012:application/shop".to_string();
    assert_eq!(list(app_arn.clone()).await, [("team".to_string(), "web".to_string())]);
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        list(arn.clone()).await,
        pairs(&[
            ("elasticbeanstalk:environment-name", "shop-prod"),
            ("elasticbeanstalk:environment-id", &env_id),
            ("stage", "prod")
        ])
    );
    let up = h
        .call(
            "UpdateTagsForResource",
            &[
                ("ResourceArn", &arn),
                ("TagsToAdd.member.1.Key", "owner"),
                ("TagsToAdd.member.1.Value", "ops"),
                ("TagsToRemove.member.1", "stage"),
            ],
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert!(!up.body.contains("UpdateTagsForResourceResult"));
    let during = h.call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-prod")]).await;
    assert_eq!(during.tag("Status").as_deref(), Some("Updating"), "a tag update is an environment update");
    let busy = h.call("UpdateTagsForResource", &[("ResourceArn", &arn), ("TagsToRemove.member.1", "owner")]).await;
    assert_eq!(busy.code().as_deref(), Some("OperationInProgressFailure"));
    h.wait_status("shop-prod", "Ready").await;
    assert_eq!(messages_of(&h, &up.header_rid).await, ["Environment tag update completed successfully."]);
    assert_eq!(list(arn.clone()).await[2..], pairs(&[("owner", "ops")]));
    let reserved = h
        .call("UpdateTagsForResource", &[("ResourceArn", &app_arn), ("TagsToAdd.member.1.Key", "elasticbeanstalk:x")])
        .await;
    assert_eq!(reserved.code().as_deref(), Some("InvalidParameterValue"));
    let ghost = h
        .call(
            "ListTagsForResource",
            &[("ResourceArn", "arn:aws:elasticbeanstalk:us-east-1:123456789012:application/ghost")],
        )
        .await;
    assert_eq!(ghost.code().as_deref(), Some("ResourceNotFoundException"));
    let template = h
        .call(
            "ListTagsForResource",
            &[("ResourceArn", "arn:aws:elasticbeanstalk:us-east-1:123456789012:configurationtemplate/shop/t")],
        )
        .await;
    assert_eq!(template.code().as_deref(), Some("ResourceTypeNotSupportedException"));
    let mut many = Vec::new();
    for n in 0..50 {
        many.push((format!("TagsToAdd.member.{}.Key", n + 1), format!("k{n}")));
    }
    let mut params: Vec<(&str, &str)> = vec![("ResourceArn", &app_arn)];
    params.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(h.call("UpdateTagsForResource", &params).await.code().as_deref(), Some("TooManyTagsException"));

    // TerminateEnvironment: Terminating at once, then Terminated, with its events; the CNAME is free.
    let t = h.call("TerminateEnvironment", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.tag("Status").as_deref(), Some("Terminating"));
    assert_eq!(t.tag("EnvironmentId").as_deref(), Some(env_id.as_str()));
    let again = h.call("TerminateEnvironment", &[("EnvironmentId", &env_id)]).await;
    assert!(again.tag("Message").is_some_and(|m| m.contains("invalid state")), "{}", again.body);
    h.wait_status("shop-prod", "Terminated").await;
    assert_eq!(
        messages_of(&h, &t.header_rid).await,
        ["terminateEnvironment is starting.", "terminateEnvironment completed successfully."]
    );
    assert_eq!(check("shop-live").await.tag("Available").as_deref(), Some("true"));
    let gone = h.call("TerminateEnvironment", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(gone.tag("Message").as_deref(), Some("No Environment found for EnvironmentName = 'shop-prod'."));
    assert_eq!(
        h.call("ListTagsForResource", &[("ResourceArn", &arn)]).await.code().as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn many_versions_page_newest_first() {
    let h = Harness::start().await;
    h.put_dockerrun("bucket", "shop/v.zip", "img:v");
    for n in 1..=25 {
        let label = format!("v{n:02}");
        let a = h
            .call(
                "CreateApplicationVersion",
                &[
                    ("ApplicationName", "shop"),
                    ("VersionLabel", &label),
                    ("SourceBundle.S3Bucket", "bucket"),
                    ("SourceBundle.S3Key", "shop/v.zip"),
                    ("AutoCreateApplication", "true"),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let mut labels = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut p = vec![("ApplicationName", "shop"), ("MaxRecords", "10")];
        if let Some(t) = &token {
            p.push(("NextToken", t));
        }
        let page = h.call("DescribeApplicationVersions", &p).await;
        labels.extend(page.tags("VersionLabel"));
        pages += 1;
        token = page.tag("NextToken");
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (1..=25).rev().map(|n| format!("v{n:02}")).collect();
    assert_eq!(labels, want);
}

#[tokio::test]
async fn a_failed_configuration_restart_reverts_the_settings() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.ready_env("shop", "shop-prod").await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    let ready = h.wait_status("shop-prod", "Ready").await;
    let endpoint = ready.tag("EndpointURL").unwrap();
    h.admin("POST", "/faults", Some(serde_json::json!({"fail_next_deploys": 1}))).await;
    let up = h
        .call(
            "UpdateEnvironment",
            &[
                ("EnvironmentName", "shop-prod"),
                ("OptionSettings.member.1.Namespace", ENV_NS),
                ("OptionSettings.member.1.OptionName", "NEW"),
                ("OptionSettings.member.1.Value", "x"),
            ],
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let after = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(after.tag("VersionLabel").as_deref(), Some("v1"));
    let msgs = messages_of(&h, &up.header_rid).await;
    assert_eq!(msgs.last().map(String::as_str), Some("Failed to deploy configuration."), "{msgs:?}");
    assert_eq!(value(&settings(&h, "shop", "shop-prod").await, ENV_NS, "NEW"), None, "reverted");
    assert_eq!(h.get(&format!("http://{endpoint}/")).await.1, "version v1", "the old instance still serves");
}
