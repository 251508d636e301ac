//! The build context as a tar stream, made the way the Docker CLI makes it: sorted walk, links
//! sent as links, modes kept, owner root, `.dockerignore` applied. Written by a blocking task into
//! a small bounded channel, so memory stays flat however large the context is.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tar::{EntryType, Header};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::dockerignore::{Matcher, ParentMatches};

/// How many bytes are handed to the HTTP body at a time, and how many such chunks may wait.
const CHUNK: usize = 64 * 1024;
const CHANNEL_DEPTH: usize = 8;

/// What to put in the context tar.
#[derive(Debug, Clone)]
pub(crate) struct ContextSpec {
    /// The context directory.
    pub root: PathBuf,
    /// `.dockerignore` rules, with the build files already kept.
    pub matcher: Matcher,
    /// A Dockerfile from outside the context, added under a generated name as the CLI does, and hidden from
    /// COPY as the CLI hides it: its name is added to `.dockerignore` (one is made when there is none).
    pub outside_dockerfile: Option<ExtraDockerfile>,
}

/// A Dockerfile that lives outside the context directory.
#[derive(Debug, Clone)]
pub(crate) struct ExtraDockerfile {
    /// Its name inside the tar (`.dockerfile.<random>`), also passed as the `dockerfile` parameter.
    pub name: String,
    pub contents: Vec<u8>,
}

/// What the context holds, and what of it was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ContextStats {
    pub entries: u64,
    pub bytes: u64,
    /// File content sent, when the daemon asked for files one by one (BuildKit's file sync takes only what
    /// its cache lacks); None when the whole context went as a tar.
    pub sent: Option<u64>,
}

/// Starts writing the context tar on a blocking thread; returns the byte stream for the request
/// body and the task, whose error (naming the file that could not be read) explains a failed upload.
pub(crate) fn stream_context(
    spec: ContextSpec,
) -> (impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static, JoinHandle<Result<ContextStats>>) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let result = write_context(&spec, writer).map(|(_, stats)| stats);
        if let Err(err) = &result {
            // Ends the request body with an error so the daemon does not build a truncated context.
            let _ = tx.blocking_send(Err(io::Error::other(format!("{err:#}"))));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (stream, task)
}

/// Writes the whole context tar into `out`.
pub(crate) fn write_context<W: Write>(spec: &ContextSpec, out: W) -> Result<(W, ContextStats)> {
    let mut writer = TarWriter {
        spec,
        tar: tar::Builder::new(CountingWriter { inner: out, bytes: 0 }),
        hardlinks: HashMap::new(),
        stats: ContextStats::default(),
        saw_dockerignore: false,
        now: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
    };
    let meta = fs::metadata(&spec.root)
        .with_context(|| format!("failed to read the build context directory {}", spec.root.display()))?;
    if !meta.is_dir() {
        bail!("the build context {} is not a directory", spec.root.display());
    }
    walk(&spec.root, &spec.matcher, &mut |abs, rel, meta| writer.entry(abs, Path::new(rel), rel, meta))?;
    if let Some(extra) = &spec.outside_dockerfile {
        if !writer.saw_dockerignore {
            // The CLI creates one that hides itself and the generated Dockerfile from COPY.
            let contents = format!(".dockerignore\n{}\n", extra.name);
            writer.synthetic(".dockerignore", contents.as_bytes())?;
        }
        writer.synthetic(&extra.name, &extra.contents)?;
    }
    writer.tar.finish().context("failed to finish the build context tar")?;
    let stats = writer.stats;
    let mut counting = writer.tar.into_inner().context("failed to finish the build context tar")?;
    counting.flush().context("failed to send the build context")?;
    Ok((counting.inner, ContextStats { bytes: counting.bytes, ..stats }))
}

/// Visits what `.dockerignore` keeps under `root`, in the order Go's walk visits it (names in byte order,
/// each directory before what it holds), with each entry's path relative to `root`. A directory that is left
/// out but may hold re-included paths is not visited itself; what it holds is.
pub(crate) fn walk(
    root: &Path,
    matcher: &Matcher,
    visit: &mut dyn FnMut(&Path, &str, &Metadata) -> Result<()>,
) -> Result<()> {
    walk_dir(root, "", matcher, &ParentMatches::default(), visit)
}

