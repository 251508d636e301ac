//! End to end on the local stack: configuration and lifecycle. Variables from the step reach the running app
//! (the example app serves them at /cgi-bin/env?NAME) in the same update as the version, unchanged ones
//! survive, removed ones go, and a rollback restores the settings the older version ran with; an environment
//! is created from nothing by two runs at once; the preview workflow's own inputs create, update and terminate a
//! pull request's environment, and `mode: terminate` refuses what eb-deploy did not create; `keep-versions` deletes versions and their bundles; the version quota's error says what to do.
//! Every value passed as a variable is added to the secret scan of each run (tests/support).
#![cfg(feature = "e2e")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use stackkit::MUTATING;
use support::{Stack, example_app, unique};

fn inputs<'a>(app: &'a str, env: &'a str, label: &'a str, build_args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("application-name", app), ("environment-name", env), ("version-label", label), ("build-args", build_args)]
}

/// What the app of `env` sees in its variable `name` (`None` when it is not set).
async fn variable(stack: &Stack, env: &str, name: &str) -> Option<String> {
    stack.wait_ready(env, Duration::from_secs(30)).await;
    let endpoint = stack.endpoint(env).await;
    let answer = stackkit::http::request(&endpoint, "GET", &format!("/cgi-bin/env?{name}"), &[], b"")
        .unwrap_or_else(|e| panic!("GET /cgi-bin/env?{name} on {env}: {e:#}"));
    (answer.status == 200).then(|| answer.text())
}

async fn serves(stack: &Stack, env: &str, version: &str) -> bool {
    stack.wait_ready(env, Duration::from_secs(30)).await;
    stack.fetch(env, "/").await.contains(&format!("<strong id=\"version\">{version}</strong>"))
}

