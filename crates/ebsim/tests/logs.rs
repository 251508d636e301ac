//! Logs on failure: RequestEnvironmentInfo / RetrieveEnvironmentInfo compile what the environment's
//! instances wrote and what ebsim did, into S3 under Beanstalk's key layout, as presigned URLs that
//! expire, with the events `eb logs` waits for.

mod common;

use std::time::Duration;

use common::{Harness, tag_in, tags_in};

const BUCKET: &str = "elasticbeanstalk-us-east-1-123456789012";

/// Requests logs and waits, as `eb logs` does, for the call's final event; its messages.
async fn request_logs(h: &Harness, env: &str, info: &str) -> Vec<String> {
    let a = h.call("RequestEnvironmentInfo", &[("EnvironmentName", env), ("InfoType", info)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(!a.body.contains("RequestEnvironmentInfoResult"), "no output: {}", a.body);
    for _ in 0..200 {
        let ev = h.call("DescribeEvents", &[("RequestId", &a.header_rid)]).await;
        let mut msgs = ev.tags("Message");
        if msgs.first().is_some_and(|m| m.contains("logs for environment instances")) {
            assert!(ev.tags("EnvironmentName").iter().all(|e| e == env));
            msgs.reverse();
            return msgs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("RequestEnvironmentInfo for {env} never finished");
}

#[tokio::test]
async fn a_failed_deploy_leaves_its_reason_in_the_tail() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("shop", "v2", "img:crash").await;
    h.ready_env("shop", "shop-prod").await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    h.wait_status("shop-prod", "Ready").await;
    let up = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v2")]).await;
    assert_eq!(up.status, 200);
    let after = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(after.tag("VersionLabel").as_deref(), Some("v1"));
    let env_id = after.tag("EnvironmentId").unwrap();

    let msgs = request_logs(&h, "shop-prod", "tail").await;
    assert_eq!(msgs, ["requestEnvironmentInfo is starting.", "Pulled logs for environment instances."]);
    let got = h.call("RetrieveEnvironmentInfo", &[("EnvironmentName", "shop-prod"), ("InfoType", "tail")]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let infos = tags_in(&got.body, "member");
    assert_eq!(infos.len(), 1, "{}", got.body);
    let instance = tag_in(&infos[0], "Ec2InstanceId").unwrap();
    assert!(instance.starts_with("i-"));
    assert_eq!(tag_in(&infos[0], "InfoType").as_deref(), Some("tail"));
    assert!(tag_in(&infos[0], "SampleTimestamp").is_some_and(|t| t.ends_with('Z')));
    let url = tag_in(&infos[0], "Message").unwrap();
    let (path, expires) = url.split_once("?X-Amz-Expires=").unwrap();
    let key = path.strip_prefix(&format!("memory://{BUCKET}/")).unwrap().to_string();
    let prefix = format!("resources/environments/logs/tail/{env_id}/{instance}/TailLogs-");
    assert!(key.starts_with(&prefix) && key.ends_with(".out"), "{key}");
    assert!((890..=900).contains(&expires.parse::<u64>().unwrap()), "15 minutes, as on AWS: {url}");
    let tail = h.object(BUCKET, &key).await.expect("the tail is in the storage bucket");
    // The engine log says what was done and why it failed; the failed container's output survives it.
    assert!(tail.contains("/var/log/eb-engine.log"), "{tail}");
    assert!(tail.contains("[INFO] Starting the deployment of version v2 to environment shop-prod"), "{tail}");
    assert!(tail.contains("[ERROR] Deployment failed: the application container stopped"), "{tail}");
    assert!(tail.contains("the environment stays on v1"), "{tail}");
    assert!(tail.contains("/var/log/eb-docker/containers/eb-current-app/eb-"), "{tail}");
    assert!(tail.contains("fake instance of v1 starting"), "the serving container's output: {tail}");
    assert!(tail.contains("eb-staging-app/ebsim-shop-prod-"), "{tail}");
    assert!(tail.contains("app: fatal: required setting DATABASE_URL is not set; exiting"), "{tail}");

    // A bundle is a zip of the same files, under its own key.
    request_logs(&h, "shop-prod", "bundle").await;
    let b = h.call("RetrieveEnvironmentInfo", &[("EnvironmentId", &env_id), ("InfoType", "bundle")]).await;
    let url = tag_in(&b.body, "Message").unwrap();
    let bundle_key = url.split_once('?').unwrap().0.strip_prefix(&format!("memory://{BUCKET}/")).unwrap().to_string();
    assert!(
        bundle_key.starts_with(&format!("resources/environments/logs/bundle/{env_id}/{instance}/BundleLogs-")),
        "{url}"
    );
    use ebsim::store::Store;
    let zip = h.store.get(BUCKET, &bundle_key).await.unwrap();
    let names: Vec<String> = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .unwrap()
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    assert!(names.contains(&"var/log/eb-engine.log".to_string()), "{names:?}");
}

#[tokio::test]
async fn compiled_logs_expire() {
    let h = Harness::with(|c| c.logs_ttl = Duration::from_millis(300)).await;
    h.call("CreateApplication", &[("ApplicationName", "shop")]).await;
    h.ready_env("shop", "shop-prod").await;
    request_logs(&h, "shop-prod", "tail").await;
    let env_id = h
        .call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-prod")])
        .await
        .tag("EnvironmentId")
        .unwrap();
    let got = h.call("RetrieveEnvironmentInfo", &[("EnvironmentName", "shop-prod"), ("InfoType", "tail")]).await;
    let url = tag_in(&got.body, "Message").unwrap();
    assert!(url.ends_with("X-Amz-Expires=1"), "the URL lives no longer than the object: {url}");
    let key = url.split_once('?').unwrap().0.strip_prefix(&format!("memory://{BUCKET}/")).unwrap().to_string();
    assert!(key.starts_with(&format!("resources/environments/logs/tail/{env_id}/i-")), "{key}");
    let tail = h.object(BUCKET, &key).await.unwrap();
    assert!(tail.contains("with the sample application"), "{tail}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.object(BUCKET, &key).await, None, "deleted once expired");
    let none = h.call("RetrieveEnvironmentInfo", &[("EnvironmentName", "shop-prod"), ("InfoType", "tail")]).await;
    assert!(none.body.contains("<EnvironmentInfo/>"), "{}", none.body);
}

#[tokio::test]
async fn logs_errors() {
    let h = Harness::start().await;
    h.call("CreateApplication", &[("ApplicationName", "shop")]).await;
    h.ready_env("shop", "shop-prod").await;
    let no_type = h.call("RequestEnvironmentInfo", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(no_type.code().as_deref(), Some("MissingParameter"));
    let bad = h.call("RequestEnvironmentInfo", &[("EnvironmentName", "shop-prod"), ("InfoType", "all")]).await;
    assert_eq!(bad.code().as_deref(), Some("ValidationError"));
    let ai = h.call("RetrieveEnvironmentInfo", &[("EnvironmentName", "shop-prod"), ("InfoType", "analyze")]).await;
    assert_eq!(ai.code().as_deref(), Some("InvalidParameterValue"));
    let neither = h.call("RequestEnvironmentInfo", &[("InfoType", "tail")]).await;
    assert_eq!(neither.code().as_deref(), Some("MissingRequiredParameter"));
    let ghost = h.call("RetrieveEnvironmentInfo", &[("EnvironmentName", "ghost-env"), ("InfoType", "tail")]).await;
    assert_eq!(ghost.tag("Message").as_deref(), Some("No Environment found for EnvironmentName = 'ghost-env'."));
    let nothing_yet =
        h.call("RetrieveEnvironmentInfo", &[("EnvironmentName", "shop-prod"), ("InfoType", "tail")]).await;
    assert!(nothing_yet.body.contains("<EnvironmentInfo/>"), "{}", nothing_yet.body);
}
