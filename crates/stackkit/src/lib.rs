//! The local stack's test kit, for the tests of eb-deploy and of the stack's own tools: the settings
//! `scripts/local-stack up` writes (read once, from JSON), admin clients for ebsim and faultproxy, the local
//! registry's API, and the list of Beanstalk operations that change something.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let stack = stackkit::StackEnv::load()?;
//! let admin = stack.ebsim()?;
//! admin.set_faults(&serde_json::json!({"throttle_fraction": 0.3, "seed": 7})).await?;
//! let env = admin.environment("my-env").await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod http;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use admin::{EbsimAdmin, EnvironmentView, ProxyAdmin, RequestRecord};

/// Beanstalk operations that change something (a bad input must cause none of them).
pub const MUTATING: &[&str] = &[
    "CreateApplicationVersion",
    "UpdateEnvironment",
    "AbortEnvironmentUpdate",
    "DeleteApplicationVersion",
    "CreateStorageLocation",
    "CreateApplication",
    "CreateEnvironment",
    "TerminateEnvironment",
    "SwapEnvironmentCNAMEs",
    "RequestEnvironmentInfo",
    "UpdateTagsForResource",
    "DeleteApplication",
];

/// The password moto's ECR token carries for `account` (`AWS:<account>-auth-token`, base64): the local
/// registry requires exactly it.
pub fn ecr_password(account: &str) -> String {
    format!("{account}-auth-token")
}

/// The stack's settings: `.local-stack/env.json`, the JSON twin of the shell `env` file.
#[derive(Debug, Clone)]
pub struct StackEnv {
    vars: BTreeMap<String, String>,
    path: PathBuf,
}

impl StackEnv {
    /// Loads the file named by `LOCAL_STACK_ENV_JSON`, else the first `.local-stack/env.json` found walking
    /// up from the current directory to the workspace root.
    pub fn load() -> Result<Self> {
        if let Some(p) = std::env::var_os("LOCAL_STACK_ENV_JSON") {
            return Self::from_file(Path::new(&p));
        }
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        match find_env_file(&cwd) {
            Some(p) => Self::from_file(&p),
            None => bail!(
                "no .local-stack/env.json found above {}; start the stack with scripts/local-stack up or set LOCAL_STACK_ENV_JSON",
                cwd.display()
            ),
        }
    }

    /// Loads a specific settings file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the local stack's settings {}", path.display()))?;
        let vars = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object of strings", path.display()))?;
        Ok(Self { vars, path: path.to_path_buf() })
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every variable, e.g. for `Command::envs`.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// One variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// One variable that must be there.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name).with_context(|| format!("{} does not set {name}", self.path.display()))
    }

    /// `AWS_REGION`.
    pub fn region(&self) -> Result<&str> {
        self.require("AWS_REGION")
    }

    /// `AWS_ACCOUNT_ID`.
    pub fn account_id(&self) -> Result<&str> {
        self.require("AWS_ACCOUNT_ID")
    }

    /// `EBSIM_URL`: the Beanstalk endpoint; admin API under `/_ebsim/`.
    pub fn ebsim_url(&self) -> Result<&str> {
        self.require("EBSIM_URL")
    }

    /// `AWS_ENDPOINT_URL_S3` (recorded by faultproxy).
    pub fn s3_endpoint(&self) -> Result<&str> {
        self.require("AWS_ENDPOINT_URL_S3")
    }

    /// `AWS_ENDPOINT_URL_ECR` (recorded by faultproxy).
    pub fn ecr_endpoint(&self) -> Result<&str> {
        self.require("AWS_ENDPOINT_URL_ECR")
    }

    /// `LOCAL_REGISTRY` (`127.0.0.1:PORT`).
    pub fn registry(&self) -> Result<&str> {
        self.require("LOCAL_REGISTRY")
    }

    /// `LOCAL_STACK_AWS_CLI`: the venv's `aws`.
    pub fn aws_cli(&self) -> Result<&str> {
        self.require("LOCAL_STACK_AWS_CLI")
    }

    /// An admin client for ebsim (`EBSIM_URL`).
    pub fn ebsim(&self) -> Result<EbsimAdmin> {
        Ok(EbsimAdmin::new(self.require("EBSIM_URL")?))
    }

    /// The password of the local registry (and of moto's ECR token).
    pub fn registry_password(&self) -> Result<String> {
        Ok(ecr_password(self.require("AWS_ACCOUNT_ID")?))
    }
}

