//! In-process tests: a hyper upstream on port 0, the proxy in front, a hyper client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faultproxy::record::Record;
use faultproxy::{Config, Mode, Running};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientBody = BoxBody<Bytes, BoxError>;

/// A body fed chunk by chunk from the test, to prove the proxy streams instead of buffering.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

#[derive(Default)]
struct Upstream {
    hits: AtomicU64,
    /// Bytes of request bodies received, including bodies that were cut off.
    received: AtomicU64,
    /// Lets `/gate` send its second chunk.
    release: Notify,
    /// Told when `/upload-gate` got its first chunk.
    first_chunk: Notify,
}

async fn upstream_handler(state: Arc<Upstream>, req: Request<Incoming>) -> Result<Response<ClientBody>, Infallible> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let full = |s: String| Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed();
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/echo" => {
            let headers: serde_json::Map<String, Value> =
                req.headers().iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("")))).collect();
            let body = json!({
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "headers": headers,
            });
            Response::new(full(body.to_string()))
        }
        "/count" | "/upload-gate" => {
            let mut body = req.into_body();
            let mut n = 0u64;
            let mut first = true;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    n += data.len() as u64;
                    state.received.fetch_add(data.len() as u64, Ordering::SeqCst);
                    if first && path == "/upload-gate" {
                        state.first_chunk.notify_one();
                    }
                    first = false;
                }
            }
            Response::new(full(n.to_string()))
        }
        "/big" => {
            let n: usize =
                req.uri().query().and_then(|q| q.strip_prefix("n=")).and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let mut left = n;
                while left > 0 {
                    let len = left.min(64 * 1024);
                    if tx.send(Bytes::from(vec![b'x'; len])).await.is_err() {
                        return;
                    }
                    left -= len;
                }
            });
            let mut resp = Response::new(ChannelBody(rx).boxed());
            resp.headers_mut().insert("content-length", n.to_string().parse().unwrap());
            resp
        }
        "/gate" => {
            let (tx, rx) = mpsc::channel(1);
            let state = state.clone();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first;")).await;
                state.release.notified().await;
                let _ = tx.send(Bytes::from_static(b"second")).await;
            });
            Response::new(ChannelBody(rx).boxed())
        }
        _ => {
            let mut resp = Response::new(full("not found".into()));
            *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
            resp
        }
    };
    Ok(resp)
}

async fn start_upstream() -> (SocketAddr, Arc<Upstream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Upstream::default());
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| upstream_handler(st.clone(), req));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, state)
}

async fn start_proxy(upstream: SocketAddr, mode: Mode) -> Running {
    faultproxy::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        admin: "127.0.0.1:0".parse().unwrap(),
        mode,
        log: None,
    })
    .await
    .unwrap()
}

fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

fn empty() -> ClientBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

fn bytes_body(b: impl Into<Bytes>) -> ClientBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

