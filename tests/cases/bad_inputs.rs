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
    ]
}
