//! The layer cache a fresh runner can use: which images the environment runs and ran, read from Beanstalk
//! and the versions' bundles, for the image stage to offer as cache sources. A new runner's daemon has an
//! empty build cache, but those images (built with inline cache metadata) are in the registry; given
//! as cache sources, BuildKit fetches only the layers that match instead of rebuilding them.
//!
//! Not only the running image: the Docker Engine's BuildKit (graphdriver store, as on GitHub's runners;
//! seen with Engine 26) writes inline cache links only for the layers a build made itself, so an image whose
//! dependency layer came from the cache cannot serve that layer to the next build. The image that built it
//! can, so the application's recent versions' images are offered too.

use crate::beanstalk::Beanstalk;
use crate::names::reference_host;

/// How many of the application's most recent versions are read for cache sources beside the running one.
pub(crate) const RECENT_VERSIONS: i32 = 5;

/// The images to offer as cache sources, and what went wrong finding them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningImage {
    /// The image the environment's current version deploys, when it is in the repository pushed to.
    pub image: Option<String>,
    /// Images of the application's other recent versions in that repository, newest first: (label, image).
    pub earlier: Vec<(String, String)>,
    /// Why a lookup failed, one warning each.
    pub warnings: Vec<String>,
}

/// Reads which image version `label` of `application` deploys (its bundle's `Dockerrun.aws.json`
/// `Image.Name`) and keeps it when it is in the ECR repository `repository`; then the same for the
/// application's [`RECENT_VERSIONS`] most recent versions. Never fails: a missing label (a first deploy) gives
/// nothing, and a lookup that fails gives a warning (an unreadable earlier bundle is skipped).
pub(crate) async fn running_image(
    eb: &Beanstalk,
    s3: &aws_sdk_s3::Client,
    application: &str,
    label: Option<&str>,
    repository: &str,
) -> RunningImage {
    let Some(label) = label else { return RunningImage::default() };
    let mut found = RunningImage::default();
    match eb.version(application, label).await {
        Ok(Some(version)) => {
            if let (Some(bucket), Some(key)) = (version.bucket, version.key) {
                match crate::bundle::image_of(s3, &bucket, &key).await {
                    Ok(Some(image)) if repository_of(&image) == Some(repository) => found.image = Some(image),
                    Ok(_) => {}
                    Err(err) => found.warnings.push(format!(
                        "could not find the image version {label} runs (reading s3://{bucket}/{key}: {err:#}); \
                         building without it as a cache source"
                    )),
                }
            }
        }
        Ok(None) => return found,
        Err(err) => {
            found.warnings.push(format!(
                "could not find the image version {label} runs ({err:#}); building without it as a cache source"
            ));
            return found;
        }
    }
    let recent = match eb.recent_versions(application, RECENT_VERSIONS + 1).await {
        Ok(recent) => recent,
        Err(err) => {
            found.warnings.push(format!("could not list recent versions for cache sources ({err:#})"));
            return found;
        }
    };
    for version in recent.into_iter().filter(|v| v.label != label).take(RECENT_VERSIONS as usize) {
        let (Some(bucket), Some(key)) = (&version.bucket, &version.key) else { continue };
        match crate::bundle::image_of(s3, bucket, key).await {
            Ok(Some(image))
                if repository_of(&image) == Some(repository)
                    && found.image.as_ref() != Some(&image)
                    && !found.earlier.iter().any(|(_, i)| *i == image) =>
            {
                found.earlier.push((version.label, image));
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(label = %version.label, error = %format!("{err:#}"), "skipping a cache source"),
        }
    }
    found
}

/// The repository of a registry image reference: `host/team/app@sha256:…` → `team/app`.
pub(crate) fn repository_of(reference: &str) -> Option<&str> {
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
    use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::byte_stream::ByteStream;

    fn bundle_with(image: &str) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(crate::dockerrun::DOCKERRUN, zip::write::SimpleFileOptions::default()).unwrap();
        let dockerrun = serde_json::json!({"AWSEBDockerrunVersion": "1", "Image": {"Name": image}});
        zip.write_all(dockerrun.to_string().as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    fn version(label: &str) -> ApplicationVersionDescription {
        ApplicationVersionDescription::builder()
            .version_label(label)
            .source_bundle(S3Location::builder().s3_bucket("bucket").s3_key(format!("shop/{label}.zip")).build())
            .build()
    }

    /// DescribeApplicationVersions: the running label when asked for it, `recent` when listing.
    fn versions_rules(recent: &'static [&'static str]) -> (Rule, Rule) {
        let one = mock!(EbClient::describe_application_versions)
            .match_requests(|r| !r.version_labels().is_empty())
            .then_output(|| DescribeApplicationVersionsOutput::builder().application_versions(version("v3")).build());
        let list = mock!(EbClient::describe_application_versions)
            .match_requests(|r| r.version_labels().is_empty())
            .then_output(move || {
                let all: Vec<_> = recent.iter().map(|l| version(l)).collect();
                DescribeApplicationVersionsOutput::builder().set_application_versions(Some(all)).build()
            });
        (one, list)
    }

    /// S3 serves each version's bundle with the image `images` gives for its key (None: 403).
    fn bundles(images: fn(&str) -> Option<String>) -> Rule {
        mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |req| {
            match images(req.key().unwrap_or_default()) {
                Some(image) => {
                    let bytes = bundle_with(&image);
                    MockResponse::Output(
                        GetObjectOutput::builder()
                            .content_length(bytes.len() as i64)
                            .body(ByteStream::from(bytes))
                            .build(),
                    )
                }
                None => MockResponse::Http(HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::empty())),
            }
        })
    }

    async fn lookup(label: Option<&str>, eb_rules: &(Rule, Rule), s3_rule: &Rule, repository: &str) -> RunningImage {
        let eb = Beanstalk::new(mock_client!(aws_sdk_elasticbeanstalk, RuleMode::MatchAny, [&eb_rules.0, &eb_rules.1]));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [s3_rule]);
        running_image(&eb, &s3, "shop", label, repository).await
    }

    fn ecr(key: &str) -> Option<String> {
        let label = key.trim_start_matches("shop/").trim_end_matches(".zip");
        Some(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:{label}"))
    }

    #[tokio::test]
    async fn the_running_image_and_recent_ones_of_the_same_repository_are_found() {
        let eb = versions_rules(&["v3", "v2", "v1", "v0"]);
        // v0 deployed a public image, not one of the repository's.
        let s3 = bundles(|key| if key.ends_with("v0.zip") { Some("nginx:1".into()) } else { ecr(key) });
        let found = lookup(Some("v3"), &eb, &s3, "shop").await;
        assert_eq!(found.image, ecr("v3"));
        let earlier: Vec<&str> = found.earlier.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(earlier, ["v2", "v1"]);
        assert_eq!(found.earlier[0].1, ecr("v2").unwrap());
        assert!(found.warnings.is_empty(), "{found:?}");
        assert_eq!((eb.0.num_calls(), eb.1.num_calls(), s3.num_calls()), (1, 1, 4));
    }

    #[tokio::test]
    async fn another_repository_or_no_version_gives_nothing_quietly() {
        let (eb, s3) = (versions_rules(&["v3"]), bundles(ecr));
        assert_eq!(lookup(Some("v3"), &eb, &s3, "other").await, RunningImage::default());
        // A first deploy: nothing is asked.
        let (eb, s3) = (versions_rules(&["v3"]), bundles(ecr));
        assert_eq!(lookup(None, &eb, &s3, "shop").await, RunningImage::default());
        assert_eq!((eb.0.num_calls(), eb.1.num_calls(), s3.num_calls()), (0, 0, 0));
        // A label Beanstalk no longer has.
        let none = mock!(EbClient::describe_application_versions)
            .then_output(|| DescribeApplicationVersionsOutput::builder().build());
        let unused = mock!(EbClient::describe_application_versions)
            .match_requests(|_| false)
            .then_output(|| DescribeApplicationVersionsOutput::builder().build());
        assert_eq!(lookup(Some("gone"), &(none, unused), &s3, "shop").await, RunningImage::default());
    }

    #[tokio::test]
    async fn an_unreadable_running_bundle_is_one_warning_and_earlier_ones_are_skipped() {
        let eb = versions_rules(&["v3", "v2", "v1"]);
        let s3 = bundles(|key| if key.ends_with("v1.zip") { ecr(key) } else { None });
        let found = lookup(Some("v3"), &eb, &s3, "shop").await;
        assert_eq!(found.image, None);
        assert_eq!(found.earlier, vec![("v1".to_owned(), ecr("v1").unwrap())]);
        assert_eq!(found.warnings.len(), 1, "{found:?}");
        assert!(found.warnings[0].contains("s3://bucket/shop/v3.zip"), "{found:?}");
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