async fn send(client: &Client<HttpConnector, ClientBody>, req: Request<ClientBody>) -> Result<(u16, Bytes), BoxError> {
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn admin(proxy: &Running, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", proxy.admin_addr))
        .body(match body {
            Some(v) => bytes_body(v.to_string()),
            None => empty(),
        })
        .unwrap();
    let (status, body) = send(&client(), req).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn records(proxy: &Running) -> Vec<Record> {
    let (_, v) = admin(proxy, "GET", "/requests", None).await;
    serde_json::from_value(v).unwrap()
}

/// Waits until the proxy has recorded `n` requests (a record lands as the response ends).
async fn wait_records(proxy: &Running, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = records(proxy).await;
        if r.len() >= n || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const AUTH_S3: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123";
const AUTH_ECR: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0123";

fn s3_put(proxy: &Running, path: &str, body: ClientBody) -> Request<ClientBody> {
    Request::builder()
        .method("PUT")
        .uri(format!("http://{}{path}", proxy.listen_addr))
        .header("authorization", AUTH_S3)
        .body(body)
        .unwrap()
}

fn ecr_call(proxy: &Running, target: &str) -> Request<ClientBody> {
    Request::builder()
        .method("POST")
        .uri(format!("http://{}/echo", proxy.listen_addr))
        .header("authorization", AUTH_ECR)
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .body(bytes_body("{}"))
        .unwrap()
}

#[tokio::test]
async fn records_requests_and_keeps_headers() {
    let (up, _) = start_upstream().await;
    let proxy = start_proxy(up, Mode::Http).await;
    let c = client();

    let req = Request::builder()
        .method("GET")
        .uri(format!("http://{}/echo?list-type=2&prefix=a", proxy.listen_addr))
        .header("host", "bucket.s3.example:4566")
        .header("authorization", AUTH_S3)
        .header("x-amz-date", "20250101T000000Z")
        .body(empty())
        .unwrap();
    let (status, body) = send(&c, req).await.unwrap();
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["headers"]["host"], "bucket.s3.example:4566");
    assert_eq!(echo["headers"]["authorization"], AUTH_S3);
    assert_eq!(echo["headers"]["x-amz-date"], "20250101T000000Z");
    assert_eq!(echo["uri"], "/echo?list-type=2&prefix=a");

    let (status, _) =
        send(&c, ecr_call(&proxy, "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")).await.unwrap();
    assert_eq!(status, 200);

    let (status, body) = send(&c, s3_put(&proxy, "/count", bytes_body("hello"))).await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"5"[..]));

    let r = wait_records(&proxy, 3).await;
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0].seq, 1);
    assert_eq!(
        (r[0].method.as_str(), r[0].path.as_str(), r[0].query.as_str()),
        ("GET", "/echo", "list-type=2&prefix=a")
    );
    assert_eq!(r[0].service.as_deref(), Some("s3"));
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].bytes_out, body_len(&echo));
    assert_eq!(r[1].service.as_deref(), Some("ecr"));
    assert_eq!(r[1].target.as_deref(), Some("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"));
    assert_eq!(r[1].bytes_in, 2);
    assert_eq!((r[2].method.as_str(), r[2].bytes_in, r[2].bytes_out), ("PUT", 5, 1));
    assert!(r.iter().all(|r| r.fault.is_none() && r.kind == "http"));

    let (_, since) = admin(&proxy, "GET", "/requests?since=2", None).await;
    assert_eq!(since.as_array().unwrap().len(), 1);
    assert_eq!(since[0]["seq"], 3);
    let (status, _) = admin(&proxy, "GET", "/requests?since=x", None).await;
    assert_eq!(status, 400);
    let (status, health) = admin(&proxy, "GET", "/health", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

fn body_len(v: &Value) -> u64 {
    v.to_string().len() as u64
}

#[tokio::test]
async fn streams_large_bodies_both_ways() {
    let (up, state) = start_upstream().await;
    let proxy = start_proxy(up, Mode::Http).await;
    let c = client();

    // Download: the first chunk arrives while upstream still holds back the second.
    let req = Request::builder().uri(format!("http://{}/gate", proxy.listen_addr)).body(empty()).unwrap();
    let resp = c.request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk must arrive before upstream finishes")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    state.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");

    // Upload: upstream sees the first chunk before the client has sent the rest.
    let (tx, rx) = mpsc::channel(1);
    let req = s3_put(&proxy, "/upload-gate", ChannelBody(rx).boxed());
    let pending = tokio::spawn({
        let c = c.clone();
        async move { send(&c, req).await.unwrap() }
    });
    tx.send(Bytes::from(vec![1u8; 1000])).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), state.first_chunk.notified())
        .await
        .expect("upstream must see the first chunk while the upload goes on");
    let chunk = Bytes::from(vec![2u8; 1 << 20]);
    for _ in 0..16 {
        tx.send(chunk.clone()).await.unwrap();
    }
    drop(tx);
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, (1000 + 16 * (1u64 << 20)).to_string());

    // A large download passes whole.
    let n = 24 << 20;
    let req = Request::builder().uri(format!("http://{}/big?n={n}", proxy.listen_addr)).body(empty()).unwrap();
    let (status, body) = send(&c, req).await.unwrap();
    assert_eq!((status, body.len()), (200, n));

    let r = wait_records(&proxy, 3).await;
    assert_eq!(r[1].bytes_in, 1000 + 16 * (1 << 20));
    assert_eq!(r[2].bytes_out, n as u64);
}

