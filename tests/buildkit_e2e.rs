//! BuildKit end to end on the local stack: modern Dockerfiles (`COPY --chmod`, `RUN --mount=type=cache`,
//! heredocs, `COPY --link`, multi-stage with `target`) deployed and served by ebsim; a failing step
//! annotated at its line; the same Dockerfiles refused by the classic builder with the daemon's message;
//! the image stage's inputs under BuildKit; build secrets; and a rebuild on an emptied daemon that takes its
//! expensive layer from the image the environment runs.
//!
//! No test prunes the stack's daemon: a fresh runner is a daemon of its own (`scripts/fresh-daemon`), so tests
//! that need the build cache to persist between two builds can run beside the others.
#![cfg(feature = "e2e")]

mod support;

use std::fs;
use std::process::Command;

use eb_deploy::build_plan::{BuildPlan, Builder, oci_labels};
use eb_deploy::image::{self, BuildRequest};
use eb_deploy::registry;
use stackkit::MUTATING;
use support::console::console;
use support::image::{App, FreshDaemon, RegistryLog, SERVE, docker, docker_host, image_files, registry_get, sparse};
use support::{Stack, unique};

/// Each line needs BuildKit: `--chmod` (busybox arrives not executable), a cache mount that outlives the
/// build, a heredoc, `--link`, and a last stage that would fail if `target: app` were not honoured.
fn modern_dockerfile(cache_id: &str) -> String {
    format!(
        r#"FROM scratch AS base
COPY --chmod=755 busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
ARG APP_VERSION=dev
# Each run appends to the cache mount; the image keeps how many runs it has seen. (The mount's id is not
# part of the step's cache key: the command names it too, so no earlier test run's result is reused.)
RUN --mount=type=cache,id={cache_id},target=/cache \
    mkdir -p /out && echo "$APP_VERSION {cache_id}" >> /cache/runs && sed -n '$=' /cache/runs > /out/cache-runs \
 && echo "$APP_VERSION" > /out/version
COPY <<EOF /out/heredoc.txt
written by a heredoc
EOF

FROM base AS app
COPY --link www/ /www/
COPY --from=build /out/ /www/
EXPOSE 80
{SERVE}

FROM app AS not-built
RUN exit 1
"#
    )
}

