//! The JSON form of every operation and error (`Accept: application/json`), as clients that parse
//! only JSON read it: `{"OpResponse": {"OpResult": …, "ResponseMetadata": {"RequestId": …}}}`,
//! lists as arrays, timestamps as epoch seconds, absent members as `null`.

mod common;

use std::time::Duration;

use common::Harness;
use serde_json::{Value, json};

const STACK: &str = "64bit Amazon Linux 2023 v4.3.0 running Docker";

fn is_recent_epoch_seconds(v: &Value) -> bool {
    let now = ebsim::protocol::time::now_ms() as f64 / 1000.0;
    v.as_f64().is_some_and(|t| t > now - 600.0 && t <= now + 1.0)
}

#[tokio::test]
async fn applications_versions_and_storage_in_json() {
    let h = Harness::start().await;
    let loc = h.call_json("CreateStorageLocation", &[]).await;
    assert_eq!(loc.result("CreateStorageLocation"), &json!({"S3Bucket": "elasticbeanstalk-us-east-1-123456789012"}));

    let app = h.call_json("CreateApplication", &[("ApplicationName", "shop"), ("Description", "a \"shop\"")]).await;
    let a = &app.result("CreateApplication")["Application"];
    assert_eq!(a["ApplicationName"], "shop");
    assert_eq!(a["Description"], "a \"shop\"");
    assert_eq!(a["ApplicationArn"], "arn:aws:elasticbeanstalk:us-east-1:123456789012:application/shop");
    assert_eq!(a["Versions"], json!([]));
    assert_eq!(a["ConfigurationTemplates"], json!([]));
    assert!(is_recent_epoch_seconds(&a["DateCreated"]), "{a}");

    h.put_dockerrun("bucket", "shop/v1.zip", "img:v1");
    let v = h
        .call_json(
            "CreateApplicationVersion",
            &[
                ("ApplicationName", "shop"),
                ("VersionLabel", "v1"),
                ("SourceBundle.S3Bucket", "bucket"),
                ("SourceBundle.S3Key", "shop/v1.zip"),
                ("Process", "true"),
            ],
        )
        .await;
    let v = v.result("CreateApplicationVersion")["ApplicationVersion"].clone();
    assert_eq!(v["Status"], "PROCESSING");
    assert_eq!(v["SourceBundle"], json!({"S3Bucket": "bucket", "S3Key": "shop/v1.zip"}));
    assert_eq!(v["Description"], Value::Null);
    assert!(is_recent_epoch_seconds(&v["DateUpdated"]));
    h.call_json("CreateApplicationVersion", &[("ApplicationName", "shop"), ("VersionLabel", "v2")]).await;

    tokio::time::sleep(Duration::from_millis(100)).await;
    let all = h.call_json("DescribeApplicationVersions", &[("ApplicationName", "shop")]).await;
    let all = all.result("DescribeApplicationVersions");
    let labels: Vec<&str> =
        all["ApplicationVersions"].as_array().unwrap().iter().map(|v| v["VersionLabel"].as_str().unwrap()).collect();
    assert_eq!(labels, ["v2", "v1"]);
    assert_eq!(all["ApplicationVersions"][1]["Status"], "PROCESSED");
    assert_eq!(all["NextToken"], Value::Null);
    let page = h.call_json("DescribeApplicationVersions", &[("ApplicationName", "shop"), ("MaxRecords", "1")]).await;
    assert!(page.result("DescribeApplicationVersions")["NextToken"].is_string());
    let one = h
        .call_json("DescribeApplicationVersions", &[("ApplicationName", "shop"), ("VersionLabels.members.1", "v1")])
        .await;
    assert_eq!(one.result("DescribeApplicationVersions")["ApplicationVersions"].as_array().map(Vec::len), Some(1));

    let apps = h.call_json("DescribeApplications", &[("ApplicationNames.member.1", "shop")]).await;
    assert_eq!(apps.result("DescribeApplications")["Applications"][0]["Versions"], json!(["v2", "v1"]));

    let del = h.call_json("DeleteApplicationVersion", &[("ApplicationName", "shop"), ("VersionLabel", "v2")]).await;
    assert_eq!(del.result("DeleteApplicationVersion"), &Value::Null);
    assert_eq!(
        del.body,
        json!({"DeleteApplicationVersionResponse": {"ResponseMetadata": {"RequestId": del.header_rid}}})
    );

    let dup = h.call_json("CreateApplication", &[("ApplicationName", "shop")]).await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.error(), ("InvalidParameterValue".into(), "Application shop already exists.".into()));
    assert_eq!(dup.body["Error"]["Type"], "Sender");
}

