//! Connections of our own to the daemon, for what bollard keeps to itself: a BuildKit session (`POST
//! /session`, upgraded to HTTP/2 as the docker CLI does) and a `POST /build` whose context travels through
//! that session.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context as _, Result, bail};
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
    let mut stream = connect(docker_host).await.with_context(|| format!("failed to connect for POST {path}"))?;
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
        stream
            .read_exact(&mut byte)
            .await
            .with_context(|| format!("the connection closed before an answer to POST {path}"))?;
        answer.push(byte[0]);
        if answer.len() > 16 * 1024 {
            bail!("the daemon's answer to POST {path} has no end");
        }
    }
    let head = String::from_utf8_lossy(&answer).into_owned();
    let first = head.lines().next().unwrap_or_default();
    if !first.contains(" 101 ") {
        let body = refusal_body(&mut stream, &head).await;
        return Err(Refused { path: path.to_owned(), answer: answer_text(first, &body) }.into());
    }
    Ok(stream)
}

/// The daemon, or whatever answers at `DOCKER_HOST` (a socket proxy), would not switch protocols.
#[derive(Debug)]
pub(super) struct Refused {
    pub path: String,
    /// Its status and message, e.g. `404 Not Found (page not found)`.
    pub answer: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the daemon answered POST {} with {} instead of switching protocols", self.path, self.answer)
    }
}

impl std::error::Error for Refused {}

/// The body of a refusal, as far as its `Content-Length` says and within a second: what the daemon says why.
async fn refusal_body(stream: &mut Conn, head: &str) -> Vec<u8> {
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(4096);
    let mut body = vec![0u8; length];
    match tokio::time::timeout(std::time::Duration::from_secs(1), stream.read_exact(&mut body)).await {
        Ok(Ok(_)) => body,
        _ => Vec::new(),
    }
}

/// `404 Not Found (page not found)` from the status line and the body (the Engine's `{"message": …}` or text).
fn answer_text(status_line: &str, body: &[u8]) -> String {
    let status = status_line.split_once(' ').map_or(status_line, |(_, rest)| rest).trim();
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let message = serde_json::from_slice::<Message>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message: String = message.chars().take(300).collect();
    if message.is_empty() { status.to_owned() } else { format!("{status} ({message})") }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_its_status_and_message() {
        let engine = br#"{"message":"page not found"}"#;
        assert_eq!(answer_text("HTTP/1.1 404 Not Found", engine), "404 Not Found (page not found)");
        assert_eq!(
            answer_text("HTTP/1.1 403 Forbidden", b"<h1>403 Forbidden</h1>\n"),
            "403 Forbidden (<h1>403 Forbidden</h1>)"
        );
        assert_eq!(answer_text("HTTP/1.0 400 Bad Request", b""), "400 Bad Request");
    }
}
