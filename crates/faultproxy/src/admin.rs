//! Admin HTTP API: health, recorded requests, fault settings.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::Mode;
use crate::faults::FaultState;
use crate::record::Recorder;

pub(crate) struct Admin {
    pub recorder: Arc<Recorder>,
    pub faults: Arc<FaultState>,
    pub mode: Mode,
    pub upstream: String,
}

pub(crate) async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let stream = crate::accept(&listener).await;
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(admin.route(req).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_else(|e| format!("\"{e}\"").into_bytes());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

impl Admin {
    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = req.uri().query().unwrap_or("").to_string();
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, "/health") => json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "mode": self.mode.as_str(),
                    "upstream": self.upstream,
                }),
            ),
            (Method::GET, "/requests") => {
                let since = query.split('&').find_map(|pair| pair.strip_prefix("since=")).map(str::parse::<u64>);
                match since {
                    None => json(StatusCode::OK, &self.recorder.since(0)),
                    Some(Ok(seq)) => json(StatusCode::OK, &self.recorder.since(seq)),
                    Some(Err(_)) => error(StatusCode::BAD_REQUEST, "since must be a number"),
                }
            }
            (Method::DELETE, "/requests") => {
                self.recorder.clear();
                json(StatusCode::OK, &serde_json::json!({}))
            }
            (Method::GET, "/faults") => json(StatusCode::OK, &self.faults.get()),
            (Method::DELETE, "/faults") => json(StatusCode::OK, &self.faults.reset()),
            (Method::POST, "/faults") => {
                let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
                };
                let patch: serde_json::Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}"));
                    }
                };
                match self.faults.merge(patch) {
                    Ok(faults) => json(StatusCode::OK, &faults),
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                }
            }
            (_, "/health" | "/requests" | "/faults") => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }
}