fn walk_dir(
    dir: &Path,
    rel_dir: &str,
    matcher: &Matcher,
    parent: &ParentMatches,
    visit: &mut dyn FnMut(&Path, &str, &Metadata) -> Result<()>,
) -> Result<()> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
        .with_context(|| format!("failed to list {} in the build context", dir.display()))?;
    // Byte order, as Go's directory walk uses: the context is the same on every machine.
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let abs = dir.join(&name);
        let name_str = name.to_string_lossy();
        let rel = if rel_dir.is_empty() { name_str.into_owned() } else { format!("{rel_dir}/{name_str}") };
        let meta = fs::symlink_metadata(&abs)
            .with_context(|| format!("failed to read {} in the build context", abs.display()))?;
        let (excluded, matches) = matcher.matches(&rel, parent);
        if excluded {
            if meta.is_dir() && matcher.may_include_beneath(&rel) {
                // Not visited itself; whatever is re-included inside is.
                walk_dir(&abs, &rel, matcher, &matches, visit)?;
            }
            continue;
        }
        visit(&abs, &rel, &meta)?;
        if meta.is_dir() {
            walk_dir(&abs, &rel, matcher, &matches, visit)?;
        }
    }
    Ok(())
}

struct TarWriter<'a, W: Write> {
    spec: &'a ContextSpec,
    tar: tar::Builder<CountingWriter<W>>,
    /// First archived path of each multiply-linked file, by (device, inode).
    hardlinks: HashMap<(u64, u64), PathBuf>,
    stats: ContextStats,
    saw_dockerignore: bool,
    now: u64,
}

impl<W: Write> TarWriter<'_, W> {
    fn entry(&mut self, abs: &Path, rel: &Path, rel_str: &str, meta: &Metadata) -> Result<()> {
        let file_type = meta.file_type();
        if file_type.is_socket() {
            // Docker does not archive sockets either.
            tracing::debug!(path = %abs.display(), "skipping a socket in the build context");
            return Ok(());
        }
        let mut header = Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or_default());
        header.set_size(0);
        let failed = || format!("failed to add {} to the build context", abs.display());
        if file_type.is_dir() {
            header.set_entry_type(EntryType::Directory);
            self.tar.append_data(&mut header, rel, io::empty()).with_context(failed)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(abs).with_context(|| format!("failed to read the symlink {}", abs.display()))?;
            header.set_entry_type(EntryType::Symlink);
            self.append_link(&mut header, rel, &target).with_context(failed)?;
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.hardlinks.get(&key).cloned() {
                    header.set_entry_type(EntryType::Link);
                    self.append_link(&mut header, rel, &first).with_context(failed)?;
                    self.stats.entries += 1;
                    return Ok(());
                }
                self.hardlinks.insert(key, rel.to_path_buf());
            }
            header.set_entry_type(EntryType::Regular);
            if rel_str == ".dockerignore" {
                self.saw_dockerignore = true;
                if let Some(extra) = &self.spec.outside_dockerfile {
                    let mut contents = fs::read(abs).with_context(|| {
                        format!("failed to read {} in the build context: check its permissions", abs.display())
                    })?;
                    contents.extend_from_slice(format!("\n{}\n", extra.name).as_bytes());
                    header.set_size(contents.len() as u64);
                    self.tar.append_data(&mut header, rel, contents.as_slice()).with_context(failed)?;
                    self.stats.entries += 1;
                    return Ok(());
                }
            }
            let file = File::open(abs).with_context(|| {
                format!("failed to read {} in the build context: check its permissions", abs.display())
            })?;
            header.set_size(meta.len());
            let reader = ExactReader { inner: file, remaining: meta.len(), path: abs };
            self.tar.append_data(&mut header, rel, reader).with_context(failed)?;
        } else {
            let kind = if file_type.is_fifo() {
                EntryType::Fifo
            } else if file_type.is_char_device() {
                EntryType::Char
            } else if file_type.is_block_device() {
                EntryType::Block
            } else {
                tracing::debug!(path = %abs.display(), "skipping an unknown file type in the build context");
                return Ok(());
            };
            header.set_entry_type(kind);
            if kind != EntryType::Fifo {
                let rdev = meta.rdev();
                header.set_device_major(dev_major(rdev)).with_context(failed)?;
                header.set_device_minor(dev_minor(rdev)).with_context(failed)?;
            }
            self.tar.append_data(&mut header, rel, io::empty()).with_context(failed)?;
        }
        self.stats.entries += 1;
        Ok(())
    }

    /// Short targets go in verbatim (as Go writes them); long ones need the GNU extension.
    fn append_link(&mut self, header: &mut Header, rel: &Path, target: &Path) -> io::Result<()> {
        let bytes = target.as_os_str().as_bytes();
        if bytes.len() <= 100 {
            header.set_link_name_literal(bytes)?;
            self.tar.append_data(header, rel, io::empty())
        } else {
            self.tar.append_link(header, rel, target)
        }
    }

    fn synthetic(&mut self, name: &str, contents: &[u8]) -> Result<()> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.now);
        header.set_size(contents.len() as u64);
        self.tar
            .append_data(&mut header, name, contents)
            .with_context(|| format!("failed to add {name} to the build context"))?;
        self.stats.entries += 1;
        Ok(())
    }
}

