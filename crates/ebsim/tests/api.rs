//! The API served in-process (no Docker): bookkeeping, errors, paging, faults, admin API, and the
//! deploy lifecycle against a fake runtime.

mod common;

use std::time::Duration;

use common::{Harness, tag_in, tags_in};
use serde_json::json;

const STACK: &str = "64bit Amazon Linux 2023 v4.3.0 running Docker";

#[tokio::test]
async fn envelope_request_id_and_storage_location() {
    let h = Harness::start().await;
    let a = h.call("CreateStorageLocation", &[]).await;
    assert_eq!(a.status, 200);
    assert!(a.body.starts_with(
        "<CreateStorageLocationResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><CreateStorageLocationResult><S3Bucket>elasticbeanstalk-us-east-1-123456789012</S3Bucket></CreateStorageLocationResult><ResponseMetadata>"
    ), "{}", a.body);
    assert_eq!(a.tag("RequestId").as_deref(), Some(a.header_rid.as_str()));
    assert_eq!(a.header_rid.len(), 36);
    assert!(h.store.has_bucket("elasticbeanstalk-us-east-1-123456789012"));
}

#[tokio::test]
async fn unknown_and_missing_actions() {
    let h = Harness::start().await;
    let a = h.call("RebuildEnvironment", &[]).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.code().as_deref(), Some("InvalidAction"));
    assert!(a.body.starts_with("<ErrorResponse xmlns="), "{}", a.body);
    assert!(a.body.contains("<Error><Type>Sender</Type><Code>InvalidAction</Code><Message>"));
    assert_eq!(a.tag("RequestId").as_deref(), Some(a.header_rid.as_str()));
    let a = h.post_raw("Version=2010-12-01".into()).await;
    assert_eq!(a.code().as_deref(), Some("MissingAction"));
    // `Operation=` is accepted for `Action=`.
    let a = h.post_raw("Operation=DescribeApplications&Version=2010-12-01".into()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("<DescribeApplicationsResult><Applications/></DescribeApplicationsResult>"));
}

