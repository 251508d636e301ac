//! One small HTTP/1.0 client for loopback services (ebsim's and faultproxy's admin APIs, the registry, the
//! deployed apps). Blocking, so it also works where no runtime is (a `Drop`); [`send`] runs it off the async
//! workers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body of a 2xx answer; an error naming the status and body otherwise.
    pub fn ok(self) -> Result<Self> {
        if !(200..300).contains(&self.status) {
            bail!("HTTP {}: {}", self.status, self.text());
        }
        Ok(self)
    }
}

/// A request to `host_port` (`127.0.0.1:PORT`) for `path`, with extra headers and a body.
pub fn request(host_port: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
    let what = || format!("{method} http://{host_port}{path}");
    let mut stream = TcpStream::connect(host_port).with_context(|| format!("failed to connect for {}", what()))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).context("failed to set a read timeout")?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host_port}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .with_context(|| format!("failed to send {}", what()))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("failed to read the answer to {}", what()))?;
    parse(&raw).with_context(|| format!("bad answer to {}", what()))
}

fn parse(raw: &[u8]) -> Result<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of the HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Response { status, headers, body: raw[end + 4..].to_vec() })
}

/// `GET http://host_port/path`, 2xx only: the body as text.
pub fn get(host_port: &str, path: &str) -> Result<String> {
    Ok(request(host_port, "GET", path, &[], b"")?.ok()?.text())
}

/// [`request`] from async code, on the blocking pool.
pub async fn send(
    host_port: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    let (host_port, method, path) = (host_port.to_owned(), method.to_owned(), path.to_owned());
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request(&host_port, &method, &path, &headers, &body)
    })
    .await
    .context("the HTTP request's thread failed")?
}

/// `host:port` of an `http://host:port[/…]` URL.
pub fn host_port(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed() {
        let r = parse(
            b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nDocker-Content-Digest: sha256:ab\r\n\r\nnope",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.header("docker-content-digest"), Some("sha256:ab"));
        assert_eq!(r.text(), "nope");
        assert!(r.ok().unwrap_err().to_string().contains("HTTP 404: nope"));
        assert!(parse(b"garbage").is_err());
        assert_eq!(host_port("http://127.0.0.1:80/x"), "127.0.0.1:80");
    }
}