pub(super) fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

pub(super) fn dev_minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

/// Reads exactly the size recorded in the tar header; a file that shrinks while being read would
/// otherwise corrupt the archive silently.
struct ExactReader<'a> {
    inner: File,
    remaining: u64,
    path: &'a Path,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want]).map_err(|e| {
            io::Error::new(e.kind(), format!("failed to read {} in the build context: {e}", self.path.display()))
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} changed while it was being sent (it got shorter); retry the build", self.path.display()),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Feeds the tar into the request body in chunks; blocks while the daemon is slower than the disk.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the Docker daemon stopped reading the build context")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let mut bytes = [0u8; 6];
            getrandom::fill(&mut bytes).unwrap();
            let dir = std::env::temp_dir().join(format!("ctx-{tag}-{}", hex::encode(bytes)));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn file(&self, rel: &str, contents: &str) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[derive(Debug, PartialEq)]
    struct Listed {
        path: String,
        kind: char,
        mode: u32,
        link: Option<String>,
        data: Vec<u8>,
    }

    fn list(tar_bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            let kind = match header.entry_type() {
                EntryType::Directory => 'd',
                EntryType::Symlink => 'l',
                EntryType::Link => 'h',
                EntryType::Regular => 'f',
                EntryType::Fifo => 'p',
                _ => '?',
            };
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            let mode = header.mode().unwrap();
            let link = entry.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push(Listed { path, kind, mode, link, data });
        }
        out
    }

    fn build(dir: &Path, ignore: &str, dockerfile: Option<&str>, outside: Option<ExtraDockerfile>) -> Vec<Listed> {
        let mut matcher = Matcher::parse(ignore).unwrap();
        matcher.keep(".dockerignore");
        if let Some(d) = dockerfile {
            matcher.keep(d);
        }
        let spec = ContextSpec { root: dir.to_path_buf(), matcher, outside_dockerfile: outside };
        let (bytes, stats) = write_context(&spec, Vec::new()).unwrap();
        assert_eq!(stats.bytes, bytes.len() as u64);
        let listed = list(&bytes);
        assert_eq!(stats.entries, listed.len() as u64);
        listed
    }

    fn paths(listed: &[Listed]) -> Vec<&str> {
        listed.iter().map(|l| l.path.as_str()).collect()
    }

    #[test]
    fn sorted_walk_with_dirs_links_and_modes() {
        let t = TempDir::new("walk");
        t.file("b.txt", "bee");
        t.file("a/z.txt", "zed");
        t.file("a/B.txt", "big");
        t.file("Dockerfile", "FROM scratch\n");
        fs::set_permissions(t.0.join("b.txt"), fs::Permissions::from_mode(0o751)).unwrap();
        symlink("a/z.txt", t.0.join("link")).unwrap();
        symlink("/does/not/exist", t.0.join("dangling")).unwrap();
        fs::hard_link(t.0.join("b.txt"), t.0.join("c-hard")).unwrap();
        let listed = build(&t.0, "", Some("Dockerfile"), None);
        assert_eq!(
            paths(&listed),
            vec!["Dockerfile", "a", "a/B.txt", "a/z.txt", "b.txt", "c-hard", "dangling", "link"]
        );
        let get = |p: &str| listed.iter().find(|l| l.path == p).unwrap();
        assert_eq!(get("a").kind, 'd');
        assert_eq!(get("b.txt").mode, 0o751);
        assert_eq!(get("b.txt").data, b"bee");
        assert_eq!(get("link").kind, 'l');
        assert_eq!(get("link").link.as_deref(), Some("a/z.txt"));
        assert_eq!(get("dangling").link.as_deref(), Some("/does/not/exist"));
        assert_eq!(get("c-hard").kind, 'h');
        assert_eq!(get("c-hard").link.as_deref(), Some("b.txt"));
    }

    #[test]
    fn dockerignore_applies_and_build_files_are_always_sent() {
        let t = TempDir::new("ignore");
        t.file("Dockerfile", "FROM scratch\n");
        t.file(".dockerignore", "*\n!src\nsrc/secret\n");
        t.file("src/main.rs", "fn main() {}");
        t.file("src/secret/key", "k");
        t.file("target/big", "x");
        let listed = build(&t.0, "*\n!src\nsrc/secret\n", Some("Dockerfile"), None);
        assert_eq!(paths(&listed), vec![".dockerignore", "Dockerfile", "src", "src/main.rs"]);
    }

    #[test]
    fn reincluded_file_under_excluded_dir_is_sent_without_its_dir() {
        let t = TempDir::new("reinclude");
        t.file("docs/a.md", "a");
        t.file("docs/keep/b.md", "b");
        t.file("vendor/x/LICENSE", "l");
        t.file("vendor/x/code", "c");
        let listed = build(&t.0, "docs\n!docs/keep/b.md\nvendor\n!vendor/*/LICENSE\n", None, None);
        assert_eq!(paths(&listed), vec!["docs/keep/b.md", "vendor/x/LICENSE"]);
    }

    #[test]
    fn nested_dockerfile_in_excluded_dir_is_sent() {
        let t = TempDir::new("nested");
        t.file("build/Dockerfile", "FROM scratch\n");
        t.file("build/other", "o");
        let listed = build(&t.0, "build\n", Some("build/Dockerfile"), None);
        assert_eq!(paths(&listed), vec!["build/Dockerfile"]);
    }

    #[test]
    fn outside_dockerfile_is_added_and_hidden_by_dockerignore() {
        let t = TempDir::new("outside");
        t.file("app.txt", "x");
        let extra = ExtraDockerfile { name: ".dockerfile.abc".into(), contents: b"FROM scratch\n".to_vec() };
        let listed = build(&t.0, "", None, Some(extra.clone()));
        assert_eq!(paths(&listed), vec!["app.txt", ".dockerignore", ".dockerfile.abc"]);
        assert_eq!(listed[1].data, b".dockerignore\n.dockerfile.abc\n");
        assert_eq!(listed[2].data, b"FROM scratch\n");
        assert_eq!(listed[2].mode, 0o600);
        // An existing .dockerignore gets the generated name appended.
        t.file(".dockerignore", "*.log");
        let listed = build(&t.0, "*.log", None, Some(extra));
        assert_eq!(paths(&listed), vec![".dockerignore", "app.txt", ".dockerfile.abc"]);
        assert_eq!(listed[0].data, b"*.log\n.dockerfile.abc\n");
    }

    #[test]
    fn long_names_and_link_targets_survive() {
        let t = TempDir::new("long");
        let long = format!("{}/{}", "d".repeat(80), "f".repeat(90));
        t.file(&long, "data");
        let target = "t".repeat(150);
        symlink(&target, t.0.join("l")).unwrap();
        let listed = build(&t.0, "", None, None);
        assert!(listed.iter().any(|l| l.path == long && l.data == b"data"));
        assert_eq!(listed.iter().find(|l| l.path == "l").unwrap().link.as_deref(), Some(target.as_str()));
    }

    #[test]
    fn fifo_is_archived_as_fifo() {
        let t = TempDir::new("fifo");
        let status = std::process::Command::new("mkfifo").arg(t.0.join("pipe")).status();
        if !status.is_ok_and(|s| s.success()) {
            return;
        }
        let listed = build(&t.0, "", None, None);
        assert_eq!(listed.iter().find(|l| l.path == "pipe").unwrap().kind, 'p');
    }

    #[test]
    fn unreadable_file_is_named_in_the_error() {
        let t = TempDir::new("unreadable");
        t.file("secret", "s");
        fs::set_permissions(t.0.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read(t.0.join("secret")).is_ok() {
            // Running as root: permissions do not stop reads, nothing to test here.
            return;
        }
        let spec = ContextSpec { root: t.0.clone(), matcher: Matcher::default(), outside_dockerfile: None };
        let err = write_context(&spec, Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("secret"), "{err:#}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_body_matches_the_direct_tar() {
        use futures_util::TryStreamExt;
        let t = TempDir::new("stream");
        for i in 0..40 {
            t.file(&format!("f{i:02}"), &"x".repeat(10_000 + i));
        }
        let spec = ContextSpec { root: t.0.clone(), matcher: Matcher::default(), outside_dockerfile: None };
        let (direct, _) = write_context(&spec, Vec::new()).unwrap();
        let (stream, task) = stream_context(spec);
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= 2 * CHUNK));
        let collected = chunks.concat();
        let stats = task.await.unwrap().unwrap();
        assert_eq!(collected.len(), direct.len());
        assert_eq!(stats.bytes, direct.len() as u64);
        assert_eq!(list(&collected), list(&direct));
    }
}
