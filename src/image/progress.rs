//! BuildKit's progress (`moby.buildkit.trace` status messages: vertexes, statuses, logs, warnings) as
//! lines a person reads in an Actions log, in the style of `docker build --progress=plain` without its
//! ticks: a numbered line when a step starts, its own output, and a line when it ends (`CACHED`, its
//! duration, or its error). Statuses (context transfer, layer pulls, export) get one line when they end.

use std::collections::{HashMap, HashSet};

use bollard::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog, VertexStatus, VertexWarning};

use crate::format::human_bytes;
use crate::gha::{Annotation, Console};

/// BuildKit names the step that reads a cache source this way; its failure is not the build's.
const CACHE_IMPORT: &str = "importing cache manifest from ";

/// The step that failed the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedStep {
    /// BuildKit's name for it, e.g. `[build 3/5] RUN make`.
    pub name: String,
    pub error: String,
}

/// A cache source BuildKit could not read (missing, refused): the build goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnusedCacheSource {
    pub reference: String,
    pub error: String,
}

#[derive(Debug, Default)]
struct Step {
    /// `#N` in the log, given when the step is first shown.
    number: Option<u32>,
    name: String,
    announced: bool,
    done: bool,
    /// Start time in milliseconds since the epoch.
    started_ms: Option<i64>,
    /// Unfinished output lines, by stream (1 stdout, 2 stderr).
    partial: HashMap<i64, String>,
    /// Complete output lines that arrived before the step was announced.
    backlog: Vec<String>,
}