fn deploy_inputs<'a>(app: &'a str, env: &'a str, label: &'a str, args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("application-name", app),
        ("environment-name", env),
        ("version-label", label),
        ("build-args", args),
        ("target", "app"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn modern_dockerfile_is_built_with_buildkit_deployed_and_served() {
    let stack = Stack::load();
    let (name, env) = (unique("modern"), unique("web"));
    stack.create_environment(&name, &env).await;
    let app = App::new(&[
        ("Dockerfile", &modern_dockerfile(&unique("runs"))),
        ("www/index.html", "<p>modern app</p>\n"),
        (".dockerignore", "busybox.unused\n"),
    ]);

    let v1 = stack.run(&app.dir, &deploy_inputs(&name, &env, "v1", "APP_VERSION=v1"));
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert_eq!(v1.out("result"), "deployed");
    assert!(v1.stdout.contains("Builder: BuildKit (builder: auto;"), "{}", v1.dump());
    assert!(v1.stdout.contains("[app 1/2] COPY --link www/ /www/"), "{}", v1.dump());
    let cache_step = v1.stdout.lines().find(|l| l.contains("[build 1/2] RUN --mount=type=cache")).expect("the step");
    assert!(!cache_step.ends_with("CACHED"), "the cache-mount step runs: {cache_step}");
    assert!(!v1.stdout.contains("not-built"), "the stage after the target is not built:\n{}", v1.stdout);
    assert_eq!(stack.fetch(&env, "/version").await.trim(), "v1");
    assert_eq!(stack.fetch(&env, "/heredoc.txt").await.trim(), "written by a heredoc");
    assert_eq!(stack.fetch(&env, "/cache-runs").await.trim(), "1");
    assert!(stack.fetch(&env, "/").await.contains("modern app"));

    // A new version reruns the cache-mount step, which finds the first run's line in the cache.
    let v2 = stack.run(&app.dir, &deploy_inputs(&name, &env, "v2", "APP_VERSION=v2"));
    assert_eq!(v2.code, Some(0), "{}", v2.dump());
    assert_eq!(stack.fetch(&env, "/version").await.trim(), "v2");
    assert_eq!(stack.fetch(&env, "/cache-runs").await.trim(), "2", "the cache mount persisted between builds");
    // v2's cache sources include the image v1 deployed, read from the environment's current version.
    assert!(v2.stdout.contains("(the image the environment runs now)"), "{}", v2.stdout);
    assert!(v2.stdout.contains("[base 1/2] COPY --chmod=755 busybox /bin/busybox CACHED"), "{}", v2.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_run_is_annotated_at_its_line_and_nothing_is_deployed() {
    let stack = Stack::load();
    let (name, env) = (unique("failing"), unique("web"));
    stack.create_environment(&name, &env).await;
    let marker = unique("about-to-fail");
    let app = App::new(&[(
        "Dockerfile",
        &format!(
            "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\n\
             RUN echo {marker} && \\\n    exit 3\nCOPY Dockerfile /never\n"
        ),
    )]);
    let seq = stack.admin.last_request_seq().await.expect("request log");
    let run = stack.run(&app.dir, &[("application-name", &name), ("environment-name", &env), ("version-label", "v1")]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.out("result"), "failed");
    let annotation = run.stdout.lines().find(|l| l.starts_with("::error file=")).expect("an annotation");
    assert!(
        annotation.starts_with("::error file=Dockerfile,line=5,title=Docker build failed::[3/4] RUN echo"),
        "{annotation}"
    );
    assert!(annotation.contains("did not complete successfully: exit code: 3"), "{annotation}");
    assert!(run.stdout.contains(&format!(" {marker}\n")), "the step's own output is in the log:\n{}", run.stdout);
    assert!(run.out("image").is_empty());
    let mutations: Vec<String> = stack
        .admin
        .requests_since(seq)
        .await
        .expect("request log")
        .into_iter()
        .filter(|r| MUTATING.contains(&r.op.as_str()) && r.params.values().any(|v| *v == name))
        .map(|r| r.op)
        .collect();
    assert!(mutations.is_empty(), "a failed build changes nothing in Beanstalk: {mutations:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_classic_builder_refuses_them_with_the_daemons_message() {
    let docker = docker().await;
    let cases = [
        (
            "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\n",
            "the --chmod option requires BuildKit",
            2,
            "COPY --chmod",
        ),
        (
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN --mount=type=cache,target=/cache [\"/bin/busybox\", \"true\"]\n",
            "the --mount option requires BuildKit",
            3,
            "RUN --mount",
        ),
        ("FROM scratch\nCOPY <<EOF /hello.txt\nhello\nEOF\n", "no source files were specified", 2, "a heredoc in COPY"),
    ];
    for (dockerfile, daemon_says, line, feature) in cases {
        let mut app = App::new(&[("Dockerfile", dockerfile)]);
        let tag = app.image(unique("ebd-classic") + ":x");
        let (console, out) = console();
        let request = app.request(Builder::Classic, tag);
        let err = image::build(&docker, &request, &console).await.unwrap_err();
        let message = format!("{err:#}");
        eprintln!("error: {message}");
        assert!(message.starts_with("failed to build the image: "), "{message}");
        assert!(message.contains(daemon_says), "the daemon's message is named: {message}");
        assert!(message.contains(&format!("Dockerfile:{line})")), "{message}");
        assert!(message.contains(&format!("{feature} (line {line}) needs BuildKit: set `builder: auto`")), "{message}");
        assert!(out.text().contains("Builder: classic builder (builder: classic)"), "{}", out.text());
        assert!(out.text().contains(&format!("/Dockerfile,line={line},title=Docker build failed::")), "{}", out.text());
    }
    // `COPY --link` is accepted and ignored by the classic builder of Engine 23 and later (20.10 refused
    // it as an unknown flag): the build goes through, with a warning at its line.
    let mut app = App::new(&[("Dockerfile", "FROM scratch\nCOPY --link busybox /bin/busybox\n")]);
    let tag = app.image(unique("ebd-classic-link") + ":x");
    let (console, out) = console();
    let request = app.request(Builder::Classic, tag);
    match image::build(&docker, &request, &console).await {
        Ok(_) => {
            let text = out.text();
            let warning = text.lines().find(|l| l.starts_with("::warning")).expect("a warning for --link");
            assert!(warning.contains("line=2") && warning.contains("is ignored by the classic builder"), "{warning}");
        }
        Err(err) => assert!(format!("{err:#}").contains("Unknown flag: link"), "{err:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn buildkit_keeps_every_classic_input_working() {
    let docker = docker().await;
    let registry = std::env::var("LOCAL_REGISTRY").expect("LOCAL_REGISTRY: source .local-stack/env");
    let ecr = aws_sdk_ecr::Client::new(&aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await);
    let (console, out) = console();
    let auth = registry::ecr_login(&ecr, Some(&registry), &console).await.expect("ECR login against moto");
    let password = auth.expose_password().to_owned();
    let repo = unique("eb-deploy-e2e/buildkit");

    // The Dockerfile lives outside the context; `.dockerignore` keeps a file and a big tree out.
    let mut app = App::new(&[
        ("ctx/keep.txt", "kept"),
        ("ctx/secret.env", "TOKEN=nope"),
        ("ctx/.dockerignore", "secret.env\nbig/\n"),
        (
            "Dockerfile.outside",
            "FROM scratch AS base\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             ARG GREETING\nRUN echo \"$GREETING\" > /greeting && ls / > /listing\nCOPY . /ctx/\n\
             FROM base AS extra\nRUN exit 1\nFROM base\n",
        ),
    ]);
    fs::rename(app.dir.join("busybox"), app.dir.join("ctx/busybox")).unwrap();
    fs::create_dir_all(app.dir.join("ctx/big")).unwrap();
    for i in 0..200 {
        sparse(&app.dir.join(format!("ctx/big/file-{i}.bin")), 1 << 20);
    }
    let tag = app.image(format!("{registry}/{repo}:local"));
    let labels = oci_labels(Some("https://github.com/team/shop"), Some("abc123"), "v1", "2026-12-01T10:00:00Z");
    let request = BuildRequest {
        docker_host: docker_host(),
        plan: BuildPlan {
            context: app.dir.join("ctx"),
            dockerfile: Some(app.dir.join("Dockerfile.outside")),
            build_args: vec![("GREETING".into(), "hello from a build arg".into())],
            labels,
            target: Some("base".into()),
            platform: Some("linux/amd64".into()),
            no_cache: true,
            pull: true,
            builder: Builder::BuildKit,
            ..Default::default()
        },
        tag: tag.clone(),
        registry_auth: Some(auth.clone()),
        ..Default::default()
    };
    let built = image::build(&docker, &request, &console).await.expect("BuildKit build");
    let text = out.text();
    assert!(text.contains("Builder: BuildKit (builder: buildkit;"), "{text}");
    assert!(!text.contains("RUN exit 1"), "target stops at base:\n{text}");
    // No progress ticks: a handful of lines per step.
    let build_lines = text.lines().skip_while(|l| !l.starts_with("::group::Build image")).count();
    assert!(build_lines < 60, "{build_lines} log lines for a 5-step build:\n{text}");

    let inspect = docker.inspect_image(&built.id).await.unwrap();
    assert_eq!(inspect.architecture.as_deref(), Some("amd64"));
    let config = inspect.config.unwrap();
    assert_eq!(
        config.labels.unwrap_or_default().get("org.opencontainers.image.revision").map(String::as_str),
        Some("abc123")
    );
    // What the image holds: the build arg's value, the kept file, nothing .dockerignore excludes.
    let files = image_files(&built.id, &["/greeting", "/ctx/keep.txt"]).await;
    assert_eq!(files, ["hello from a build arg", "kept"]);
    let listing = image_files(&built.id, &["/ctx"]).await;
    assert!(!listing[0].contains("secret.env") && !listing[0].contains("big"), "{}", listing[0]);
    // The Dockerfile from outside travels apart from the context, as with `docker build`: COPY . misses it.
    assert!(!listing[0].contains("dockerfile") && !listing[0].contains("Dockerfile"), "{}", listing[0]);

    // The digest comes from the push, and the registry serves it.
    let pushed = registry::push(&docker, &auth, &built.id, &repo, "v1", &console).await.unwrap();
    app.image(format!("{registry}/{repo}:v1"));
    let (head, manifest) = registry_get(&registry, &format!("/v2/{repo}/manifests/v1"), &password);
    assert!(head.to_ascii_lowercase().contains(&format!("docker-content-digest: {}", pushed.digest)), "{head}");
    // cache-to: inline (the default) puts BuildKit's cache metadata into the pushed image's config.
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    let config_digest = manifest["config"]["digest"].as_str().expect("config digest");
    let (_, config) = registry_get(&registry, &format!("/v2/{repo}/blobs/{config_digest}"), &password);
    assert!(config.contains("moby.buildkit.cache.v0"), "no inline cache metadata in {config}");

    let shown = out.text().replace(&format!("::add-mask::{password}"), "");
    assert!(!shown.contains(&password), "the registry password leaked into the log");
}

/// The context goes through the build's session: a second build of the same directory sends only the file
/// that changed (the daemon keeps the rest), and the image has the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_sends_only_the_files_that_changed() {
    let docker = docker().await;
    let mut app = App::new(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             COPY app/ /app/\n",
        ),
        ("app/version", "one"),
    ]);
    let noise: Vec<u8> = (0..(3u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fs::write(app.dir.join("app/data.bin"), noise).unwrap();
    let tag = app.image(unique("eb-deploy-e2e/resync").to_lowercase() + ":local");
    let request = app.request(Builder::BuildKit, tag.clone());
    let (first_console, out) = console();
    image::build(&docker, &request, &first_console).await.expect("first build");
    let first = out.text();
    let built_line = |text: &str| text.lines().find(|l| l.starts_with("Built ")).map(str::to_owned).unwrap_or_default();
    // Nothing of this directory was on the daemon: all of it went, and the line says no more than its size.
    assert!(!built_line(&first).contains("sent"), "{first}");

    app.write("app/version", "two");
    let (again, out) = console();
    let built = image::build(&docker, &request, &again).await.expect("second build");
    let second = built_line(&out.text());
    assert!(second.contains(" MB context (3 B of it sent, the rest was in the daemon's cache)"), "{}", out.text());
    let files = image_files(&built.id, &["/app/version"]).await;
    assert_eq!(files, ["two"]);
}

/// With no `COPY .`, BuildKit asks the session for the COPY sources alone, as patterns: a glob, a symlink
/// and a hard link whose first name is not asked for arrive as with `docker build`.
#[tokio::test(flavor = "multi_thread")]
async fn copy_sources_by_glob_through_a_symlink_and_by_a_second_name_arrive() {
    let docker = docker().await;
    let base = "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";
    let mut app =
        App::new(&[("app/a.txt", "a"), ("app/b.txt", "b"), ("app/c.bin", "c"), ("releases/v2/version", "v2")]);
    std::os::unix::fs::symlink("releases/v2", app.dir.join("current")).unwrap();
    // `app/c.bin` comes first in the walk: `second` is sent as a link to it unless it is not asked for.
    fs::hard_link(app.dir.join("app/c.bin"), app.dir.join("second")).unwrap();
    let tag = app.image(unique("ebd-follow") + ":x");
    let request = app.request(Builder::BuildKit, tag);
    for (copy, path, expected) in [
        ("COPY app/*.txt /g/", "/g", ". .. a.txt b.txt"),
        ("COPY current /current", "/current/version", "v2"),
        ("COPY second /second", "/second", "c"),
    ] {
        app.write("Dockerfile", &format!("{base}{copy}\n"));
        let (console, out) = console();
        let built = image::build(&docker, &request, &console).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
        let files = image_files(&built.id, &[path]).await;
        assert_eq!(files[0].split_whitespace().collect::<Vec<_>>().join(" "), expected, "{copy}");
    }
}

/// A secret the `secrets` input does not name: the mount is absent (BuildKit's default) and the build goes
/// on; with `required=true` the step fails at its line, saying which secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_the_input_does_not_name_is_absent_or_fails_a_required_mount() {
    let docker = docker().await;
    let base = "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";
    let mut app = App::new(&[(
        "Dockerfile",
        &format!("{base}RUN --mount=type=secret,id=pip test ! -e /run/secrets/pip && echo {}\n", unique("optional")),
    )]);
    let tag = app.image(unique("ebd-secret-opt") + ":x");
    let (optional, out) = console();
    let request = app.request(Builder::BuildKit, tag);
    image::build(&docker, &request, &optional).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));

    app.write("Dockerfile", &format!("{base}RUN --mount=type=secret,id=pip,required=true cat /run/secrets/pip\n"));
    let (console, out) = console();
    let err = format!("{:#}", image::build(&docker, &request, &console).await.unwrap_err());
    assert!(err.contains("secret pip: not found"), "{err}\n{}", out.text());
    assert!(err.contains("/Dockerfile:4); the step mounts secret pip with required=true: name it"), "{err}");
}

/// A fresh runner: a daemon with nothing of the app (`scripts/fresh-daemon`: no image, layer, build cache or
/// build history), then a code-only change. The expensive layer is downloaded from the registry, from the image
/// the environment runs (inline cache, with the credentials served through the build's session: the fresh
/// daemon has none), not built again.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_daemon_reuses_the_running_images_layers() {
    let stack = Stack::load();
    let (name, env) = (unique("fresh"), unique("web"));
    stack.create_environment(&name, &env).await;
    let marker = unique("deps");
    let dockerfile = format!(
        "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         # The dependency layer: slow, and it writes a value no second run could reproduce.\n\
         RUN echo {marker} && sleep 3 && mkdir -p /www && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /www/deps\n\
         COPY www/ /www/\n{SERVE}\n"
    );
    let app = App::new(&[("Dockerfile", &dockerfile), ("www/index.html", "<p>code v1</p>\n")]);
    let v1 = stack.run(&app.dir, &[("application-name", &name), ("environment-name", &env), ("version-label", "v1")]);
    assert_eq!(v1.code, Some(0), "{}", v1.dump());
    assert!(v1.stdout.contains(&format!(" {marker}\n")), "v1 ran the dependency step:\n{}", v1.stdout);
    let deps = stack.fetch(&env, "/deps").await;
    assert_eq!(deps.trim().len(), 32, "{deps}");

    // The dependency layer's blob, the third layer of what v1 pushed.
    let registry_host = std::env::var("LOCAL_REGISTRY").expect("LOCAL_REGISTRY: source .local-stack/env");
    let repo = eb_deploy::names::ecr_repository_name(&name);
    let password = registry_password(&registry_host).await;
    let (_, manifest) = registry_get(&registry_host, &format!("/v2/{repo}/manifests/v1"), &password);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    let deps_layer = manifest["layers"][2]["digest"].as_str().expect("a third layer").to_owned();

    // Twice: v2 takes the layer from v1's image; v3 too, although v2's image (which only took it from the
    // cache) cannot serve it: the Engine's inline cache links only the layers a build made itself, so eb-deploy
    // also offers the application's recent versions' images.
    for version in ["v2", "v3"] {
        let fresh = FreshDaemon::start();
        app.write("www/index.html", &format!("<p>code {version}</p>\n"));
        let log = RegistryLog::mark();
        let files = support::scratch_dir("fresh");
        let mut command = stack.command(
            &app.dir,
            &[("application-name", &name), ("environment-name", &env), ("version-label", version)],
            &files,
        );
        command.env("DOCKER_HOST", &fresh.host);
        let run = stack.finish(command.spawn().expect("start eb-deploy"), &files);
        assert_eq!(run.code, Some(0), "{}", run.dump());
        assert!(run.stdout.contains("(the image the environment runs now)"), "{}", run.stdout);
        assert!(run.stdout.contains("importing cache manifest from"), "{}", run.stdout);
        let expensive = run.stdout.lines().find(|l| l.contains("&& sleep 3")).expect("the dependency step in the log");
        assert!(expensive.ends_with(" CACHED"), "{version}: {expensive}\n{}", run.stdout);
        assert!(!run.stdout.contains(&format!(" {marker}\n")), "its command did not run:\n{}", run.stdout);
        let fetched = log.requests();
        assert!(
            fetched.contains(&format!("GET /v2/{repo}/blobs/{deps_layer}")),
            "{version}: the fresh daemon downloaded the dependency layer {deps_layer}: {fetched:#?}"
        );
        assert!(stack.fetch(&env, "/").await.contains(&format!("code {version}")));
        assert_eq!(stack.fetch(&env, "/deps").await, deps, "{version}: the dependency step did not run again");
    }
}

/// The local registry's password: the one in moto's ECR token, as eb-deploy logs in.
async fn registry_password(registry_host: &str) -> String {
    let ecr = aws_sdk_ecr::Client::new(&aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await);
    let (console, _) = console();
    let auth = registry::ecr_login(&ecr, Some(registry_host), &console).await.expect("ECR login against moto");
    auth.expose_password().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_build_and_nothing_else() {
    use sha2::Digest as _;
    let stack = Stack::load();
    let (name, env) = (unique("secrets"), unique("web"));
    stack.create_environment(&name, &env).await;
    // Secret values are not part of a step's cache key: the step names the run so no earlier one serves it.
    let token = unique("s3cr3t-token-value");
    let config = format!("password={}\nuser=app\n", unique("file-secret"));
    let dockerfile = format!(
        "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN --mount=type=secret,id=token --mount=type=secret,id=config mkdir -p /www \\\n \
         && echo \"token sha $(sha256sum < /run/secrets/token | cut -c1-16)\" > /www/secrets.txt \\\n \
         && echo \"config $(wc -l < /run/secrets/config) lines\" >> /www/secrets.txt \\\n \
         && echo \"the build used its secrets ({name})\"\nCOPY www/ /www/\n{SERVE}\n"
    );
    let app = App::new(&[
        ("Dockerfile", &dockerfile),
        ("www/index.html", "<p>with secrets</p>\n"),
        ("config.txt", &config),
        (".dockerignore", "config.txt\n"),
    ]);
    let files = support::scratch_dir("secrets");
    let inputs = [
        ("application-name", name.as_str()),
        ("environment-name", env.as_str()),
        ("version-label", "v1"),
        ("secrets", "id=token,env=APP_TOKEN\nid=config,src=config.txt"),
    ];
    let mut command = stack.command(&app.dir, &inputs, &files);
    command.env("APP_TOKEN", &token);
    let run = stack.finish(command.spawn().expect("start eb-deploy"), &files);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(run.stdout.contains("Secrets: token, config"), "{}", run.stdout);
    assert!(run.stdout.contains("the build used its secrets"), "the step's output is in the log:\n{}", run.stdout);
    let step = run.stdout.lines().find(|l| l.contains("3/4] RUN --mount=type=secret,id=token")).expect(&run.stdout);
    let number = step.split(' ').next().unwrap();
    assert!(run.stdout.contains(&format!("{number} DONE ")), "{}", run.stdout);

    // The build saw both values: the page names the token's hash and the file's line count.
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let served = stack.fetch(&env, "/secrets.txt").await;
    assert_eq!(served, format!("token sha {}\nconfig 2 lines\n", &digest[..16]));

    // Neither value is anywhere but in the runner's mask commands: not in the log, the outputs, the summary,
    // the image's history or config.
    let secret_line = config.lines().next().unwrap().to_owned();
    for value in [&token, &secret_line] {
        for line in run.stdout.lines().chain(run.stderr.lines()) {
            assert!(line.starts_with("::add-mask::") || !line.contains(value.as_str()), "{value} leaked: {line}");
        }
        assert!(!format!("{:?}{}", run.outputs, run.summary).contains(value.as_str()));
    }
    let image =
        format!("{}/{}:v1", std::env::var("LOCAL_REGISTRY").unwrap(), eb_deploy::names::ecr_repository_name(&name));
    for args in [["history", "--no-trunc"], ["image", "inspect"]] {
        let out = Command::new("docker").args(args).arg(&image).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(&token) && !text.contains(&secret_line), "a secret is in the image: {text}");
    }
}