/// The file [`discard_images`] lists images in, and `scripts/local-stack sweep` reads.
pub const DISCARDED_IMAGES: &str = "discarded-images";

/// Marks images a test is done with, for `scripts/local-stack sweep` to remove when no test runs (after the
/// suite, and at `down`). Tests never remove images while other tests build: the classic builder probes its
/// cache by listing the daemon's images and then reading each, so an image removed in between fails that build
/// with `unable to find image "sha256:…"` (moby/moby#29011). Without a stack directory (`LOCAL_STACK_DIR`, or
/// the one `StackEnv::load` finds) the images are removed at once.
pub fn discard_images<S: AsRef<str>>(refs: &[S]) {
    if refs.is_empty() {
        return;
    }
    let dir = std::env::var_os("LOCAL_STACK_DIR")
        .map(PathBuf::from)
        .or_else(|| StackEnv::load().ok().and_then(|env| env.path().parent().map(Path::to_path_buf)));
    if dir.is_none_or(|dir| list_discarded(&dir, refs).is_err()) {
        let _ = std::process::Command::new("docker").args(["rmi", "-f"]).args(refs.iter().map(AsRef::as_ref)).output();
    }
}

/// Appends `refs` to the discarded-images list in `dir`, in one write: lines from tests running at once never
/// interleave.
fn list_discarded<S: AsRef<str>>(dir: &Path, refs: &[S]) -> std::io::Result<()> {
    let lines: String = refs.iter().map(|r| format!("{}\n", r.as_ref())).collect();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(DISCARDED_IMAGES))?;
    std::io::Write::write_all(&mut file, lines.as_bytes())
}

fn find_env_file(start: &Path) -> Option<PathBuf> {
    for dir in start.ancestors() {
        let candidate = dir.join(".local-stack").join("env.json");
        if candidate.is_file() {
            return Some(candidate);
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.lines().any(|l| l.trim() == "[workspace]") {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_settings_walking_up_but_not_past_the_workspace() {
        let root = std::env::temp_dir().join(format!("stackkit-{}", std::process::id()));
        let deep = root.join("ws").join("a").join("b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join("ws").join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        assert_eq!(find_env_file(&deep), None);
        std::fs::create_dir_all(root.join("ws").join(".local-stack")).unwrap();
        std::fs::write(root.join("ws").join(".local-stack").join("env.json"), r#"{"X": "it's \"1\""}"#).unwrap();
        let found = find_env_file(&deep).unwrap();
        let env = StackEnv::from_file(&found).unwrap();
        assert_eq!(env.require("X").unwrap(), "it's \"1\"");
        assert!(env.require("Y").is_err());
        std::fs::write(&found, "export X=1\n").unwrap();
        assert!(StackEnv::from_file(&found).is_err(), "only JSON is read");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn discarded_images_from_threads_at_once_are_whole_lines() {
        let dir = std::env::temp_dir().join(format!("stackkit-discard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let dir = &dir;
                s.spawn(move || {
                    for i in 0..50 {
                        let refs = [format!("ebd-test/t{t}:{i}"), format!("sha256:{t:032}{i:032}")];
                        list_discarded(dir, &refs).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(dir.join(DISCARDED_IMAGES)).unwrap();
        let lines: std::collections::BTreeSet<&str> = text.lines().collect();
        assert_eq!(text.lines().count(), 8 * 50 * 2);
        assert_eq!(lines.len(), 8 * 50 * 2, "every line whole and distinct");
        assert!(lines.contains("ebd-test/t7:49"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