/// Turns status messages into log lines as they arrive.
pub(crate) struct Renderer<'a> {
    console: &'a Console,
    /// The Dockerfile as annotations name it.
    dockerfile: String,
    steps: HashMap<String, Step>,
    next_number: u32,
    statuses_done: HashSet<(String, String)>,
    failed: Option<FailedStep>,
    unused_cache: Vec<UnusedCacheSource>,
    /// Steps BuildKit reported CACHED.
    cached: Vec<String>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(console: &'a Console, dockerfile: impl Into<String>) -> Self {
        Self {
            console,
            dockerfile: dockerfile.into(),
            steps: HashMap::new(),
            next_number: 1,
            statuses_done: HashSet::new(),
            failed: None,
            unused_cache: Vec::new(),
            cached: Vec::new(),
        }
    }

    /// Shows one status message.
    pub(crate) fn handle(&mut self, status: &StatusResponse) {
        // Starts first and ends last, so a step's output sits between its two lines even when BuildKit
        // sends the output and the end in one message.
        for vertex in &status.vertexes {
            self.vertex_started(vertex);
        }
        for log in &status.logs {
            self.log(log);
        }
        for warning in &status.warnings {
            self.warning(warning);
        }
        for item in &status.statuses {
            self.status(item);
        }
        for vertex in &status.vertexes {
            self.vertex_ended(vertex);
        }
    }

    /// Prints what is left of unfinished output lines.
    pub(crate) fn finish(&mut self) {
        let mut digests: Vec<String> = self.steps.keys().cloned().collect();
        digests.sort_by_key(|d| self.steps.get(d).and_then(|s| s.number).unwrap_or(u32::MAX));
        for digest in digests {
            self.flush_output(&digest);
        }
    }

    /// The step that failed the build, if one did.
    pub(crate) fn failed(&self) -> Option<&FailedStep> {
        self.failed.as_ref()
    }

    /// Cache sources BuildKit could not use.
    #[cfg(test)]
    pub(crate) fn unused_cache(&self) -> &[UnusedCacheSource] {
        &self.unused_cache
    }

    /// One warning per cache source BuildKit could not use: the build went on without it.
    pub(crate) fn warn_unused_cache(&self) {
        for unused in &self.unused_cache {
            self.console.warning(
                format!(
                    "cache source {} could not be used ({}); building without it",
                    unused.reference,
                    unused.error.trim()
                ),
                None,
            );
        }
    }

    /// Names of the steps BuildKit took from its cache.
    pub(crate) fn cached(&self) -> &[String] {
        &self.cached
    }

    fn step(&mut self, digest: &str) -> &mut Step {
        self.steps.entry(digest.to_owned()).or_default()
    }

    fn number(&mut self, digest: &str) -> u32 {
        let next = self.next_number;
        let step = self.steps.entry(digest.to_owned()).or_default();
        match step.number {
            Some(n) => n,
            None => {
                step.number = Some(next);
                self.next_number += 1;
                next
            }
        }
    }

    fn vertex_started(&mut self, vertex: &Vertex) {
        let step = self.step(&vertex.digest);
        if !vertex.name.is_empty() {
            step.name.clone_from(&vertex.name);
        }
        if step.announced || step.done || vertex.started.is_none() || vertex.cached {
            return;
        }
        step.started_ms = vertex.started.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        if vertex.name.starts_with(CACHE_IMPORT) && !vertex.error.is_empty() {
            // Reported once, as a warning, when it ends.
            return;
        }
        step.announced = true;
        let backlog = std::mem::take(&mut step.backlog);
        let n = self.number(&vertex.digest);
        self.console.info(format!("#{n} {}", vertex.name));
        for line in backlog {
            self.console.info(format!("#{n} {line}"));
        }
    }

    fn vertex_ended(&mut self, vertex: &Vertex) {
        let step = self.step(&vertex.digest);
        if step.done {
            return;
        }
        if vertex.cached {
            step.done = true;
            let n = self.number(&vertex.digest);
            self.console.info(format!("#{n} {} CACHED", vertex.name));
            self.cached.push(vertex.name.clone());
            return;
        }
        let Some(completed) = &vertex.completed else { return };
        step.done = true;
        let completed_ms = completed.seconds * 1000 + i64::from(completed.nanos) / 1_000_000;
        let took = step.started_ms.map(|s| seconds(completed_ms - s)).unwrap_or_default();
        let announced = step.announced;
        if let Some(reference) = vertex.name.strip_prefix(CACHE_IMPORT)
            && !vertex.error.is_empty()
        {
            self.unused_cache.push(UnusedCacheSource { reference: reference.to_owned(), error: vertex.error.clone() });
            if announced {
                let n = self.number(&vertex.digest);
                self.console.info(format!("#{n} NOT USED"));
            }
            return;
        }
        self.flush_output(&vertex.digest);
        let n = self.number(&vertex.digest);
        if !announced {
            self.console.info(format!("#{n} {}", vertex.name));
        }
        if vertex.error.is_empty() {
            self.console.info(format!("#{n} DONE {took}"));
        } else if is_cancellation(&vertex.error) {
            // Steps running beside the one that failed are stopped; their "error" is only that.
            self.console.info(format!("#{n} CANCELED"));
        } else {
            self.console.info(format!("#{n} ERROR: {}", vertex.error));
            if self.failed.is_none() {
                self.failed = Some(FailedStep { name: vertex.name.clone(), error: vertex.error.clone() });
            }
        }
    }

    fn log(&mut self, log: &VertexLog) {
        let text = String::from_utf8_lossy(&log.msg);
        let step = self.step(&log.vertex);
        let pending = step.partial.entry(log.stream).or_default();
        pending.push_str(&text);
        let mut complete = Vec::new();
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            complete.push(terminal_line(&line));
        }
        for line in complete {
            self.output_line(&log.vertex, line);
        }
    }

    fn output_line(&mut self, digest: &str, line: String) {
        let step = self.step(digest);
        if !step.announced {
            step.backlog.push(line);
            return;
        }
        let n = self.number(digest);
        self.console.info(format!("#{n} {line}"));
    }

    fn flush_output(&mut self, digest: &str) {
        let Some(step) = self.steps.get_mut(digest) else { return };
        let mut streams: Vec<i64> = step.partial.keys().copied().collect();
        streams.sort_unstable();
        let mut lines: Vec<String> = std::mem::take(&mut step.backlog);
        for stream in streams {
            if let Some(rest) = step.partial.remove(&stream).filter(|r| !r.is_empty()) {
                lines.push(terminal_line(&rest));
            }
        }
        if lines.is_empty() {
            return;
        }
        let n = self.number(digest);
        for line in lines {
            self.console.info(format!("#{n} {line}"));
        }
    }

    fn status(&mut self, status: &VertexStatus) {
        let Some(completed) = &status.completed else { return };
        if !self.statuses_done.insert((status.vertex.clone(), status.id.clone())) {
            return;
        }
        let mut line = status.id.trim_end().to_owned();
        if status.current > 0 {
            line.push(' ');
            line.push_str(&human_bytes(status.current.unsigned_abs()));
        }
        if let Some(started) = &status.started {
            let ms =
                (completed.seconds - started.seconds) * 1000 + i64::from(completed.nanos - started.nanos) / 1_000_000;
            line.push(' ');
            line.push_str(&seconds(ms));
        }
        let n = self.number(&status.vertex);
        self.console.info(format!("#{n} {line}"));
    }

    fn warning(&mut self, warning: &VertexWarning) {
        let message = String::from_utf8_lossy(&warning.short).trim().to_owned();
        let line = warning
            .ranges
            .first()
            .and_then(|r| r.start.as_ref())
            .and_then(|p| u32::try_from(p.line).ok())
            .filter(|l| *l > 0);
        let annotation =
            Annotation { title: Some("Dockerfile".to_owned()), file: Some(self.dockerfile.clone()), line, col: None };
        self.console.warning(message, Some(&annotation));
    }
}

