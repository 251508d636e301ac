//! The Rust SDK (smithy-rs parsers, the client eb-deploy uses) against ebsim in-process: result
//! element order, request ids from the header, error codes, uppercase version status.

mod common;

use std::time::Duration;

use aws_sdk_elasticbeanstalk::Client;
use aws_sdk_elasticbeanstalk::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_elasticbeanstalk::error::ProvideErrorMetadata;
use aws_sdk_elasticbeanstalk::operation::RequestId;
use aws_sdk_elasticbeanstalk::types::{EnvironmentHealth, EnvironmentStatus, EventSeverity, S3Location};
use common::Harness;

fn client(h: &Harness) -> Client {
    let conf = aws_sdk_elasticbeanstalk::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(h.url())
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn the_rust_sdk_parses_every_answer() {
    let h = Harness::start().await;
    let eb = client(&h);
    let loc = eb.create_storage_location().send().await.unwrap();
    assert_eq!(loc.s3_bucket(), Some("elasticbeanstalk-us-east-1-123456789012"));
    assert_eq!(loc.request_id().map(str::len), Some(36));

    eb.create_application().application_name("shop").send().await.unwrap();
    h.put_dockerrun("bucket", "shop/v1.zip", "img:v1");
    let v = eb
        .create_application_version()
        .application_name("shop")
        .version_label("v1")
        .source_bundle(S3Location::builder().s3_bucket("bucket").s3_key("shop/v1.zip").build())
        .process(true)
        .send()
        .await
        .unwrap();
    let status = v.application_version().and_then(|a| a.status()).map(|s| s.as_str().to_string());
    assert_eq!(status.as_deref(), Some("PROCESSING"));

    let err = eb.create_application().application_name("shop").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(err.message(), Some("Application shop already exists."));
    let err = eb.update_environment().environment_name("nowhere").version_label("v1").send().await.unwrap_err();
    assert_eq!(err.message(), Some("No Environment found for EnvironmentName = 'nowhere'."));

    let created = eb
        .create_environment()
        .application_name("shop")
        .environment_name("shop-prod")
        .solution_stack_name("64bit Amazon Linux 2023 v4.3.0 running Docker")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), Some(&EnvironmentStatus::Launching));
    assert!(created.date_created().is_some());
    h.wait_status("shop-prod", "Ready").await;

    let up = eb.update_environment().environment_name("shop-prod").version_label("v1").send().await.unwrap();
    assert_eq!(up.status(), Some(&EnvironmentStatus::Updating));
    assert_eq!(up.health(), Some(&EnvironmentHealth::Grey));
    assert_eq!(up.abortable_operation_in_progress(), Some(true));
    let rid = up.request_id().expect("request id from x-amzn-RequestId").to_string();
    h.wait_status("shop-prod", "Ready").await;

    let events = eb.describe_events().request_id(&rid).send().await.unwrap();
    let msgs: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(msgs.first(), Some(&"Environment update completed successfully."));
    assert!(events.events().iter().all(|e| e.severity() == Some(&EventSeverity::Info)));
    assert!(events.events().iter().all(|e| e.event_date().is_some()));

    // The SDK's paginator follows NextToken.
    let mut pages = eb.describe_events().environment_name("shop-prod").max_records(2).into_paginator().send();
    let mut n = 0;
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        n += page.unwrap().events().len();
        page_count += 1;
    }
    assert!(page_count >= 3 && n >= 5, "{page_count} pages, {n} events");

    let envs = eb.describe_environments().environment_names("shop-prod").send().await.unwrap();
    let e = &envs.environments()[0];
    assert_eq!(
        (e.status(), e.health(), e.version_label()),
        (Some(&EnvironmentStatus::Ready), Some(&EnvironmentHealth::Green), Some("v1"))
    );
    let health = eb
        .describe_environment_health()
        .environment_name("shop-prod")
        .attribute_names(aws_sdk_elasticbeanstalk::types::EnvironmentHealthAttribute::All)
        .send()
        .await
        .unwrap();
    assert_eq!(health.color(), Some("Green"));
    assert_eq!(health.instances_health().and_then(|i| i.ok()), Some(1));

    tokio::time::sleep(Duration::from_millis(50)).await;
    let versions = eb.describe_application_versions().application_name("shop").send().await.unwrap();
    let s = versions.application_versions()[0].status().map(|s| s.as_str().to_string());
    assert!(s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("processed")), "{s:?}");

    eb.delete_application_version().application_name("shop").version_label("v1").send().await.unwrap();
    let err = eb.abort_environment_update().environment_name("shop-prod").send().await.unwrap_err();
    assert!(err.message().unwrap_or_default().ends_with("Must be pending deployment."));
}
