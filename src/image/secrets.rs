//! Build secrets (`RUN --mount=type=secret`), served by the build's session as `docker build --secret`
//! serves them (the `secrets` input's specs are parsed with the rest of the build plan, in `build_plan`).
//!
//! Each value is read when the daemon asks for it, from the process environment or the file, and handed
//! over; it is never written anywhere. Before the build, every value is read once to register it with the
//! console (no log line can show it) and to fail early when one is missing.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use bollard::moby::buildkit::secrets::v1::secrets_server::Secrets;
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use tonic::{Request, Response, Status};

use crate::build_plan::{BuildSecret, MAX_SECRET_BYTES, SecretFrom};
use crate::gha::Console;

/// A secret's value, read from where its spec says.
fn read(secret: &BuildSecret) -> Result<Vec<u8>> {
    match &secret.from {
        SecretFrom::Env(var) => {
            let value = std::env::var(var).map_err(|_| {
                anyhow!(
                    "input `secrets`: the environment variable {var} (secret {}) is not set; give it to the step \
                     with `env: {var}: ${{{{ secrets.… }}}}`",
                    secret.id
                )
            })?;
            if value.len() as u64 > MAX_SECRET_BYTES {
                bail!(
                    "input `secrets`: the environment variable {var} (secret {}) is larger than BuildKit's 500 KB limit for a secret",
                    secret.id
                );
            }
            Ok(value.into_bytes())
        }
        SecretFrom::File(path) => std::fs::read(path)
            .map_err(|e| anyhow!("failed to read {} (input `secrets`, secret {}): {e}", path.display(), secret.id)),
    }
}

/// Reads every secret's value once, to register it with the console (so no log line can show it) and to
/// fail before the build when one is missing. The values are not kept: the daemon asks for them again.
pub(crate) fn mask_values(secrets: &[BuildSecret], console: &Console) -> Result<()> {
    for secret in secrets {
        let value = read(secret)?;
        console.mask(&String::from_utf8_lossy(&value));
    }
    Ok(())
}

/// The `Secrets` service of a build's session. A secret the Dockerfile mounts but the step does not give is
/// "not found": BuildKit then leaves the mount out, or fails the step when the mount says `required=true`.
pub(super) struct Served(HashMap<String, BuildSecret>);

impl Served {
    pub(super) fn new(secrets: &[BuildSecret]) -> Self {
        Served(secrets.iter().map(|s| (s.id.clone(), s.clone())).collect())
    }
}

#[tonic::async_trait]
impl Secrets for Served {
    async fn get_secret(&self, request: Request<GetSecretRequest>) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        let secret = self.0.get(&id).ok_or_else(|| {
            Status::not_found(format!(
                "secret {id} is not in the step's `secrets` input; add `id={id},env=…` or `id={id},src=…`"
            ))
        })?;
        // The error names the variable or file, never a value.
        let data = read(secret).map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        Ok(Response::new(GetSecretResponse { data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_and_a_missing_variable_is_an_error() {
        let dir = std::env::temp_dir().join(format!("secrets-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("value"), "file-secret-value\n").unwrap();
        let (console, out) = Console::captured(false, false);
        let secrets = vec![BuildSecret { id: "f".into(), from: SecretFrom::File(dir.join("value")) }];
        mask_values(&secrets, &console).unwrap();
        console.info("the value is file-secret-value");
        assert_eq!(out.text(), "the value is ***\n");
        let missing = vec![BuildSecret { id: "t".into(), from: SecretFrom::Env("EB_DEPLOY_TEST_UNSET_VAR".into()) }];
        let err = format!("{:#}", mask_values(&missing, &console).unwrap_err());
        assert!(err.contains("input `secrets`") && err.contains("EB_DEPLOY_TEST_UNSET_VAR"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn the_session_serves_given_secrets_and_names_the_others_not_found() {
        let dir = std::env::temp_dir().join(format!("secrets-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("npmrc"), "//registry/:_authToken=abc\n").unwrap();
        let served = Served::new(&[
            BuildSecret { id: "npmrc".into(), from: SecretFrom::File(dir.join("npmrc")) },
            BuildSecret { id: "gone".into(), from: SecretFrom::Env("EB_DEPLOY_TEST_UNSET_VAR".into()) },
        ]);
        let ask = |id: &str| Request::new(GetSecretRequest { id: id.into(), annotations: HashMap::new() });
        let got = served.get_secret(ask("npmrc")).await.unwrap().into_inner();
        assert_eq!(got.data, b"//registry/:_authToken=abc\n");
        let missing = served.get_secret(ask("pip")).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert!(missing.message().contains("secret pip"), "{missing}");
        let unset = served.get_secret(ask("gone")).await.unwrap_err();
        assert!(unset.message().contains("EB_DEPLOY_TEST_UNSET_VAR"), "{unset}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
