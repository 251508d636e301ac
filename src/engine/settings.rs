//! Stage: the settings that go with the version (`environment-variables`, `remove-environment-variables`,
//! `option-settings`). Before anything changes, each environment's settings are read
//! (DescribeConfigurationSettings): whether the step changes them, whether its variables would still fit
//! Beanstalk's limit, and what would put them back. That last part goes to the [`super::Ledger`], so a
//! rollback to the version an environment ran before this step restores the settings it ran with.

use anyhow::{Result, bail};
use futures_util::future::join_all;

use super::Engine;
use super::ship::ImageStage;
use crate::beanstalk::Environment;
use crate::options::{self, Changes, MAX_VARIABLES_BYTES};

/// Reads the settings of every environment about to be updated and checks the step's changes against them.
/// Fails (nothing changed yet) when the variables would outgrow Beanstalk's limit.
pub(crate) async fn check<I: ImageStage>(e: &Engine<'_, I>, targets: &[Environment]) -> Result<()> {
    let changes = &e.cfg.settings;
    if changes.is_empty() || targets.is_empty() {
        return Ok(());
    }
    e.console.info(format!("Settings to apply with {}: {}", e.cfg.version_label, changes.describe()));
    let app = e.cfg.application.as_str();
    let reads = targets.iter().map(|env| async move { (env, e.aws.eb.configuration(app, &env.name).await) });
    for (env, current) in join_all(reads).await {
        let effect = options::effect(&current?, changes);
        if effect.variables_bytes > MAX_VARIABLES_BYTES {
            bail!(
                "input `environment-variables`: with the variables {} already has, its variables would take {} bytes as KEY=VALUE, over Elastic Beanstalk's {MAX_VARIABLES_BYTES} for all of them together; remove some (remove-environment-variables) or shorten them",
                env.name,
                effect.variables_bytes
            );
        }
        let what = if effect.differs { "differ from what it has" } else { "are what it has already" };
        e.console.info(format!("{}: these settings {what}", env.name));
        e.ledger.settings_read(&env.name, env.version_label.clone(), effect.differs, effect.restore);
    }
    Ok(())
}

/// Whether the step still has settings to apply to `environment`: some were given, and they change
/// something (or its settings were not read).
pub(crate) fn pending<I: ImageStage>(e: &Engine<'_, I>, environment: &str) -> bool {
    !e.cfg.settings.is_empty() && e.ledger.settings_differ(environment).unwrap_or(true)
}

/// The settings an update of `environment` to `label` carries: the step's own when it deploys the step's
/// version; when it returns the environment to the version it ran before this step (a rollback), the changes
/// that restore the settings it ran that version with; otherwise none. [`super::rollout::rollout_one`] calls
/// it for every update, so any rollback that goes through `fleet`/`rollout_one` restores them; a path that
/// calls `Beanstalk::update_environment` itself should pass `for_update(e, &env.name, &previous)`.
pub(crate) fn for_update<I: ImageStage>(e: &Engine<'_, I>, environment: &str, label: &str) -> Changes {
    if label == e.cfg.version_label {
        return e.cfg.settings.clone();
    }
    e.ledger.restore_for(environment, label).unwrap_or_default()
}
