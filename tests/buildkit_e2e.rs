//! BuildKit end to end on the local stack: modern Dockerfiles (`COPY --chmod`, `RUN --mount=type=cache`,
//! heredocs, `COPY --link`, multi-stage with `target`) deployed and served by ebsim; a failing step
//! annotated at its line; a rebuild that sends only what changed; COPY sources by glob, symlink and hard link;
//! and a rebuild on a fresh runner's daemon that downloads its expensive layer from the image the environment
//! runs. The classic builder's refusals, the other inputs and build secrets are in `buildkit_inputs_e2e.rs`.
//!
//! No test prunes the stack's daemon: a fresh runner is a daemon of its own (`scripts/fresh-daemon`), so tests
//! that need the build cache to persist between two builds can run beside the others.
#![cfg(feature = "e2e")]

mod support;

use std::fs;

use eb_deploy::build_plan::{Builder, CacheTo};
use eb_deploy::image;
use eb_deploy::registry;
use support::console::console;
use support::image::{
    App, BUSYBOX, FreshDaemon, RegistryLog, SERVE, docker, image_files, registry_get, registry_login,
};
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
            "{BUSYBOX}\n\
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
    let mutations = stack.mutations_since(seq, &name).await;
    assert!(mutations.is_empty(), "a failed build changes nothing in Beanstalk: {mutations:?}");
}

/// The context goes through the build's session: a second build of the same directory sends only the file
/// that changed (the daemon keeps the rest), and the image has the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_sends_only_the_files_that_changed() {
    let docker = docker().await;
    let mut app = App::new(&[("Dockerfile", &format!("{BUSYBOX}COPY app/ /app/\n")), ("app/version", "one")]);
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
    let base = BUSYBOX;
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
        "{BUSYBOX}\
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
    let password = registry_login().await.1.expose_password().to_owned();
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

/// A `FROM` an image of the registry eb-deploy pushes to (a team's base image in its ECR), on a daemon that
/// never logged in to it: the classic builder gets the login with the build request, BuildKit through the
/// session, as `docker build` after `docker login` gets them.
#[tokio::test(flavor = "multi_thread")]
async fn a_base_image_from_the_registry_pushed_to_is_pulled_with_its_login() {
    let (registry_host, auth) = registry_login().await;
    let (login, out) = console();
    let base_repo = unique("eb-deploy-e2e/base");
    let marker = unique("base");
    let mut base = App::new(&[
        ("Dockerfile", "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nCOPY marker /marker\n"),
        ("marker", &marker),
    ]);
    let local = base.image(unique("ebd-base") + ":x");
    let built = image::build(&docker().await, &base.request(Builder::BuildKit, local), &login)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    registry::push(&docker().await, &auth, &built.id, &base_repo, "1", &login).await.expect("push the base image");
    base.image(format!("{registry_host}/{base_repo}:1"));

    for builder in [Builder::Classic, Builder::BuildKit] {
        let fresh = FreshDaemon::start();
        let mut app = App::new(&[(
            "Dockerfile",
            &format!("FROM {registry_host}/{base_repo}:1\nRUN [\"/bin/busybox\", \"cp\", \"/marker\", \"/copied\"]\n"),
        )]);
        let tag = app.image(unique("ebd-from-ecr") + ":x");
        let mut request = app.request(builder, tag);
        request.docker_host = Some(fresh.host.clone());
        request.registry_auth = Some(auth.clone());
        let (console, out) = console();
        let fresh_docker = fresh.docker().await;
        let built = image::build(&fresh_docker, &request, &console)
            .await
            .unwrap_or_else(|e| panic!("{builder:?}: {e:#}\n{}", out.text()));
        // The step ran on the base's files: the pull went through with the login.
        let inspect = fresh_docker.inspect_image(&built.id).await.expect("the image is on the fresh daemon");
        assert_eq!(inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()), Some(3), "{builder:?}");
    }
}

