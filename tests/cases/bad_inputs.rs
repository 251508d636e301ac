//! The bad-input table shared by the no-network test (tests/bad_inputs.rs) and the local-stack test
//! (tests/e2e_bad_inputs.rs): each case is one wrong input and the input its message must name.
#![allow(dead_code)]

use std::path::PathBuf;

/// A workspace with the files the cases refer to.
pub fn workspace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bad-inputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["app", "empty-context", "bundle-with-dockerfile", "bundle-with-template", "bundle-ok"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("app/Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("not-json.json"), "{ \"Image\": ").unwrap();
    std::fs::write(dir.join("no-image.json"), r#"{"AWSEBDockerrunVersion":"1","Ports":[{"ContainerPort":"80"}]}"#)
        .unwrap();
    std::fs::write(dir.join("v2.json"), r#"{"AWSEBDockerrunVersion":2,"containerDefinitions":[]}"#).unwrap();
    std::fs::write(dir.join("good.json"), r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"x"}}"#).unwrap();
    std::fs::write(dir.join("bundle-with-dockerfile/Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("bundle-with-template/Dockerrun.aws.json"), r#"{"Image":{"Name":"x"}}"#).unwrap();
    dir
}

pub const VALID: &[(&str, &str)] =
    &[("application-name", "shop"), ("environment-name", "shop-prod"), ("context", "app")];

/// (what is wrong, the input the message must name, inputs overriding VALID)
pub type Case = (&'static str, &'static str, Vec<(&'static str, String)>);

pub fn cases() -> Vec<Case> {
    let s = |v: &str| v.to_owned();
    vec![
        ("missing application", "application-name", vec![("application-name", s(""))]),
        ("blank application", "application-name", vec![("application-name", s("   "))]),
        ("application over 100 chars", "application-name", vec![("application-name", "a".repeat(101))]),
        ("missing environment", "environment-name", vec![("environment-name", s(""))]),
        ("environment too short", "environment-name", vec![("environment-name", s("abc"))]),
        ("environment over 40 chars", "environment-name", vec![("environment-name", "e".repeat(41))]),
        ("environment with underscore", "environment-name", vec![("environment-name", s("shop_prod"))]),
        ("environment starting with hyphen", "environment-name", vec![("environment-name", s("-shop"))]),
        ("environment ending with hyphen", "environment-name", vec![("environment-name", s("shop-"))]),
        ("unknown mode", "mode", vec![("mode", s("redeploy"))]),
        ("rollback without label", "version-label", vec![("mode", s("rollback"))]),
        ("label over 100 chars", "version-label", vec![("version-label", "v".repeat(101))]),
        ("label with a control character", "version-label", vec![("version-label", s("v1\u{7}x"))]),
        ("timeout not a duration", "wait-timeout", vec![("wait-timeout", s("soon"))]),
        ("timeout zero", "wait-timeout", vec![("wait-timeout", s("0s"))]),
        ("timeout with a fraction", "wait-timeout", vec![("wait-timeout", s("1.5h"))]),
        ("negative grace", "health-grace", vec![("health-grace", s("-5s"))]),
        ("wait not a boolean", "wait", vec![("wait", s("yes"))]),
        ("reuse as a number", "reuse-existing-version", vec![("reuse-existing-version", s("1"))]),
        ("abort-on-timeout as on", "abort-on-timeout", vec![("abort-on-timeout", s("on"))]),
        ("abort-on-cancel in odd case", "abort-on-cancel", vec![("abort-on-cancel", s("tRUE"))]),
        ("no-cache as Y", "no-cache", vec![("no-cache", s("Y"))]),
        ("pull as maybe", "pull", vec![("pull", s("maybe"))]),
        ("create-repository as no", "create-repository", vec![("create-repository", s("no"))]),
        ("pin-digest as 0", "pin-digest", vec![("pin-digest", s("0"))]),
        ("unknown min-health", "min-health", vec![("min-health", s("blue"))]),
        ("unknown on-busy", "on-busy", vec![("on-busy", s("ignore"))]),
        ("port zero", "container-port", vec![("container-port", s("0"))]),
        ("port too large", "container-port", vec![("container-port", s("70000"))]),
        ("port not a number", "container-port", vec![("container-port", s("http"))]),
        ("bucket with capitals", "bucket", vec![("bucket", s("My_Bucket"))]),
        ("bucket too short", "bucket", vec![("bucket", s("ab"))]),
        ("region malformed", "region", vec![("region", s("useast1"))]),
        ("region upper case", "region", vec![("region", s("US-EAST-1"))]),
        ("build-arg without =", "build-args", vec![("build-args", s("A=1\nNOEQUALS"))]),
        ("build-arg without key", "build-args", vec![("build-args", s("=value"))]),
        ("label key with a space", "labels", vec![("labels", s("two words=x"))]),
        ("repository in upper case", "ecr-repository", vec![("ecr-repository", s("Team/App"))]),
        ("tag starting with a dot", "image-tag", vec![("image-tag", s(".hidden"))]),
        ("tag over 128 chars", "image-tag", vec![("image-tag", "t".repeat(129))]),
        ("registry as a URL", "registry", vec![("registry", s("https://registry.example.com"))]),
        ("platform without os", "platform", vec![("platform", s("amd64"))]),
        ("unknown builder", "builder", vec![("builder", s("kaniko"))]),
        ("cache-to a registry", "cache-to", vec![("cache-to", s("registry"))]),
        ("secret without an id", "secrets", vec![("secrets", s("env=TOKEN"))]),
        ("secret from a missing file", "secrets", vec![("secrets", s("id=npmrc,src=no-such.npmrc"))]),
        ("secrets with the classic builder", "secrets", vec![("secrets", s("id=t,env=T")), ("builder", s("classic"))]),
        ("missing context", "context", vec![("context", s("no-such-dir"))]),
        ("context without a Dockerfile", "dockerfile", vec![("context", s("empty-context"))]),
        ("missing Dockerfile", "dockerfile", vec![("dockerfile", s("app/Dockerfile.missing"))]),
        ("missing template", "dockerrun", vec![("dockerrun", s("nope.json"))]),
        ("template not JSON", "dockerrun", vec![("dockerrun", s("not-json.json"))]),
        ("template without Image", "dockerrun", vec![("dockerrun", s("no-image.json"))]),
        ("template of another platform", "dockerrun", vec![("dockerrun", s("v2.json"))]),
        ("two templates", "dockerrun", vec![("dockerrun", s("good.json")), ("bundle-dir", s("bundle-with-template"))]),
        ("missing bundle-dir", "bundle-dir", vec![("bundle-dir", s("no-such-bundle"))]),
        ("bundle-dir with a Dockerfile", "bundle-dir", vec![("bundle-dir", s("bundle-with-dockerfile"))]),
        ("an environment named twice", "environment-name", vec![("environment-name", s("shop-eu\nshop-us,shop-eu"))]),
        ("a bad name among several", "environment-name", vec![("environment-name", s("shop-eu,shop_us"))]),
        ("unknown strategy", "strategy", vec![("strategy", s("rolling"))]),
        ("max-parallel zero", "max-parallel", vec![("max-parallel", s("0"))]),
        ("max-parallel not a number", "max-parallel", vec![("max-parallel", s("all"))]),
        ("unknown on-failure", "on-failure", vec![("on-failure", s("ignore"))]),
        ("swap-with not an environment name", "swap-with", vec![("swap-with", s("shop live"))]),
        (
            "swap-with the environment itself",
            "swap-with",
            vec![("environment-name", s("shop-same")), ("swap-with", s("shop-same"))],
        ),
        (
            "swap-with and several environments",
            "swap-with",
            vec![("environment-name", s("shop-a1,shop-b1")), ("swap-with", s("shop-live"))],
        ),
        ("swap-with without waiting", "swap-with", vec![("swap-with", s("shop-live")), ("wait", s("false"))]),
        ("mode swap without swap-with", "swap-with", vec![("mode", s("swap"))]),
        ("check-path without a slash", "check-path", vec![("check-path", s("health"))]),
        ("check-url not http", "check-url", vec![("check-url", s("ftp://shop.example.com/health"))]),
        ("check-url not a URL", "check-url", vec![("check-url", s("shop.example.com/health"))]),
        (
            "check-path and check-url",
            "check-url",
            vec![("check-path", s("/health")), ("check-url", s("https://x.example.com/"))],
        ),
        ("check-status not a status", "check-status", vec![("check-path", s("/health")), ("check-status", s("2xx"))]),
        (
            "check-status out of range",
            "check-status",
            vec![("check-path", s("/health")), ("check-status", s("200-700"))],
        ),
        ("check-timeout zero", "check-timeout", vec![("check-path", s("/health")), ("check-timeout", s("0s"))]),
        ("check-body without a check", "check-body", vec![("check-body", s("ok"))]),
        ("rollback-on-failure as yes", "rollback-on-failure", vec![("rollback-on-failure", s("yes"))]),
        ("logs-on-failure as 1", "logs-on-failure", vec![("logs-on-failure", s("1"))]),
        (
            "variable line without =",
            "environment-variables",
            vec![("environment-variables", s("A=1\nno-equals-s3cr3t"))],
        ),
        ("variable name with a space", "environment-variables", vec![("environment-variables", s("MY VAR=1"))]),
        ("variable given twice", "environment-variables", vec![("environment-variables", s("A=1\nA=2"))]),
        (
            "variable value over 256 chars",
            "environment-variables",
            vec![("environment-variables", format!("A={}", "v".repeat(257)))],
        ),
        (
            "variables over 4,096 bytes",
            "environment-variables",
            vec![("environment-variables", (0..21).map(|i| format!("K{i:02}={}\n", "v".repeat(200))).collect())],
        ),
        (
            "variable to remove named badly",
            "remove-environment-variables",
            vec![("remove-environment-variables", s("NOT OK"))],
        ),
        (
            "variable set and removed",
            "remove-environment-variables",
            vec![("environment-variables", s("A=1")), ("remove-environment-variables", s("A"))],
        ),
        (
            "option in an unknown namespace",
            "option-settings",
            vec![(
                "option-settings",
                s("- {namespace: aws:elasticbeanstalk:comand, option-name: Timeout, value: 900}"),
            )],
        ),
        ("option settings not YAML", "option-settings", vec![("option-settings", s("- {namespace: ["))]),
        ("option settings not a list", "option-settings", vec![("option-settings", s("namespace: aws:ec2:vpc"))]),
        (
            "option without a value",
            "option-settings",
            vec![("option-settings", s("- {namespace: aws:ec2:vpc, option-name: VPCId}"))],
        ),
        (
            "variable in both inputs",
            "option-settings",
            vec![
                ("environment-variables", s("A=1")),
                (
                    "option-settings",
                    s("- {namespace: aws:elasticbeanstalk:application:environment, option-name: A, value: 2}"),
                ),
            ],
        ),
        ("create-application as yes", "create-application", vec![("create-application", s("yes"))]),
        ("create-environment as 1", "create-environment", vec![("create-environment", s("1"))]),
        (
            "solution stack without create-environment",
            "solution-stack",
            vec![("solution-stack", s("64bit Amazon Linux 2023 v4.3.0 running Docker"))],
        ),
        (
            "platform ARN malformed",
            "solution-stack",
            vec![("create-environment", s("true")), ("solution-stack", s("arn:aws:ec2:us-east-1::image/x"))],
        ),
        (
            "cname prefix with a dot",
            "cname-prefix",
            vec![("create-environment", s("true")), ("cname-prefix", s("shop.preview"))],
        ),
        ("cname prefix too short", "cname-prefix", vec![("create-environment", s("true")), ("cname-prefix", s("abc"))]),
        ("cname prefix without create-environment", "cname-prefix", vec![("cname-prefix", s("shop-preview"))]),
        (
            "cname prefix for several environments",
            "cname-prefix",
            vec![
                ("create-environment", s("true")),
                ("environment-name", s("shop-a1,shop-b1")),
                ("cname-prefix", s("shop-preview")),
            ],
        ),
        ("tag with a reserved key", "tags", vec![("create-environment", s("true")), ("tags", s("aws:team=web"))]),
        ("tag line without =", "tags", vec![("create-environment", s("true")), ("tags", s("team"))]),
        ("tags with nothing created", "tags", vec![("tags", s("team=web"))]),
        (
            "force-terminate as please",
            "force-terminate",
            vec![("mode", s("terminate")), ("force-terminate", s("please"))],
        ),
        ("keep-versions zero", "keep-versions", vec![("keep-versions", s("0"))]),
        ("keep-versions not a number", "keep-versions", vec![("keep-versions", s("all"))]),
        ("keep-versions over 1000", "keep-versions", vec![("keep-versions", s("1001"))]),
    ]
}
