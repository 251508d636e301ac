//! Each environment's loopback "load balancer" on 127.0.0.1: it routes every HTTP request to the
//! current instance (so kept-alive clients move with a deploy, as behind an ALB), or serves the
//! built-in sample application before any version runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Where the proxy sends requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The built-in sample application page.
    Sample,
    /// A running instance.
    Instance(SocketAddr),
    /// Nothing (terminated): 503.
    Down,
}

/// The body of an answer the proxies write.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: Arc<RwLock<Target>>,
    task: JoinHandle<()>,
}

/// Headers that belong to one hop only.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Proxy {
    /// Listens on a free loopback port, serving the sample page for environment `env`.
    pub async fn start(env: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let target = Arc::new(RwLock::new(Target::Sample));
        let page: Bytes = sample_page(env).into();
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(5)).build_http();
        let t = Arc::clone(&target);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, peer)) = listener.accept().await else { continue };
                let (t, page, client) = (Arc::clone(&t), page.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let current = *t.read().unwrap_or_else(|p| p.into_inner());
                        let (page, client) = (page.clone(), client.clone());
                        async move { Ok::<_, Infallible>(route(current, req, page, client, peer).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(conn), service).await;
                });
            }
        });
        Ok(Self { addr, target, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new requests to `target`.
    pub fn set_target(&self, target: Target) {
        *self.target.write().unwrap_or_else(|p| p.into_inner()) = target;
    }

    /// Where new requests go.
    pub fn target(&self) -> Target {
        *self.target.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A whole answer.
pub fn full(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body).map_err(|never| match never {}).boxed())
        .unwrap_or_default()
}

async fn route(
    target: Target,
    req: Request<Incoming>,
    page: Bytes,
    client: Client<HttpConnector, Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let to = match target {
        Target::Sample => return full(StatusCode::OK, "text/html; charset=utf-8", page),
        Target::Down => {
            return full(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                Bytes::from_static(b"503 Service Unavailable\n"),
            );
        }
        Target::Instance(to) => to,
    };
    forward(to, req, &client, peer).await
}

/// Sends `req` on to `http://{to}` (path and query kept, hop-by-hop headers dropped,
/// `X-Forwarded-For` set to `peer`); 502 when `to` does not answer.
pub async fn forward(
    to: SocketAddr,
    req: Request<Incoming>,
    client: &Client<HttpConnector, Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{to}{path}").parse() {
        Ok(u) => u,
        Err(_) => return full(StatusCode::BAD_REQUEST, "text/plain", Bytes::from_static(b"400 Bad Request\n")),
    };
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    if let Ok(v) = peer.ip().to_string().parse() {
        parts.headers.insert("x-forwarded-for", v);
    }
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(h);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            tracing::warn!("could not reach {to}: {e}");
            full(StatusCode::BAD_GATEWAY, "text/plain", Bytes::from_static(b"502 Bad Gateway\n"))
        }
    }
}

/// The page the sample application serves.
pub fn sample_page(env: &str) -> String {
    let env = crate::protocol::xml::escape(env);
    format!(
        "<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body>\
         <h1>Congratulations</h1><p>Your first AWS Elastic Beanstalk application is now running on your own \
         dedicated environment <b>{env}</b> in the AWS Cloud.</p><p>This is the sample application; deploy an \
         application version to replace it.</p></body></html>\n"
    )
}
