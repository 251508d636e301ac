//! eb-deploy's entry point: reads the environment once, then wires inputs → config → engine → report.

use std::process::ExitCode;

use anyhow::Result;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use eb_deploy::aws;
use eb_deploy::config::{Config, Mode, RunContext};
use eb_deploy::engine::{Conclusion, DockerImages, Engine, Ledger};
use eb_deploy::gha::{self, Annotation, Console};
use eb_deploy::inputs;
use eb_deploy::journal::Journal;
use eb_deploy::report::{Heading, Report};
use eb_deploy::verdict::Outcome;

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
    // Environment variables' values, before anything (an invalid-input message included) could print them.
    for value in eb_deploy::options::values_to_mask(raw.get("environment-variables").unwrap_or_default()) {
        console.mask(&value);
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
    let mut heading = Heading {
        mode: match raw.get("mode").map(str::to_ascii_lowercase).as_deref() {
            Some("rollback") => Mode::Rollback,
            Some("swap") => Mode::Swap,
            Some("terminate") => Mode::Terminate,
            _ => Mode::Deploy,
        },
        application: raw.get("application-name").unwrap_or_default().to_owned(),
        environment: raw
            .get("environment-name")
            .unwrap_or_default()
            .split(['\n', ','])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        version_label: raw.get("version-label").unwrap_or_default().to_owned(),
        run_url: ctx.run_url(),
    };
    let mut journal = Journal::default();
    let end = End { ctx: &ctx, console: &console, started, json: flags.json };
    let cfg = match Config::from_inputs(&raw, &ctx, &workspace) {
        Ok(cfg) => cfg,
        Err(invalid) => {
            for e in &invalid.0 {
                console.error(&e.message, Some(&Annotation::titled(format!("Invalid input `{}`", e.input))));
            }
            return end.finish(heading, &journal, Outcome::Failed, invalid.to_string());
        }
    };
    for name in &cfg.ignored {
        console.warning(format!("input `{name}` is not used in {} mode; it is ignored", cfg.plan.mode().name()), None);
    }
    heading.version_label = cfg.version_label.clone();
    heading.mode = cfg.plan.mode();
    heading.environment = cfg.environments_phrase();
    journal = Journal::new(&cfg.environments);

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
            let message = format!("cancelled ({signal}) before anything was changed");
            return end.finish(heading, &journal, Outcome::Cancelled, message);
        }
    };
    let clients = match clients {
        Ok(c) => c,
        Err(e) => return end.fail(heading, &journal, &e),
    };

    let temp_dir = edge.get("RUNNER_TEMP").map(Into::into).unwrap_or_else(std::env::temp_dir);
    let images = DockerImages { docker_host: ctx.docker_host.clone(), ecr: clients.ecr.clone() };
    let ledger = Ledger::default();
    let engine = Engine {
        cfg: &cfg,
        aws: &clients,
        console: &console,
        journal: &journal,
        ledger: &ledger,
        cadence: Default::default(),
        temp_dir,
        images: &images,
    };
    let result = tokio::select! {
        result = engine.run() => result,
        signal = signals.next() => {
            // On SIGINT/SIGTERM: abort the update when asked, drop a version nothing uses yet, within a few
            // seconds (the runner kills the container 10 s after its first signal).
            let undone = ledger.undo_on_cancel(&clients.eb, cfg.abort_on_cancel).await;
            let message = format!("cancelled ({signal}){undone}");
            console.error(&message, Some(&Annotation::titled("eb-deploy cancelled")));
            return end.finish(heading, &journal, Outcome::Cancelled, message);
        }
    };
    match result {
        Ok(Conclusion { outcome, message }) => end.finish(heading, &journal, outcome, message),
        Err(e) => end.fail(heading, &journal, &e),
    }
}

/// How the run ends, whatever ends it: outputs and the summary (also on failure), the result printed, the
/// exit code.
struct End<'a> {
    ctx: &'a RunContext,
    console: &'a Console,
    started: Instant,
    json: bool,
}

impl End<'_> {
    fn fail(&self, heading: Heading, journal: &Journal, error: &anyhow::Error) -> ExitCode {
        let message = format!("{error:#}");
        self.console.error(&message, Some(&Annotation::titled("eb-deploy failed")));
        self.finish(heading, journal, Outcome::Failed, message)
    }

    fn finish(&self, heading: Heading, journal: &Journal, outcome: Outcome, message: String) -> ExitCode {
        let (ctx, console) = (self.ctx, self.console);
        let seconds = self.started.elapsed().as_secs_f64();
        let report = Report::new(heading, journal.snapshot(), outcome, message, seconds);
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
            if self.json {
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
