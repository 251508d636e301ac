//! faultproxy: a recording proxy with fault injection, placed between eb-deploy (or the AWS CLI,
//! or Docker) and the local emulators so tests can see every call and break some of them.

pub mod faults;
pub mod record;

mod admin;
mod http;
mod tcp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::faults::FaultState;
use crate::record::Recorder;

/// The next connection; accept errors (out of file descriptors and similar) back off instead of spinning.
pub(crate) async fn accept(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(err) => {
                eprintln!("faultproxy: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// What the proxy forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// HTTP/1.1 reverse proxy, one record per request.
    #[default]
    Http,
    /// Byte pipe, one record per connection.
    Tcp,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        }
    }
}

/// Validated command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// `HOST:PORT`.
    pub upstream: String,
    pub admin: SocketAddr,
    pub mode: Mode,
    pub log: Option<PathBuf>,
}

pub const USAGE: &str = "usage: faultproxy --listen 127.0.0.1:PORT --upstream HOST:PORT --admin 127.0.0.1:PORT [--mode http|tcp] [--log PATH]";

impl Config {
    /// Parses the arguments after the program name (`--flag value` or `--flag=value`).
    pub fn from_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut listen = None;
        let mut upstream = None;
        let mut admin = None;
        let mut mode = Mode::Http;
        let mut log = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value =
                || inline.clone().or_else(|| args.next()).with_context(|| format!("{flag} needs a value\n{USAGE}"));
            match flag.as_str() {
                "--listen" => listen = Some(parse_addr("--listen", &value()?)?),
                "--admin" => admin = Some(parse_addr("--admin", &value()?)?),
                "--upstream" => {
                    let v = value()?;
                    if v.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
                        bail!("--upstream must be HOST:PORT, got {v:?}");
                    }
                    upstream = Some(v);
                }
                "--mode" => {
                    mode = match value()?.as_str() {
                        "http" => Mode::Http,
                        "tcp" => Mode::Tcp,
                        other => bail!("--mode must be http or tcp, got {other:?}"),
                    }
                }
                "--log" => log = Some(PathBuf::from(value()?)),
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(Self {
            listen: listen.with_context(|| format!("--listen is required\n{USAGE}"))?,
            upstream: upstream.with_context(|| format!("--upstream is required\n{USAGE}"))?,
            admin: admin.with_context(|| format!("--admin is required\n{USAGE}"))?,
            mode,
            log,
        })
    }
}

fn parse_addr(flag: &str, value: &str) -> anyhow::Result<SocketAddr> {
    value.parse().with_context(|| format!("{flag} must be IP:PORT, got {value:?}"))
}

/// A started proxy; dropping it stops accepting connections.
pub struct Running {
    pub listen_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds both ports (port 0 picks a free one) and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("failed to listen on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin)
        .await
        .with_context(|| format!("failed to listen on {} (admin)", config.admin))?;
    let listen_addr = listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let recorder = Arc::new(Recorder::new(config.log.as_deref())?);
    let faults = Arc::new(FaultState::default());
    let admin = Arc::new(admin::Admin {
        recorder: recorder.clone(),
        faults: faults.clone(),
        mode: config.mode,
        upstream: config.upstream.clone(),
    });
    let proxy_task = match config.mode {
        Mode::Http => {
            let proxy = Arc::new(http::HttpProxy::new(config.upstream.clone(), recorder, faults));
            tokio::spawn(http::serve(listener, proxy))
        }
        Mode::Tcp => {
            let proxy = Arc::new(tcp::TcpProxy { recorder, faults, upstream: config.upstream.clone() });
            tokio::spawn(tcp::serve(listener, proxy))
        }
    };
    Ok(Running { listen_addr, admin_addr, tasks: vec![proxy_task, tokio::spawn(admin::serve(admin_listener, admin))] })
}
