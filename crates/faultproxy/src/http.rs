//! HTTP/1.1 reverse proxy mode: streams bodies both ways, keeps the client's headers (SigV4
//! signs Host, so it stays as sent), records every request and applies faults.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::faults::{FaultState, RequestInfo};
use crate::record::{Record, Recorder, now_ms};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// State shared by every connection of the HTTP proxy.
pub(crate) struct HttpProxy {
    pub recorder: Arc<Recorder>,
    pub faults: Arc<FaultState>,
    upstream: String,
    client: Client<HttpConnector, RequestBody>,
    request_ids: AtomicU64,
}

impl HttpProxy {
    pub fn new(upstream: String, recorder: Arc<Recorder>, faults: Arc<FaultState>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(20))
            .build(connector);
        Self { recorder, faults, upstream, client, request_ids: AtomicU64::new(1) }
    }
}

/// Accepts connections until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<HttpProxy>) {
    loop {
        let stream = crate::accept(&listener).await;
        if proxy.faults.refuse_all() {
            drop(stream);
            proxy.recorder.push(Record {
                time_ms: now_ms(),
                kind: "http".into(),
                fault: Some("refuse".into()),
                ..Record::default()
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(proxy.clone(), req));
            // Errors here are clients going away or faults we injected on purpose.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Pushes the request's record when dropped, i.e. when the response body is done or abandoned.
struct RecordGuard {
    recorder: Arc<Recorder>,
    record: Record,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
    done: bool,
}

impl RecordGuard {
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let mut record = std::mem::take(&mut self.record);
        record.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        record.bytes_out = self.bytes_out;
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        self.recorder.push(record);
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A byte budget shared by a request's upload and its response; exceeding it cuts both
/// connections.
struct Cut {
    limit: u64,
    forwarded: AtomicU64,
    fired: AtomicBool,
    disarmed: AtomicBool,
    faults: Arc<FaultState>,
}

impl Cut {
    fn new(limit: u64, faults: Arc<FaultState>) -> Self {
        Self {
            limit,
            forwarded: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            disarmed: AtomicBool::new(false),
            faults,
        }
    }

    /// How many of the next `n` bytes may pass; fewer than `n` means the cut fired.
    fn admit(&self, n: usize) -> usize {
        if self.disarmed.load(Ordering::Relaxed) {
            return n;
        }
        let before = self.forwarded.fetch_add(n as u64, Ordering::Relaxed);
        if before + n as u64 <= self.limit {
            return n;
        }
        if self.fire() { self.limit.saturating_sub(before) as usize } else { n }
    }

    /// Claims a cut from the shared budget (once per request).
    fn fire(&self) -> bool {
        if self.fired.load(Ordering::Relaxed) {
            return true;
        }
        if self.disarmed.load(Ordering::Relaxed) {
            return false;
        }
        if self.faults.take_cut() {
            self.fired.store(true, Ordering::Relaxed);
            true
        } else {
            self.disarmed.store(true, Ordering::Relaxed);
            false
        }
    }

    fn has_fired(&self) -> bool {
        self.fired.load(Ordering::Relaxed)
    }
}

/// A data frame's bytes and how many of them the cut lets through; other frames are handed back as they are.
fn admit(frame: Frame<Bytes>, cut: Option<&Cut>) -> Result<(Bytes, usize), Frame<Bytes>> {
    let data = frame.into_data()?;
    let allowed = cut.map_or(data.len(), |cut| cut.admit(data.len()));
    Ok((data, allowed))
}

fn cut_error() -> BoxError {
    "connection cut by faultproxy".into()
}

/// The client's request body on its way upstream: counted, and cut when the budget runs out.
pub(crate) struct RequestBody {
    inner: Incoming,
    bytes_in: Arc<AtomicU64>,
    cut: Option<Arc<Cut>>,
    cut_pending: bool,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.cut_pending {
            return Poll::Ready(Some(Err(cut_error())));
        }
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            Some(Ok(frame)) => frame,
        };
        let (data, allowed) = match admit(frame, self.cut.as_deref()) {
            Ok(admitted) => admitted,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        self.bytes_in.fetch_add(allowed as u64, Ordering::Relaxed);
        if allowed < data.len() {
            self.cut_pending = true;
            if allowed == 0 {
                return Poll::Ready(Some(Err(cut_error())));
            }
            return Poll::Ready(Some(Ok(Frame::data(data.slice(..allowed)))));
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        !self.cut_pending && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Source {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

/// The body sent back to the client: upstream's (counted, cuttable) or an injected answer.
pub(crate) struct ProxyBody {
    source: Source,
    guard: Option<RecordGuard>,
    cut: Option<Arc<Cut>>,
    cut_pending: bool,
    /// Body length announced by upstream, to record as soon as the last byte passes.
    expected: Option<u64>,
}

impl ProxyBody {
    fn full(bytes: impl Into<Bytes>, guard: RecordGuard) -> Self {
        Self {
            source: Source::Full(Some(bytes.into())),
            guard: Some(guard),
            cut: None,
            cut_pending: false,
            expected: None,
        }
    }

    fn finish(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.finish();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.cut_pending {
            self.finish();
            return Poll::Ready(Some(Err(cut_error())));
        }
        let polled = match &mut self.source {
            Source::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Source::Upstream(body) => {
                ready!(Pin::new(body).poll_frame(cx)).map(|r| r.map_err(|e| -> BoxError { e.into() }))
            }
        };
        let frame = match polled {
            None => {
                self.finish();
                return Poll::Ready(None);
            }
            Some(Err(err)) => {
                self.finish();
                return Poll::Ready(Some(Err(err)));
            }
            Some(Ok(frame)) => frame,
        };
        let (data, allowed) = match admit(frame, self.cut.as_deref()) {
            Ok(admitted) => admitted,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        let expected = self.expected;
        if let Some(guard) = self.guard.as_mut() {
            guard.bytes_out += allowed as u64;
            if allowed < data.len() {
                guard.record.fault = Some("cut".into());
            }
            // Record before the last byte leaves, so a client that has read the whole body
            // already finds its request in `GET /requests`.
            if expected == Some(guard.bytes_out) {
                self.finish();
            }
        }
        if allowed < data.len() {
            self.cut_pending = true;
            if allowed == 0 {
                self.finish();
                return Poll::Ready(Some(Err(cut_error())));
            }
            return Poll::Ready(Some(Ok(Frame::data(data.slice(..allowed)))));
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        if self.cut_pending {
            return false;
        }
        match &self.source {
            Source::Full(bytes) => bytes.is_none(),
            Source::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Source::Full(None) => SizeHint::with_exact(0),
            Source::Upstream(body) => body.size_hint(),
        }
    }
}

/// The signing service from SigV4's credential scope (`AKID/DATE/REGION/SERVICE/aws4_request`),
/// in the Authorization header or a presigned URL's `X-Amz-Credential`.
pub(crate) fn credential_service(headers: &HeaderMap, query: &str) -> Option<String> {
    let scope_service = |credential: &str| {
        let parts: Vec<&str> = credential.split('/').collect();
        (parts.len() >= 5).then(|| parts[parts.len() - 2].to_string())
    };
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let credential = auth.split([' ', ',']).find_map(|part| part.trim().strip_prefix("Credential="));
        if let Some(service) = credential.and_then(scope_service) {
            return Some(service);
        }
    }
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("X-Amz-Credential=")?;
        scope_service(&value.replace("%2F", "/").replace("%2f", "/"))
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Removes hop-by-hop headers (and those the Connection header names), which must not be
/// forwarded. Body framing headers (Content-Length, Transfer-Encoding) are kept: the body is
/// forwarded as is.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// The wire protocol an AWS client expects its errors in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    /// S3's REST-XML: `<Error><Code>…`.
    RestXml,
    /// JSON protocols (ECR): `{"__type": …}`.
    Json,
    /// Query protocol (Elastic Beanstalk): `<ErrorResponse><Error>…`.
    Query,
}

fn protocol(service: Option<&str>, headers: &HeaderMap, query: &str) -> Protocol {
    let content_type = header_str(headers, "content-type").unwrap_or("");
    if headers.contains_key("x-amz-target") || content_type.contains("json") {
        Protocol::Json
    } else if service == Some("s3") {
        Protocol::RestXml
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || query.starts_with("Action=")
        || query.contains("&Action=")
    {
        Protocol::Query
    } else {
        Protocol::RestXml
    }
}

/// An AWS-shaped error answer that SDK retry logic classifies like the real service's.
fn error_response(status: u16, protocol: Protocol, request_id: &str) -> (StatusCode, HeaderMap, String) {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let message = format!("injected by faultproxy ({status})");
    let (content_type, body) = match protocol {
        Protocol::RestXml => {
            let name = match status {
                503 => "ServiceUnavailable",
                429 => "SlowDown",
                500..=599 => "InternalError",
                _ => "InvalidRequest",
            };
            (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{name}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
                ),
            )
        }
        Protocol::Json => {
            let name = match status {
                429 => "ThrottlingException",
                500..=599 => "ServerException",
                _ => "ValidationException",
            };
            ("application/x-amz-json-1.1", serde_json::json!({"__type": name, "message": message}).to_string())
        }
        Protocol::Query => {
            let (kind, name) = match status {
                503 => ("Receiver", "ServiceUnavailable"),
                429 => ("Sender", "Throttling"),
                500..=599 => ("Receiver", "InternalFailure"),
                _ => ("Sender", "InvalidParameterValue"),
            };
            (
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>{kind}</Type><Code>{name}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                ),
            )
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id.clone());
        headers.insert("x-amz-request-id", id);
    }
    (code, headers, body)
}

fn response(status: StatusCode, headers: HeaderMap, body: ProxyBody) -> Response<ProxyBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

async fn handle(proxy: Arc<HttpProxy>, req: Request<Incoming>) -> Result<Response<ProxyBody>, BoxError> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let service = credential_service(req.headers(), &query);
    let target = header_str(req.headers(), "x-amz-target").map(str::to_string);
    let method = req.method().as_str().to_string();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let mut guard = RecordGuard {
        recorder: proxy.recorder.clone(),
        record: Record {
            time_ms: now_ms(),
            kind: "http".into(),
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            service: service.clone(),
            target: target.clone(),
            ..Record::default()
        },
        started,
        bytes_in: bytes_in.clone(),
        bytes_out: 0,
        done: false,
    };

    let decision = proxy.faults.decide(Some(&RequestInfo {
        service: service.as_deref(),
        method: &method,
        path: &path,
        target: target.as_deref(),
    }));
    if decision.refuse {
        guard.record.fault = Some("refuse".into());
        return Err("refused by faultproxy".into());
    }
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = decision.error_status {
        let id = format!("faultproxy-{}", proxy.request_ids.fetch_add(1, Ordering::Relaxed));
        let (code, headers, body) = error_response(status, protocol(service.as_deref(), req.headers(), &query), &id);
        guard.record.status = code.as_u16();
        guard.record.fault = Some("5xx".into());
        // The request body is left unread: hyper then closes the connection after answering.
        return Ok(response(code, headers, ProxyBody::full(body, guard)));
    }
    let cut = decision.cut_after.map(|limit| Arc::new(Cut::new(limit, proxy.faults.clone())));
    if let Some(cut) = &cut
        && cut.limit == 0
        && cut.fire()
    {
        guard.record.fault = Some("cut".into());
        return Err(cut_error());
    }

    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    parts.uri = Uri::try_from(format!("http://{}{}", proxy.upstream, path_and_query))?;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // hyper's server already answered `100 Continue` when we started reading the body;
    // upstream gets the body right away.
    parts.headers.remove(header::EXPECT);
    let body = RequestBody { inner: body, bytes_in, cut: cut.clone(), cut_pending: false };
    match proxy.client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            guard.record.status = parts.status.as_u16();
            if cut.as_ref().is_some_and(|c| c.has_fired()) {
                guard.record.fault = Some("cut".into());
            }
            let expected = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .filter(|_| method != "HEAD" && parts.status != StatusCode::NOT_MODIFIED);
            let mut body =
                ProxyBody { source: Source::Upstream(body), guard: Some(guard), cut, cut_pending: false, expected };
            if expected == Some(0) || method == "HEAD" {
                body.finish();
            }
            Ok(Response::from_parts(parts, body))
        }
        Err(err) if cut.as_ref().is_some_and(|c| c.has_fired()) => {
            guard.record.fault = Some("cut".into());
            Err(err.into())
        }
        Err(err) => {
            guard.record.status = 502;
            guard.record.fault = Some("upstream_error".into());
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            let text = format!("faultproxy: upstream {} failed: {err}\n", proxy.upstream);
            Ok(response(StatusCode::BAD_GATEWAY, headers, ProxyBody::full(text, guard)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_from_authorization_and_presigned_query() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        assert_eq!(credential_service(&headers, "").as_deref(), Some("ecr"));
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x";
        assert_eq!(credential_service(&HeaderMap::new(), q).as_deref(), Some("s3"));
        assert_eq!(credential_service(&HeaderMap::new(), "a=b"), None);
    }

    #[test]
    fn protocol_detection() {
        let mut json = HeaderMap::new();
        json.insert("x-amz-target", HeaderValue::from_static("X.Y"));
        assert_eq!(protocol(Some("ecr"), &json, ""), Protocol::Json);
        assert_eq!(protocol(Some("s3"), &HeaderMap::new(), ""), Protocol::RestXml);
        let mut form = HeaderMap::new();
        form.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
        assert_eq!(protocol(Some("elasticbeanstalk"), &form, ""), Protocol::Query);
    }

    #[test]
    fn error_bodies_are_aws_shaped() {
        let (code, headers, body) = error_response(503, Protocol::RestXml, "id1");
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("<Error><Code>ServiceUnavailable</Code>"));
        assert_eq!(headers["x-amz-request-id"], "id1");
        let (_, _, body) = error_response(500, Protocol::RestXml, "id1");
        assert!(body.contains("<Code>InternalError</Code>"));
        let (_, _, body) = error_response(500, Protocol::Json, "id1");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["__type"], "ServerException");
        let (_, _, body) = error_response(503, Protocol::Query, "id1");
        assert!(body.contains("<Code>ServiceUnavailable</Code>"));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-foo"));
        headers.insert("x-foo", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.insert(header::HOST, HeaderValue::from_static("bucket.example"));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key("x-foo"));
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key("keep-alive"));
        assert_eq!(headers[header::CONTENT_LENGTH], "3");
        assert_eq!(headers[header::HOST], "bucket.example");
    }
}
