//! Shared pieces of the in-process tests: an ebsim on a free port with an in-memory S3 and a fake
//! runtime whose "instances" are tiny HTTP servers in this process.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ebsim::Config;
use ebsim::bundle::Plan;
use ebsim::deploy::{Failure, Instance, LaunchSpec, Liveness, Runtime};
use ebsim::store::MemoryStore;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

/// Instances of the fake runtime: each serves `version <label>`; an image name containing
/// "unhealthy" answers 500, one containing "crash" stops at once.
#[derive(Default)]
pub struct FakeRuntime {
    pub running: Mutex<BTreeMap<String, (String, JoinHandle<()>)>>,
    pub launches: Mutex<Vec<String>>,
    /// What each instance "wrote", by container name and by id (kept after removal, as Docker's is).
    pub outputs: Mutex<BTreeMap<String, Vec<String>>>,
    /// The environment variables of each launch, in launch order.
    pub env_vars: Mutex<Vec<Vec<(String, String)>>>,
}

impl FakeRuntime {
    /// The variables the last launched instance got, sorted (FakeRuntime).
    pub fn last_env(&self) -> Vec<(String, String)> {
        let mut v = self.env_vars.lock().unwrap().last().cloned().unwrap_or_default();
        v.sort();
        v
    }

    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

impl Runtime for FakeRuntime {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Instance, Failure>> {
        Box::pin(async move {
            let image = match &spec.plan {
                Plan::Image(i) => i.name.clone(),
                other => return Err(Failure::Generic(format!("fake runtime cannot run {other:?}"))),
            };
            self.launches.lock().unwrap().push(image.clone());
            self.env_vars.lock().unwrap().push(spec.env_vars.clone());
            if image.contains("unknown") {
                return Err(Failure::Generic(format!("manifest unknown: {image}")));
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let status = if image.contains("unhealthy") { 500 } else { 200 };
            let body = format!("version {}", spec.label);
            let task = tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else { continue };
                    let body = body.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |_req| {
                            let body = body.clone();
                            async move {
                                Ok::<_, Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::from(body)))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ =
                            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(conn), svc).await;
                    });
                }
            });
            let id = format!("{}-id", spec.container_name);
            let mut out = vec![format!("fake instance of {} starting on {addr}", spec.label)];
            if image.contains("unhealthy") {
                out.push("app: every request fails: required setting DATABASE_URL is not set".into());
            }
            if image.contains("crash") {
                out.push("app: fatal: required setting DATABASE_URL is not set; exiting".into());
            }
            let mut outputs = self.outputs.lock().unwrap();
            outputs.insert(id.clone(), out.clone());
            outputs.insert(spec.container_name.clone(), out);
            drop(outputs);
            if image.contains("crash") {
                task.abort();
            } else {
                self.running.lock().unwrap().insert(id.clone(), (spec.container_name.clone(), task));
            }
            Ok(Instance { container_id: id, addr })
        })
    }

    fn liveness<'a>(&'a self, container: &'a str) -> BoxFuture<'a, Liveness> {
        let alive = self.running.lock().unwrap().contains_key(container);
        Box::pin(async move { if alive { Liveness::Running } else { Liveness::Gone("exit code 1".into()) } })
    }

    fn remove<'a>(&'a self, container: &'a str) -> BoxFuture<'a, ()> {
        let mut map = self.running.lock().unwrap();
        let key = map.iter().find(|(id, (name, _))| *id == container || name == container).map(|(id, _)| id.clone());
        if let Some(k) = key
            && let Some((_, task)) = map.remove(&k)
        {
            task.abort();
        }
        Box::pin(async {})
    }

    fn remove_all(&self) -> BoxFuture<'_, ()> {
        let mut map = self.running.lock().unwrap();
        for (_, (_, t)) in std::mem::take(&mut *map) {
            t.abort();
        }
        Box::pin(async {})
    }

    fn output<'a>(&'a self, container: &'a str, lines: usize) -> BoxFuture<'a, Vec<String>> {
        let out = self.outputs.lock().unwrap().get(container).cloned().unwrap_or_default();
        Box::pin(async move { out[out.len().saturating_sub(lines)..].to_vec() })
    }
}

/// An ebsim served in-process.
pub struct Harness {
    pub addr: SocketAddr,
    /// The CNAME proxy.
    pub proxy: SocketAddr,
    pub sim: Arc<ebsim::Sim>,
    pub store: Arc<MemoryStore>,
    pub runtime: Arc<FakeRuntime>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// An API answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub header_rid: String,
    pub body: String,
}

impl Answer {
    /// Text of the first `<tag>`.
    pub fn tag(&self, tag: &str) -> Option<String> {
        tag_in(&self.body, tag)
    }

    /// Texts of every `<tag>`.
    pub fn tags(&self, tag: &str) -> Vec<String> {
        tags_in(&self.body, tag)
    }

    pub fn code(&self) -> Option<String> {
        self.tag("Code")
    }
}

/// An API answer in the JSON form.
#[derive(Debug)]
pub struct JsonAnswer {
    pub status: u16,
    pub content_type: String,
    pub header_rid: String,
    pub body: serde_json::Value,
}

impl JsonAnswer {
    /// `OpResponse.OpResult`, after checking the envelope: status 200, JSON content type, the
    /// request id of the header in `ResponseMetadata`.
    pub fn result(&self, op: &str) -> &serde_json::Value {
        assert_eq!(self.status, 200, "{op}: {:#}", self.body);
        assert_eq!(self.content_type, "application/json");
        let envelope = &self.body[format!("{op}Response")];
        assert_eq!(
            envelope["ResponseMetadata"]["RequestId"].as_str(),
            Some(self.header_rid.as_str()),
            "{:#}",
            self.body
        );
        &envelope[format!("{op}Result")]
    }

