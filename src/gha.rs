//! GitHub Actions runner I/O: workflow commands on stdout, file commands (`GITHUB_OUTPUT`,
//! `GITHUB_STEP_SUMMARY`), and a [`Console`] that speaks plain text outside Actions.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

/// Escapes a workflow-command message (`%`, CR, LF) as the runner expects.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow-command property value (data escapes plus `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Where an `::error`/`::warning` annotation points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotation {
    pub title: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub col: Option<u32>,
}

impl Annotation {
    /// An annotation with only a title.
    pub fn titled(title: impl Into<String>) -> Self {
        Self { title: Some(title.into()), ..Self::default() }
    }

    fn properties(&self) -> String {
        let mut props = Vec::new();
        if let Some(file) = &self.file {
            props.push(format!("file={}", escape_property(file)));
        }
        if let Some(line) = self.line {
            props.push(format!("line={line}"));
        }
        if let Some(col) = self.col {
            props.push(format!("col={col}"));
        }
        if let Some(title) = &self.title {
            props.push(format!("title={}", escape_property(title)));
        }
        props.join(",")
    }
}

/// Renders one workflow command line, e.g. `::error title=T::message`.
pub fn command(name: &str, annotation: Option<&Annotation>, message: &str) -> String {
    let props = annotation.map(Annotation::properties).unwrap_or_default();
    if props.is_empty() {
        format!("::{name}::{}", escape_data(message))
    } else {
        format!("::{name} {props}::{}", escape_data(message))
    }
}

/// User-facing output. In Actions it emits workflow commands; elsewhere plain, readable lines.
/// Every line it prints has registered secrets replaced by `***`, in both modes.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    actions: bool,
    debug: bool,
    secrets: Mutex<Vec<String>>,
    out: Mutex<Box<dyn Write + Send>>,
}

/// Closes a log group when dropped.
pub struct Group {
    console: Option<Console>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(console) = self.console.take() {
            console.raw("::endgroup::");
        }
    }
}

impl Console {
    /// A console writing to stdout.
    pub fn stdout(actions: bool, debug: bool) -> Self {
        Self::with_writer(actions, debug, Box::new(std::io::stdout()))
    }

    /// A console writing to any sink (tests capture output this way).
    pub fn with_writer(actions: bool, debug: bool, out: Box<dyn Write + Send>) -> Self {
        Self { inner: Arc::new(Inner { actions, debug, secrets: Mutex::new(Vec::new()), out: Mutex::new(out) }) }
    }

    /// True when running under GitHub Actions (workflow commands are understood).
    pub fn is_actions(&self) -> bool {
        self.inner.actions
    }

    /// Registers a secret: in Actions `::add-mask::` is emitted at once, before the value can appear
    /// anywhere; in every mode later lines are redacted locally too.
    pub fn mask(&self, secret: &str) {
        let secret = secret.trim();
        // Masking tiny strings would redact ordinary words and numbers all over the log.
        if secret.len() < 4 {
            return;
        }
        {
            let mut secrets = lock(&self.inner.secrets);
            if secrets.iter().any(|s| s == secret) {
                return;
            }
            secrets.push(secret.to_owned());
            for line in secret.lines().map(str::trim).filter(|l| l.len() >= 4) {
                if !secrets.iter().any(|s| s == line) {
                    secrets.push(line.to_owned());
                }
            }
            // Longest first, so a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        if self.inner.actions {
            self.write_line(&format!("::add-mask::{}", escape_data(secret)));
        }
    }

    /// Replaces every registered secret in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let secrets = lock(&self.inner.secrets);
        let mut text = text.to_owned();
        for secret in secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    /// An ordinary log line.
    pub fn info(&self, message: impl AsRef<str>) {
        let message = self.redact(message.as_ref());
        for line in message.lines() {
            // A user-controlled line starting with `::` would be taken for a workflow command.
            if self.inner.actions && line.trim_start().starts_with("::") {
                self.raw(&format!(" {line}"));
            } else {
                self.raw(line);
            }
        }
        if message.is_empty() {
            self.raw("");
        }
    }

    /// A diagnostic line, shown only in debug runs (`RUNNER_DEBUG=1`) or with `--debug`.
    pub fn debug(&self, message: impl AsRef<str>) {
        let message = self.redact(message.as_ref());
        if self.inner.actions {
            self.raw(&command("debug", None, &message));
        } else if self.inner.debug {
            for line in message.lines() {
                self.raw(&format!("debug: {line}"));
            }
        }
    }

    /// A notice annotation in Actions; a plain line otherwise.
    pub fn notice(&self, message: impl AsRef<str>, annotation: Option<&Annotation>) {
        self.annotate("notice", message.as_ref(), annotation);
    }