#[tokio::test]
async fn applications() {
    let h = Harness::start().await;
    let a = h.call("CreateApplication", &[("ApplicationName", "shop"), ("Description", "a <b> & c")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.tag("ApplicationArn").as_deref(),
        Some("arn:aws:elasticbeanstalk:us-east-1:123456789012:application/shop")
    );
    assert_eq!(a.tag("Description").as_deref(), Some("a &lt;b&gt; &amp; c"));
    assert!(a.tag("DateCreated").is_some_and(|d| d.len() == 24 && d.ends_with('Z')));
    let dup = h.call("CreateApplication", &[("ApplicationName", "shop")]).await;
    assert_eq!((dup.status, dup.code().as_deref()), (400, Some("InvalidParameterValue")));
    assert_eq!(dup.tag("Message").as_deref(), Some("Application shop already exists."));
    let long = "x".repeat(101);
    let bad = h.call("CreateApplication", &[("ApplicationName", &long)]).await;
    assert_eq!(bad.code().as_deref(), Some("ValidationError"));
    let missing = h.call("CreateApplication", &[]).await;
    assert_eq!(missing.code().as_deref(), Some("MissingParameter"));
    h.call("CreateApplication", &[("ApplicationName", "blog")]).await;
    let all = h.call("DescribeApplications", &[]).await;
    assert_eq!(all.tags("ApplicationName"), vec!["shop", "blog"]);
    let one = h
        .call("DescribeApplications", &[("ApplicationNames.member.1", "blog"), ("ApplicationNames.member.2", "nope")])
        .await;
    assert_eq!(one.tags("ApplicationName"), vec!["blog"]);
}

#[tokio::test]
async fn versions_errors_processing_quota_and_deletion() {
    let h = Harness::with(|c| c.max_versions = 3).await;
    let create =
        |app: &'static str, label: &'static str, key: &'static str, extra: &'static [(&'static str, &'static str)]| {
            let h = &h;
            async move {
                let mut p = vec![
                    ("ApplicationName", app),
                    ("VersionLabel", label),
                    ("SourceBundle.S3Bucket", "bucket"),
                    ("SourceBundle.S3Key", key),
                ];
                p.extend_from_slice(extra);
                h.call("CreateApplicationVersion", &p).await
            }
        };
    let a = create("shop", "v1", "shop/v1.zip", &[]).await;
    assert_eq!(a.tag("Message").as_deref(), Some("No Application named 'shop' found."));
    let a = create("shop", "v1", "shop/v1.zip", &[("AutoCreateApplication", "true")]).await;
    assert_eq!(a.code().as_deref(), Some("InvalidParameterCombination"));
    assert_eq!(
        a.tag("Message").as_deref(),
        Some("Unable to download from S3 location (Bucket: bucket  Key: shop/v1.zip). Reason: Not Found")
    );
    h.put_dockerrun("bucket", "shop/v1.zip", "img:v1");
    h.store.insert("bucket", "shop/bad.zip", b"not a zip".to_vec());
    let a = create("shop", "v1", "shop/v1.zip", &[("AutoCreateApplication", "true"), ("Process", "true")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.tag("Status").as_deref(), Some("PROCESSING"));
    assert_eq!(
        a.tag("ApplicationVersionArn").as_deref(),
        Some("arn:aws:elasticbeanstalk:us-east-1:123456789012:applicationversion/shop/v1")
    );
    assert!(a.body.contains("<SourceBundle><S3Bucket>bucket</S3Bucket><S3Key>shop/v1.zip</S3Key></SourceBundle>"));
    let dup = create("shop", "v1", "shop/v1.zip", &[]).await;
    assert_eq!(dup.tag("Message").as_deref(), Some("Application Version v1 already exists."));
    let b = create("shop", "bad", "shop/bad.zip", &[("Process", "true")]).await;
    assert_eq!(b.status, 200);
    let u = create("shop", "plain", "shop/v1.zip", &[]).await;
    assert_eq!(u.tag("Status").as_deref(), Some("UNPROCESSED"));
    let q = create("shop", "v4", "shop/v1.zip", &[]).await;
    assert_eq!(q.code().as_deref(), Some("TooManyApplicationVersionsException"));
    assert_eq!(
        q.tag("Message").as_deref(),
        Some(
            "You cannot have more than 3 Application Versions. Either remove some Application Versions or request a limit increase."
        )
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = h.call("DescribeApplicationVersions", &[("ApplicationName", "shop")]).await;
    assert_eq!(d.tags("VersionLabel"), vec!["plain", "bad", "v1"]);
    assert_eq!(d.tags("Status"), vec!["UNPROCESSED", "FAILED", "PROCESSED"]);
    let apps = h.call("DescribeApplications", &[]).await;
    assert!(apps.body.contains("<Versions><member>plain</member><member>bad</member><member>v1</member></Versions>"));
    // Paging: MaxRecords 2 then NextToken.
    let p1 = h.call("DescribeApplicationVersions", &[("ApplicationName", "shop"), ("MaxRecords", "2")]).await;
    assert_eq!(p1.tags("VersionLabel"), vec!["plain", "bad"]);
    let token = p1.tag("NextToken").expect("a NextToken");
    let p2 = h
        .call("DescribeApplicationVersions", &[("ApplicationName", "shop"), ("MaxRecords", "2"), ("NextToken", &token)])
        .await;
    assert_eq!(p2.tags("VersionLabel"), vec!["v1"]);
    assert_eq!(p2.tag("NextToken"), None);
    let bad_token = h.call("DescribeApplicationVersions", &[("NextToken", "garbage")]).await;
    assert_eq!(bad_token.code().as_deref(), Some("InvalidParameterValue"));
    let bad_max = h.call("DescribeApplicationVersions", &[("MaxRecords", "0")]).await;
    assert_eq!(bad_max.code().as_deref(), Some("ValidationError"));
    // Deletion, with the source bundle.
    let del = h
        .call(
            "DeleteApplicationVersion",
            &[("ApplicationName", "shop"), ("VersionLabel", "v1"), ("DeleteSourceBundle", "true")],
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.body);
    assert!(!del.body.contains("DeleteApplicationVersionResult"));
    assert!(!h.store.has("bucket", "shop/v1.zip"));
    let again = h.call("DeleteApplicationVersion", &[("ApplicationName", "shop"), ("VersionLabel", "v1")]).await;
    assert_eq!(again.tag("Message").as_deref(), Some("No Application Version named 'v1' found."));
    // Room again under the quota.
    let room = create("shop", "v4", "shop/bad.zip", &[]).await;
    assert_eq!(room.status, 200, "{}", room.body);
}

#[tokio::test]
async fn environments_bookkeeping_and_errors() {
    let h = Harness::start().await;
    h.call("CreateApplication", &[("ApplicationName", "shop")]).await;
    let create = |name: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let h = &h;
        async move {
            let mut p = vec![("ApplicationName", "shop"), ("EnvironmentName", name), ("SolutionStackName", STACK)];
            p.extend_from_slice(extra);
            h.call("CreateEnvironment", &p).await
        }
    };
    for (bad, code) in
        [("abc", "ValidationError"), ("-abcd", "InvalidParameterValue"), ("ab_cd", "InvalidParameterValue")]
    {
        assert_eq!(create(bad, &[]).await.code().as_deref(), Some(code), "{bad}");
    }
    let no_stack = h.call("CreateEnvironment", &[("ApplicationName", "shop"), ("EnvironmentName", "shop-x")]).await;
    assert_eq!(no_stack.code().as_deref(), Some("InvalidParameterCombination"));
    let no_app = h
        .call(
            "CreateEnvironment",
            &[("ApplicationName", "nope"), ("EnvironmentName", "shop-x"), ("SolutionStackName", STACK)],
        )
        .await;
    assert_eq!(no_app.tag("Message").as_deref(), Some("No Application named 'nope' found."));
    let a = create("shop-prod", &[("CNAMEPrefix", "shop-live")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.tag("Status").as_deref(), Some("Launching"));
    assert_eq!(a.tag("Health").as_deref(), Some("Grey"));
    assert_eq!(a.tag("CNAME").as_deref(), Some("shop-live.us-east-1.elasticbeanstalk.com"));
    let id = a.tag("EnvironmentId").unwrap();
    assert!(id.starts_with("e-") && id.len() == 12, "{id}");
    let endpoint = a.tag("EndpointURL").unwrap();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    assert_eq!(create("shop-prod", &[]).await.tag("Message").as_deref(), Some("Environment shop-prod already exists."));
    assert_eq!(
        create("shop-other", &[("CNAMEPrefix", "shop-live")]).await.tag("Message").as_deref(),
        Some("DNS name (shop-live.us-east-1.elasticbeanstalk.com) is not available.")
    );
    let bad_label = create("shop-other", &[("VersionLabel", "v9")]).await;
    assert_eq!(bad_label.tag("Message").as_deref(), Some("No Application Version named 'v9' found."));
    let ready = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(ready.tag("Health").as_deref(), Some("Green"));
    // The sample application answers through the load balancer.
    let (code, page) = h.get(&format!("http://{endpoint}/")).await;
    assert_eq!(code, 200);
    assert!(page.contains("Congratulations") && page.contains("shop-prod"), "{page}");
    let events = h.events("shop-prod").await;
    let messages: Vec<&str> = events.iter().rev().map(|e| e.1.as_str()).collect();
    assert_eq!(messages.first(), Some(&"createEnvironment is starting."));
    assert!(messages.contains(&"Successfully launched environment: shop-prod"), "{messages:?}");
    // More environments, filters, paging.
    create("shop-stage", &[]).await;
    create("shop-dev1", &[]).await;
    h.wait_status("shop-dev1", "Ready").await;
    let by_id = h.call("DescribeEnvironments", &[("EnvironmentIds.member.1", &id)]).await;
    assert_eq!(by_id.tags("EnvironmentName"), vec!["shop-prod"]);
    let p1 = h.call("DescribeEnvironments", &[("ApplicationName", "shop"), ("MaxRecords", "2")]).await;
    assert_eq!(p1.tags("EnvironmentName"), vec!["shop-prod", "shop-stage"]);
    let t = p1.tag("NextToken").unwrap();
    let p2 =
        h.call("DescribeEnvironments", &[("ApplicationName", "shop"), ("MaxRecords", "2"), ("NextToken", &t)]).await;
    assert_eq!(p2.tags("EnvironmentName"), vec!["shop-dev1"]);
    let unknown = h.call("DescribeEnvironments", &[("EnvironmentNames.member.1", "ghost")]).await;
    assert!(unknown.body.contains("<Environments/>"), "{}", unknown.body);
    // Terminate through the admin API; IncludeDeleted decides whether it still shows.
    let (s, _) = h.admin("POST", "/environments/shop-dev1/terminate", None).await;
    assert_eq!(s, 202);
    h.wait_status("shop-dev1", "Terminated").await;
    let hidden = h
        .call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-dev1"), ("IncludeDeleted", "false")])
        .await;
    assert!(hidden.body.contains("<Environments/>"), "{}", hidden.body);
    let upd = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-dev1"), ("VersionLabel", "v1")]).await;
    assert_eq!(upd.tag("Message").as_deref(), Some("No Environment found for EnvironmentName = 'shop-dev1'."));
    let neither = h.call("UpdateEnvironment", &[("VersionLabel", "v1")]).await;
    assert_eq!(neither.code().as_deref(), Some("MissingRequiredParameter"));
}

#[tokio::test]
async fn successful_deploy_switches_the_load_balancer() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("shop", "v2", "img:v2").await;
    h.ready_env("shop", "shop-prod").await;
    let up = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.tag("Status").as_deref(), Some("Updating"));
    assert_eq!(up.tag("Health").as_deref(), Some("Grey"));
    assert_eq!(up.tag("VersionLabel").as_deref(), Some("v1"));
    assert_eq!(up.tag("AbortableOperationInProgress").as_deref(), Some("true"));
    let rid = up.header_rid.clone();
    // A second update while the first runs is refused.
    let busy = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v2")]).await;
    assert_eq!(
        busy.tag("Message").as_deref(),
        Some("Environment named shop-prod is in an invalid state for this operation. Must be Ready.")
    );
    let done = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(done.tag("Health").as_deref(), Some("Green"));
    assert_eq!(done.tag("VersionLabel").as_deref(), Some("v1"));
    assert_eq!(done.tag("AbortableOperationInProgress").as_deref(), Some("false"));
    let endpoint = done.tag("EndpointURL").unwrap();
    assert_eq!(h.get(&format!("http://{endpoint}/")).await, (200, "version v1".to_string()));
    // Events of this update, by RequestId, oldest first.
    let by_rid = h.call("DescribeEvents", &[("RequestId", &rid)]).await;
    let mut msgs = by_rid.tags("Message");
    msgs.reverse();
    assert_eq!(
        msgs,
        vec![
            "Environment update is starting.",
            "Deploying new version to instance(s).",
            "Instance deployment completed successfully.",
            "New application version was deployed to running EC2 instances.",
            "Environment update completed successfully.",
        ]
    );
    assert!(by_rid.tags("Severity").iter().all(|s| s == "INFO"));
    // Health transitions carry no RequestId.
    let all = h.events("shop-prod").await;
    let health: Vec<_> = all.iter().filter(|e| e.1.starts_with("Environment health has transitioned")).collect();
    assert!(health.iter().any(|e| e.1.starts_with("Environment health has transitioned from Ok to Info.")));
    assert!(health.iter().all(|e| e.2.is_none()), "{health:?}");
    // v2 replaces v1; the old instance is removed.
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v2")]).await;
    h.wait_status("shop-prod", "Ready").await;
    assert_eq!(h.get(&format!("http://{endpoint}/")).await.1, "version v2");
    assert_eq!(h.runtime.running_count(), 1);
    let (_, view) = h.admin("GET", "/environments/shop-prod", None).await;
    assert_eq!(view["version_label"], "v2");
    assert_eq!(view["status"], "Ready");
    let statuses: Vec<String> =
        view["transitions"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses.first().map(String::as_str), Some("Launching"));
    assert!(statuses.iter().filter(|s| *s == "Updating").count() >= 2, "{statuses:?}");
    assert!(view["transitions"][0]["time_ms"].as_i64().unwrap() > 1_600_000_000_000);
    let health = h
        .call("DescribeEnvironmentHealth", &[("EnvironmentName", "shop-prod"), ("AttributeNames.member.1", "All")])
        .await;
    assert_eq!(health.tag("Color").as_deref(), Some("Green"));
    assert_eq!(health.tag("HealthStatus").as_deref(), Some("Ok"));
    assert_eq!(health.tag("Status").as_deref(), Some("Ready"));
    assert!(health.body.contains("<InstancesHealth><NoData>0</NoData>"), "{}", health.body);
    assert!(health.body.contains("<Ok>1</Ok>"));
    let only_name = h.call("DescribeEnvironmentHealth", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(only_name.tag("Color"), None);
    assert_eq!(only_name.tag("EnvironmentName").as_deref(), Some("shop-prod"));
}

#[tokio::test]
async fn failed_deploy_keeps_the_previous_version_serving() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("shop", "broken", "img:unhealthy").await;
    h.store.insert("bucket", "shop/empty.zip", ebsim::bundle::zip_of(&[("README", b"nothing")]));
    h.call(
        "CreateApplicationVersion",
        &[
            ("ApplicationName", "shop"),
            ("VersionLabel", "empty"),
            ("SourceBundle.S3Bucket", "bucket"),
            ("SourceBundle.S3Key", "shop/empty.zip"),
        ],
    )
    .await;
    h.ready_env("shop", "shop-prod").await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    let ok = h.wait_status("shop-prod", "Ready").await;
    let endpoint = ok.tag("EndpointURL").unwrap();

    let up = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "broken")]).await;
    let rid = up.header_rid.clone();
    let after = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(after.tag("VersionLabel").as_deref(), Some("v1"));
    assert_eq!(after.tag("Health").as_deref(), Some("Red"));
    assert_eq!(after.tag("HealthStatus").as_deref(), Some("Degraded"));
    assert_eq!(h.get(&format!("http://{endpoint}/")).await.1, "version v1");
    assert_eq!(h.runtime.running_count(), 1, "the failed instance must be removed");
    let ev = h.call("DescribeEvents", &[("RequestId", &rid), ("Severity", "ERROR")]).await;
    let msgs = ev.tags("Message");
    assert_eq!(msgs.first().map(String::as_str), Some("Failed to deploy application."));
    assert!(msgs.contains(&"Instance deployment failed. For details, see 'eb-engine.log'.".to_string()), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("[Instance: i-") && m.contains("Command failed on instance. Return code: 1"))
    );
    assert!(ev.tags("Severity").iter().all(|s| s == "ERROR"));
    let (_, view) = h.admin("GET", "/environments/shop-prod", None).await;
    assert!(view["last_failure"].as_str().unwrap().contains("HTTP 500"), "{view}");
    // Red lasts red_ms, then Green again.
    let started = std::time::Instant::now();
    loop {
        let healed = h.call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-prod")]).await;
        if healed.tag("Health").as_deref() == Some("Green") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "health never went back to Green");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1_000), "Red should last red_ms");

    // A bundle with neither Dockerfile nor Dockerrun.aws.json gets its own event.
    let up = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "empty")]).await;
    h.wait_status("shop-prod", "Ready").await;
    let ev = h.call("DescribeEvents", &[("RequestId", &up.header_rid)]).await;
    assert!(ev.tags("Message").iter().any(|m| m.starts_with(
        "Instance deployment: Both 'Dockerfile' and 'Dockerrun.aws.json' are missing in your source bundle."
    )));
    assert_eq!(h.get(&format!("http://{endpoint}/")).await.1, "version v1");
}

