//! BuildKit's inputs end to end on the local stack: what the classic builder refuses (with the daemon's
//! message, or before the build when it would build another image without an error), every input the classic
//! builder takes kept working under BuildKit, build secrets, and `COPY --link`'s layer.
#![cfg(feature = "e2e")]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use eb_deploy::build_plan::{BuildPlan, Builder, oci_labels};
use eb_deploy::image::{self, BuildRequest};
use eb_deploy::registry;
use support::console::console;
use support::image::{App, BUSYBOX, SERVE, docker, docker_host, image_files, registry_get, registry_login, sparse};
use support::{Stack, unique};

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

/// What Docker 26's classic builder accepts and builds into another image without an error (tried with
/// `DOCKER_BUILDKIT=0`: a RUN heredoc's body is dropped, `ADD --checksum` is not verified, `ADD --keep-git-dir` is
/// ignored, BuildKit's platform ARGs are empty, another frontend's file is read as a Dockerfile) is refused
/// before the build starts, at its line; what it ignores with the same result builds, with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn the_classic_builder_is_not_given_what_it_would_build_wrong() {
    let docker = docker().await;
    let base = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";
    let zeros = "0".repeat(64);
    let cases = [
        (
            format!("{base}RUN <<EOF\necho hello > /hello\nEOF\n"),
            4,
            "a heredoc in RUN (line 4) needs BuildKit: the classic builder would run the command without the \
             heredoc's body, and succeed all the same",
        ),
        (
            format!("{base}ADD --checksum=sha256:{zeros} busybox /copy\n"),
            4,
            "ADD --checksum (line 4) needs BuildKit: the classic builder would add the source without verifying its \
             checksum, and succeed all the same",
        ),
        (
            format!("{base}ADD --keep-git-dir=true busybox /copy\n"),
            4,
            "ADD --keep-git-dir (line 4) needs BuildKit: the classic builder would ignore it",
        ),
        (
            format!("{base}ARG TARGETARCH\nCOPY busybox /bin/busybox-${{TARGETARCH}}\nRUN <<EOF\ntrue\nEOF\n"),
            4,
            "ARG TARGETARCH (line 4) needs BuildKit: the classic builder would leave it empty (unless `build-args` \
             sets it), and succeed all the same; so would a heredoc in RUN (line 6)",
        ),
        (
            format!("# syntax=example.com/frontend:1\n{base}"),
            1,
            "# syntax=example.com/frontend:1 (line 1) needs BuildKit: the classic builder would ignore it and read \
             the file as a plain Dockerfile",
        ),
    ];
    for (dockerfile, line, refusal) in cases {
        let mut app = App::new(&[("Dockerfile", &dockerfile)]);
        fs::set_permissions(app.dir.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
        let tag = app.image(unique("ebd-classic-misbuild") + ":x");
        let (console, out) = console();
        let request = app.request(Builder::Classic, tag.clone());
        let err = format!("{:#}", image::build(&docker, &request, &console).await.unwrap_err());
        assert!(err.starts_with(&format!("failed to build the image: {refusal}")), "{err}");
        assert!(err.ends_with(&format!("/Dockerfile:{line}); set `builder: auto` to build with BuildKit")), "{err}");
        let text = out.text();
        let annotation = text.lines().find(|l| l.starts_with("::error ")).expect("an annotation");
        assert!(
            annotation.contains(&format!("/Dockerfile,line={line},title=Docker build failed::{refusal}")),
            "{text}"
        );
        // Refused before the build: the daemon was not asked, and made no image.
        assert!(!text.contains("Step 1/"), "{text}");
        assert!(docker.inspect_image(&tag).await.is_err(), "{tag} was built");
    }

    // The same ARG given by the build args, and a `# syntax=` for the Dockerfile frontend itself (which the classic
    // builder's own parser stands in for): built, with a warning at the directive's line.
    let mut app = App::new(&[(
        "Dockerfile",
        &format!("# syntax=docker/dockerfile:1\n{base}ARG TARGETARCH\nCOPY busybox /bin/busybox-${{TARGETARCH}}\n"),
    )]);
    fs::set_permissions(app.dir.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let tag = app.image(unique("ebd-classic-given") + ":x");
    let mut request = app.request(Builder::Classic, tag);
    request.plan.build_args = vec![("TARGETARCH".into(), "amd64".into())];
    let (console, out) = console();
    let built = image::build(&docker, &request, &console).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    let text = out.text();
    let warning = text.lines().find(|l| l.starts_with("::warning")).expect("a warning for the directive");
    assert!(
        warning.contains("line=1")
            && warning.ends_with("is ignored by the classic builder: it reads the file with its own Dockerfile parser"),
        "{warning}"
    );
    let listing = image_files(&built.id, &["/bin"]).await;
    assert!(listing[0].split_whitespace().any(|f| f == "busybox-amd64"), "{}", listing[0]);
}

/// The modern Dockerfile of `buildkit_e2e.rs`, cut to what the classic builder trips on: `COPY --chmod` first.
fn modern_dockerfile() -> String {
    format!(
        r#"FROM scratch AS base
COPY --chmod=755 busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
RUN --mount=type=cache,target=/cache mkdir -p /out && echo built > /out/version
COPY <<EOF /out/heredoc.txt
written by a heredoc
EOF

FROM base AS app
COPY --link www/ /www/
COPY --from=build /out/ /www/
{SERVE}

FROM app AS not-built
RUN exit 1
"#
    )
}

/// Through the action, `builder: classic`: a modern Dockerfile fails with the daemon's message at its line, and a
/// RUN heredoc, which the classic builder would build without its body, with eb-deploy's refusal at its line;
/// neither run changes anything in Beanstalk. With BuildKit (the default) the heredoc runs.
#[tokio::test(flavor = "multi_thread")]
async fn classic_builds_of_buildkit_dockerfiles_fail_at_their_line_and_deploy_nothing() {
    let stack = Stack::load();
    let (name, env) = (unique("classic"), unique("web"));
    stack.create_environment(&name, &env).await;
    let heredoc = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN <<EOF\nmkdir -p /www\necho 'written by a RUN heredoc' > /www/heredoc.txt\nEOF\nCOPY www/ /www/\n{SERVE}\n"
    );
    let app = App::new(&[("Dockerfile", &modern_dockerfile()), ("www/index.html", "<p>classic</p>\n")]);
    fs::set_permissions(app.dir.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        (
            modern_dockerfile(),
            Some("app"),
            "::error file=Dockerfile,line=2,title=Docker build failed::the --chmod option requires BuildKit",
            "COPY --chmod (line 2) needs BuildKit: set `builder: auto` to build with BuildKit",
        ),
        (
            heredoc,
            None,
            "::error file=Dockerfile,line=4,title=Docker build failed::a heredoc in RUN (line 4) needs BuildKit: the \
             classic builder would run the command without the heredoc's body",
            "set `builder: auto` to build with BuildKit",
        ),
    ];
    for (version, (dockerfile, target, annotated, hint)) in cases.into_iter().enumerate() {
        app.write("Dockerfile", &dockerfile);
        let label = format!("v{}", version + 1);
        let mut inputs = vec![
            ("application-name", name.as_str()),
            ("environment-name", env.as_str()),
            ("version-label", label.as_str()),
            ("builder", "classic"),
        ];
        inputs.extend(target.map(|t| ("target", t)));
        let seq = stack.admin.last_request_seq().await.expect("request log");
        let run = stack.run(&app.dir, &inputs);
        assert_eq!(run.code, Some(1), "{}", run.dump());
        assert_eq!(run.out("result"), "failed");
        assert!(run.stdout.contains("Builder: classic builder (builder: classic)"), "{}", run.stdout);
        let annotation = run.stdout.lines().find(|l| l.starts_with("::error file=")).expect("an annotation");
        assert!(annotation.starts_with(annotated), "{annotation}");
        assert!(annotation.contains(hint), "{annotation}");
        assert!(run.out("image").is_empty());
        let mutations = stack.mutations_since(seq, &name).await;
        assert!(mutations.is_empty(), "a failed build changes nothing in Beanstalk: {mutations:?}");
    }

    let run = stack.run(&app.dir, &[("application-name", &name), ("environment-name", &env), ("version-label", "v3")]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.out("result"), "deployed");
    assert!(run.stdout.contains("Builder: BuildKit (builder: auto;"), "{}", run.stdout);
    let files = image_files(run.out("image"), &["/www/heredoc.txt"]).await;
    assert_eq!(files, ["written by a RUN heredoc"]);
    assert_eq!(stack.fetch(&env, "/heredoc.txt").await.trim(), "written by a RUN heredoc");
}

