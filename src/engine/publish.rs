//! Stage: publish the version — check the bundle's content before anything changes, ship the image, render
//! and upload the bundle, create the application version and let Beanstalk process it. Also the checks on a
//! version that already exists (reused, or rolled back to).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use super::Engine;
use super::cache::RunningImage;
use super::ship::ImageStage;
use crate::beanstalk::{Beanstalk, Version, VersionStatus};
use crate::build_plan::Builder;
use crate::bundle;
use crate::config::{BundlePlan, DeployPlan, ImagePlan, ImageSource};
use crate::dockerrun::{MAX_BUNDLE_BYTES, Template};
use crate::format::format_duration;
use crate::verdict::{VersionState, version_state};

/// How long Beanstalk may take to process a new version.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(300);
/// Versions listed when a rollback label does not exist.
const RECENT_VERSIONS: i32 = 10;

/// The bundle's extra content and its template, checked before anything is asked of AWS.
pub(crate) struct Prepared {
    content: bundle::Content,
    template: Template,
}

/// Collects the bundle's extra content and its template, and checks its size, before anything changes.
pub(crate) fn prepare(plan: &BundlePlan, temp_dir: &Path) -> Result<Prepared> {
    let content = bundle::collect(&plan.workspace, plan.bundle_dir.as_deref()).context("input `bundle-dir`")?;
    let template = plan.template.clone().unwrap_or_else(|| Template::generated(plan.container_port));
    let total = content.total_bytes()?;
    // Deflate never grows data by more than a fraction of a percent; only near the limit is a real zip needed.
    if total > MAX_BUNDLE_BYTES - MAX_BUNDLE_BYTES / 100 {
        let probe = bundle::build(&content, &template.render("probe", plan.container_port), temp_dir)
            .context("input `bundle-dir`")?;
        drop(probe);
    }
    Ok(Prepared { content, template })
}

/// Image, bundle, upload and CreateApplicationVersion, checking what can be checked before any change; the
/// application is created first when `create_application` (only once the image and bundle are there, so a
/// failing build leaves nothing behind).
pub(crate) async fn publish<I: ImageStage>(
    e: &Engine<'_, I>,
    plan: &DeployPlan,
    prepared: Prepared,
    create_application: bool,
) -> Result<()> {
    let (app, label) = (&e.cfg.application, &e.cfg.version_label);
    if let Some(bucket) = &plan.bundle.bucket {
        bundle::check_bucket(&e.aws.s3, bucket, &e.aws.region).await?;
    }

    let started = Instant::now();
    let cache = cache_images(e, &plan.image).await;
    let shipped = e.images.ship(&plan.image, &cache, e.console).await?;
    e.journal.record(|f| {
        f.image = Some(shipped.reference.clone());
        f.image_digest = shipped.digest.clone();
    });
    e.journal.phase("Build and push image", started.elapsed());

    let started = Instant::now();
    let uploaded = {
        let _group = e.console.group("Upload source bundle");
        let dockerrun = prepared.template.render(&shipped.reference, plan.bundle.container_port);
        let built = bundle::build(&prepared.content, &dockerrun, &e.temp_dir)?;
        let bucket = match &plan.bundle.bucket {
            Some(b) => b.clone(),
            None => e.aws.eb.storage_location().await?,
        };
        let key = bundle::key(&plan.bundle.prefix, label, &built.sha256);
        let uploaded = bundle::upload(&e.aws.s3, &bucket, &key, &built).await?;
        if uploaded.reused {
            e.console.info(format!("{} already holds this exact bundle; not uploading again", uploaded.url()));
        } else {
            e.console.info(format!("Uploaded {} ({} bytes)", uploaded.url(), built.size));
        }
        e.journal.record(|f| f.bundle = Some(uploaded.url()));
        uploaded
    };
    e.journal.phase("Upload bundle", started.elapsed());

    let started = Instant::now();
    let _group = e.console.group(format!("Create version {label}"));
    if create_application {
        super::create::application(e).await?;
    }
    super::versions::warn_near_quota(e).await;
    // Processing validates .ebextensions and env.yaml; without them it has nothing to check, and skipping it
    // saves its wait.
    let process = prepared.content.needs_processing();
    let created =
        e.aws.eb.create_version(app, label, &plan.description, &uploaded.bucket, &uploaded.key, process).await?;
    if created.is_none() {
        // Someone created the same label between our check and now (a concurrent run of this workflow).
        if !plan.reuse_existing {
            bail!("version {label} was created by someone else meanwhile, and reuse-existing-version is false");
        }
        e.console.warning(format!("version {label} was created concurrently by another run; deploying it"), None);
    } else {
        e.ledger.version_created(app, label);
        if process {
            if let Err(err) = wait_processed(&e.aws.eb, app, label, PROCESS_TIMEOUT).await {
                e.ledger.discard_version(&e.aws.eb, e.console, !uploaded.reused).await;
                return Err(err);
            }
            e.console.info(format!("Created version {label}; Elastic Beanstalk validated its configuration"));
        } else {
            e.console
                .info(format!("Created version {label} (no .ebextensions or env.yaml to validate: not processed)"));
        }
    }
    e.journal.phase("Create version", started.elapsed());
    Ok(())
}