    /// `(Error.Code, Error.Message)` of an error answer, after checking its shape.
    pub fn error(&self) -> (String, String) {
        assert!(self.status >= 400, "{:#}", self.body);
        assert_eq!(self.content_type, "application/json");
        assert_eq!(self.body["RequestId"].as_str(), Some(self.header_rid.as_str()), "{:#}", self.body);
        let e = &self.body["Error"];
        assert!(matches!(e["Type"].as_str(), Some("Sender" | "Receiver")), "{:#}", self.body);
        (e["Code"].as_str().unwrap_or_default().to_string(), e["Message"].as_str().unwrap_or_default().to_string())
    }
}

pub fn tag_in(body: &str, tag: &str) -> Option<String> {
    tags_in(body, tag).into_iter().next()
}

pub fn tags_in(body: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// Reads an object of the in-memory S3 as text.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<String> {
        use ebsim::store::Store;
        self.store.get(bucket, key).await.ok().map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config::for_tests();
        cfg.timing.step = ebsim::config::Span::fixed(20);
        cfg.timing.processing = ebsim::config::Span::fixed(20);
        cfg.timing.red_ms = 1_500;
        cfg.timing.health_timeout_ms = 1_500;
        tweak(&mut cfg);
        let store = Arc::new(MemoryStore::default());
        let runtime = Arc::new(FakeRuntime::default());
        let sim = ebsim::Sim::new(cfg, store.clone(), runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ebsim::server::serve(sim.clone(), listener, std::future::pending()));
        let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = proxy_listener.local_addr().unwrap();
        tokio::spawn(ebsim::cname_proxy::serve(sim.clone(), proxy_listener));
        let http = Client::builder(TokioExecutor::new()).build_http();
        Self { addr, proxy, sim, store, runtime, http }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// POSTs an API call (`Version` added).
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action).append_pair("Version", "2010-12-01");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        self.post_raw(form.finish()).await
    }

    /// POSTs an API call asking for the JSON form (`Accept: application/json`).
    pub async fn call_json(&self, action: &str, params: &[(&str, &str)]) -> JsonAnswer {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action).append_pair("Version", "2010-12-01");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let req = hyper::Request::post(self.url())
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(form.finish())))
            .unwrap();
        let resp = self.http.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let header = |n: &str| resp.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let (content_type, header_rid) = (header("content-type"), header("x-amzn-RequestId"));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{action}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        JsonAnswer { status, content_type, header_rid, body }
    }

    pub async fn post_raw(&self, body: String) -> Answer {
        let req = hyper::Request::post(self.url())
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = self.http.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let header_rid =
            resp.headers().get("x-amzn-RequestId").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Answer { status, header_rid, body }
    }

    /// GETs `http://{host}{path}` through the CNAME proxy, as `curl -x` sends it (absolute URI).
    pub async fn get_via_proxy(&self, host: &str, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.proxy).await.unwrap();
        let req = format!(
            "GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// GETs a URL, returning status and body.
    pub async fn get(&self, url: &str) -> (u16, String) {
        let req = hyper::Request::get(url).body(Full::new(Bytes::new())).unwrap();
        let resp = self.http.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        (status, body)
    }

    /// Admin call with JSON.
    pub async fn admin(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}/_ebsim{path}", self.url()))
            .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .unwrap();
        let resp = self.http.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// Puts a Dockerrun v1 bundle for `image` into the memory store.
    pub fn put_dockerrun(&self, bucket: &str, key: &str, image: &str) {
        let json = format!(
            r#"{{"AWSEBDockerrunVersion":"1","Image":{{"Name":"{image}","Update":"true"}},"Ports":[{{"ContainerPort":"80"}}]}}"#
        );
        self.store.insert(bucket, key, ebsim::bundle::zip_of(&[("Dockerrun.aws.json", json.as_bytes())]));
    }

    /// Creates app + version (bundle for `image`).
    pub async fn version(&self, app: &str, label: &str, image: &str) {
        let key = format!("{app}/{label}.zip");
        self.put_dockerrun("bucket", &key, image);
        let a = self
            .call(
                "CreateApplicationVersion",
                &[
                    ("ApplicationName", app),
                    ("VersionLabel", label),
                    ("SourceBundle.S3Bucket", "bucket"),
                    ("SourceBundle.S3Key", &key),
                    ("AutoCreateApplication", "true"),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }

    /// Polls DescribeEnvironments until the environment has `status`; its answer.
    pub async fn wait_status(&self, env: &str, status: &str) -> Answer {
        for _ in 0..300 {
            let a = self.call("DescribeEnvironments", &[("EnvironmentNames.member.1", env)]).await;
            if a.tag("Status").as_deref() == Some(status) {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{env} never reached {status}");
    }

    /// Creates a Ready environment (sample application).
    pub async fn ready_env(&self, app: &str, env: &str) {
        let a = self
            .call(
                "CreateEnvironment",
                &[
                    ("ApplicationName", app),
                    ("EnvironmentName", env),
                    ("SolutionStackName", "64bit Amazon Linux 2023 v4.3.0 running Docker"),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        self.wait_status(env, "Ready").await;
    }

    /// Events of an environment, newest first, as (severity, message, request id).
    pub async fn events(&self, env: &str) -> Vec<(String, String, Option<String>)> {
        let a = self.call("DescribeEvents", &[("EnvironmentName", env)]).await;
        tags_in(&a.body, "member")
            .into_iter()
            .map(|m| (tag_in(&m, "Severity").unwrap(), tag_in(&m, "Message").unwrap(), tag_in(&m, "RequestId")))
            .collect()
    }
}