#[tokio::test(flavor = "multi_thread")]
async fn buildkit_keeps_every_classic_input_working() {
    let docker = docker().await;
    let (registry, auth) = registry_login().await;
    let (console, out) = console();
    let password = auth.expose_password().to_owned();
    let repo = unique("eb-deploy-e2e/buildkit");

    // The base image is in the registry: one with a marker, then a newer one under the same tag, while the daemon
    // keeps the older one under that name (as a runner that pulled it before).
    let base_repo = unique("eb-deploy-e2e/base");
    let base_ref = format!("{registry}/{base_repo}:1");
    let (old_marker, new_marker) = (unique("old-base"), unique("new-base"));
    let mut base = App::new(&[("Dockerfile", "FROM scratch\nCOPY marker /marker\n")]);
    let (setup, _) = support::console::console();
    let mut base_ids = Vec::new();
    for marker in [&old_marker, &new_marker] {
        base.write("marker", marker);
        let local = base.image(unique("ebd-base") + ":x");
        let built = image::build(&docker, &base.request(Builder::BuildKit, local), &setup).await.expect("base image");
        registry::push(&docker, &auth, &built.id, &base_repo, "1", &setup).await.expect("push the base image");
        base_ids.push(built.id);
    }
    base.image(base_ref.clone());
    let tagged = Command::new("docker").args(["tag", &base_ids[0], &base_ref]).output().unwrap();
    assert!(tagged.status.success(), "{}", String::from_utf8_lossy(&tagged.stderr));

    // The Dockerfile lives outside the context; `.dockerignore` keeps a file and a big tree out.
    let mut app = App::new(&[
        ("ctx/keep.txt", "kept"),
        ("ctx/secret.env", "TOKEN=nope"),
        ("ctx/.dockerignore", "secret.env\nbig/\n"),
        (
            "Dockerfile.outside",
            &format!(
                "FROM {base_ref} AS base\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                 ARG GREETING\nRUN echo \"$GREETING\" > /greeting && ls / > /listing\nCOPY . /ctx/\n\
                 FROM base AS extra\nRUN exit 1\nFROM base\n"
            ),
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
    // What the image holds: the build arg's value, the kept file, nothing .dockerignore excludes, and the base
    // image the registry has now (`pull: true`), not the daemon's older copy.
    let files = image_files(&built.id, &["/greeting", "/ctx/keep.txt", "/marker"]).await;
    assert_eq!(files, ["hello from a build arg", "kept", new_marker.as_str()]);
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

    // `no_cache: true`: built again, no step comes from the cache; the same build without it takes them all
    // from there.
    let cached_steps = |text: &str| text.lines().filter(|l| l.ends_with(" CACHED")).count();
    let (again, out) = support::console::console();
    image::build(&docker, &request, &again).await.expect("BuildKit build without the cache, again");
    assert_eq!(cached_steps(&out.text()), 0, "no_cache: true, yet:\n{}", out.text());
    let mut cached = request.clone();
    cached.plan.no_cache = false;
    let (again, out) = support::console::console();
    image::build(&docker, &cached, &again).await.expect("BuildKit build with the cache");
    assert!(cached_steps(&out.text()) >= 4, "the steps come from the cache:\n{}", out.text());

    // `pull: false`: BuildKit on Docker 26 takes the daemon's copy of the base image when it has one.
    let mut local = cached;
    local.plan.pull = false;
    let (again, out) = support::console::console();
    let kept = image::build(&docker, &local, &again).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    assert_eq!(image_files(&kept.id, &["/marker"]).await, [old_marker.as_str()]);

    // `platform`: another architecture than the daemon's, with no step to run on it.
    let mut arm = App::new(&[("Dockerfile", "FROM scratch\nCOPY busybox /busybox\n")]);
    let tag = arm.image(unique("ebd-arm64") + ":x");
    let mut request = arm.request(Builder::BuildKit, tag);
    request.plan.platform = Some("linux/arm64".into());
    let (again, out) = support::console::console();
    let built = image::build(&docker, &request, &again).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    let inspect = docker.inspect_image(&built.id).await.unwrap();
    assert_eq!((inspect.os.as_deref(), inspect.architecture.as_deref()), (Some("linux"), Some("arm64")));
}

/// A secret the `secrets` input does not name: the mount is absent (BuildKit's default) and the build goes
/// on; with `required=true` the step fails at its line, saying which secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_the_input_does_not_name_is_absent_or_fails_a_required_mount() {
    let docker = docker().await;
    let base = BUSYBOX;
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
        "{BUSYBOX}\
         RUN --mount=type=secret,id=token --mount=type=secret,id=config mkdir -p /www \\\n \
         && echo \"token sha $(sha256sum < /run/secrets/token | cut -c1-16)\" > /www/secrets.txt \\\n \
         && echo \"config $(wc -l < /run/secrets/config) lines\" >> /www/secrets.txt \\\n \
         && echo \"printed token [$(cat /run/secrets/token)] config [$(head -n 1 /run/secrets/config)]\" \\\n \
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

    // A step that prints the values: eb-deploy's log shows `***` in their place, as the runner's masks would.
    assert!(run.stdout.contains(" printed token [***] config [***]\n"), "{}", run.stdout);

    // Neither value is anywhere but in the runner's mask commands: not in the log, the outputs, the summary,
    // the image's history or config, locally or as pushed.
    let secret_line = config.lines().next().unwrap().to_owned();
    for value in [&token, &secret_line] {
        for line in run.stdout.lines().chain(run.stderr.lines()) {
            assert!(line.starts_with("::add-mask::") || !line.contains(value.as_str()), "{value} leaked: {line}");
        }
        assert!(!format!("{:?}{}", run.outputs, run.summary).contains(value.as_str()));
    }
    let registry_host = std::env::var("LOCAL_REGISTRY").expect("LOCAL_REGISTRY: source .local-stack/env");
    let repo = eb_deploy::names::ecr_repository_name(&name);
    let image = format!("{registry_host}/{repo}:v1");
    for args in [["history", "--no-trunc"], ["image", "inspect"]] {
        let out = Command::new("docker").args(args).arg(&image).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(&token) && !text.contains(&secret_line), "a secret is in the image: {text}");
    }
    let password = registry_login().await.1.expose_password().to_owned();
    let (_, manifest) = registry_get(&registry_host, &format!("/v2/{repo}/manifests/v1"), &password);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    let config_digest = manifest["config"]["digest"].as_str().expect("config digest");
    let (_, pushed) = registry_get(&registry_host, &format!("/v2/{repo}/blobs/{config_digest}"), &password);
    let step = format!("the build used its secrets ({name})");
    assert!(pushed.contains(&step), "the config blob has the build's history: {pushed}");
    assert!(!pushed.contains(&token) && !pushed.contains(&secret_line), "a secret is in the pushed config: {pushed}");
}

/// `COPY --link` under BuildKit: a new base under the linked layer leaves that layer the same (the same diff id in
/// both images, so a push finds the registry has it), and a plain `COPY` after a changed base runs again.
///
/// Docker 26 does not take the linked step from the cache either: its BuildKit has no merge op (moby's graph
/// driver controller disables it, "only enabled with containerd image store backend"; moby/moby#45111), so the
/// Dockerfile frontend builds `COPY --link` as a plain `COPY`, for `docker build` as for eb-deploy.
#[tokio::test(flavor = "multi_thread")]
async fn copy_link_keeps_its_layer_when_the_base_changes() {
    let docker = docker().await;
    let www = unique("www");
    let mut app = App::new(&[("www/index.html", &format!("<p>{www}</p>\n")), ("base.txt", &unique("base one"))]);
    let dockerfile = |copy: &str| {
        format!(
            "FROM scratch AS base\nCOPY --chmod=755 busybox /bin/busybox\nCOPY base.txt /base.txt\nFROM base\n\
             {copy} www/ /www/\n"
        )
    };
    let tag = app.image(unique("ebd-link") + ":x");
    let request = app.request(Builder::BuildKit, tag);
    let layers = |inspect: bollard::models::ImageInspect| inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();

    app.write("Dockerfile", &dockerfile("COPY --link"));
    let (log, out) = console();
    let first = image::build(&docker, &request, &log).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    let first_layers = layers(docker.inspect_image(&first.id).await.unwrap());

    app.write("base.txt", &unique("base two"));
    let (log, out) = console();
    let second = image::build(&docker, &request, &log).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    let text = out.text();
    assert!(text.contains("] COPY --link www/ /www/"), "{text}");
    let rebuilt = text.lines().find(|l| l.contains("] COPY base.txt /base.txt")).expect("the base's step");
    assert!(!rebuilt.ends_with(" CACHED"), "the base changed: {rebuilt}");
    let second_layers = layers(docker.inspect_image(&second.id).await.unwrap());
    assert_eq!(first_layers.len(), 3, "{first_layers:?}");
    assert_ne!(first_layers[1], second_layers[1], "the base changed");
    assert_eq!(first_layers[2], second_layers[2], "the linked layer is the same");

    // The control: the same change under a plain COPY runs it again.
    app.write("Dockerfile", &dockerfile("COPY"));
    let (log, out) = console();
    image::build(&docker, &request, &log).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    app.write("base.txt", &unique("base three"));
    let (log, out) = console();
    image::build(&docker, &request, &log).await.unwrap_or_else(|e| panic!("{e:#}\n{}", out.text()));
    let text = out.text();
    let step = text.lines().find(|l| l.contains("] COPY www/ /www/")).expect("the plain step");
    assert!(!step.ends_with(" CACHED"), "{step}\n{text}");
}
