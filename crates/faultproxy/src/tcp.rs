//! TCP mode: a byte pipe (for the Docker registry), one record per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::faults::FaultState;
use crate::record::{Record, Recorder, now_ms};

/// State shared by every connection of the TCP proxy.
pub(crate) struct TcpProxy {
    pub recorder: Arc<Recorder>,
    pub faults: Arc<FaultState>,
    pub upstream: String,
}

/// Accepts connections until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<TcpProxy>) {
    loop {
        let stream = crate::accept(&listener).await;
        let proxy = proxy.clone();
        tokio::spawn(async move { proxy.connection(stream).await });
    }
}

/// Why a connection's pumps stop early.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    No,
    Failed,
    Cut,
}

/// Byte budget for one connection, both directions together.
struct Budget {
    limit: Option<u64>,
    forwarded: AtomicU64,
}

impl TcpProxy {
    async fn connection(&self, client: TcpStream) {
        let started = Instant::now();
        let mut record = Record { time_ms: now_ms(), kind: "tcp".into(), ..Record::default() };
        let decision = self.faults.decide(None);
        if decision.refuse {
            drop(client);
            record.fault = Some("refuse".into());
            self.recorder.push(record);
            return;
        }
        if let Some(latency) = decision.latency {
            tokio::time::sleep(latency).await;
        }
        let upstream = match TcpStream::connect(&self.upstream).await {
            Ok(s) => s,
            Err(err) => {
                eprintln!("faultproxy: connect to {} failed: {err}", self.upstream);
                record.fault = Some("upstream_error".into());
                record.duration_ms = started.elapsed().as_millis() as u64;
                self.recorder.push(record);
                return;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let budget = Budget { limit: decision.cut_after, forwarded: AtomicU64::new(0) };
        let (stop_tx, stop_rx) = watch::channel(Stop::No);
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let (bytes_in, bytes_out) = tokio::join!(
            self.pump(client_read, upstream_write, &budget, &stop_tx, stop_rx.clone()),
            self.pump(upstream_read, client_write, &budget, &stop_tx, stop_rx),
        );
        // All four halves are dropped here, which closes both connections.
        record.bytes_in = bytes_in;
        record.bytes_out = bytes_out;
        if *stop_tx.borrow() == Stop::Cut {
            record.fault = Some("cut".into());
        }
        record.duration_ms = started.elapsed().as_millis() as u64;
        self.recorder.push(record);
    }

    /// Copies one direction until EOF, an error or a cut; returns the bytes forwarded.
    async fn pump(
        &self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        budget: &Budget,
        stop_tx: &watch::Sender<Stop>,
        mut stop_rx: watch::Receiver<Stop>,
    ) -> u64 {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let step = async {
                let n = from.read(&mut buf).await?;
                if n == 0 {
                    to.shutdown().await?;
                    return Ok::<_, std::io::Error>(None);
                }
                let mut allowed = n;
                if let Some(limit) = budget.limit {
                    let before = budget.forwarded.fetch_add(n as u64, Ordering::Relaxed);
                    if before + n as u64 > limit && (*stop_tx.borrow() == Stop::Cut || self.faults.take_cut()) {
                        allowed = limit.saturating_sub(before) as usize;
                    }
                }
                to.write_all(&buf[..allowed]).await?;
                Ok(Some((allowed, allowed < n)))
            };
            tokio::select! {
                step = step => match step {
                    Ok(Some((n, cut))) => {
                        total += n as u64;
                        if cut {
                            stop_tx.send_replace(Stop::Cut);
                            return total;
                        }
                    }
                    Ok(None) => return total,
                    Err(_) => {
                        // A reset on one side ends the other too, instead of idling on it.
                        stop_tx.send_if_modified(|stop| {
                            let first = *stop == Stop::No;
                            if first {
                                *stop = Stop::Failed;
                            }
                            first
                        });
                        return total;
                    }
                },
                _ = stop_rx.wait_for(|stop| *stop != Stop::No) => return total,
            }
        }
    }
}
