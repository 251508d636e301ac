//! Stage: blue/green — swap the CNAMEs of the verified environment and the live one, and wait until Beanstalk
//! says the swap is complete and both environments show it.

use anyhow::{Result, bail};
use tokio::time::Instant;

use super::Engine;
use super::ship::ImageStage;
use crate::beanstalk::{self, Environment};
use crate::format::format_duration;
use crate::verdict::{self, Outcome};

/// The event Beanstalk writes when a swap is done (`eb swap` waits for it too).
const SWAP_DONE: &str = "Completed swapping CNAMEs for environments";

/// How a swap ended.
#[derive(Debug, Clone)]
pub(crate) struct Swapped {
    pub outcome: Outcome,
    pub message: String,
    /// The environment that serves the live CNAME now.
    pub live: String,
}

/// Swaps the CNAMEs of `from` and `to`, and waits for the swap to complete: `to` takes the CNAME `from`
/// holds, and serves it once the swap is done. A blue/green release swaps from the live environment to the
/// verified idle one; `mode: swap` from `environment-name` (live after a release) back to `swap-with`.
pub(crate) async fn swap<I: ImageStage>(e: &Engine<'_, I>, to: &Environment, from: &Environment) -> Swapped {
    let started = Instant::now();
    let _group = e.console.group(format!("Swap {} and {}", to.name, from.name));
    let result = run(e, to, from).await;
    e.journal.span(&to.name, "swap", started);
    e.journal.phase("Swap CNAMEs", started.elapsed());
    let swapped = match result {
        Ok(cname) => Swapped {
            outcome: Outcome::Swapped,
            message: format!(
                "{} is live now at {cname} (swapped with {}, which now serves {})",
                to.name,
                from.name,
                to.cname.as_deref().unwrap_or("the other CNAME")
            ),
            live: to.name.clone(),
        },
        Err(err) => Swapped {
            outcome: Outcome::Failed,
            message: format!(
                "the CNAME swap of {} and {} failed: {err:#}; {} still serves {}",
                to.name,
                from.name,
                from.name,
                from.cname.as_deref().unwrap_or("its CNAME")
            ),
            live: from.name.clone(),
        },
    };
    e.journal.record(|f| f.live_environment = Some(swapped.live.clone()));
    swapped
}

/// Calls SwapEnvironmentCNAMEs and waits for its completion event and for the CNAMEs to show it; the CNAME
/// `idle` holds now on success.
async fn run<I: ImageStage>(e: &Engine<'_, I>, idle: &Environment, live: &Environment) -> Result<String> {
    let eb = &e.aws.eb;
    let Some(live_cname) = live.cname.clone() else {
        bail!("{} has no CNAME to take (is it a web server environment?)", live.name);
    };
    // By the service's clock: the newer of the two environments' last changes (a deploy just before, or
    // their last operation). An older completion event can show up too; the CNAMEs themselves decide.
    let since_ms = idle.updated_ms.max(live.updated_ms).unwrap_or_else(beanstalk::now_ms) - 1_000;
    let request_id = eb.swap_cnames(&idle.id, &live.id).await?;
    e.console.info(format!(
        "Swapping the CNAMEs of {} and {} (request {})",
        idle.name,
        live.name,
        request_id.as_deref().unwrap_or("unknown")
    ));
    let deadline = Instant::now() + e.cfg.wait.timeout;
    let mut completed = false;
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(e.cadence.events).await;
        if !completed {
            for ev in eb.events_since(&e.cfg.application, since_ms).await.unwrap_or_default() {
                let ours = [idle.name.as_str(), live.name.as_str()]
                    .iter()
                    .any(|n| ev.environment.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(n)));
                if !ours || !seen.insert((ev.date_ms, ev.message.clone())) {
                    continue;
                }
                e.console.info(format!("{} {:<5} {}", crate::format::clock(ev.date_ms), ev.severity, ev.message));
                if ev.is_error() && verdict::belongs_to_update(&ev, request_id.as_deref(), since_ms) {
                    bail!("Elastic Beanstalk reported: {}", ev.message);
                }
                completed |= ev.message.contains(SWAP_DONE);
            }
        }
        if completed {
            let both = eb.environments_by_id(&[idle.id.clone(), live.id.clone()]).await?;
            let now_idle = both.iter().find(|x| x.id == idle.id && !x.is_terminated());
            if let Some(env) = now_idle {
                e.journal.observe(&idle.name, env);
                if env.cname.as_deref() == Some(live_cname.as_str()) {
                    return Ok(live_cname);
                }
            }
        }
        if Instant::now() + e.cadence.events > deadline {
            bail!(
                "it did not complete within {} (wait-timeout){}",
                format_duration(e.cfg.wait.timeout),
                if completed { "; Beanstalk reported completion but the CNAMEs did not change" } else { "" }
            );
        }
    }
}

/// `mode: swap`: swaps `environment-name` and `swap-with` without deploying (undoing a blue/green release).
pub(crate) async fn swap_only<I: ImageStage>(e: &Engine<'_, I>) -> Result<(Outcome, String)> {
    let (targets, live, _) = super::rollout::check_environments(e).await?;
    let (Some(idle), Some(live)) = (targets.first(), live) else {
        bail!("swap needs environment-name and swap-with");
    };
    for env in [idle, &live] {
        if !env.is_ready() {
            bail!(
                "{} is {} (another operation is in progress); both environments must be Ready to swap their CNAMEs",
                env.name,
                env.status
            );
        }
    }
    // environment-name holds the CNAME to move (after a release, the live one): swap-with takes it back.
    let swapped = swap(e, &live, idle).await;
    e.announce_env(&idle.name, swapped.outcome, swapped.message.clone());
    Ok((swapped.outcome, swapped.message))
}