    /// A warning annotation in Actions; `warning: …` otherwise.
    pub fn warning(&self, message: impl AsRef<str>, annotation: Option<&Annotation>) {
        self.annotate("warning", message.as_ref(), annotation);
    }

    /// An error annotation in Actions; `error: …` otherwise.
    pub fn error(&self, message: impl AsRef<str>, annotation: Option<&Annotation>) {
        self.annotate("error", message.as_ref(), annotation);
    }

    fn annotate(&self, kind: &str, message: &str, annotation: Option<&Annotation>) {
        let message = self.redact(message);
        let annotation =
            annotation.map(|a| Annotation { title: a.title.as_deref().map(|t| self.redact(t)), ..a.clone() });
        if self.inner.actions {
            self.raw(&command(kind, annotation.as_ref(), &message));
        } else {
            let prefix = match annotation.as_ref().and_then(|a| a.title.as_deref()) {
                Some(title) => format!("{kind}: {title}: "),
                None => format!("{kind}: "),
            };
            let mut lines = message.lines();
            self.raw(&format!("{prefix}{}", lines.next().unwrap_or_default()));
            for line in lines {
                self.raw(&format!("  {line}"));
            }
        }
    }

    /// Opens a collapsible log group (a header line outside Actions), closed when the guard drops.
    pub fn group(&self, title: impl AsRef<str>) -> Group {
        let title = self.redact(title.as_ref());
        if self.inner.actions {
            self.raw(&format!("::group::{}", escape_data(&title)));
            Group { console: Some(self.clone()) }
        } else {
            self.raw(&format!("==> {title}"));
            Group { console: None }
        }
    }

    fn raw(&self, line: &str) {
        self.write_line(line);
    }