#[tokio::test]
async fn injected_deploy_faults_stuck_abort_and_settle_health() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("shop", "v2", "img:v2").await;
    h.ready_env("shop", "shop-prod").await;
    // fail_next_deploys
    let (s, _) = h.admin("POST", "/faults", Some(json!({"fail_next_deploys": 1}))).await;
    assert_eq!(s, 200);
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    let r = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(r.tag("VersionLabel"), None, "back on the sample application");
    assert_eq!(h.runtime.launches.lock().unwrap().len(), 0);
    // stuck_next_updates, then AbortEnvironmentUpdate
    h.admin("POST", "/faults", Some(json!({"stuck_next_updates": 1}))).await;
    let bad_abort = h.call("AbortEnvironmentUpdate", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(
        bad_abort.tag("Message").as_deref(),
        Some("Environment named shop-prod is in an invalid state for this operation. Must be pending deployment.")
    );
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v2")]).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stuck = h.call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-prod")]).await;
    assert_eq!(stuck.tag("Status").as_deref(), Some("Updating"));
    let abort = h.call("AbortEnvironmentUpdate", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(abort.status, 200, "{}", abort.body);
    assert!(abort.body.contains("<AbortEnvironmentUpdateResponse"));
    assert!(!abort.body.contains("AbortEnvironmentUpdateResult"));
    let back = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(back.tag("VersionLabel"), None);
    let (_, view) = h.admin("GET", "/environments/shop-prod", None).await;
    let seen: Vec<&str> =
        view["transitions"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert!(seen.windows(2).any(|w| w == ["Updating", "Aborting"]), "{seen:?}");
    // health_after_deploy
    h.admin("POST", "/faults", Some(json!({"health_after_deploy": "Yellow"}))).await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v2")]).await;
    let y = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(y.tag("VersionLabel").as_deref(), Some("v2"));
    assert_eq!((y.tag("Health").as_deref(), y.tag("HealthStatus").as_deref()), (Some("Yellow"), Some("Warning")));
    let (_, f) = h.admin("DELETE", "/faults", None).await;
    assert_eq!(f["health_after_deploy"], serde_json::Value::Null);
}

#[tokio::test]
async fn api_faults_request_log_and_admin_errors() {
    let h = Harness::start().await;
    let (s, health) = h.admin("GET", "/health", None).await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    h.admin("POST", "/faults", Some(json!({"next_5xx": 1, "ops": ["DescribeEvents"]}))).await;
    let other = h.call("DescribeApplications", &[]).await;
    assert_eq!(other.status, 200);
    let five = h.call("DescribeEvents", &[]).await;
    assert!(five.status == 500 || five.status == 503, "{}", five.status);
    assert!(five.body.contains("<Type>Receiver</Type>"));
    assert_eq!(h.call("DescribeEvents", &[]).await.status, 200);
    h.admin("POST", "/faults", Some(json!({"throttle_fraction": 1.0, "ops": null}))).await;
    let t = h.call("DescribeApplications", &[]).await;
    assert_eq!(
        (t.status, t.code().as_deref(), t.tag("Message").as_deref()),
        (400, Some("Throttling"), Some("Rate exceeded"))
    );
    // The admin API itself is never throttled.
    let (s, log) = h.admin("GET", "/requests", None).await;
    assert_eq!(s, 200);
    let log = log.as_array().unwrap().clone();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0]["seq"], 1);
    assert_eq!(log[0]["op"], "DescribeApplications");
    assert_eq!(log[0]["error_code"], serde_json::Value::Null);
    assert_eq!(log[3]["error_code"], "Throttling");
    assert_eq!(log[3]["status"], 400);
    assert_eq!(log[3]["request_id"].as_str(), Some(t.header_rid.as_str()));
    let (_, since) = h.admin("GET", "/requests?since=3", None).await;
    assert_eq!(since.as_array().unwrap().len(), 1);
    h.admin("DELETE", "/faults", None).await;
    let p = h.call("CreateApplication", &[("ApplicationName", "a b"), ("Tags.member.1.Key", "k")]).await;
    assert_eq!(p.status, 200);
    let (_, last) = h.admin("GET", "/requests?since=4", None).await;
    assert_eq!(last[0]["params"], json!({"ApplicationName": "a b", "Tags.member.1.Key": "k"}));
    let (s, _) = h.admin("POST", "/faults", Some(json!({"bogus": 1}))).await;
    assert_eq!(s, 400);
    let (s, _) = h.admin("GET", "/environments/ghost", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.admin("POST", "/environments/ghost/terminate", None).await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn describe_events_filters() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("shop", "v2", "img:unknown").await;
    h.ready_env("shop", "shop-prod").await;
    let t0 = ebsim::protocol::time::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    h.wait_status("shop-prod", "Ready").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t1 = ebsim::protocol::time::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v2")]).await;
    h.wait_status("shop-prod", "Ready").await;
    let iso = ebsim::protocol::time::format_iso;
    // botocore sends six fraction digits.
    let start = iso(t0).replace('Z', "000Z");
    let window = h
        .call("DescribeEvents", &[("EnvironmentName", "shop-prod"), ("StartTime", &start), ("EndTime", &iso(t1))])
        .await;
    let msgs = window.tags("Message");
    let newest = msgs.iter().find(|m| !m.starts_with("Environment health has"));
    assert_eq!(newest.map(String::as_str), Some("Environment update completed successfully."), "{msgs:?}");
    assert!(msgs.iter().all(|m| !m.contains("Failed")));
    let dates = window.tags("EventDate");
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first: {dates:?}");
    let warn = h.call("DescribeEvents", &[("EnvironmentName", "shop-prod"), ("Severity", "WARN")]).await;
    let sev = warn.tags("Severity");
    assert!(!sev.is_empty() && sev.iter().all(|s| s == "WARN" || s == "ERROR"), "{sev:?}");
    let by_label = h.call("DescribeEvents", &[("VersionLabel", "v2")]).await;
    assert!(by_label.tags("VersionLabel").iter().all(|l| l == "v2"));
    assert!(!by_label.tags("VersionLabel").is_empty());
    let bad = h.call("DescribeEvents", &[("Severity", "LOUD")]).await;
    assert_eq!(bad.code().as_deref(), Some("ValidationError"));
    // Paging is stable while new events arrive.
    let p1 = h.call("DescribeEvents", &[("EnvironmentName", "shop-prod"), ("MaxRecords", "3")]).await;
    assert_eq!(p1.tags("member").len(), 3);
    let token = p1.tag("NextToken").unwrap();
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    let p2 =
        h.call("DescribeEvents", &[("EnvironmentName", "shop-prod"), ("MaxRecords", "3"), ("NextToken", &token)]).await;
    let first_p2 = tag_in(&tags_in(&p2.body, "member")[0], "EventDate").unwrap();
    let last_p1 = tag_in(tags_in(&p1.body, "member").last().unwrap(), "EventDate").unwrap();
    assert!(first_p2 <= last_p1);
    h.wait_status("shop-prod", "Ready").await;
}

