//! The `ebsim` binary: parses the command line, wires S3, ECR and Docker, serves until a signal.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_config::BehaviorVersion;
use ebsim::config::Config;
use ebsim::deploy::{NoRuntime, Runtime};
use ebsim::docker::DockerRuntime;
use ebsim::registry::Ecr;
use ebsim::store::S3Store;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EBSIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebsim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let cfg = Config::parse(std::env::args().skip(1))?;
    let has_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(cfg.region.clone()));
    if !has_keys {
        // Local emulators accept any key; without one the SDK would refuse to sign.
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "ebsim"));
    }
    let sdk = loader.load().await;
    let store = Arc::new(S3Store::new(&sdk, cfg.s3_endpoint.as_deref()));
    let ecr = Ecr::new(&sdk, cfg.ecr_endpoint.as_deref());
    let runtime: Arc<dyn Runtime> = match DockerRuntime::connect(
        cfg.docker_host.as_deref(),
        Some(ecr),
        cfg.registry_aliases.clone(),
        cfg.instance_labels.clone(),
    )
    .await
    {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!("no Docker Engine, deploys will fail: {e:#}");
            Arc::new(NoRuntime)
        }
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("failed to listen on {}", cfg.listen))?;
    let addr = listener.local_addr().context("failed to read the listening address")?;
    let mut cfg = cfg;
    let cname_listener = match cfg.proxy_listen {
        None => None,
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("failed to listen on {at} for the CNAME proxy (--proxy-listen)"))?;
            let bound = l.local_addr().context("failed to read the CNAME proxy's address")?;
            cfg.proxy_listen = Some(bound);
            tracing::info!("CNAME proxy listening on {bound}: curl -x http://{bound} http://CNAME/");
            Some(l)
        }
    };
    tracing::info!(
        "timing: steps {}, processing {}, seed {} (--seed {} repeats these durations)",
        cfg.timing.step,
        cfg.timing.processing,
        cfg.seed,
        cfg.seed
    );
    let sim = ebsim::Sim::new(cfg, store, Arc::clone(&runtime));
    if let Some(l) = cname_listener {
        tokio::spawn(ebsim::cname_proxy::serve(Arc::clone(&sim), l));
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ebsim listening on {addr}").context("failed to write to stdout")?;
        out.flush().context("failed to flush stdout")?;
    }
    ebsim::server::serve(Arc::clone(&sim), listener, shutdown_signal()).await;
    tracing::info!("shutting down: removing every instance container");
    runtime.remove_all().await;
    // A launch in flight may still have created a container meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    runtime.remove_all().await;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("failed to listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
