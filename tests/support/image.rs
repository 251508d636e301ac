//! What the image end-to-end tests share: an app directory with a static busybox, the daemon, a fresh
//! daemon (a new runner's), the local registry's API and its access log.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use eb_deploy::build_plan::{BuildPlan, Builder};
use eb_deploy::image::BuildRequest;

use super::unique;

pub fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is installed (scripts/local-stack installs it)")
}

/// An app directory: `files` plus a static busybox that is *not* executable, so only `COPY --chmod`
/// makes it runnable. Removed when dropped; the images the test names are discarded for the suite's sweep.
pub struct App {
    pub dir: PathBuf,
    pub images: Vec<String>,
}

impl App {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(unique("buildkit-e2e"));
        for (rel, contents) in files {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
        let target = dir.join("busybox");
        fs::copy(busybox(), &target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        Self { dir, images: Vec::new() }
    }

    pub fn write(&self, rel: &str, contents: &str) {
        fs::write(self.dir.join(rel), contents).unwrap();
    }

    /// A build of this app's directory, tagged `tag`.
    pub fn request(&self, builder: Builder, tag: String) -> BuildRequest {
        BuildRequest {
            docker_host: docker_host(),
            plan: BuildPlan { context: self.dir.clone(), builder, ..Default::default() },
            tag,
            ..Default::default()
        }
    }

    pub fn image(&mut self, reference: impl Into<String>) -> String {
        let reference = reference.into();
        self.images.push(reference.clone());
        reference
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        stackkit::discard_images(&self.images);
    }
}

/// The start of most test Dockerfiles: busybox, made executable by `COPY --chmod` (BuildKit), and its applets.
pub const BUSYBOX: &str =
    "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

pub const SERVE: &str = r#"CMD ["/bin/sh", "-c", "httpd -f -v -p 80 -h /www & trap 'kill $!; exit 0' TERM INT; wait"]"#;

/// The daemon's address, for the connections a BuildKit build opens itself (its session).
pub fn docker_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
}

pub async fn docker() -> bollard::Docker {
    let host = docker_host();
    eb_deploy::docker::connect(host.as_deref()).await.expect("the local Docker daemon must be running")
}

pub fn sparse(path: &Path, bytes: u64) {
    fs::File::create(path).unwrap().set_len(bytes).unwrap();
}

/// Reads files of an image by running busybox `cat` (or `ls` for directories) in a throwaway container.
pub async fn image_files(image: &str, paths: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        let output = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c"])
            .arg(format!("if [ -d {path} ]; then ls -a {path}; else cat {path}; fi"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        out.push(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    out
}

/// A GET on the local registry's API with the ECR password: the response head and body.
pub fn registry_get(registry: &str, path: &str, password: &str) -> (String, String) {
    use base64::Engine as _;
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(registry).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {registry}\r\nAuthorization: Basic {auth}\r\n\
         Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {answer}"));
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    (head.to_owned(), body.to_owned())
}

/// A Docker Engine with nothing in it, as on a fresh runner (`scripts/fresh-daemon`): no image, layer, build
/// cache or build history of any earlier run. Stopped, with its state removed, when dropped.
pub struct FreshDaemon {
    dir: PathBuf,
    /// Its `DOCKER_HOST`.
    pub host: String,
}

impl FreshDaemon {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("fresh-daemon"));
        let out = Command::new(super::root().join("scripts/fresh-daemon")).arg("start").arg(&dir).output().unwrap();
        assert!(out.status.success(), "scripts/fresh-daemon start: {}", String::from_utf8_lossy(&out.stderr));
        let host = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Self { dir, host }
    }

    pub async fn docker(&self) -> bollard::Docker {
        eb_deploy::docker::connect(Some(&self.host)).await.expect("the fresh daemon answers")
    }
}

impl Drop for FreshDaemon {
    fn drop(&mut self) {
        let _ = Command::new(super::root().join("scripts/fresh-daemon")).arg("stop").arg(&self.dir).output();
    }
}

/// The local registry's access log (`.local-stack/logs/registry.log`), read from a mark on.
pub struct RegistryLog {
    path: PathBuf,
    from: u64,
}

impl RegistryLog {
    /// Marks the log's end: [`RegistryLog::requests`] returns what the registry answered after it.
    pub fn mark() -> Self {
        let dir = std::env::var("LOCAL_STACK_DIR").expect("LOCAL_STACK_DIR: source .local-stack/env");
        let path = PathBuf::from(dir).join("logs/registry.log");
        let from = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self { path, from }
    }

    /// `METHOD PATH` of each request logged since the mark.
    pub fn requests(&self) -> Vec<String> {
        let text = fs::read(&self.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[(self.from as usize).min(text.len())..]).into_owned();
        text.lines()
            .filter_map(|line| {
                let quoted = line.split('"').nth(1)?;
                let mut words = quoted.split(' ');
                let (method, path) = (words.next()?, words.next()?);
                path.starts_with("/v2/").then(|| format!("{method} {path}"))
            })
            .collect()
    }
}

/// The local registry (`LOCAL_REGISTRY`) and eb-deploy's login to it, from moto's ECR token as a deploy gets it.
pub async fn registry_login() -> (String, eb_deploy::docker::RegistryAuth) {
    let host = std::env::var("LOCAL_REGISTRY").expect("LOCAL_REGISTRY: source .local-stack/env");
    let ecr = aws_sdk_ecr::Client::new(&aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await);
    let (console, _) = super::console::console();
    let auth = eb_deploy::registry::ecr_login(&ecr, Some(&host), &console).await.expect("ECR login against moto");
    (host, auth)
}
