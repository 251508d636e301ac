//! `builder: auto` on a daemon that will not build with BuildKit after all: the build runs against the local
//! stack's daemon through a small proxy of the test's own, which forwards everything to the daemon except
//! what it is told to refuse (`POST /session`, a `version=2` build) or to answer itself (`/version` of an
//! old engine or of Windows), as a Docker socket proxy in front of a CI daemon, or such a daemon, would.
//! `auto` then builds with the classic builder and says why in one line; `builder: buildkit` fails naming
//! the input; a failing step is a failure, never a reason to build again. An ignored test runs eb-deploy's
//! BuildKit session on another engine (`EB_DEPLOY_ENGINE_HOST`), e.g. Debian 12's Engine 20.10.
#![cfg(feature = "e2e")]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eb_deploy::build_plan::Builder;
use eb_deploy::image;
use support::console::console;
use support::image::{App, BUSYBOX, docker_host};
use support::unique;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// What the proxy does besides forwarding.
#[derive(Clone, Default)]
struct Rules {
    /// The answer to `POST /session` (a whole HTTP response; empty: close the connection unanswered).
    session: Option<String>,
    /// The answer to a `POST /build` with `version=2`.
    buildkit_build: Option<String>,
    /// The body of the answer to `GET /version`.
    version: Option<String>,
}