/// Beanstalk requests since `seq` that name `app` or one of `envs` (by name or id): tests share one ebsim.
async fn requests_since(stack: &Stack, seq: u64, app: &str, envs: &[&str]) -> Vec<stackkit::RequestRecord> {
    let mut names = vec![app.to_owned()];
    for env in envs {
        names.push((*env).to_owned());
        names.extend(stack.admin.environment(env).await.ok().flatten().map(|v| v.id));
    }
    let requests = stack.admin.requests_since(seq).await.expect("request log");
    requests.into_iter().filter(|r| r.params.values().any(|v| names.contains(v))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn variables_reach_the_app_with_the_version_survive_and_a_removed_one_is_gone() {
    let stack = Stack::load();
    let (app, env) = stack.new_environment("vars", "web").await;
    let (greeting, kept, dropped) = (unique("greeting-secret"), unique("kept-secret"), unique("dropped-secret"));

    let vars = format!("GREETING={greeting}\nKEEP_ME={kept}\nDROP_ME={dropped}");
    let mut v1 = inputs(&app, &env, "v1", "APP_VERSION=v1");
    v1.push(("environment-variables", &vars));
    let v1 = stack.run(&example_app(), &v1);
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert_eq!(v1.out("result"), "deployed");
    assert!(v1.stdout.contains(&format!("::add-mask::{greeting}")), "values are masked first: {}", v1.dump());
    assert!(v1.stdout.contains("environment variables GREETING, KEEP_ME, DROP_ME"), "keys are shown: {}", v1.dump());
    assert!(serves(&stack, &env, "v1").await);
    // The step's value wins over the bundle's .ebextensions (which sets GREETING too).
    assert_eq!(variable(&stack, &env, "GREETING").await.as_deref(), Some(greeting.as_str()));
    assert_eq!(variable(&stack, &env, "KEEP_ME").await.as_deref(), Some(kept.as_str()));
    assert_eq!(variable(&stack, &env, "DROP_ME").await.as_deref(), Some(dropped.as_str()));

    // v2 changes one variable and removes another, in the one UpdateEnvironment that deploys v2.
    let seq = stack.admin.last_request_seq().await.unwrap();
    let greeting2 = unique("greeting-secret");
    let vars = format!("GREETING={greeting2}");
    let mut v2 = inputs(&app, &env, "v2", "APP_VERSION=v2");
    v2.extend([("environment-variables", vars.as_str()), ("remove-environment-variables", "DROP_ME")]);
    let v2 = stack.run(&example_app(), &v2);
    assert_eq!(v2.code, Some(0), "{}", v2.dump());
    let updates: Vec<_> =
        requests_since(&stack, seq, &app, &[&env]).await.into_iter().filter(|r| r.op == "UpdateEnvironment").collect();
    assert_eq!(updates.len(), 1, "one update: {updates:?}");
    let params = &updates[0].params;
    assert_eq!(params.get("VersionLabel").map(String::as_str), Some("v2"));
    assert!(params.iter().any(|(k, v)| k.starts_with("OptionSettings.member.") && *v == "GREETING"), "{params:?}");
    assert!(params.iter().any(|(k, v)| k.starts_with("OptionsToRemove.member.") && *v == "DROP_ME"), "{params:?}");
    assert!(serves(&stack, &env, "v2").await);
    assert_eq!(variable(&stack, &env, "GREETING").await.as_deref(), Some(greeting2.as_str()));
    assert_eq!(
        variable(&stack, &env, "KEEP_ME").await.as_deref(),
        Some(kept.as_str()),
        "a variable not named survives"
    );
    assert_eq!(variable(&stack, &env, "DROP_ME").await, None, "a removed variable is gone");

    // The same again: nothing to do, nothing changed.
    let mut again = inputs(&app, &env, "v2", "APP_VERSION=v2");
    again.extend([("environment-variables", vars.as_str()), ("remove-environment-variables", "DROP_ME")]);
    let again = stack.run(&example_app(), &again);
    assert_eq!(again.out("result"), "unchanged", "{}", again.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_restores_the_settings_the_older_version_ran_with() {
    let stack = Stack::load();
    let app = unique("vars");
    let envs = vec![unique("web"), unique("web")];
    stack.create_environments(&app, &envs).await;
    let names = envs.join("\n");
    let (old, new, extra) = (unique("old-secret"), unique("new-secret"), unique("extra-secret"));

    let vars = format!("GREETING={old}");
    let mut v1 = inputs(&app, &names, "v1", "APP_VERSION=v1");
    v1.push(("environment-variables", &vars));
    let v1 = stack.run(&example_app(), &v1);
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());

    // v2 with new settings; the second environment fails: the first goes back to v1 and v1's settings.
    let faults = stack.faults_on(&envs[1], json!({"fail_next_deploys": 1})).await;
    let vars = format!("GREETING={new}\nEXTRA={extra}");
    let mut v2 = inputs(&app, &names, "v2", "APP_VERSION=v2");
    v2.extend([("environment-variables", vars.as_str()), ("on-failure", "rollback")]);
    let v2 = stack.run(&example_app(), &v2);
    drop(faults);
    assert_eq!(v2.code, Some(1), "{}", v2.dump());
    let all: Value = serde_json::from_str(v2.out("environments")).unwrap();
    assert_eq!(all[0]["result"], "rolled-back", "{}", v2.dump());
    assert_eq!(all[1]["result"], "failed", "{}", v2.dump());
    for env in &envs {
        assert!(serves(&stack, env, "v1").await, "{env} is back on v1");
        assert_eq!(variable(&stack, env, "GREETING").await.as_deref(), Some(old.as_str()), "{env}: v1's value");
        assert_eq!(variable(&stack, env, "EXTRA").await, None, "{env}: v2's new variable is gone");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_created_from_nothing_by_two_runs_at_once_serves_the_version() {
    let stack = Stack::load();
    let (app, env) = (unique("fresh"), unique("pr"));
    let prefix = format!("{env}-preview");
    let secret = unique("created-secret");
    let vars = format!("GREETING={secret}");
    let mut ins = inputs(&app, &env, "v1", "APP_VERSION=v1");
    ins.extend([
        ("create-application", "true"),
        ("create-environment", "true"),
        ("cname-prefix", prefix.as_str()),
        ("tags", "team=web"),
        ("environment-variables", vars.as_str()),
    ]);
    let (a, a_files) = stack.spawn(&example_app(), &ins);
    let (b, b_files) = stack.spawn(&example_app(), &ins);
    let (a, b) = (stack.finish(a, &a_files), stack.finish(b, &b_files));
    assert_eq!((a.code, b.code), (Some(0), Some(0)), "both succeed:\n{}\n{}", a.dump(), b.dump());
    let created: Vec<&str> = [&a, &b].iter().map(|r| r.out("environment-created")).collect();
    assert!(created.contains(&"true") && created.contains(&"false"), "one of them created it: {created:?}");
    for run in [&a, &b] {
        assert!(["deployed", "unchanged"].contains(&run.out("result")), "{}", run.dump());
    }
    let creator = if a.out("environment-created") == "true" { &a } else { &b };
    assert!(creator.out("result") == "deployed" && creator.summary.contains("| Created | yes, by this step |"));

    // One environment, with the CNAME asked for, the tags, and the version and variable serving.
    let eb = stack.eb().await;
    let listed = eb.describe_environments().application_name(&app).include_deleted(false).send().await.unwrap();
    assert_eq!(listed.environments().len(), 1, "{listed:?}");
    let description = &listed.environments()[0];
    let cname = format!("{prefix}.us-east-1.elasticbeanstalk.com");
    assert_eq!(description.cname(), Some(cname.as_str()));
    assert_eq!(creator.out("environment-cname"), cname);
    let tags = eb.list_tags_for_resource().resource_arn(description.environment_arn().unwrap()).send().await.unwrap();
    let tags: Vec<(&str, &str)> =
        tags.resource_tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
    assert!(tags.contains(&("eb-deploy:repository", "team/shop")) && tags.contains(&("team", "web")), "{tags:?}");
    assert!(stack.fetch_cname(&cname, "/").contains("<strong id=\"version\">v1</strong>"));
    assert_eq!(stack.fetch_cname(&cname, "/cgi-bin/env?GREETING"), secret);
}

/// The `with:` of the eb-deploy step of `job` in examples/workflows/preview.yml, its expressions replaced by
/// `values` (`vars.EB_APPLICATION` → …).
fn preview_step(job: &str, values: &[(&str, &str)]) -> Vec<(String, String)> {
    let path = support::root().join("examples/workflows/preview.yml");
    let workflow: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let steps = workflow["jobs"][job]["steps"].as_sequence().expect("steps");
    let step = steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("team/eb-deploy@"))).unwrap();
    let with = step["with"].as_mapping().expect("with");
    with.iter()
        .map(|(k, v)| {
            let mut text = match v {
                serde_yaml_ng::Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
            };
            for (expression, value) in values {
                text = text.replace(&format!("${{{{ {expression} }}}}"), value);
            }
            assert!(!text.contains("${{"), "{k:?}: an expression left in {text:?}");
            (k.as_str().unwrap().to_owned(), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_workflow_creates_updates_and_terminates_and_terminate_refuses_the_rest() {
    let stack = Stack::load();
    let (app, theirs) = (unique("preview"), unique("web"));
    stack.create_environment(&app, &theirs).await;
    let number = (stack.admin.last_request_seq().await.unwrap() % 900_000 + 100_000).to_string();
    let ours = format!("pr-{number}");
    let database = unique("database-secret");
    let values = [
        ("vars.EB_APPLICATION", app.as_str()),
        ("github.event.pull_request.number", number.as_str()),
        ("secrets.PREVIEW_DATABASE_URL", database.as_str()),
    ];
    let owned = |pairs: &[(String, String)], extra: &[(&'static str, &'static str)]| {
        let mut all: Vec<(String, String)> = pairs.to_vec();
        all.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        all
    };
    let run = |pairs: Vec<(String, String)>| {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        stack.run(&example_app(), &borrowed)
    };
    let deploy = preview_step("deploy", &values);
    let terminate = preview_step("terminate", &values);

    // The pull request's first push creates pr-<number>; its next one deploys to it (a label per push).
    let first = run(owned(&deploy, &[("version-label", "push-1")]));
    assert_eq!(first.code, Some(0), "{}", first.dump());
    assert_eq!((first.out("result"), first.out("environment-created")), ("deployed", "true"));
    assert!(first.out("environment-url").starts_with(&format!("http://{ours}.")), "{}", first.dump());
    assert_eq!(variable(&stack, &ours, "DATABASE_URL").await.as_deref(), Some(database.as_str()));
    assert_eq!(variable(&stack, &ours, "APP_ENV").await.as_deref(), Some("preview"), "from option-settings");
    let eb = stack.eb().await;
    let settings = eb.describe_configuration_settings().application_name(&app).environment_name(&ours).send().await;
    let settings = settings.unwrap();
    let single = settings.configuration_settings()[0].option_settings().iter().any(|o| {
        o.namespace() == Some("aws:elasticbeanstalk:environment")
            && o.option_name() == Some("EnvironmentType")
            && o.value() == Some("SingleInstance")
    });
    assert!(single, "the preview's option settings went with the launch");
    let second = run(owned(&deploy, &[("version-label", "push-2")]));
    assert_eq!((second.out("result"), second.out("environment-created")), ("deployed", "false"), "{}", second.dump());
    assert_eq!(second.out("previous-version-label"), "push-1");

    // An environment eb-deploy did not create is refused, and nothing changes.
    let seq = stack.admin.last_request_seq().await.unwrap();
    let refused =
        stack.run(&example_app(), &[("application-name", &app), ("environment-name", &theirs), ("mode", "terminate")]);
    assert_eq!((refused.code, refused.out("result")), (Some(1), "failed"), "{}", refused.dump());
    assert!(
        refused.stdout.contains("was not created by eb-deploy") && refused.stdout.contains("force-terminate: true")
    );
    let writes: Vec<String> = requests_since(&stack, seq, &app, &[&theirs])
        .await
        .into_iter()
        .filter(|r| MUTATING.contains(&r.op.as_str()))
        .map(|r| r.op)
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(stack.admin.environment(&theirs).await.unwrap().unwrap().status, "Ready");

    // Closing the pull request terminates pr-<number>, and the step waits until it is gone.
    let closed = run(terminate.clone());
    assert_eq!(closed.code, Some(0), "{}", closed.dump());
    assert_eq!((closed.out("result"), closed.out("status")), ("terminated", "Terminated"));
    assert!(closed.stdout.contains("terminateEnvironment completed successfully."), "{}", closed.dump());
    assert!(closed.summary.contains(&format!("Terminated {ours}")), "{}", closed.summary);
    let dns = eb.check_dns_availability().cname_prefix(&ours).send().await.unwrap();
    assert_eq!(dns.available(), Some(true), "its CNAME is free again");

    // Closed twice: nothing to do, and that is a success.
    let again = run(terminate);
    assert_eq!((again.code, again.out("result")), (Some(0), "unchanged"), "{}", again.dump());

    // force-terminate takes the other one.
    let forced = stack.run(
        &example_app(),
        &[
            ("application-name", &app),
            ("environment-name", &theirs),
            ("mode", "terminate"),
            ("force-terminate", "true"),
        ],
    );
    assert_eq!(forced.out("result"), "terminated", "{}", forced.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_versions_deletes_the_oldest_versions_nothing_needs_with_their_bundles() {
    let stack = Stack::load();
    let app = unique("keep");
    let (pinned, moving) = (unique("web"), unique("web"));
    stack.create_environments(&app, &[pinned.clone(), moving.clone()]).await;

    // v1 to both: the pinned environment keeps running it.
    let both = format!("{pinned}\n{moving}");
    let v1 = stack.run(&example_app(), &inputs(&app, &both, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.out("result"), "deployed", "{}", v1.dump());
    let image = v1.out("image").to_owned();

    // v2…v6 to the other, each keeping 3: six deploys in all, the image built once.
    let mut last = None;
    for label in ["v2", "v3", "v4", "v5", "v6"] {
        let run = stack.run(
            &example_app(),
            &[
                ("application-name", &app),
                ("environment-name", &moving),
                ("version-label", label),
                ("image", &image),
                ("keep-versions", "3"),
            ],
        );
        assert_eq!(run.code, Some(0), "{label}: {}", run.dump());
        last = Some(run);
    }
    let last = last.unwrap();
    // v6, v5, v4 are the newest three; v1 runs on the pinned environment. v2 and v3 went, bundles and all.
    let left = stack.leftovers(&app).await;
    let labels: Vec<&str> = left.versions.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["v1", "v4", "v5", "v6"], "{left:?}");
    let bundle_of = |label: &str| left.bundles.iter().any(|k| k.starts_with(&format!("{app}/{label}-")));
    for (label, kept) in [("v1", true), ("v2", false), ("v3", false), ("v4", true), ("v5", true), ("v6", true)] {
        assert_eq!(bundle_of(label), kept, "{label}'s bundle: {:?}", left.bundles);
    }
    assert!(last.stdout.contains("Deleted version v3 and its bundle s3://"), "{}", last.dump());
    assert!(last.summary.contains("| Versions deleted (keep-versions) | `v3` |"), "{}", last.summary);
    assert!(serves(&stack, &pinned, "v1").await && serves(&stack, &moving, "v1").await);
}

/// A second ebsim of the stack's build, with its own version quota, for the one test that must fill it
/// (the shared ebsim's quota counts every test's versions). Stopped when dropped.
struct PrivateEbsim {
    child: Child,
    url: String,
}

impl PrivateEbsim {
    fn start(stack: &Stack, max_versions: usize) -> Self {
        let exe = std::env::current_exe().expect("test binary");
        let bin = exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("ebsim")).expect("target dir");
        assert!(
            bin.exists(),
            "{} is missing: `scripts/local-stack up` builds it (cargo build -p ebsim)",
            bin.display()
        );
        let get = |k: &str| stack.env.get(k).unwrap_or_else(|| panic!("{k} missing from the stack env")).to_owned();
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--proxy-listen", "off", "--timing", "fast"])
            .args(["--region", &get("AWS_REGION"), "--account-id", &get("AWS_ACCOUNT_ID")])
            .args(["--s3-endpoint", &get("AWS_ENDPOINT_URL_S3"), "--ecr-endpoint", &get("AWS_ENDPOINT_URL_ECR")])
            .args(["--docker-host", &get("DOCKER_HOST"), "--max-versions", &max_versions.to_string()])
            .args(["--instance-label", &format!("ebsim.stack={}", get("LOCAL_STACK_DIR"))])
            .env("AWS_ACCESS_KEY_ID", get("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", get("AWS_SECRET_ACCESS_KEY"))
            .env("AWS_SESSION_TOKEN", get("AWS_SESSION_TOKEN"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ebsim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ebsim's first line");
        let addr = line.trim().strip_prefix("ebsim listening on ").unwrap_or_else(|| panic!("ebsim said {line:?}"));
        Self { url: format!("http://{addr}"), child }
    }
}

impl Drop for PrivateEbsim {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_version_quota_error_says_what_to_do() {
    let stack = Stack::load();
    let ebsim = PrivateEbsim::start(&stack, 2);
    let (app, env) = (unique("quota"), unique("web"));
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let eb = aws_sdk_elasticbeanstalk::Client::from_conf(
        aws_sdk_elasticbeanstalk::config::Builder::from(&conf).endpoint_url(&ebsim.url).build(),
    );
    eb.create_application().application_name(&app).send().await.expect("create application");
    eb.create_environment()
        .application_name(&app)
        .environment_name(&env)
        .solution_stack_name("64bit Amazon Linux 2023 v4.3.0 running Docker")
        .send()
        .await
        .expect("create environment");
    for label in ["old-1", "old-2"] {
        eb.create_application_version().application_name(&app).version_label(label).send().await.expect("version");
    }

    let files = support::scratch_dir("quota");
    let mut cmd = stack.command(&example_app(), &inputs(&app, &env, "v3", "APP_VERSION=quota"), &files);
    cmd.env("AWS_ENDPOINT_URL_ELASTIC_BEANSTALK", &ebsim.url);
    let run = stack.finish(cmd.spawn().expect("start eb-deploy"), &files);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "failed");
    let error = run.stdout.lines().find(|l| l.starts_with("::error")).unwrap_or_default();
    for words in ["TooManyApplicationVersionsException", "set keep-versions", "lifecycle policy", "quota increase"] {
        assert!(error.contains(words), "{words:?} missing from the error: {}", run.dump());
    }
}
