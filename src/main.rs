//! eb-deploy's entry point: reads the environment once, then wires inputs → config → engine → report.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use eb_deploy::aws::{self, Clients};
use eb_deploy::config::{Config, Mode, RunContext};
use eb_deploy::deploy::{DockerImages, Engine};
use eb_deploy::gha::{self, Annotation, Console};
use eb_deploy::inputs;
use eb_deploy::report::{Outcome, Progress, Report};
use eb_deploy::wait::Cadence;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

/// The process environment, read once here and passed down.
struct Edge {
    vars: std::collections::HashMap<String, String>,
    args: Vec<String>,
}

impl Edge {
    fn read() -> Self {
        let vars =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        Self { vars, args: std::env::args().skip(1).collect() }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

async fn run() -> ExitCode {
    let started = Instant::now();
    let edge = Edge::read();
    let lookup = |k: &str| edge.get(k);
    let ctx = RunContext::from_env(&lookup);
    let names: Vec<String> = edge.vars.keys().cloned().collect();
    let (raw, flags) = match inputs::read(&lookup, &names, &edge.args) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if flags.help {
        print!("{}", inputs::help());
        return ExitCode::SUCCESS;
    }
    if flags.version {
        println!("eb-deploy {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    // With --json, stdout carries only the JSON; the log goes to stderr.
    let console = if flags.json && !ctx.actions {
        Console::with_writer(false, flags.debug, Box::new(std::io::stderr()))
    } else {
        Console::stdout(ctx.actions, ctx.debug || flags.debug)
    };
    // The runner masks secrets it knows; these may come from elsewhere (a profile, an earlier step).
    for secret in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Some(value) = edge.get(secret) {
            console.mask(&value);
        }
    }
    init_tracing(ctx.debug || flags.debug);
    for name in &raw.unknown {
        console.warning(format!("`{name}` is not an eb-deploy input; it is ignored"), None);
    }

    let workspace = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => {
            console.error(format!("failed to read the working directory: {e}"), None);
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report {
        mode: raw.get("mode").unwrap_or("deploy").to_owned(),
        application: raw.get("application-name").unwrap_or_default().to_owned(),
        environment: raw.get("environment-name").unwrap_or_default().to_owned(),
        version_label: raw.get("version-label").unwrap_or_default().to_owned(),
        run_url: ctx.run_url(),
        ..Report::default()
    };
    let cfg = match Config::from_inputs(&raw, &ctx, &workspace) {
        Ok(cfg) => cfg,
        Err(invalid) => {
            for e in &invalid.0 {
                console.error(&e.message, Some(&Annotation::titled(format!("Invalid input `{}`", e.input))));
            }
            report.result = Some(Outcome::Failed);
            report.message = invalid.to_string();
            return finish(&ctx, &console, report, started, flags.json);
        }
    };
    for name in &cfg.ignored {
        console.warning(format!("input `{name}` is not used in rollback mode; it is ignored"), None);
    }
    report.version_label = cfg.version_label.clone();
    report.mode = if cfg.mode == Mode::Rollback { "rollback" } else { "deploy" }.to_owned();
    let progress = Progress::new(report);

    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            console.error(format!("failed to install signal handlers: {e}"), None);
            return ExitCode::FAILURE;
        }
    };
    let s3_path_style = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"].iter().any(|v| edge.get(v).is_some());
    let clients = tokio::select! {
        clients = aws::connect(cfg.region.as_deref(), s3_path_style, &console) => clients,
        signal = signals.next() => {
            progress.update(|r| r.message = format!("cancelled ({signal}) before anything was changed"));
            return finish(&ctx, &console, conclude_cancel(&progress), started, flags.json);
        }
    };
    let clients = match clients {
        Ok(c) => c,
        Err(e) => return fail(&ctx, &console, &progress, &e, started, flags.json),
    };

    let temp_dir = edge.get("RUNNER_TEMP").map(Into::into).unwrap_or_else(std::env::temp_dir);
    let images = DockerImages { docker_host: ctx.docker_host.clone(), ecr: clients.ecr.clone() };
    let engine = Engine {
        cfg: &cfg,
        aws: &clients,
        console: &console,
        progress: &progress,
        cadence: Cadence::default(),
        temp_dir,
        images: &images,
    };
    let result = tokio::select! {
        result = engine.run() => result,
        signal = signals.next() => {
            cancel(&cfg, &clients, &console, &progress, signal).await;
            return finish(&ctx, &console, conclude_cancel(&progress), started, flags.json);
        }
    };
    match result {
        Ok(outcome) => {
            progress.update(|r| r.result = Some(outcome));
            finish(&ctx, &console, progress.snapshot(), started, flags.json)
        }
        Err(e) => fail(&ctx, &console, &progress, &e, started, flags.json),
    }
}

fn fail(
    ctx: &RunContext,
    console: &Console,
    progress: &Progress,
    error: &anyhow::Error,
    started: Instant,
    json: bool,
) -> ExitCode {
    let message = format!("{error:#}");
    console.error(&message, Some(&Annotation::titled("eb-deploy failed")));
    progress.update(|r| {
        r.result = Some(Outcome::Failed);
        r.message = message;
    });
    finish(ctx, console, progress.snapshot(), started, json)
}

fn conclude_cancel(progress: &Progress) -> Report {
    progress.update(|r| r.result = Some(Outcome::Cancelled));
    progress.snapshot()
}

/// On SIGINT/SIGTERM: abort the update when asked, drop a version nothing uses yet, within a few seconds
/// (the runner kills the container 10 s after its first signal).
async fn cancel(cfg: &Config, clients: &Clients, console: &Console, progress: &Progress, signal: &str) {
    let snapshot = progress.snapshot();
    let mut message = format!("cancelled ({signal})");
    if let Some(env_id) = &snapshot.update_in_flight {
        if cfg.abort_on_cancel {
            match tokio::time::timeout(Duration::from_secs(3), clients.eb.abort_update(env_id)).await {
                Ok(Ok(())) => message.push_str("; the update was aborted and Elastic Beanstalk is rolling back"),
                Ok(Err(e)) => message.push_str(&format!("; aborting the update failed: {e:#}")),
                Err(_) => message.push_str("; aborting the update did not answer in time"),
            }
        } else {
            message.push_str("; the environment update goes on (set abort-on-cancel: true to abort it)");
        }
    }
    if let Some(label) = &snapshot.created_version {
        let delete = clients.eb.delete_version(&cfg.application, label, false);
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), delete).await {
            message.push_str(&format!("; version {label}, created by this run and never deployed, was deleted"));
        }
    }
    console.error(&message, Some(&Annotation::titled("eb-deploy cancelled")));
    progress.update(|r| r.message = message);
}

