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
}