#[tokio::test]
async fn environments_deploys_events_and_health_in_json() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    let created = h
        .call_json(
            "CreateEnvironment",
            &[("ApplicationName", "shop"), ("EnvironmentName", "shop-prod"), ("SolutionStackName", STACK)],
        )
        .await;
    let e = created.result("CreateEnvironment").clone();
    assert_eq!((e["Status"].as_str(), e["Health"].as_str()), (Some("Launching"), Some("Grey")));
    assert_eq!(e["AbortableOperationInProgress"], false);
    assert_eq!(e["Tier"], json!({"Name": "WebServer", "Type": "Standard", "Version": "1.0"}));
    assert_eq!(e["EnvironmentLinks"], json!([]));
    assert_eq!(e["VersionLabel"], Value::Null);
    assert!(e["EnvironmentId"].as_str().is_some_and(|id| id.starts_with("e-")));
    assert!(is_recent_epoch_seconds(&e["DateCreated"]));
    h.wait_status("shop-prod", "Ready").await;
    h.ready_env("shop", "shop-stage").await;

    let both = h.call_json("DescribeEnvironments", &[("ApplicationName", "shop")]).await;
    assert_eq!(both.result("DescribeEnvironments")["Environments"].as_array().map(Vec::len), Some(2));
    let one = h.call_json("DescribeEnvironments", &[("EnvironmentNames.members.1", "shop-prod")]).await;
    let one = one.result("DescribeEnvironments");
    assert_eq!(one["Environments"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["Environments"][0]["EnvironmentName"], "shop-prod");
    assert_eq!(one["NextToken"], Value::Null);

    let t0 = ebsim::protocol::time::now_ms();
    let up = h.call_json("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    let up = up.result("UpdateEnvironment").clone();
    assert_eq!((up["Status"].as_str(), up["VersionLabel"].as_str()), (Some("Updating"), Some("v1")));
    assert_eq!(up["AbortableOperationInProgress"], true);
    let busy = h.call_json("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    assert_eq!(
        busy.error(),
        (
            "InvalidParameterValue".into(),
            "Environment named shop-prod is in an invalid state for this operation. Must be Ready.".into()
        )
    );
    h.wait_status("shop-prod", "Ready").await;

    // StartTime in the basic ISO 8601 form, seconds only.
    let start = ebsim::protocol::time::format_iso(t0 / 1000 * 1000).replace(['-', ':'], "").replace(".000", "");
    let ev = h.call_json("DescribeEvents", &[("EnvironmentName", "shop-prod"), ("StartTime", &start)]).await;
    let events = ev.result("DescribeEvents")["Events"].as_array().unwrap().clone();
    assert!(events.iter().all(|e| e["EventDate"].as_f64().is_some_and(|t| t * 1000.0 >= (t0 / 1000 * 1000) as f64)));
    let dates: Vec<f64> = events.iter().map(|e| e["EventDate"].as_f64().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first: {dates:?}");
    let done = events.iter().find(|e| e["Message"] == "Environment update completed successfully.").expect("done");
    assert_eq!(done["Severity"], "INFO");
    assert_eq!(done["ApplicationName"], "shop");
    assert_eq!(done["EnvironmentName"], "shop-prod");
    assert_eq!(done["VersionLabel"], "v1");
    assert_eq!(done["RequestId"].as_str().map(str::len), Some(36));
    let health_event =
        events.iter().find(|e| e["Message"].as_str().unwrap().starts_with("Environment health")).unwrap();
    assert_eq!(health_event["RequestId"], Value::Null, "health transitions carry no RequestId");

    let health = h
        .call_json("DescribeEnvironmentHealth", &[("EnvironmentName", "shop-prod"), ("AttributeNames.member.1", "All")])
        .await;
    let health = health.result("DescribeEnvironmentHealth");
    assert_eq!((health["Color"].as_str(), health["HealthStatus"].as_str()), (Some("Green"), Some("Ok")));
    assert_eq!(health["InstancesHealth"]["Ok"], 1);
    assert_eq!(health["Causes"], json!([]));
    assert!(is_recent_epoch_seconds(&health["RefreshedAt"]));

    let not_now = h.call_json("AbortEnvironmentUpdate", &[("EnvironmentName", "shop-prod")]).await;
    assert!(not_now.error().1.ends_with("Must be pending deployment."));
    h.admin("POST", "/faults", Some(json!({"stuck_next_updates": 1}))).await;
    h.call_json("UpdateEnvironment", &[("EnvironmentName", "shop-prod"), ("VersionLabel", "v1")]).await;
    let abort = h.call_json("AbortEnvironmentUpdate", &[("EnvironmentName", "shop-prod")]).await;
    assert_eq!(abort.result("AbortEnvironmentUpdate"), &Value::Null);
    assert!(abort.body["AbortEnvironmentUpdateResponse"]["ResponseMetadata"].is_object());
    h.wait_status("shop-prod", "Ready").await;
}

#[tokio::test]
async fn every_error_in_json() {
    let h = Harness::start().await;
    let unknown = h.call_json("RebuildEnvironment", &[]).await;
    assert_eq!(unknown.error().0, "InvalidAction");
    let missing = h.call_json("CreateApplication", &[]).await;
    assert_eq!(
        missing.error(),
        ("MissingParameter".into(), "The request must contain the parameter ApplicationName".into())
    );
    let bad_time = h.call_json("DescribeEvents", &[("StartTime", "20261301T000000Z")]).await;
    assert_eq!(bad_time.error().0, "InvalidParameterValue");
    assert_eq!(bad_time.status, 400);
    h.admin("POST", "/faults", Some(json!({"next_5xx": 1}))).await;
    let five = h.call_json("DescribeApplications", &[]).await;
    assert!(five.status == 500 || five.status == 503);
    assert_eq!(five.body["Error"]["Type"], "Receiver");
    five.error();
    h.admin("POST", "/faults", Some(json!({"throttle_fraction": 1.0}))).await;
    let t = h.call_json("DescribeEvents", &[]).await;
    assert_eq!((t.status, t.error()), (400, ("Throttling".into(), "Rate exceeded".into())));
    h.admin("DELETE", "/faults", None).await;
    // No Action at all, and the XML form still answers whoever does not ask for JSON.
    let req = hyper::Request::post(h.url())
        .header("accept", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"Version=2010-12-01")))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Error"]["Code"], "MissingAction");
    let xml = h.call("DescribeApplications", &[]).await;
    assert!(xml.body.starts_with("<DescribeApplicationsResponse"), "{}", xml.body);
}
