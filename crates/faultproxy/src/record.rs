//! What the proxy saw: one record per HTTP request or TCP connection, kept in memory and optionally
//! appended to a JSON-lines log.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Oldest records are dropped past this many, so a long soak cannot grow the proxy without bound.
const MAX_RECORDS: usize = 100_000;

/// One forwarded (or refused, failed, cut) request or connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Increasing from 1 in the order records complete, so `?since=SEQ` never skips one.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the request or connection arrived.
    pub time_ms: u64,
    pub duration_ms: u64,
    /// `http` or `tcp`.
    pub kind: String,
    /// HTTP method; empty for TCP connections.
    pub method: String,
    pub path: String,
    pub query: String,
    /// The signing service from the SigV4 credential scope (`s3`, `ecr`, ...).
    pub service: Option<String>,
    /// The `X-Amz-Target` header (JSON protocol operations).
    pub target: Option<String>,
    /// HTTP status sent to the client; 0 when none was (refused, cut, TCP).
    pub status: u16,
    /// Body bytes forwarded from the client upstream (TCP: all bytes).
    pub bytes_in: u64,
    /// Body bytes forwarded from upstream to the client (TCP: all bytes).
    pub bytes_out: u64,
    /// The fault applied, if any: `5xx`, `cut`, `refuse`, or `upstream_error`.
    pub fault: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Thread-safe store of records plus the optional log file.
pub struct Recorder {
    inner: Mutex<Inner>,
}

struct Inner {
    next_seq: u64,
    records: VecDeque<Record>,
    log: Option<LineWriter<File>>,
}

impl Recorder {
    /// A recorder that also appends each record to `log` (created if missing).
    pub fn new(log: Option<&Path>) -> anyhow::Result<Self> {
        let log = match log {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("failed to open log file {}", path.display()))?;
                Some(LineWriter::new(file))
            }
            None => None,
        };
        Ok(Self { inner: Mutex::new(Inner { next_seq: 1, records: VecDeque::new(), log }) })
    }

    /// Assigns the next sequence number and stores the record.
    pub fn push(&self, mut record: Record) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        record.seq = inner.next_seq;
        inner.next_seq += 1;
        if let Some(log) = inner.log.as_mut() {
            // A full disk must not take the proxy down: the in-memory copy still answers.
            if let Ok(line) = serde_json::to_string(&record) {
                let _ = writeln!(log, "{line}");
            }
        }
        if inner.records.len() >= MAX_RECORDS {
            inner.records.pop_front();
        }
        inner.records.push_back(record);
    }

    /// Records with `seq > since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Record> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.records.iter().filter(|r| r.seq > since).cloned().collect()
    }

    /// Forgets stored records; sequence numbers keep increasing.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_filters_and_seq_increases() {
        let recorder = Recorder::new(None).unwrap();
        for path in ["/a", "/b", "/c"] {
            recorder.push(Record { path: path.into(), ..Record::default() });
        }
        let all = recorder.since(0);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let later = recorder.since(2);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].path, "/c");
        recorder.clear();
        recorder.push(Record::default());
        assert_eq!(recorder.since(0)[0].seq, 4);
    }

    #[test]
    fn log_file_gets_json_lines() {
        let dir = std::env::temp_dir().join(format!("faultproxy-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let _ = std::fs::remove_file(&path);
        let recorder = Recorder::new(Some(&path)).unwrap();
        recorder.push(Record { method: "GET".into(), ..Record::default() });
        recorder.push(Record::default());
        drop(recorder);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Record> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].method, "GET");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