#[tokio::test]
async fn next_5xx_answers_matching_requests_with_aws_errors() {
    let (up, state) = start_upstream().await;
    let proxy = start_proxy(up, Mode::Http).await;
    let c = client();

    let (status, faults) = admin(
        &proxy,
        "POST",
        "/faults",
        Some(json!({"next_5xx": 2, "error_status": 500, "match": {"service": "s3", "method": "PUT"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(faults["next_5xx"], 2);

    // Not matching: forwarded.
    let (status, _) = send(&c, ecr_call(&proxy, "X.PutImage")).await.unwrap();
    assert_eq!(status, 200);
    for _ in 0..2 {
        let (status, body) = send(&c, s3_put(&proxy, "/count", bytes_body("abc"))).await.unwrap();
        assert_eq!(status, 500);
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("<Error><Code>InternalError</Code>"), "{body}");
    }
    let (status, _) = send(&c, s3_put(&proxy, "/count", bytes_body("abc"))).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(state.hits.load(Ordering::SeqCst), 2, "injected errors never reach upstream");

    // JSON protocol errors for ECR-style calls, filtered by target.
    admin(
        &proxy,
        "POST",
        "/faults",
        Some(json!({"next_5xx": 1, "error_status": 503, "match": {"target_contains": "PutImage"}})),
    )
    .await;
    let (status, _) = send(&c, ecr_call(&proxy, "X.GetAuthorizationToken")).await.unwrap();
    assert_eq!(status, 200);
    let (status, body) = send(&c, ecr_call(&proxy, "X.PutImage")).await.unwrap();
    assert_eq!(status, 503);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["__type"], "ServerException");

    let r = wait_records(&proxy, 6).await;
    let faults: Vec<Option<&str>> = r.iter().map(|r| r.fault.as_deref()).collect();
    assert_eq!(faults, vec![None, Some("5xx"), Some("5xx"), None, None, Some("5xx")]);
    assert_eq!(r[1].status, 500);

    let (_, faults) = admin(&proxy, "DELETE", "/faults", None).await;
    assert_eq!(faults["next_5xx"], 0);
    assert!(faults["match"].is_null());
    let (status, err) = admin(&proxy, "POST", "/faults", Some(json!({"bogus": 1}))).await;
    assert_eq!(status, 400, "{err}");
}

#[tokio::test]
async fn cut_after_bytes_cuts_downloads_and_uploads_once() {
    let (up, state) = start_upstream().await;
    let proxy = start_proxy(up, Mode::Http).await;
    let c = client();

    admin(&proxy, "POST", "/faults", Some(json!({"cut_after_bytes": 100_000, "match": {"path_prefix": "/big"}}))).await;
    let big =
        |n: usize| Request::builder().uri(format!("http://{}/big?n={n}", proxy.listen_addr)).body(empty()).unwrap();
    // Below the limit: untouched, and the cut stays armed.
    let (status, body) = send(&c, big(50_000)).await.unwrap();
    assert_eq!((status, body.len()), (200, 50_000));
    // Over it: the client sees the connection drop mid-body.
    let resp = c.request(big(1 << 20)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let err = resp.into_body().collect().await;
    assert!(err.is_err(), "the download must be cut");
    // cut_times defaults to 1: the next one passes.
    let (status, body) = send(&c, big(1 << 20)).await.unwrap();
    assert_eq!((status, body.len()), (200, 1 << 20));

    // Upload cut: upstream gets at most the budget, the client an error.
    admin(
        &proxy,
        "POST",
        "/faults",
        Some(json!({"cut_after_bytes": 200_000, "cut_times": 1, "match": {"method": "PUT"}})),
    )
    .await;
    let result = send(&c, s3_put(&proxy, "/count", bytes_body(vec![0u8; 4 << 20]))).await;
    assert!(result.is_err(), "the upload must be cut: {result:?}");
    let received = state.received.load(Ordering::SeqCst);
    assert!(received <= 200_000, "upstream got {received} bytes");
    let (status, body) = send(&c, s3_put(&proxy, "/count", bytes_body(vec![0u8; 300_000]))).await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"300000"[..]));

    let r = wait_records(&proxy, 5).await;
    let faults: Vec<Option<&str>> = r.iter().map(|r| r.fault.as_deref()).collect();
    assert_eq!(faults, vec![None, Some("cut"), None, Some("cut"), None]);
    assert_eq!(r[1].bytes_out, 100_000);
    assert!(r[3].bytes_in <= 200_000);
    let (_, faults) = admin(&proxy, "GET", "/faults", None).await;
    assert_eq!(faults["cut_times"], 0);
}

#[tokio::test]
async fn refuse_and_latency() {
    let (up, state) = start_upstream().await;
    let proxy = start_proxy(up, Mode::Http).await;

    admin(&proxy, "POST", "/faults", Some(json!({"refuse": true}))).await;
    let req = Request::builder().uri(format!("http://{}/echo", proxy.listen_addr)).body(empty()).unwrap();
    assert!(send(&client(), req).await.is_err());
    assert_eq!(state.hits.load(Ordering::SeqCst), 0);

    // Refuse only matching requests.
    admin(&proxy, "POST", "/faults", Some(json!({"match": {"service": "ecr"}}))).await;
    assert!(send(&client(), ecr_call(&proxy, "X.Y")).await.is_err());
    let (status, _) = send(&client(), s3_put(&proxy, "/count", bytes_body("a"))).await.unwrap();
    assert_eq!(status, 200);

    admin(&proxy, "DELETE", "/faults", None).await;
    admin(&proxy, "POST", "/faults", Some(json!({"latency_ms": 300}))).await;
    let started = Instant::now();
    let (status, _) = send(&client(), s3_put(&proxy, "/count", bytes_body("a"))).await.unwrap();
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let r = wait_records(&proxy, 4).await;
    assert_eq!(r[0].fault.as_deref(), Some("refuse"));
    assert_eq!(r[1].fault.as_deref(), Some("refuse"));
    assert!(r[3].duration_ms >= 300);
}

#[tokio::test]
async fn upstream_down_answers_502() {
    // A port that was free a moment ago.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let proxy = start_proxy(addr, Mode::Http).await;
    let req = Request::builder().uri(format!("http://{}/x", proxy.listen_addr)).body(empty()).unwrap();
    let (status, _) = send(&client(), req).await.unwrap();
    assert_eq!(status, 502);
    let r = wait_records(&proxy, 1).await;
    assert_eq!(r[0].fault.as_deref(), Some("upstream_error"));
}

async fn start_tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tcp_mode_pipes_records_and_cuts() {
    let echo = start_tcp_echo().await;
    let proxy = start_proxy(echo, Mode::Tcp).await;

    let mut s = TcpStream::connect(proxy.listen_addr).await.unwrap();
    let data = vec![7u8; 300_000];
    let (mut r, mut w) = s.split();
    let (_, got) = tokio::join!(
        async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        },
        async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        }
    );
    assert_eq!(got, data);
    drop(s);

    admin(&proxy, "POST", "/faults", Some(json!({"cut_after_bytes": 10_000}))).await;
    let mut s = TcpStream::connect(proxy.listen_addr).await.unwrap();
    let (mut r, mut w) = s.split();
    let (_, got) = tokio::join!(
        async {
            // The proxy may close mid-write.
            let _ = w.write_all(&data).await;
        },
        async {
            let mut got = Vec::new();
            let _ = r.read_to_end(&mut got).await;
            got
        }
    );
    assert!(got.len() < 10_000, "cut after 10000 bytes both ways, got {}", got.len());
    drop(s);

    admin(&proxy, "DELETE", "/faults", None).await;
    admin(&proxy, "POST", "/faults", Some(json!({"refuse": true}))).await;
    let mut s = TcpStream::connect(proxy.listen_addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = s.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "a refused connection is closed at once");

    let r = wait_records(&proxy, 3).await;
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!((r[0].kind.as_str(), r[0].bytes_in, r[0].bytes_out), ("tcp", 300_000, 300_000));
    assert_eq!(r[1].fault.as_deref(), Some("cut"));
    assert!(r[1].bytes_in + r[1].bytes_out <= 10_000);
    assert_eq!(r[2].fault.as_deref(), Some("refuse"));
}

#[test]
fn command_line() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let c = Config::from_args(args(
        "--listen 127.0.0.1:1 --upstream localhost:2 --admin=127.0.0.1:3 --mode tcp --log /tmp/x",
    ))
    .unwrap();
    assert_eq!(c.mode, Mode::Tcp);
    assert_eq!(c.upstream, "localhost:2");
    assert_eq!(c.admin.port(), 3);
    assert!(Config::from_args(args("--listen 127.0.0.1:1 --upstream x:2")).is_err());
    assert!(Config::from_args(args("--listen 127.0.0.1:1 --upstream x --admin 127.0.0.1:3")).is_err());
    assert!(Config::from_args(args("--listen a --upstream x:1 --admin 127.0.0.1:3")).is_err());
    assert!(Config::from_args(args("--listen 127.0.0.1:1 --upstream x:1 --admin 127.0.0.1:3 --mode udp")).is_err());
}
