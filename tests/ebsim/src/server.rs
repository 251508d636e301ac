//! The HTTP server: the Query API on `POST /` and the admin API under `/_ebsim/`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::admin::{self, RequestRecord};
use crate::ids;
use crate::ops;
use crate::protocol::time::now_ms;
use crate::protocol::{ApiError, Params, xml};
use crate::state::Sim;

/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            _ = &mut shutdown => break,
            c = listener.accept() => c,
        };
        let (stream, _) = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let sim = Arc::clone(&sim);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let sim = Arc::clone(&sim);
                async move { Ok::<_, Infallible>(route(&sim, req).await) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

async fn route(sim: &Arc<Sim>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .body(Full::new(Bytes::from(format!("failed to read request body: {e}"))))
                .unwrap_or_default();
        }
    };
    if let Some(rest) = path.strip_prefix("/_ebsim") {
        let (status, json) = admin::handle(sim, method.as_str(), rest, query.as_deref(), &body);
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.to_string())))
            .unwrap_or_default();
    }
    let mut params = if method == Method::POST { Params::parse(&body) } else { Params::default() };
    if let Some(q) = &query {
        params.merge_missing(Params::parse(q.as_bytes()));
    }
    let (status, xml_body, rid, error_code, op) = api(sim, &params).await;
    sim.requests().push(RequestRecord {
        seq: 0,
        time_ms: now_ms(),
        op,
        params: params.without_envelope(),
        status,
        error_code,
        request_id: rid.clone(),
    });
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .header("x-amzn-RequestId", rid)
        .body(Full::new(Bytes::from(xml_body)))
        .unwrap_or_default()
}

/// Runs one API call: `(status, body, request id, error code, op)`.
pub async fn api(sim: &Arc<Sim>, params: &Params) -> (u16, String, String, Option<String>, String) {
    let rid = ids::request_id();
    let Some(op) = params.action().map(str::to_string) else {
        let err = ApiError::new(400, "MissingAction", "Missing Action");
        return (err.status, xml::error(&err, &rid), rid, Some(err.code), String::new());
    };
    let values = params.without_envelope();
    let mentions: Vec<&str> = values.values().map(String::as_str).collect();
    let verdict = sim.faults().judge(&op, &mentions);
    if let Some(d) = verdict.delay {
        tokio::time::sleep(d).await;
    }
    let result = match verdict.error {
        Some(e) => {
            tracing::info!(op = %op, "fault injected: {}", e.code);
            Err(e)
        }
        None => ops::dispatch(sim, &op, params, &rid).await,
    };
    match result {
        Ok(inner) => (200, xml::success(&op, &rid, inner.as_deref()), rid, None, op),
        Err(e) => {
            tracing::debug!(op = %op, "answered {e}");
            (e.status, xml::error(&e, &rid), rid, Some(e.code), op)
        }
    }
}
