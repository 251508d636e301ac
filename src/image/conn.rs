//! Connections of our own to the daemon, for what bollard keeps to itself: a BuildKit session (`POST
//! /session`, upgraded to HTTP/2 as the docker CLI does) and a `POST /build` whose context travels through
//! that session.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A connection to the daemon, plain or upgraded.
pub(super) type Conn = Box<dyn Io>;
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Opens a connection to the daemon at `docker_host` (`DOCKER_HOST`; None: the local socket).
pub(super) async fn connect(docker_host: Option<&str>) -> Result<Conn> {
    let host = docker_host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or(crate::docker::DEFAULT_DOCKER_HOST);
    Ok(if let Some(path) = host.strip_prefix("unix://") {
        Box::new(tokio::net::UnixStream::connect(path).await?)
    } else if let Some(addr) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
        Box::new(tokio::net::TcpStream::connect(addr.trim_end_matches('/')).await?)
    } else {
        bail!("DOCKER_HOST={host} uses a scheme eb-deploy does not support");
    })
}

/// `POST <path>` with `Upgrade: h2c` and `headers`; returns the connection once the daemon has switched
/// protocols, ready for HTTP/2.
pub(super) async fn upgrade(docker_host: Option<&str>, path: &str, headers: &[(&str, String)]) -> Result<Conn> {
    let mut stream = connect(docker_host).await?;
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    // Byte by byte up to the blank line: what follows is the HTTP/2 connection, not ours to read.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await?;
        answer.push(byte[0]);
        if answer.len() > 16 * 1024 {
            bail!("the daemon's answer to POST {path} has no end");
        }
    }
    let status = String::from_utf8_lossy(&answer);
    let first = status.lines().next().unwrap_or_default();
    if !first.contains(" 101 ") {
        bail!("the daemon answered POST {path} with {first:?} instead of switching protocols");
    }
    Ok(stream)
}

/// An upgraded connection on which we serve (the daemon calls us over a BuildKit session).
pub(super) struct Accepted(pub Conn);

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