/// When to look at a version being processed: every half second for its first 3 s (Beanstalk usually finishes
/// validating a bundle within a few seconds, and the deploy waits on it), then 1 s, 2 s and 4 s later, then every
/// 5 s — 19 calls in the first minute and 12 a minute after, under the 30 a minute the wait for a verdict keeps.
fn process_poll_delay(look: u32) -> Duration {
    const FAST: Duration = Duration::from_millis(500);
    const FAST_LOOKS: u32 = 6;
    const MAX: Duration = Duration::from_secs(5);
    match look.checked_sub(FAST_LOOKS) {
        None => FAST,
        Some(later) => (Duration::from_secs(1) * 2u32.saturating_pow(later)).min(MAX),
    }
}

/// Cache sources only save build time: when Beanstalk or S3 is slow or down (the SDK retries for about 40 s per
/// call), the lookup gives up after this long rather than hold up the deploy, or its failure.
const CACHE_LOOKUP_BUDGET: Duration = Duration::from_secs(10);

/// The image the environment runs now (and the application's recent ones), for a build's cache sources: a
/// fresh runner's daemon has no build cache, and BuildKit fetches the matching layers of those images instead
/// of rebuilding them. With several environments, the first one's (the canary's) is the one asked about.
/// Nothing is looked up for a given image, a no-cache build or the classic builder (which cannot use them).
async fn cache_images<I: ImageStage>(e: &Engine<'_, I>, plan: &ImagePlan) -> RunningImage {
    let ImageSource::Build(build) = &plan.source else { return RunningImage::default() };
    if build.no_cache || build.builder == Builder::Classic {
        return RunningImage::default();
    }
    let label = e.journal.snapshot().environments.first().and_then(|env| env.previous_version_label.clone());
    let lookup =
        super::cache::running_image(&e.aws.eb, &e.aws.s3, &e.cfg.application, label.as_deref(), &plan.repository);
    let mut found = tokio::time::timeout(CACHE_LOOKUP_BUDGET, lookup).await.unwrap_or_else(|_| RunningImage {
        warnings: vec![format!(
            "looking for cache sources took over {}; building without them",
            format_duration(CACHE_LOOKUP_BUDGET)
        )],
        ..Default::default()
    });
    for warning in std::mem::take(&mut found.warnings) {
        e.console.warning(warning, None);
    }
    found
}

/// Waits until a version Beanstalk processes is usable; `FAILED` is an error.
pub(crate) async fn wait_processed(eb: &Beanstalk, application: &str, label: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut look = 0;
    loop {
        let delay = process_poll_delay(look);
        look += 1;
        if Instant::now() + delay > deadline {
            bail!("version {label} was still being processed after {}s", timeout.as_secs());
        }
        tokio::time::sleep(delay).await;
        let version = eb.version(application, label).await?;
        match version_state(version.as_ref()) {
            VersionState::Usable => return Ok(()),
            VersionState::Failed => bail!(
                "Elastic Beanstalk could not process version {label}: the bundle is not a valid source bundle (check Dockerrun.aws.json and the .ebextensions syntax)"
            ),
            VersionState::Missing => bail!("version {label} disappeared while Elastic Beanstalk was processing it"),
            VersionState::Pending => {}
        }
    }
}

/// An existing version can be deployed unless Beanstalk failed to process it.
pub(crate) fn check_deployable(version: &Version) -> Result<()> {
    if version.status == VersionStatus::Failed {
        bail!(
            "version {} exists but Elastic Beanstalk could not process its bundle (status FAILED); deploy another version-label",
            version.label
        );
    }
    Ok(())
}

