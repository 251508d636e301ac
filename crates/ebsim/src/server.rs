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
use crate::protocol::{ApiError, Format, Params};
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

/// The region a SigV4 request is signed for (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
fn signed_region(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    scope.split(['/', ',', ' ']).nth(2).filter(|r| !r.is_empty())
}

/// A request signed for another region reaches that region's (empty) account, as it would at AWS, where
/// each region has its own endpoint and its own applications and environments.
fn region_sim(sim: &Arc<Sim>, region: Option<&str>) -> Arc<Sim> {
    static OTHER_REGIONS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<Sim>>>> =
        std::sync::OnceLock::new();
    match region {
        Some(r) if r != sim.cfg.region => {
            let mut regions = OTHER_REGIONS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
            let other = regions.entry(r.to_owned()).or_insert_with(|| {
                let mut cfg = sim.cfg.clone();
                cfg.region = r.to_owned();
                cfg.request_log = None;
                Sim::new(cfg, Arc::clone(&sim.store), Arc::clone(&sim.runtime))
            });
            Arc::clone(other)
        }
        _ => Arc::clone(sim),
    }
}

async fn route(sim: &Arc<Sim>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let region = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(signed_region)
        .map(str::to_owned);
    let format = Format::from_accept(req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()));
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
    let (status, answer, rid, error_code, op) = api(&region_sim(sim, region.as_deref()), &params, format).await;
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
        .header("content-type", format.content_type())
        .header("x-amzn-RequestId", rid)
        .body(Full::new(Bytes::from(answer)))
        .unwrap_or_default()
}

/// Runs one API call and writes its answer in `format`: `(status, body, request id, error code, op)`.
pub async fn api(sim: &Arc<Sim>, params: &Params, format: Format) -> (u16, String, String, Option<String>, String) {
    let rid = ids::request_id();
    let Some(op) = params.action().map(str::to_string) else {
        let err = ApiError::new(400, "MissingAction", "Missing Action");
        return (err.status, format.error(&err, &rid), rid, Some(err.code), String::new());
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
        Ok(result) => (200, format.success(&op, &rid, result.as_ref()), rid, None, op),
        Err(e) => {
            tracing::debug!(op = %op, "answered {e}");
            (e.status, format.error(&e, &rid), rid, Some(e.code), op)
        }
    }
}

#[cfg(test)]
mod region_tests {
    use super::signed_region;

    #[test]
    fn reads_the_region_of_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIA/20240101/eu-west-3/elasticbeanstalk/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(signed_region(auth), Some("eu-west-3"));
        assert_eq!(signed_region("Basic xyz"), None);
    }
}