/// Writes outputs and the summary (also on failure), prints the result, and picks the exit code.
fn finish(ctx: &RunContext, console: &Console, mut report: Report, started: Instant, json: bool) -> ExitCode {
    report.duration_seconds = started.elapsed().as_secs_f64();
    let outcome = report.result.unwrap_or(Outcome::Failed);
    if let Some(path) = &ctx.output_file {
        let outputs: Vec<(String, String)> =
            report.outputs().into_iter().map(|(k, v)| (k, console.redact(&v))).collect();
        if let Err(e) = gha::append_outputs(path, &outputs) {
            console.error(format!("{e:#}"), None);
        }
    }
    if let Some(path) = &ctx.summary_file
        && let Err(e) = gha::append_summary(path, &console.redact(&report.summary()))
    {
        console.warning(format!("{e:#}"), None);
    }
    if !ctx.actions {
        if json {
            match serde_json::to_string_pretty(&report) {
                Ok(text) => println!("{}", console.redact(&text)),
                Err(e) => console.error(format!("failed to render the result as JSON: {e}"), None),
            }
        } else {
            console.info(format!("\n{report}"));
        }
    }
    if outcome.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// SIGINT and SIGTERM, whichever comes first. As PID 1 in a container nothing else would handle them.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Diagnostics (the SDK's and ours) on stderr in debug runs only.
fn init_tracing(debug: bool) {
    if !debug {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::new("eb_deploy=debug,aws_config=info,warn");
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}
