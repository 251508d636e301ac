//! After failures: each failed environment's instance logs, fetched at once (before any rollback replaces the
//! instances' output), shown in a log group and kept for the job summary. Trouble is one warning.

use futures_util::future::join_all;

use super::Engine;
use super::rollout::EnvResult;
use super::ship::ImageStage;
use crate::logs::{LOGS_WAIT, tail};
use crate::verdict::Outcome;

/// Fetches the tail logs of every environment whose deploy failed or timed out.
pub(crate) async fn fetch_for_failures<I: ImageStage>(e: &Engine<'_, I>, results: &[EnvResult]) {
    let http = match crate::check::http_client() {
        Ok(http) => http,
        Err(err) => {
            e.console.warning(format!("could not fetch the instance logs: {err:#}"), None);
            return;
        }
    };
    let failed = results.iter().filter(|r| r.moved && matches!(r.outcome, Outcome::Failed | Outcome::TimedOut));
    let fetches = failed.filter_map(|r| r.env.clone().map(|env| (r.name.clone(), env))).map(|(name, env)| {
        let http = &http;
        async move { (name, tail(&e.aws.eb, http, &e.cfg.application, &env, LOGS_WAIT).await) }
    });
    for (name, fetched) in join_all(fetches).await {
        match fetched {
            Ok(logs) => {
                for log in &logs {
                    let _group = e.console.group(format!(
                        "Instance logs: {name} {} (last {} lines)",
                        log.instance,
                        log.lines.len()
                    ));
                    for line in &log.lines {
                        e.console.info(line);
                    }
                }
                e.journal.record(|f| f.environment(&name).logs = logs);
            }
            Err(err) => e.console.warning(format!("could not fetch the instance logs of {name}: {err:#}"), None),
        }
    }
}
