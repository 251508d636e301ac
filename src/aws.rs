//! AWS SDK configuration: the default credential and region chains, endpoint overrides from the standard
//! `AWS_ENDPOINT_URL_*` variables, and retries generous enough that throttling alone never fails a deploy.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;

use crate::beanstalk::Beanstalk;
use crate::gha::Console;

/// The service clients a run needs.
#[derive(Debug, Clone)]
pub struct Clients {
    pub eb: Beanstalk,
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub region: String,
}

/// Retries for every call: "Rate exceeded" and 5xx answers back off and try again (up to 10 attempts,
/// at most 20 s apart) instead of failing the deploy.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20))
}

/// Loads the SDK configuration, resolves credentials once (masking their secret parts before anything can
/// print them) and builds the clients. `s3_path_style` is set when an endpoint override is in use, since
/// S3 emulators and VPC endpoints rarely serve virtual-hosted buckets.
pub async fn connect(region: Option<&str>, s3_path_style: bool, console: &Console) -> Result<Clients> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build(),
    );
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    let config = loader.load().await;
    let Some(region) = config.region().map(ToString::to_string) else {
        bail!("no AWS region: set the `region` input, or AWS_REGION (aws-actions/configure-aws-credentials sets it)");
    };
    let Some(provider) = config.credentials_provider() else {
        bail!("no AWS credentials provider is configured");
    };
    let credentials = provider.provide_credentials().await.context(
        "failed to find AWS credentials: in GitHub Actions run aws-actions/configure-aws-credentials (OIDC role) before this step; elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    )?;
    console.mask(credentials.secret_access_key());
    if let Some(token) = credentials.session_token() {
        console.mask(token);
    }
    let s3_config = aws_sdk_s3::config::Builder::from(&config).force_path_style(s3_path_style).build();
    Ok(Clients {
        eb: Beanstalk::new(aws_sdk_elasticbeanstalk::Client::new(&config)),
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        ecr: aws_sdk_ecr::Client::new(&config),
        region,
    })
}
