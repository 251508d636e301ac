//! The layer cache a fresh runner can use: the image the environment runs now. A new runner's daemon
//! has an empty build cache, but the running image (built with inline cache metadata) is in the registry;
//! given as a cache source, BuildKit fetches only the layers that match instead of rebuilding them.

use crate::beanstalk::Beanstalk;
use crate::registry::reference_host;

/// What the environment runs now, as a cache source, and what went wrong finding out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningImage {
    /// The image reference from the version's `Dockerrun.aws.json`, when it is in `repository`.
    pub image: Option<String>,
    /// Why nothing could be found (a lookup that failed), for one warning each.
    pub warnings: Vec<String>,
}

/// Reads which image version `label` of `application` deploys (its bundle's `Dockerrun.aws.json`
/// `Image.Name`) and keeps it when it is in the ECR repository `repository`. Never fails: a missing
/// label (a first deploy) gives nothing, and a lookup that fails gives a warning.
pub async fn running_image(
    eb: &Beanstalk,
    s3: &aws_sdk_s3::Client,
    application: &str,
    label: Option<&str>,
    repository: &str,
) -> RunningImage {
    let Some(label) = label else { return RunningImage::default() };
    let unreadable = |cause: String| RunningImage {
        image: None,
        warnings: vec![format!(
            "could not find the image version {label} runs ({cause}); building without it as a cache source"
        )],
    };
    let version = match eb.version(application, label).await {
        Ok(Some(version)) => version,
        Ok(None) => return RunningImage::default(),
        Err(err) => return unreadable(format!("{err:#}")),
    };
    let (Some(bucket), Some(key)) = (version.bucket, version.key) else { return RunningImage::default() };
    match crate::bundle::image_of(s3, &bucket, &key).await {
        Ok(Some(image)) if repository_of(&image) == Some(repository) => {
            RunningImage { image: Some(image), warnings: Vec::new() }
        }
        Ok(_) => RunningImage::default(),
        Err(err) => unreadable(format!("reading s3://{bucket}/{key}: {err:#}")),
    }
}

/// The repository of a registry image reference: `host/team/app@sha256:…` → `team/app`.
pub fn repository_of(reference: &str) -> Option<&str> {
    let host = reference_host(reference)?;
    let path = &reference[host.len() + 1..];
    let name = path.split_once('@').map_or(path, |(name, _)| name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    use aws_sdk_elasticbeanstalk::Client as EbClient;
    use aws_sdk_elasticbeanstalk::operation::describe_application_versions::DescribeApplicationVersionsOutput;
    use aws_sdk_elasticbeanstalk::types::{ApplicationVersionDescription, S3Location};
    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::byte_stream::ByteStream;

    const RUNNING: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:feed";

    fn bundle_with(image: &str) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(crate::bundle::DOCKERRUN, zip::write::SimpleFileOptions::default()).unwrap();
        let dockerrun = serde_json::json!({"AWSEBDockerrunVersion": "1", "Image": {"Name": image}});
        zip.write_all(dockerrun.to_string().as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    fn version_rule() -> Rule {
        mock!(EbClient::describe_application_versions).then_output(|| {
            DescribeApplicationVersionsOutput::builder()
                .application_versions(
                    ApplicationVersionDescription::builder()
                        .version_label("v1")
                        .source_bundle(S3Location::builder().s3_bucket("bucket").s3_key("shop/v1.zip").build())
                        .build(),
                )
                .build()
        })
    }

    async fn lookup(label: Option<&str>, eb_rule: &Rule, s3_rule: &Rule, repository: &str) -> RunningImage {
        let eb = Beanstalk::new(mock_client!(aws_sdk_elasticbeanstalk, RuleMode::MatchAny, [eb_rule]));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [s3_rule]);
        running_image(&eb, &s3, "shop", label, repository).await
    }

    fn serving(image: &'static str) -> Rule {
        mock!(aws_sdk_s3::Client::get_object).then_output(move || {
            let bytes = bundle_with(image);
            GetObjectOutput::builder().content_length(bytes.len() as i64).body(ByteStream::from(bytes)).build()
        })
    }

    #[tokio::test]
    async fn the_running_image_of_the_same_repository_is_found() {
        let (versions, s3) = (version_rule(), serving(RUNNING));
        let found = lookup(Some("v1"), &versions, &s3, "shop").await;
        assert_eq!(found, RunningImage { image: Some(RUNNING.to_owned()), warnings: vec![] });
        assert_eq!((versions.num_calls(), s3.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn another_repository_or_no_version_gives_nothing_quietly() {
        let (versions, s3) = (version_rule(), serving(RUNNING));
        assert_eq!(lookup(Some("v1"), &versions, &s3, "other").await, RunningImage::default());
        // A first deploy: nothing is asked.
        let (versions, s3) = (version_rule(), serving(RUNNING));
        assert_eq!(lookup(None, &versions, &s3, "shop").await, RunningImage::default());
        assert_eq!((versions.num_calls(), s3.num_calls()), (0, 0));
        // A label Beanstalk no longer has.
        let none = mock!(EbClient::describe_application_versions)
            .then_output(|| DescribeApplicationVersionsOutput::builder().build());
        assert_eq!(lookup(Some("gone"), &none, &s3, "shop").await, RunningImage::default());
    }

    #[tokio::test]
    async fn an_unreadable_bundle_is_one_warning() {
        let versions = version_rule();
        let denied = mock!(aws_sdk_s3::Client::get_object)
            .then_http_response(|| HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::empty()));
        let found = lookup(Some("v1"), &versions, &denied, "shop").await;
        assert_eq!(found.image, None);
        assert_eq!(found.warnings.len(), 1, "{found:?}");
        assert!(found.warnings[0].contains("s3://bucket/shop/v1.zip"), "{found:?}");
        assert!(found.warnings[0].ends_with("building without it as a cache source"), "{found:?}");
    }

    #[test]
    fn repositories_of_references() {
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        assert_eq!(repository_of(&format!("{ecr}/shop@sha256:feed")), Some("shop"));
        assert_eq!(repository_of(&format!("{ecr}/team/shop:v1")), Some("team/shop"));
        assert_eq!(repository_of("127.0.0.1:5000/team/shop:v1@sha256:feed"), Some("team/shop"));
        assert_eq!(repository_of("localhost:5000/shop"), Some("shop"));
        // No registry host: a Docker Hub image, never in an ECR repository.
        assert_eq!(repository_of("nginx:1"), None);
        assert_eq!(repository_of("library/nginx"), None);
    }
}
