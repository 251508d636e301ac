//! Stage: application versions under the region's quota. Before a new version is created, a warning comes
//! when the region's versions near the quota; after a successful deploy, `keep-versions: N` deletes the
//! application's oldest versions beyond the newest N, with their bundles (DeleteSourceBundle), except those an
//! environment runs and those this step deployed or replaced.

use std::collections::BTreeSet;

use super::Engine;
use super::ship::ImageStage;
use crate::beanstalk::Version;

/// Elastic Beanstalk's default quota of application versions per region.
pub(crate) const QUOTA: usize = 1000;
/// Pages of 1,000 read when counting the region's versions: one is enough to reach 90% of the default quota,
/// and keeps the count to one call however many versions there are.
const COUNT_PAGES: usize = 1;
/// Pages of 1,000 read when listing the application's versions to prune.
const PRUNE_PAGES: usize = 10;

/// The warning when `count` versions are within 10% of [`QUOTA`], with what to do.
pub(crate) fn quota_warning(count: usize) -> Option<String> {
    (count * 10 >= QUOTA * 9).then(|| {
        format!(
            "this region holds {count} application versions; Elastic Beanstalk's default quota is {QUOTA} per region, and creating a version fails beyond it: set keep-versions (e.g. keep-versions: 50) so each deploy deletes the oldest ones nothing runs, set a version lifecycle policy on the application, or request a quota increase"
        )
    })
}

/// The versions `keep-versions: keep` deletes from `versions` (newest first): all but the newest `keep`,
/// except the `protected` labels.
pub(crate) fn prunable<'a>(versions: &'a [Version], keep: usize, protected: &BTreeSet<&str>) -> Vec<&'a Version> {
    versions.iter().skip(keep).filter(|v| !protected.contains(v.label.as_str())).collect()
}

/// Warns when the region's versions near the quota (before a new version is created). Reading them is best
/// effort: a failure only goes to the debug log.
pub(crate) async fn warn_near_quota<I: ImageStage>(e: &Engine<'_, I>) {
    match e.aws.eb.versions(None, COUNT_PAGES).await {
        Ok(all) => {
            if let Some(warning) = quota_warning(all.len()) {
                e.console.warning(warning, None);
            }
        }
        Err(err) => e.console.debug(format!("could not count the region's application versions: {err:#}")),
    }
}

/// `keep-versions`: after a successful deploy, deletes the oldest versions nothing needs; `replaced` are the
/// versions the environments ran before this step. Failures are warnings: the deploy has succeeded.
pub(crate) async fn prune<I: ImageStage>(e: &Engine<'_, I>, keep: usize, replaced: &[String]) {
    let (app, eb) = (e.cfg.application.as_str(), &e.aws.eb);
    let _group = e.console.group(format!("Keep {keep} versions"));
    let (versions, environments) =
        match tokio::try_join!(eb.versions(Some(app), PRUNE_PAGES), eb.not_terminated(app, None)) {
            Ok(both) => both,
            Err(err) => {
                e.console.warning(format!("keep-versions: could not list the versions to delete: {err:#}"), None);
                return;
            }
        };
    let running: Vec<String> = environments.iter().filter_map(|env| env.version_label.clone()).collect();
    let mut protected: BTreeSet<&str> = running.iter().map(String::as_str).collect();
    protected.insert(e.cfg.version_label.as_str());
    protected.extend(replaced.iter().map(String::as_str));
    let doomed = prunable(&versions, keep, &protected);
    if doomed.is_empty() {
        e.console.info(format!(
            "keep-versions: {keep}: nothing to delete ({} versions, {} of them in use or replaced by this step)",
            versions.len(),
            versions.iter().filter(|v| protected.contains(v.label.as_str())).count()
        ));
        return;
    }
    let mut deleted = Vec::new();
    for version in doomed {
        let bundle = match (&version.bucket, &version.key) {
            (Some(b), Some(k)) => format!(" and its bundle s3://{b}/{k}"),
            _ => String::new(),
        };
        match eb.delete_version(app, &version.label, true).await {
            Ok(()) => {
                e.console.info(format!("Deleted version {}{bundle}", version.label));
                deleted.push(version.label.clone());
            }
            Err(err) => e.console.warning(format!("keep-versions: {err:#}"), None),
        }
    }
    e.console.info(format!(
        "keep-versions: {keep}: deleted {} of {} versions ({})",
        deleted.len(),
        versions.len(),
        deleted.join(", ")
    ));
    e.journal.record(|f| f.deleted_versions.extend(deleted));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beanstalk::VersionStatus;

    fn versions(labels: &[&str]) -> Vec<Version> {
        labels
            .iter()
            .map(|l| Version {
                label: (*l).to_owned(),
                status: VersionStatus::Processed,
                bucket: None,
                key: None,
                created_ms: None,
            })
            .collect()
    }

    fn labels(v: Vec<&Version>) -> Vec<&str> {
        v.into_iter().map(|v| v.label.as_str()).collect()
    }

    #[test]
    fn beyond_the_newest_n_and_never_what_is_needed() {
        let all = versions(&["v6", "v5", "v4", "v3", "v2", "v1"]);
        let none = BTreeSet::new();
        assert_eq!(labels(prunable(&all, 3, &none)), ["v3", "v2", "v1"]);
        // v1 runs somewhere; v3 was replaced by this step.
        let protected: BTreeSet<&str> = ["v1", "v3", "v6"].into();
        assert_eq!(labels(prunable(&all, 3, &protected)), ["v2"]);
        assert!(prunable(&all, 6, &none).is_empty());
        assert!(prunable(&all, 10, &none).is_empty());
    }

    #[test]
    fn the_quota_warning_comes_within_ten_percent() {
        assert_eq!(quota_warning(899), None);
        let warning = quota_warning(900).unwrap();
        assert!(warning.contains("900 application versions") && warning.contains("keep-versions"), "{warning}");
        assert!(quota_warning(1000).is_some());
    }
}
