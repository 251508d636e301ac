//! `faultproxy --listen ADDR --upstream HOST:PORT --admin ADDR [--mode http|tcp] [--log PATH]`

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("faultproxy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = faultproxy::Config::from_args(std::env::args().skip(1))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let running = faultproxy::start(config).await?;
        println!("faultproxy listening on {} (admin {})", running.listen_addr, running.admin_addr);
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        drop(running);
        anyhow::Ok(())
    })?;
    // Connections still open must not hold up the exit.
    runtime.shutdown_background();
    Ok(())
}
