//! Each environment's loopback "load balancer": a TCP proxy on 127.0.0.1 that forwards to the
//! current instance, or serves the built-in sample application before any version runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Where the proxy sends connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The built-in sample application page.
    Sample,
    /// A running instance.
    Instance(SocketAddr),
    /// Nothing (terminated): connections are closed.
    Down,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: Arc<RwLock<Target>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port, serving the sample page for environment `env`.
    pub async fn start(env: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let target = Arc::new(RwLock::new(Target::Sample));
        let page: Bytes = sample_page(env).into();
        let t = Arc::clone(&target);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { continue };
                let current = *t.read().unwrap_or_else(|p| p.into_inner());
                let page = page.clone();
                tokio::spawn(async move {
                    match current {
                        Target::Sample => serve_sample(conn, page).await,
                        Target::Instance(to) => forward(conn, to).await,
                        Target::Down => drop(conn),
                    }
                });
            }
        });
        Ok(Self { addr, target, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new connections to `target`.
    pub fn set_target(&self, target: Target) {
        *self.target.write().unwrap_or_else(|p| p.into_inner()) = target;
    }

    /// Where new connections go.
    pub fn target(&self) -> Target {
        *self.target.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, to: SocketAddr) {
    match TcpStream::connect(to).await {
        Ok(mut upstream) => {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(e) => {
            tracing::warn!("proxy could not reach instance {to}: {e}");
            let body = "502 Bad Gateway\n";
            let resp = format!(
                "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::io::AsyncWriteExt::write_all(&mut client, resp.as_bytes()).await;
        }
    }
}

async fn serve_sample(conn: TcpStream, page: Bytes) {
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        let page = page.clone();
        async move {
            // `connection: close` so a kept-alive client reaches the real instance after a deploy.
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .header("connection", "close")
                    .body(Full::new(page))
                    .unwrap_or_default(),
            )
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(conn), service)
        .await;
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