fn answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A proxy on a Unix socket of its own; every request line it saw is in `seen`.
struct Proxy {
    dir: PathBuf,
    host: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    fn start(rules: Rules) -> Self {
        let dir = std::env::temp_dir().join(unique("builder-proxy"));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let upstream = docker_host().unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(serve(client, upstream.clone(), rules.clone(), seen.clone()));
                }
            }
        });
        Self { host: format!("unix://{}", socket.display()), dir, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The `POST /build` request lines it forwarded or refused.
    fn builds(&self) -> Vec<String> {
        self.seen().into_iter().filter(|l| l.starts_with("POST ") && l.contains("/build?")).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

async fn upstream_connection(host: &str) -> Box<dyn Io> {
    match host.strip_prefix("unix://") {
        Some(path) => Box::new(UnixStream::connect(path).await.unwrap()),
        None => {
            let addr = host.trim_start_matches("tcp://").trim_start_matches("http://").trim_end_matches('/');
            Box::new(tokio::net::TcpStream::connect(addr).await.unwrap())
        }
    }
}

/// One request per connection: the proxy reads its head, answers it or forwards it with `Connection:
/// close` (so the client's next request comes on a new connection, read again), and then copies both ways
/// (the request's body, the answer, or an upgraded session).
async fn serve(mut client: UnixStream, upstream: String, rules: Rules, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    seen.lock().unwrap().push(request_line.clone());
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let own_answer = if method == "POST" && path.ends_with("/session") {
        rules.session.clone()
    } else if method == "POST" && path.ends_with("/build") && query.split('&').any(|p| p == "version=2") {
        rules.buildkit_build.clone()
    } else if method == "GET" && path.ends_with("/version") {
        rules.version.as_deref().map(|body| answer("200 OK", "application/json", body))
    } else {
        None
    };
    if let Some(own_answer) = own_answer {
        let _ = client.write_all(own_answer.as_bytes()).await;
        let _ = client.shutdown().await;
        return;
    }
    let upgrade = head.lines().any(|l| l.to_ascii_lowercase().starts_with("upgrade:"));
    let forwarded = if upgrade {
        head
    } else {
        let mut lines: Vec<&str> = head
            .trim_end_matches("\r\n")
            .split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .collect();
        lines.push("Connection: close");
        format!("{}\r\n\r\n", lines.join("\r\n"))
    };
    let mut daemon = upstream_connection(&upstream).await;
    if daemon.write_all(forwarded.as_bytes()).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
    }
}

const PAGE_NOT_FOUND: &str = r#"{"message":"page not found"}"#;

/// A Dockerfile either builder builds (the busybox of `App` arrives not executable, so nothing runs).
/// Its `app.txt` is unique to each build: the classic builder's cache never hands one test a layer of an image
/// another test is removing.
const PLAIN: &str = "FROM scratch\nCOPY app.txt /app.txt\nCOPY busybox /bin/busybox\n";

/// Builds `app` through `proxy`; returns the outcome and the log.
async fn build_through(proxy: &Proxy, app: &mut App, builder: Builder) -> (anyhow::Result<image::BuiltImage>, String) {
    let docker = eb_deploy::docker::connect(Some(&proxy.host)).await.expect("the daemon through the proxy");
    let tag = app.image(unique("ebd-fallback") + ":x");
    let mut request = app.request(builder, tag);
    request.docker_host = Some(proxy.host.clone());
    let (console, out) = console();
    let built = image::build(&docker, &request, &console).await;
    (built, out.text())
}

/// The classic builder's log, as opposed to BuildKit's (`#1 [internal] load build definition …`).
fn classic_built(log: &str) -> bool {
    log.lines().any(|l| l.starts_with("Step 1/3 : FROM scratch")) && !log.contains("[internal] load build definition")
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_builds_with_the_classic_builder_when_the_session_is_refused() {
    let refusals = [
        (
            answer("404 Not Found", "application/json", PAGE_NOT_FOUND),
            "POST /session answered 404 Not Found (page not found)",
        ),
        (
            answer("400 Bad Request", "text/plain", "upgrades are not allowed\n"),
            "POST /session answered 400 Bad Request (upgrades are not allowed)",
        ),
        (String::new(), "the connection closed before an answer to POST /session"),
    ];
    for (refusal, says) in refusals {
        let proxy = Proxy::start(Rules { session: Some(refusal), ..Rules::default() });
        let mut app = App::new(&[("Dockerfile", PLAIN), ("app.txt", &unique("app"))]);
        let (built, log) = build_through(&proxy, &mut app, Builder::Auto).await;
        eprintln!("{log}");
        let built = built.unwrap_or_else(|e| panic!("{e:#}\n{log}"));
        assert!(built.id.starts_with("sha256:"), "{built:?}");
        let line = format!("Builder: classic builder (builder: auto; the daemon refused a BuildKit session: {says}");
        let fallback: Vec<&str> = log.lines().filter(|l| l.starts_with("Builder: classic builder")).collect();
        assert_eq!(fallback.len(), 1, "one line says why:\n{log}");
        assert!(fallback[0].starts_with(&line) && fallback[0].ends_with(')'), "{line}\n{log}");
        assert!(classic_built(&log), "the classic builder built it:\n{log}");
        assert!(proxy.seen().iter().any(|l| l.starts_with("POST /session ")), "{:?}", proxy.seen());
        let builds = proxy.builds();
        assert!(builds.len() == 1 && builds[0].contains("version=1"), "only the classic build was sent: {builds:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_builds_with_the_classic_builder_when_a_buildkit_build_is_refused() {
    let page = "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n";
    // What the Engine answers when its authorization plugin denies the request: its own JSON, status 403.
    let denied = r#"{"message":"authorization denied by plugin authz-broker: BuildKit builds are not allowed"}"#;
    let refusals = [
        (answer("403 Forbidden", "text/html", page), "403 Forbidden: <html><body><h1>403 Forbidden</h1> Request"),
        (
            answer("403 Forbidden", "application/json", denied),
            "403 Forbidden: authorization denied by plugin authz-broker: BuildKit builds are not allowed)",
        ),
    ];
    for (refusal, said) in refusals {
        let proxy = Proxy::start(Rules { buildkit_build: Some(refusal), ..Rules::default() });
        let mut app = App::new(&[("Dockerfile", PLAIN), ("app.txt", &unique("app"))]);
        let (built, log) = build_through(&proxy, &mut app, Builder::Auto).await;
        eprintln!("{log}");
        built.unwrap_or_else(|e| panic!("{e:#}\n{log}"));
        let fallback: Vec<&str> = log.lines().filter(|l| l.starts_with("Builder: classic builder")).collect();
        assert_eq!(fallback.len(), 1, "{log}");
        let line = format!("Builder: classic builder (builder: auto; the daemon refused a BuildKit build: {said}");
        assert!(fallback[0].starts_with(&line), "{line}\n{log}");
        assert!(classic_built(&log), "{log}");
        let builds = proxy.builds();
        assert_eq!(builds.len(), 2, "{builds:?}");
        assert!(builds[0].contains("version=2") && builds[1].contains("version=1"), "{builds:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engines_reason_about_a_build_is_a_failure_not_a_refusal() {
    // A 400 with the Engine's reason is about this build: the classic builder would not fix it.
    let reason = r#"{"message":"failed to parse platform : \"\" is an invalid component of \"\""}"#;
    let proxy = Proxy::start(Rules {
        buildkit_build: Some(answer("400 Bad Request", "application/json", reason)),
        ..Rules::default()
    });
    let mut app = App::new(&[("Dockerfile", PLAIN), ("app.txt", &unique("app"))]);
    let (built, log) = build_through(&proxy, &mut app, Builder::Auto).await;
    let err = format!("{:#}", built.expect_err("the build fails"));
    assert_eq!(
        err, r#"failed to build the image: failed to parse platform : "" is an invalid component of """#,
        "{log}"
    );
    assert!(!log.contains("Builder: classic builder"), "{log}");
    let builds = proxy.builds();
    assert!(builds.len() == 1 && builds[0].contains("version=2"), "{builds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn builder_buildkit_fails_naming_the_input_when_the_daemon_refuses() {
    let refused = answer("404 Not Found", "application/json", PAGE_NOT_FOUND);
    let proxy = Proxy::start(Rules { session: Some(refused), ..Rules::default() });
    let mut app = App::new(&[("Dockerfile", PLAIN), ("app.txt", &unique("app"))]);
    let (built, log) = build_through(&proxy, &mut app, Builder::BuildKit).await;
    let err = format!("{:#}", built.expect_err("builder: buildkit does not fall back"));
    assert_eq!(
        err,
        "failed to build the image: input `builder` is buildkit, but the daemon refused a BuildKit session: POST \
         /session answered 404 Not Found (page not found); set `builder: auto` (or classic) to build with the \
         classic builder"
    );
    assert!(!log.contains("Builder: classic builder"), "{log}");
    assert!(proxy.builds().is_empty(), "nothing was built: {:?}", proxy.builds());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_is_not_built_again_with_the_classic_builder() {
    let proxy = Proxy::start(Rules::default());
    let dockerfile = "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"false\"]\n";
    let mut app = App::new(&[("Dockerfile", dockerfile)]);
    let (built, log) = build_through(&proxy, &mut app, Builder::Auto).await;
    let err = format!("{:#}", built.expect_err("the step fails"));
    assert!(err.contains("did not complete successfully") && err.contains("Dockerfile:3"), "{err}\n{log}");
    assert!(log.contains("Builder: BuildKit (builder: auto;"), "{log}");
    assert!(!log.contains("Builder: classic builder"), "{log}");
    let builds = proxy.builds();
    assert!(builds.len() == 1 && builds[0].contains("version=2"), "{builds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_decides_from_what_the_daemon_says_it_is() {
    let old = r#"{"Version":"18.06.3-ce","ApiVersion":"1.38","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64",
        "Components":[{"Name":"Engine","Version":"18.06.3-ce"}]}"#;
    let unconfirmed = r#"{"Version":"19.03.15","ApiVersion":"1.40","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64",
        "Components":[{"Name":"Engine","Version":"19.03.15"}]}"#;
    let windows = r#"{"Version":"26.1.5","ApiVersion":"1.45","MinAPIVersion":"1.24","Os":"windows","Arch":"amd64",
        "Components":[{"Name":"Engine","Version":"26.1.5"}]}"#;
    let cases = [
        (
            old,
            "Builder: classic builder (builder: auto; Docker Engine 18.06.3-ce speaks API 1.38, older than BuildKit \
             sessions (API 1.39, Engine 18.09))",
        ),
        (windows, "Builder: classic builder (builder: auto; Docker Engine 26.1.5 runs on windows, where"),
        (
            unconfirmed,
            "Builder: classic builder (builder: auto; Docker Engine 19.03.15 speaks API 1.40; eb-deploy's BuildKit \
             session is confirmed from Engine 20.10 (API 1.41) on; `builder: buildkit` tries it)",
        ),
    ];
    for (version, says) in cases {
        let proxy = Proxy::start(Rules { version: Some(version.to_owned()), ..Rules::default() });
        let mut app = App::new(&[("Dockerfile", PLAIN), ("app.txt", &unique("app"))]);
        let (built, log) = build_through(&proxy, &mut app, Builder::Auto).await;
        eprintln!("{log}");
        built.unwrap_or_else(|e| panic!("{e:#}\n{log}"));
        assert!(log.lines().any(|l| l.starts_with(says)), "{says}\n{log}");
        assert!(classic_built(&log), "{log}");
        // Decided before the build: no session was asked for.
        assert!(!proxy.seen().iter().any(|l| l.contains("/session")), "{:?}", proxy.seen());
        let builds = proxy.builds();
        assert!(builds.len() == 1 && builds[0].contains("version=1"), "{builds:?}");
    }
    // Where sessions exist but eb-deploy's is unconfirmed, `builder: buildkit` tries it.
    let proxy = Proxy::start(Rules { version: Some(unconfirmed.to_owned()), ..Rules::default() });
    let mut app = App::new(&[("Dockerfile", PLAIN), ("app.txt", &unique("app"))]);
    let (built, log) = build_through(&proxy, &mut app, Builder::BuildKit).await;
    built.unwrap_or_else(|e| panic!("{e:#}\n{log}"));
    assert!(
        log.contains(
            "Builder: BuildKit (builder: buildkit; Docker Engine 19.03.15, API 1.40, not confirmed with eb-deploy's \
             session)"
        ),
        "{log}"
    );
    assert!(proxy.builds().iter().all(|b| b.contains("version=2")), "{:?}", proxy.builds());
}

/// eb-deploy's BuildKit session on another engine than the local stack's, e.g. Debian 12's Engine 20.10
/// started beside it (`apt-get download docker.io=20.10.24+dfsg1-1+deb12u1+b6`, `dpkg-deb -x`, then
/// `PATH=<extracted>/usr/sbin:$PATH scripts/fresh-daemon start DIR`): the context and the Dockerfile through
/// file sync, `.dockerignore`, `COPY --chmod`, a cache mount, a secret, a failing step at its line, and a
/// rebuild that sends only what changed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs EB_DEPLOY_ENGINE_HOST: the DOCKER_HOST of the engine to try"]
async fn buildkit_through_the_session_on_the_engine_at_eb_deploy_engine_host() {
    let host = std::env::var("EB_DEPLOY_ENGINE_HOST").expect("EB_DEPLOY_ENGINE_HOST names the engine to try");
    let docker = eb_deploy::docker::connect(Some(&host)).await.expect("the engine answers");
    let secret = std::env::temp_dir().join(unique("engine-secret"));
    let value = unique("value");
    std::fs::write(&secret, &value).unwrap();
    let dockerfile = format!(
        "{BUSYBOX}\
         COPY . /ctx\nRUN --mount=type=cache,target=/cache --mount=type=secret,id=token,required=true \\\n    \
         test \"$(cat /run/secrets/token)\" = {value} && test ! -e /ctx/ignored.txt && test ! -e /ctx/Dockerfile \\\n    \
         && echo run >> /cache/runs && cp /cache/runs /runs\n"
    );
    let app = App::new(&[
        ("Dockerfile", &dockerfile),
        ("app.txt", "one"),
        ("ignored.txt", "x"),
        (".dockerignore", "ignored.txt\nDockerfile\n"),
    ]);
    let tag = unique("ebd-engine") + ":x";
    let build = |app: &App| {
        let mut request = app.request(Builder::Auto, tag.clone());
        request.docker_host = Some(host.clone());
        request.plan.secrets = vec![eb_deploy::build_plan::BuildSecret {
            id: "token".to_owned(),
            from: eb_deploy::build_plan::SecretFrom::File(secret.clone()),
        }];
        request
    };
    let (log_to, out) = console();
    let built = image::build(&docker, &build(&app), &log_to).await;
    let log = out.text();
    eprintln!("{log}");
    built.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(log.contains("Builder: BuildKit (builder: auto;"), "{log}");

    app.write("app.txt", "two");
    let (log_to, out) = console();
    let built = image::build(&docker, &build(&app), &log_to).await;
    let log = out.text();
    eprintln!("{log}");
    built.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(log.contains("sent, the rest was in the daemon's cache"), "only the change was sent:\n{log}");

    app.write("Dockerfile", &format!("{dockerfile}RUN false\n"));
    let (log_to, out) = console();
    let err = format!("{:#}", image::build(&docker, &build(&app), &log_to).await.expect_err("RUN false fails"));
    eprintln!("{}\n{err}", out.text());
    assert!(err.contains("Dockerfile:8)"), "{err}");
    let _ = std::fs::remove_file(&secret);
}
