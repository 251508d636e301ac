//! What fleets and blue/green deploys use: SwapEnvironmentCNAMEs with its events and effect, the
//! CNAME proxy that makes CNAMEs reachable, and reads across several environments.

mod common;

use std::time::Duration;

use common::{Harness, tag_in, tags_in};

const STACK: &str = "64bit Amazon Linux 2023 v4.3.0 running Docker";
const LIVE: &str = "shop-live.us-east-1.elasticbeanstalk.com";
const NEXT: &str = "shop-next.us-east-1.elasticbeanstalk.com";

async fn env_with(h: &Harness, name: &str, extra: &[(&str, &str)]) {
    let mut p = vec![("ApplicationName", "shop"), ("EnvironmentName", name), ("SolutionStackName", STACK)];
    p.extend_from_slice(extra);
    let a = h.call("CreateEnvironment", &p).await;
    assert_eq!(a.status, 200, "{}", a.body);
    h.wait_status(name, "Ready").await;
}

async fn deploy(h: &Harness, env: &str, label: &str) {
    let a = h.call("UpdateEnvironment", &[("EnvironmentName", env), ("VersionLabel", label)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let done = h.wait_status(env, "Ready").await;
    assert_eq!(done.tag("VersionLabel").as_deref(), Some(label));
}

fn cname_of(a: &common::Answer, env: &str) -> Option<String> {
    a.tags("member")
        .into_iter()
        .find(|m| tag_in(m, "EnvironmentName").as_deref() == Some(env))
        .and_then(|m| tag_in(&m, "CNAME"))
}

#[tokio::test]
async fn swapping_cnames_moves_traffic_with_beanstalks_events() {
    let h = Harness::start().await;
    h.version("shop", "blue", "img:blue").await;
    h.version("shop", "green", "img:green").await;
    env_with(&h, "shop-blue", &[("CNAMEPrefix", "shop-live")]).await;
    env_with(&h, "shop-green", &[("CNAMEPrefix", "shop-next")]).await;
    deploy(&h, "shop-blue", "blue").await;
    deploy(&h, "shop-green", "green").await;

    assert_eq!(h.get_via_proxy(LIVE, "/").await, (200, "version blue".into()));
    assert_eq!(h.get_via_proxy(NEXT, "/").await, (200, "version green".into()));
    assert_eq!(h.get_via_proxy(&LIVE.to_uppercase(), "/").await.1, "version blue", "host names ignore case");
    let (code, why) = h.get_via_proxy("nobody.us-east-1.elasticbeanstalk.com", "/").await;
    assert_eq!(code, 502);
    assert!(why.contains("is not the CNAME of a live environment"), "{why}");

    let swap = h
        .call(
            "SwapEnvironmentCNAMEs",
            &[("SourceEnvironmentName", "shop-green"), ("DestinationEnvironmentName", "shop-blue")],
        )
        .await;
    assert_eq!(swap.status, 200, "{}", swap.body);
    assert!(
        swap.body.starts_with("<SwapEnvironmentCNAMEsResponse") && !swap.body.contains("SwapEnvironmentCNAMEsResult")
    );
    // While it runs, both environments refuse other work.
    let busy = h.call("UpdateEnvironment", &[("EnvironmentName", "shop-blue"), ("VersionLabel", "green")]).await;
    assert_eq!(
        busy.tag("Message").as_deref(),
        Some("Environment named shop-blue is in an invalid state for this operation. Must be Ready.")
    );
    let again = h
        .call(
            "SwapEnvironmentCNAMEs",
            &[("SourceEnvironmentName", "shop-blue"), ("DestinationEnvironmentName", "shop-green")],
        )
        .await;
    assert_eq!(again.code().as_deref(), Some("InvalidParameterValue"));

    // The EB CLI waits for "Completed swapping CNAMEs for environments" among the call's events.
    let mut msgs = Vec::new();
    for _ in 0..200 {
        let ev = h.call("DescribeEvents", &[("RequestId", &swap.header_rid)]).await;
        msgs = ev.tags("Message");
        if msgs.first().is_some_and(|m| m.starts_with("Completed swapping CNAMEs")) {
            assert!(ev.tags("EnvironmentName").iter().all(|e| e == "shop-green"), "{}", ev.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    msgs.reverse();
    let lb_blue =
        h.call("DescribeEnvironments", &[("EnvironmentNames.member.1", "shop-blue")]).await.tag("EndpointURL").unwrap();
    assert_eq!(
        msgs,
        [
            "swapEnvironmentCNAMEs is starting.".to_string(),
            "Swapping CNAMEs for environments 'shop-green' and 'shop-blue'.".to_string(),
            format!("'{NEXT}' now points to '{lb_blue}'."),
            "Completed swapping CNAMEs for environments 'shop-green' and 'shop-blue'.".to_string(),
        ]
    );
    let envs = h.call("DescribeEnvironments", &[("ApplicationName", "shop")]).await;
    assert_eq!(cname_of(&envs, "shop-green").as_deref(), Some(LIVE));
    assert_eq!(cname_of(&envs, "shop-blue").as_deref(), Some(NEXT));
    assert_eq!(h.get_via_proxy(LIVE, "/").await, (200, "version green".into()));
    assert_eq!(h.get_via_proxy(NEXT, "/").await, (200, "version blue".into()));
    // And back, by environment ids this time.
    let ids: Vec<String> = envs.tags("EnvironmentId");
    let back = h
        .call("SwapEnvironmentCNAMEs", &[("SourceEnvironmentId", &ids[0]), ("DestinationEnvironmentId", &ids[1])])
        .await;
    assert_eq!(back.status, 200, "{}", back.body);
    for _ in 0..200 {
        if h.get_via_proxy(LIVE, "/").await.1 == "version blue" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.get_via_proxy(LIVE, "/").await.1, "version blue");
}

#[tokio::test]
async fn swap_errors() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    env_with(&h, "shop-blue", &[]).await;
    env_with(&h, "shop-green", &[]).await;
    env_with(&h, "shop-work", &[("Tier.Name", "Worker"), ("Tier.Type", "SQS/HTTP")]).await;
    let swap = |params: &'static [(&'static str, &'static str)]| {
        let h = &h;
        async move { h.call("SwapEnvironmentCNAMEs", params).await }
    };
    let none = swap(&[("DestinationEnvironmentName", "shop-blue")]).await;
    assert_eq!(none.code().as_deref(), Some("MissingRequiredParameter"));
    assert_eq!(
        none.tag("Message").as_deref(),
        Some("Either SourceEnvironmentName or SourceEnvironmentId must be specified.")
    );
    let mixed = swap(&[("SourceEnvironmentName", "shop-blue"), ("DestinationEnvironmentId", "e-abcdefghij")]).await;
    assert_eq!(mixed.code().as_deref(), Some("InvalidParameterCombination"));
    let ghost = swap(&[("SourceEnvironmentName", "shop-blue"), ("DestinationEnvironmentName", "ghost-env")]).await;
    assert_eq!(ghost.tag("Message").as_deref(), Some("No Environment found for EnvironmentName = 'ghost-env'."));
    let itself = swap(&[("SourceEnvironmentName", "shop-blue"), ("DestinationEnvironmentName", "shop-blue")]).await;
    assert_eq!(itself.code().as_deref(), Some("InvalidParameterValue"));
    let worker = swap(&[("SourceEnvironmentName", "shop-blue"), ("DestinationEnvironmentName", "shop-work")]).await;
    assert!(worker.tag("Message").is_some_and(|m| m.contains("only web server environments")), "{}", worker.body);
    h.call("UpdateEnvironment", &[("EnvironmentName", "shop-green"), ("VersionLabel", "v1")]).await;
    let updating = swap(&[("SourceEnvironmentName", "shop-blue"), ("DestinationEnvironmentName", "shop-green")]).await;
    assert_eq!(
        updating.tag("Message").as_deref(),
        Some("Environment named shop-green is in an invalid state for this operation. Must be Ready.")
    );
    h.wait_status("shop-green", "Ready").await;
}

#[tokio::test]
async fn one_call_reads_every_environment_of_an_application() {
    let h = Harness::start().await;
    h.version("shop", "v1", "img:v1").await;
    h.version("blog", "b1", "img:b1").await;
    let t0 = ebsim::protocol::time::format_iso(ebsim::protocol::time::now_ms());
    for env in ["shop-a1", "shop-b2", "shop-c3"] {
        env_with(&h, env, &[]).await;
    }
    let blog = h
        .call(
            "CreateEnvironment",
            &[("ApplicationName", "blog"), ("EnvironmentName", "blog-prod"), ("SolutionStackName", STACK)],
        )
        .await;
    assert_eq!(blog.status, 200);
    h.wait_status("blog-prod", "Ready").await;
    for env in ["shop-a1", "shop-b2", "shop-c3"] {
        h.call("UpdateEnvironment", &[("EnvironmentName", env), ("VersionLabel", "v1")]).await;
    }
    for env in ["shop-a1", "shop-b2", "shop-c3"] {
        h.wait_status(env, "Ready").await;
    }

    // DescribeEvents by application and StartTime, no environment: every environment's events, each
    // naming its environment, newest first, the same across pages as in one answer.
    let whole = h.call("DescribeEvents", &[("ApplicationName", "shop"), ("StartTime", &t0)]).await;
    let members = tags_in(&whole.body, "member");
    let envs: std::collections::BTreeSet<String> =
        members.iter().filter_map(|m| tag_in(m, "EnvironmentName")).collect();
    assert_eq!(envs.into_iter().collect::<Vec<_>>(), ["shop-a1", "shop-b2", "shop-c3"]);
    assert!(members.iter().all(|m| tag_in(m, "EnvironmentName").is_some()));
    assert!(members.iter().all(|m| tag_in(m, "ApplicationName").as_deref() == Some("shop")));
    let dates = whole.tags("EventDate");
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first: {dates:?}");
    for env in ["shop-a1", "shop-b2", "shop-c3"] {
        let done = members.iter().filter(|m| {
            tag_in(m, "EnvironmentName").as_deref() == Some(env)
                && tag_in(m, "Message").as_deref() == Some("Environment update completed successfully.")
        });
        assert_eq!(done.count(), 1, "{env}");
    }
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = vec![("ApplicationName", "shop"), ("StartTime", t0.as_str()), ("MaxRecords", "4")];
        if let Some(t) = &token {
            p.push(("NextToken", t));
        }
        let page = h.call("DescribeEvents", &p).await;
        let got = tags_in(&page.body, "member");
        assert!(got.len() <= 4);
        paged.extend(got);
        token = page.tag("NextToken");
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, members);

    // DescribeEnvironments with several ids or names, in either list form.
    let all = h.call("DescribeEnvironments", &[("ApplicationName", "shop")]).await;
    let ids = all.tags("EnvironmentId");
    assert_eq!(ids.len(), 3);
    let two = h
        .call("DescribeEnvironments", &[("EnvironmentIds.member.1", &ids[2]), ("EnvironmentIds.member.2", &ids[0])])
        .await;
    assert_eq!(two.tags("EnvironmentName"), ["shop-a1", "shop-c3"]);
    let names = h
        .call(
            "DescribeEnvironments",
            &[
                ("EnvironmentNames.member.1", "shop-b2"),
                ("EnvironmentNames.member.2", "blog-prod"),
                ("EnvironmentNames.member.3", "ghost-env"),
            ],
        )
        .await;
    assert_eq!(names.tags("EnvironmentName"), ["shop-b2", "blog-prod"]);
    let scoped = h
        .call(
            "DescribeEnvironments",
            &[
                ("ApplicationName", "shop"),
                ("EnvironmentNames.members.1", "shop-b2"),
                ("EnvironmentNames.members.2", "blog-prod"),
            ],
        )
        .await;
    assert_eq!(scoped.tags("EnvironmentName"), ["shop-b2"]);
}
