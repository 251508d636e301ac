//! The CNAME proxy: an HTTP forward proxy on loopback that reaches each environment by its CNAME.
//! `PREFIX.REGION.elasticbeanstalk.com` resolves nowhere on a machine without AWS, so a client
//! sends `GET http://CNAME/path` here instead (`curl -x`, `HTTP_PROXY`) and the request goes to the
//! load balancer of the live environment that holds that CNAME now — after a swap, the other one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::proxy::{Body, forward, full};
use crate::state::Sim;

/// Serves the proxy on `listener` until the task is dropped.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener) {
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(5)).build_http();
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("CNAME proxy: accept failed: {e}");
                continue;
            }
        };
        let (sim, client) = (Arc::clone(&sim), client.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (sim, client) = (Arc::clone(&sim), client.clone());
                async move { Ok::<_, Infallible>(route(&sim, req, &client, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(conn), service).await;
        });
    }
}

/// The host a proxied request is for: the absolute URI's, else the `Host` header's, without port.
fn target_host(req: &Request<Incoming>) -> Option<String> {
    let authority = match req.uri().authority() {
        Some(a) => a.host().to_string(),
        None => req.headers().get(hyper::header::HOST)?.to_str().ok()?.to_string(),
    };
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority.as_str(),
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Where the environment holding `cname` listens (its load balancer), if a live one holds it.
pub fn resolve(sim: &Sim, cname: &str) -> Option<SocketAddr> {
    let st = sim.state();
    let env = st.envs.iter().find(|e| e.live() && e.cname.eq_ignore_ascii_case(cname))?;
    env.proxy.as_ref().map(|p| p.addr())
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", Bytes::from(message + "\n"))
}

async fn route(
    sim: &Sim,
    req: Request<Incoming>,
    client: &Client<HttpConnector, Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "ebsim's CNAME proxy serves plain HTTP only (environments have no TLS listener): use http:// URLs".into(),
        );
    }
    let Some(host) = target_host(&req) else {
        return text(StatusCode::BAD_REQUEST, "the request names no host (absolute URI or Host header)".into());
    };
    match resolve(sim, &host) {
        Some(lb) => forward(lb, req, client, peer).await,
        None => text(
            StatusCode::BAD_GATEWAY,
            format!(
                "{host} is not the CNAME of a live environment of this ebsim (region {}); DescribeEnvironments lists them",
                sim.cfg.region
            ),
        ),
    }
}