/// What a terminal would show of a line: progress bars redraw it with carriage returns.
fn terminal_line(raw: &str) -> String {
    let line = raw.trim_end_matches(['\n', '\r']);
    line.rsplit('\r').next().unwrap_or(line).to_owned()
}

fn is_cancellation(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e == "context canceled" || e.ends_with(": context canceled") || e == "canceled"
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms.max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vertex as BuildKit sends it; times in milliseconds.
    fn vertex(digest: &str, name: &str, started: Option<i64>, completed: Option<i64>) -> Vertex {
        let mut v = Vertex { digest: digest.to_owned(), name: name.to_owned(), ..Vertex::default() };
        if let Some(ms) = started {
            v.started = Some(Default::default());
            if let Some(t) = v.started.as_mut() {
                t.seconds = ms / 1000;
                t.nanos = ((ms % 1000) * 1_000_000) as i32;
            }
        }
        if let Some(ms) = completed {
            v.completed = v.started.or(Some(Default::default()));
            if let Some(t) = v.completed.as_mut() {
                t.seconds = ms / 1000;
                t.nanos = ((ms % 1000) * 1_000_000) as i32;
            }
        }
        v
    }

    fn log(digest: &str, stream: i64, msg: &str) -> VertexLog {
        VertexLog { vertex: digest.to_owned(), stream, msg: msg.as_bytes().to_vec(), ..VertexLog::default() }
    }

    fn vertexes(v: Vec<Vertex>) -> StatusResponse {
        StatusResponse { vertexes: v, ..StatusResponse::default() }
    }

    #[test]
    fn one_line_per_start_and_end_with_the_steps_output_between() {
        let (console, out) = Console::captured(true, false);
        let mut r = Renderer::new(&console, "app/Dockerfile");
        let run = "[base 3/6] RUN echo line1; echo line2 >&2";
        // Queued, then started: only the start is shown.
        r.handle(&vertexes(vec![vertex("a", run, None, None)]));
        r.handle(&vertexes(vec![vertex("a", run, Some(1_000), None)]));
        r.handle(&StatusResponse { logs: vec![log("a", 2, "line2\n"), log("a", 1, "li")], ..Default::default() });
        // The end arrives with the rest of the output.
        r.handle(&StatusResponse {
            vertexes: vec![vertex("a", run, Some(1_000), Some(2_250))],
            logs: vec![log("a", 1, "ne1\nno newline")],
            ..Default::default()
        });
        // Repeats of a finished step change nothing.
        r.handle(&vertexes(vec![vertex("a", run, Some(1_000), Some(2_250))]));
        r.handle(&vertexes(vec![{
            let mut v = vertex("b", "[base 1/6] COPY busybox /bin/busybox", Some(900), Some(900));
            v.cached = true;
            v
        }]));
        r.finish();
        assert_eq!(
            out.text(),
            "#1 [base 3/6] RUN echo line1; echo line2 >&2\n#1 line2\n#1 line1\n#1 no newline\n#1 DONE 1.2s\n\
             #2 [base 1/6] COPY busybox /bin/busybox CACHED\n"
        );
        assert_eq!(r.cached(), ["[base 1/6] COPY busybox /bin/busybox"]);
        assert!(r.failed().is_none());
    }

    #[test]
    fn statuses_show_once_when_done_and_progress_ticks_not_at_all() {
        let (console, out) = Console::captured(false, false);
        let mut r = Renderer::new(&console, "Dockerfile");
        r.handle(&vertexes(vec![vertex("x", "[internal] load build context", Some(0), None)]));
        for current in (0..1000).map(|i| i * 1_000_000) {
            let tick = VertexStatus {
                id: "transferring context:".into(),
                vertex: "x".into(),
                current,
                ..VertexStatus::default()
            };
            r.handle(&StatusResponse { statuses: vec![tick], ..Default::default() });
        }
        let mut done = VertexStatus {
            id: "transferring context:".into(),
            vertex: "x".into(),
            current: 1_073_741_824,
            ..Default::default()
        };
        let ends = vertex("x", "", Some(0), Some(3_400));
        done.started = ends.started;
        done.completed = ends.completed;
        r.handle(&StatusResponse { statuses: vec![done.clone(), done], ..Default::default() });
        r.handle(&vertexes(vec![vertex("x", "[internal] load build context", Some(0), Some(3_500))]));
        assert_eq!(
            out.text(),
            "#1 [internal] load build context\n#1 transferring context: 1.1 GB 3.4s\n#1 DONE 3.5s\n"
        );
    }

    #[test]
    fn a_failed_step_is_recorded_and_its_siblings_are_cancelled() {
        let (console, out) = Console::captured(false, false);
        let mut r = Renderer::new(&console, "Dockerfile");
        let mut failed = vertex("f", "[2/3] RUN exit 3", Some(0), Some(100));
        failed.error = "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3".into();
        let mut sibling = vertex("s", "[other 1/1] RUN sleep 60", Some(0), Some(120));
        sibling.error = "context canceled".into();
        r.handle(&vertexes(vec![vertex("f", "[2/3] RUN exit 3", Some(0), None)]));
        r.handle(&StatusResponse { logs: vec![log("f", 1, "about to fail\n")], ..Default::default() });
        r.handle(&vertexes(vec![failed, sibling]));
        let text = out.text();
        assert_eq!(
            text,
            "#1 [2/3] RUN exit 3\n#1 about to fail\n#2 [other 1/1] RUN sleep 60\n\
             #1 ERROR: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3\n#2 CANCELED\n"
        );
        assert_eq!(r.failed().map(|f| f.name.as_str()), Some("[2/3] RUN exit 3"));
    }

    #[test]
    fn an_unreadable_cache_source_is_noted_not_shown_as_an_error() {
        let (console, out) = Console::captured(false, false);
        let mut r = Renderer::new(&console, "Dockerfile");
        let name = "importing cache manifest from 127.0.0.1:5000/app:nope";
        let mut missing = vertex("c", name, Some(0), Some(10));
        missing.error = "failed to configure registry cache importer: 127.0.0.1:5000/app:nope: not found".into();
        r.handle(&vertexes(vec![missing]));
        let found = "importing cache manifest from 127.0.0.1:5000/app:v1";
        r.handle(&vertexes(vec![vertex("d", found, Some(0), None)]));
        r.handle(&vertexes(vec![vertex("d", found, Some(0), Some(300))]));
        assert_eq!(out.text(), format!("#1 {found}\n#1 DONE 0.3s\n"));
        assert_eq!(r.unused_cache()[0].reference, "127.0.0.1:5000/app:nope");
        assert!(r.unused_cache()[0].error.ends_with("not found"));
        assert!(r.failed().is_none());
    }

    #[test]
    fn warnings_point_at_their_dockerfile_line() {
        let (console, out) = Console::captured(true, false);
        let mut r = Renderer::new(&console, "app/Dockerfile");
        let mut warning = VertexWarning {
            short: b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match".to_vec(),
            ..Default::default()
        };
        warning.ranges.push(Default::default());
        if let Some(range) = warning.ranges.first_mut() {
            range.start = Some(Default::default());
            if let Some(start) = range.start.as_mut() {
                start.line = 4;
            }
        }
        r.handle(&StatusResponse { warnings: vec![warning], ..Default::default() });
        assert_eq!(
            out.text(),
            "::warning file=app/Dockerfile,line=4,title=Dockerfile::FromAsCasing: 'as' and 'FROM' keywords' casing do not match\n"
        );
    }

    #[test]
    fn progress_bars_show_their_last_state() {
        assert_eq!(terminal_line("10%\r50%\r100%\n"), "100%");
        assert_eq!(terminal_line("plain\r\n"), "plain");
    }
}