/// A Dockerrun v1 bundle for `image` plus `extra` files.
fn bundle_with(image: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let run =
        format!(r#"{{"AWSEBDockerrunVersion":"1","Image":{{"Name":"{image}"}},"Ports":[{{"ContainerPort":"80"}}]}}"#);
    let mut files: Vec<(&str, &[u8])> = vec![("Dockerrun.aws.json", run.as_bytes())];
    files.extend_from_slice(extra);
    ebsim::bundle::zip_of(&files)
}

const BROKEN_CONFIG: &[u8] = b"option_settings:\n  aws:elasticbeanstalk:application:environment:\n    A: 1\n   B: 2\n";

#[tokio::test]
async fn processing_validates_configuration_files() {
    let h = Harness::with(|c| c.timing.processing = ebsim::config::Span::fixed(150)).await;
    h.store.insert("bucket", "good.zip", bundle_with("img:v1", &[(".ebextensions/01.config", b"commands: {}\n")]));
    h.store.insert("bucket", "broken.zip", bundle_with("img:v1", &[(".ebextensions/01.config", BROKEN_CONFIG)]));
    h.store.insert("bucket", "manifest.zip", bundle_with("img:v1", &[("env.yaml", b"{ unclosed: [\n")]));
    for (label, key) in [("good", "good.zip"), ("broken", "broken.zip"), ("manifest", "manifest.zip")] {
        let a = h
            .call(
                "CreateApplicationVersion",
                &[
                    ("ApplicationName", "shop"),
                    ("VersionLabel", label),
                    ("SourceBundle.S3Bucket", "bucket"),
                    ("SourceBundle.S3Key", key),
                    ("AutoCreateApplication", "true"),
                    ("Process", "true"),
                ],
            )
            .await;
        assert_eq!(a.tag("Status").as_deref(), Some("PROCESSING"), "{}", a.body);
    }
    // Processing is a short wait of its own: still PROCESSING well before it ends.
    tokio::time::sleep(Duration::from_millis(40)).await;
    let early = h.call("DescribeApplicationVersions", &[("ApplicationName", "shop")]).await;
    assert_eq!(early.tags("Status"), ["PROCESSING", "PROCESSING", "PROCESSING"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = h.call("DescribeApplicationVersions", &[("ApplicationName", "shop")]).await;
    assert_eq!(done.tags("VersionLabel"), ["manifest", "broken", "good"]);
    assert_eq!(done.tags("Status"), ["FAILED", "FAILED", "PROCESSED"]);
    // Beanstalk says no more than FAILED: no event.
    let ev = h.call("DescribeEvents", &[("ApplicationName", "shop")]).await;
    assert!(ev.tags("Message").is_empty(), "{:?}", ev.tags("Message"));
}

#[tokio::test]
async fn a_broken_configuration_file_fails_the_deploy_before_any_instance() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.store.insert(
        "bucket",
        "shop/broken.zip",
        bundle_with("img:v2", &[(".ebextensions/01-env.config", BROKEN_CONFIG)]),
    );
    h.call(
        "CreateApplicationVersion",
        &[
            ("ApplicationName", "shop"),
            ("VersionLabel", "broken"),
            ("SourceBundle.S3Bucket", "bucket"),
            ("SourceBundle.S3Key", "shop/broken.zip"),
        ],
    )
    .await;
    h.ready_env("shop", "shop-prod").await;
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    h.wait_status("shop-prod", "Ready").await;
    let launches = h.runtime.launches.lock().unwrap().len();
    let up = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "broken")]).await;
    let after = h.wait_status("shop-prod", "Ready").await;
    assert_eq!(after.tag("VersionLabel").as_deref(), Some("v1"));
    assert_eq!(after.tag("Health").as_deref(), Some("Green"), "no instance was touched");
    assert_eq!(h.runtime.launches.lock().unwrap().len(), launches, "no instance started");
    let ev = h.call("DescribeEvents", &[("RequestId", &up.header_rid)]).await;
    let mut msgs = ev.tags("Message");
    msgs.reverse();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(msgs[0], "Environment update is starting.");
    assert!(
        msgs[1].starts_with(
            "The configuration file .ebextensions/01-env.config in application version broken contains invalid YAML or JSON. YAML exception: Invalid Yaml: "
        ),
        "{}",
        msgs[1]
    );
    assert_eq!(msgs[2], "Failed to deploy application.");
    assert_eq!(ev.tags("Severity"), ["ERROR", "ERROR", "INFO"]);
}

#[tokio::test]
async fn step_durations_vary_within_their_range_and_follow_the_seed() {
    let timings = |seed: u64| async move {
        let h = Harness::with(|c| {
            c.timing.step = ebsim::config::Span::between(10, 150);
            c.seed = seed;
        })
        .await;
        h.version("shop", "v1", "img:v1").await;
        h.ready_env("shop", "shop-prod").await;
        let mut took = Vec::new();
        for _ in 0..4 {
            let t = std::time::Instant::now();
            h.call("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
            h.wait_status("shop-prod", "Ready").await;
            took.push(t.elapsed().as_millis() as i64);
        }
        took
    };
    let a = timings(7).await;
    // Five steps between 10 and 150 ms each, plus the health check and the polling.
    assert!(a.iter().all(|ms| (50..=750 + 400).contains(ms)), "{a:?}");
    assert!(a.iter().max().unwrap() - a.iter().min().unwrap() > 30, "durations vary: {a:?}");
    let b = timings(7).await;
    let close = a.iter().zip(&b).filter(|(x, y)| (*x - *y).abs() <= 40).count();
    assert!(close >= 3, "the same seed gives the same durations: {a:?} vs {b:?}");
}