/// `cache-from` lines under BuildKit: one that exists serves a fresh daemon its layers; one missing from the
/// registry and one on a host that does not answer are one warning each, and the build goes on (with either
/// builder). `cache-to: none` pushes an image without BuildKit's cache metadata.
#[tokio::test(flavor = "multi_thread")]
async fn cache_from_lines_are_used_and_unreadable_ones_are_one_warning_each() {
    let (registry_host, auth) = registry_login().await;
    let (login, _) = console();
    let password = auth.expose_password().to_owned();
    let repo = unique("eb-deploy-e2e/cache-from");
    let marker = unique("slow");
    let dockerfile = format!(
        "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {marker}; /bin/busybox sleep 2; echo done > /slow\"]\nCOPY www/ /www/\n"
    );
    let mut app = App::new(&[("Dockerfile", &dockerfile), ("www/index.html", "one")]);

    // The cache image: built with inline cache metadata (the default) and pushed.
    let local = app.image(unique("ebd-cache-src") + ":x");
    let mut request = app.request(Builder::BuildKit, local);
    request.registry_auth = Some(auth.clone());
    let (console_a, out) = console();
    let built =
        image::build(&docker().await, &request, &console_a).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    registry::push(&docker().await, &auth, &built.id, &repo, "cache", &login).await.expect("push the cache image");
    app.image(format!("{registry_host}/{repo}:cache"));

    let missing = format!("{registry_host}/{repo}:missing");
    let unreachable = "127.0.0.1:9/nowhere/app:1".to_owned();
    let source = format!("{registry_host}/{repo}:cache");
    app.write("www/index.html", "two");
    for builder in [Builder::BuildKit, Builder::Classic] {
        // The classic builder runs no COPY --chmod: it gets the same sources with a Dockerfile it can build.
        if builder == Builder::Classic {
            app.write("Dockerfile", "FROM scratch\nCOPY www/ /www/\n");
        }
        let fresh = FreshDaemon::start();
        let mut request = app.request(builder, unique("ebd-cache-use") + ":x");
        request.docker_host = Some(fresh.host.clone());
        request.registry_auth = Some(auth.clone());
        request.plan.cache_from = vec![missing.clone(), unreachable.clone(), source.clone()];
        request.plan.cache_to = CacheTo::None;
        let (console_b, out) = console();
        let fresh_docker = fresh.docker().await;
        let built = image::build(&fresh_docker, &request, &console_b)
            .await
            .unwrap_or_else(|e| panic!("{builder:?}: {e:#}\n{}", out.text()));
        let text = out.text();
        let warnings: Vec<&str> = text.lines().filter(|l| l.starts_with("::warning")).collect();
        assert_eq!(warnings.len(), 2, "{builder:?}: one warning per unreadable source:\n{text}");
        assert!(warnings.iter().any(|w| w.contains(&missing)), "{builder:?}: {warnings:?}");
        assert!(warnings.iter().any(|w| w.contains(&unreachable)), "{builder:?}: {warnings:?}");
        assert!(!text.contains("::error"), "{builder:?}:\n{text}");
        if builder == Builder::Classic {
            continue;
        }
        // The source that exists served the slow step to a daemon that never ran it.
        let slow = text.lines().find(|l| l.contains("/bin/busybox sleep 2")).expect("the slow step in the log");
        assert!(slow.ends_with(" CACHED"), "{slow}\n{text}");
        assert!(!text.contains(&format!(" {marker}\n")), "the slow step did not run:\n{text}");

        // cache-to: none: the pushed config has no BuildKit cache metadata.
        let tag = unique("nocache");
        registry::push(&fresh_docker, &auth, &built.id, &repo, &tag, &login).await.expect("push");
        let (_, manifest) = registry_get(&registry_host, &format!("/v2/{repo}/manifests/{tag}"), &password);
        let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
        let config_digest = manifest["config"]["digest"].as_str().expect("config digest");
        let (_, config) = registry_get(&registry_host, &format!("/v2/{repo}/blobs/{config_digest}"), &password);
        assert!(config.contains("\"rootfs\""), "{config}");
        assert!(!config.contains("moby.buildkit.cache.v0"), "cache-to: none wrote cache metadata: {config}");
    }
}