    fn write_line(&self, line: &str) {
        let mut out = lock(&self.inner.out);
        // A closed stdout must not turn a deploy into a failure; the file commands carry the result.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Console output kept in memory, for tests.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

#[cfg(test)]
impl Console {
    /// A console writing into memory.
    pub(crate) fn captured(actions: bool, debug: bool) -> (Console, Captured) {
        let out = Captured::default();
        (Console::with_writer(actions, debug, Box::new(out.clone())), out)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh heredoc delimiter in the toolkit's style, random so no value can forge it.
pub fn new_delimiter() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (should not happen on Linux): fall back to time and pid, still unpredictable enough
        // that a value colliding with it is refused rather than misparsed.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&(nanos ^ u128::from(std::process::id())).to_le_bytes());
    }
    format!("ghadelimiter_{}", hex::encode(bytes))
}

/// Formats one `NAME<<DELIM` file-command entry; refuses names and values the runner would misread.
pub fn format_file_command(name: &str, value: &str, delimiter: &str) -> Result<String> {
    // Letters, digits, `-` and `_` only: an `=` or `<` would change how the runner splits the line.
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        bail!("invalid output name {name:?}");
    }
    if value.contains(delimiter) {
        bail!("the value of output {name} contains the heredoc delimiter; refusing to write it");
    }
    // The runner takes lines as LF-separated; a CR would become part of the value.
    let value = value.replace("\r\n", "\n").replace('\r', "\n");
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

/// Appends outputs to a `GITHUB_OUTPUT`-style file using the heredoc form.
pub fn append_outputs(path: &Path, outputs: &[(String, String)]) -> Result<()> {
    let delimiter = new_delimiter();
    let mut text = String::new();
    for (name, value) in outputs {
        text.push_str(&format_file_command(name, value, &delimiter)?);
    }
    append(path, &text).with_context(|| format!("failed to write step outputs to {}", path.display()))
}

/// The most a step summary may hold before the runner drops it.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Appends Markdown to the step summary, cut to stay under the runner's limit.
pub fn append_summary(path: &Path, markdown: &str) -> Result<()> {
    let existing = std::fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0);
    let room = SUMMARY_LIMIT.saturating_sub(existing).saturating_sub(64);
    let text = truncate_utf8(markdown, room);
    append(path, &text).with_context(|| format!("failed to write the job summary to {}", path.display()))
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate_utf8(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = "\n\n_(truncated)_\n";
    let mut end = max.saturating_sub(MARK.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text[..end].to_owned();
    let _ = write!(out, "{MARK}");
    out
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// Parses a file-command file (`GITHUB_OUTPUT`, `GITHUB_ENV`) under the runner's rules.
/// Used by tests and fuzzing to prove what we write is read back exactly.
pub fn parse_file_commands(content: &str) -> Result<Vec<(String, String)>> {
    let mut entries = Vec::new();
    let mut lines = content.split('\n').peekable();
    // The runner reads lines; a file must end with a newline, so the final split piece is empty.
    while let Some(line) = lines.next() {
        if line.is_empty() && lines.peek().is_none() {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let (name, value) = (&line[..e], &line[e + 1..]);
                if name.is_empty() {
                    bail!("empty name in line {line:?}");
                }
                entries.push((name.to_owned(), value.to_owned()));
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                if name.is_empty() || delimiter.is_empty() {
                    bail!("empty name or delimiter in line {line:?}");
                }
                let mut value_lines = Vec::new();
                loop {
                    match lines.next() {
                        Some(l) if l == delimiter => break,
                        Some(l) => value_lines.push(l),
                        None => bail!("missing delimiter {delimiter:?} for {name}"),
                    }
                }
                entries.push((name.to_owned(), value_lines.join("\n")));
            }
            _ => bail!("invalid line {line:?}: neither NAME=VALUE nor NAME<<DELIMITER"),
        }
    }
    if !content.is_empty() && !content.ends_with('\n') {
        bail!("file does not end with a newline");
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_follow_runner_rules() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("x:y,z%"), "x%3Ay%2Cz%25");
        let a = Annotation { title: Some("t:1".into()), file: Some("Dockerfile".into()), line: Some(3), col: None };
        assert_eq!(command("error", Some(&a), "bad\nthing"), "::error file=Dockerfile,line=3,title=t%3A1::bad%0Athing");
    }

    #[test]
    fn mask_is_emitted_before_and_values_redacted_after() {
        let (c, buf) = Console::captured(true, false);
        c.mask("s3cr3t-value");
        c.info("token is s3cr3t-value here");
        c.error("failed with s3cr3t-value", Some(&Annotation::titled("x s3cr3t-value")));
        let text = buf.text();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "::add-mask::s3cr3t-value");
        assert_eq!(lines[1], "token is *** here");
        assert_eq!(lines[2], "::error title=x ***::failed with ***");
    }

    #[test]
    fn plain_mode_has_no_workflow_commands() {
        let (c, buf) = Console::captured(false, false);
        c.mask("hunter22");
        {
            let _g = c.group("Build");
            c.warning("careful hunter22", None);
        }
        c.debug("hidden");
        assert_eq!(buf.text(), "==> Build\nwarning: careful ***\n");
    }

    #[test]
    fn user_text_cannot_inject_workflow_commands() {
        let (c, buf) = Console::captured(true, false);
        c.info("ok\n::add-mask::nothing\n  ::error::x");
        assert_eq!(buf.text(), "ok\n ::add-mask::nothing\n   ::error::x\n");
    }

    #[test]
    fn outputs_round_trip_through_runner_parser() {
        let dir = std::env::temp_dir().join(format!("gha-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let _ = std::fs::remove_file(&path);
        let outputs = vec![
            ("result".to_owned(), "deployed".to_owned()),
            ("multi".to_owned(), "line one\nline two\n\nline four".to_owned()),
            ("empty".to_owned(), String::new()),
            ("tricky".to_owned(), "a=b<<c".to_owned()),
        ];
        append_outputs(&path, &outputs).unwrap();
        append_outputs(&path, &[("second".into(), "write".into())]).unwrap();
        let parsed = parse_file_commands(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut expected = outputs.clone();
        expected.push(("second".into(), "write".into()));
        assert_eq!(parsed, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crlf_in_values_is_normalised() {
        let d = "ghadelimiter_x";
        let text = format_file_command("a", "x\r\ny", d).unwrap();
        assert_eq!(parse_file_commands(&text).unwrap(), vec![("a".into(), "x\ny".into())]);
    }

    #[test]
    fn refuses_values_containing_the_delimiter() {
        let err = format_file_command("a", "x\nghadelimiter_1\ny", "ghadelimiter_1").unwrap_err();
        assert!(err.to_string().contains("delimiter"));
        assert!(format_file_command("", "x", "d").is_err());
    }

    #[test]
    fn runner_parser_rejects_malformed_files() {
        assert!(parse_file_commands("a<<EOF\nx\n").is_err());
        assert!(parse_file_commands("justtext\n").is_err());
        assert!(parse_file_commands("a=b").is_err());
        assert!(parse_file_commands("=b\n").is_err());
        assert_eq!(parse_file_commands("a=b=c\n").unwrap(), vec![("a".into(), "b=c".into())]);
    }

    #[test]
    fn delimiters_are_random() {
        assert_ne!(new_delimiter(), new_delimiter());
        assert!(new_delimiter().starts_with("ghadelimiter_"));
    }

    #[test]
    fn summary_is_cut_on_char_boundary() {
        let s = "é".repeat(100);
        let t = truncate_utf8(&s, 50);
        assert!(t.len() <= 50);
        assert!(t.ends_with("_(truncated)_\n"));
    }
}