/// Records an existing version's bundle and the image it deploys (for the `bundle` and `image` outputs).
pub(crate) async fn record_existing<I: ImageStage>(e: &Engine<'_, I>, version: &Version) {
    let (Some(bucket), Some(key)) = (&version.bucket, &version.key) else { return };
    e.journal.record(|f| f.bundle = Some(format!("s3://{bucket}/{key}")));
    match bundle::image_of(&e.aws.s3, bucket, key).await {
        Ok(Some(image)) => {
            e.console.info(format!("Version {} deploys {image}", version.label));
            let digest = image.split_once('@').map(|(_, d)| d.to_owned()).filter(|d| d.starts_with("sha256:"));
            e.journal.record(|f| {
                f.image = Some(image);
                f.image_digest = digest;
            });
        }
        Ok(None) => {}
        Err(err) => e.console.debug(format!("could not read the image of version {}: {err:#}", version.label)),
    }
}

/// The error for a rollback to a label that does not exist, listing the most recent ones.
pub(crate) async fn missing_version_message(eb: &Beanstalk, app: &str, label: &str) -> String {
    let recent = match eb.recent_versions(app, RECENT_VERSIONS).await {
        Ok(v) if v.is_empty() => "it has no versions".to_owned(),
        Ok(v) => format!("most recent: {}", v.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(", ")),
        Err(_) => "its versions could not be listed".to_owned(),
    };
    format!(
        "version {label} does not exist in application {app} ({recent}); give an existing version-label to roll back to"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticbeanstalk::Client;
    use aws_sdk_elasticbeanstalk::operation::describe_application_versions::DescribeApplicationVersionsOutput;
    use aws_sdk_elasticbeanstalk::types::{ApplicationVersionDescription, ApplicationVersionStatus};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    /// Version v1 with the given status, as DescribeApplicationVersions answers.
    fn versions(status: &str) -> DescribeApplicationVersionsOutput {
        DescribeApplicationVersionsOutput::builder()
            .application_versions(
                ApplicationVersionDescription::builder()
                    .version_label("v1")
                    .status(ApplicationVersionStatus::from(status))
                    .build(),
            )
            .build()
    }

    #[tokio::test(start_paused = true)]
    async fn version_status_is_compared_ignoring_case_and_failed_is_an_error() {
        let status = |s: &'static str| move || versions(s);
        let rule = mock!(Client::describe_application_versions)
            .sequence()
            .output(status("PROCESSING"))
            .output(status("Processing"))
            .output(status("PROCESSED"))
            .build();
        let eb = Beanstalk::new(mock_client!(aws_sdk_elasticbeanstalk, RuleMode::Sequential, [&rule]));
        wait_processed(&eb, "app", "v1", Duration::from_secs(60)).await.unwrap();
        assert_eq!(rule.num_calls(), 3);

        let failed = mock!(Client::describe_application_versions).then_output(status("FAILED"));
        let eb = Beanstalk::new(mock_client!(aws_sdk_elasticbeanstalk, RuleMode::Sequential, [&failed]));
        let err = wait_processed(&eb, "app", "v1", Duration::from_secs(60)).await.unwrap_err();
        assert!(err.to_string().contains("could not process version v1"), "{err}");
    }

    #[test]
    fn processing_is_looked_at_every_half_second_at_first_and_within_the_call_budget() {
        let mut at = Duration::ZERO;
        let looks: Vec<Duration> = (0..40)
            .map(|n| {
                at += process_poll_delay(n);
                at
            })
            .collect();
        let fast: Vec<f64> =
            looks.iter().take_while(|t| **t <= Duration::from_secs(3)).map(Duration::as_secs_f64).collect();
        assert_eq!(fast, vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
        for minute in 0..3 {
            let (from, to) = (Duration::from_secs(60 * minute), Duration::from_secs(60 * (minute + 1)));
            let calls = looks.iter().filter(|t| **t > from && **t <= to).count();
            assert!(calls <= 20, "{calls} looks in minute {minute}: {looks:?}");
        }
        assert!((0..40).all(|n| process_poll_delay(n) <= Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_version_processed_in_two_seconds_is_seen_within_half_a_second() {
        // Processing that ends at 2.2 s: PROCESSING at 0.5, 1.0, 1.5 and 2.0 s, PROCESSED at the next look.
        let rule = mock!(Client::describe_application_versions)
            .sequence()
            .output(|| versions("PROCESSING"))
            .times(4)
            .output(|| versions("PROCESSED"))
            .build();
        let eb = Beanstalk::new(mock_client!(aws_sdk_elasticbeanstalk, RuleMode::Sequential, [&rule]));
        let started = Instant::now();
        wait_processed(&eb, "app", "v1", Duration::from_secs(60)).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(2500));
        assert_eq!(rule.num_calls(), 5);
    }
}
