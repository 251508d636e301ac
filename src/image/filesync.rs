//! The build context through BuildKit's file sync, as `docker build` sends it: the daemon asks this build's
//! session for a directory (`moby.filesync.v1.FileSync/DiffCopy`), we list it (one `STAT` per entry, in the
//! order Go's walk gives, each directory before what it holds), and it asks for the content of the files
//! its cache does not already have (`REQ`), which we answer in chunks (`DATA`). Unlike a tar body, nothing
//! is written twice on the daemon's side and unchanged files are not sent at all.
//!
//! Two directories are served: `context` (what `.dockerignore` keeps) and `dockerfile` (the Dockerfile
//! alone, so `.dockerignore` applies to the context only, as with `docker build`).

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bollard::fsutil::types::packet::PacketType;
use bollard::fsutil::types::{Packet, Stat};
use bollard::moby::filesync::packet::file_sync_server::FileSync;
use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::context::{self, ContextStats};
use super::dockerignore::Matcher;

/// The most a `DATA` packet carries (as the docker CLI sends them).
const CHUNK: usize = 32 * 1024;
/// Files read at once for one directory.
const READERS: usize = 4;
/// Packets that may wait for the connection: with [`CHUNK`], at most 2 MiB in memory per directory.
const QUEUE: usize = 64;

// Go's `os.FileMode` bits, which the daemon's receiver reads.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_NAMED_PIPE: u32 = 1 << 25;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHAR_DEVICE: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

/// The directory names the daemon asks for: the context, and the Dockerfile's.
pub(super) const CONTEXT: &str = "context";
pub(super) const DOCKERFILE: &str = "dockerfile";

/// One entry of a served directory.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub stat: Stat,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    /// Directories, links, devices: the stat says it all.
    None,
    File(PathBuf),
    Memory(Arc<[u8]>),
}

/// A directory the daemon may ask for, by the name it asks with (`dir-name`).
pub(super) type Listing = Arc<Vec<Entry>>;

/// Lists the context as the daemon will receive it: what `matcher` keeps, each kept path's directories
/// included (a directory left out for itself still holds what is re-included), owner root, hard links as
/// links to the first name.
pub(super) fn list_context(root: &Path, matcher: &Matcher) -> Result<(Vec<Entry>, ContextStats)> {
    let mut entries = Vec::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut first_names: HashMap<(u64, u64), String> = HashMap::new();
    let mut stats = ContextStats::default();
    let meta = std::fs::metadata(root)
        .with_context(|| format!("failed to read the build context directory {}", root.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("the build context {} is not a directory", root.display());
    }
    context::walk(root, matcher, &mut |abs, rel, meta| {
        if meta.file_type().is_socket() {
            // Docker does not send sockets either.
            return Ok(());
        }
        // Directories left out for themselves come in just before the first path they hold.
        for (i, _) in rel.match_indices('/') {
            let parent = &rel[..i];
            if dirs.insert(parent.to_owned()) {
                let abs_parent = root.join(parent);
                let meta = std::fs::symlink_metadata(&abs_parent)
                    .with_context(|| format!("failed to read {} in the build context", abs_parent.display()))?;
                entries.push(Entry { stat: stat(parent, &meta), content: Content::None });
                stats.entries += 1;
            }
        }
        let mut stat = stat(rel, meta);
        let content = if meta.is_dir() {
            dirs.insert(rel.to_owned());
            Content::None
        } else if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(abs).with_context(|| format!("failed to read the symlink {}", abs.display()))?;
            stat.linkname = target.to_string_lossy().into_owned();
            Content::None
        } else if meta.is_file() {
            stats.bytes += meta.len();
            match (meta.nlink() > 1).then(|| first_names.get(&(meta.dev(), meta.ino()))).flatten() {
                Some(first) => {
                    // The receiver links it to the first name; the content stays at hand should it be asked.
                    stat.linkname = first.clone();
                    Content::File(abs.to_path_buf())
                }
                None => {
                    if meta.nlink() > 1 {
                        first_names.insert((meta.dev(), meta.ino()), rel.to_owned());
                    }
                    Content::File(abs.to_path_buf())
                }
            }
        } else {
            Content::None
        };
        entries.push(Entry { stat, content });
        stats.entries += 1;
        Ok(())
    })?;
    Ok((entries, stats))
}

/// A directory holding one file, `name`, with `contents` (the Dockerfile).
pub(super) fn single_file(name: &str, contents: &[u8]) -> Vec<Entry> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let stat = Stat {
        path: name.to_owned(),
        mode: 0o644,
        size: contents.len() as i64,
        mod_time: i64::try_from(now.as_nanos()).unwrap_or_default(),
        ..Default::default()
    };
    vec![Entry { stat, content: Content::Memory(contents.into()) }]
}

/// An entry's stat as fsutil makes it: Go mode bits, owner root, modification time in nanoseconds.
fn stat(rel: &str, meta: &Metadata) -> Stat {
    let unix = meta.permissions().mode();
    let mut mode = unix & 0o777;
    for (unix_bit, go_bit) in [(0o4000, GO_SETUID), (0o2000, GO_SETGID), (0o1000, GO_STICKY)] {
        if unix & unix_bit != 0 {
            mode |= go_bit;
        }
    }
    let kind = meta.file_type();
    let (mut devmajor, mut devminor) = (0, 0);
    if kind.is_dir() {
        mode |= GO_DIR;
    } else if kind.is_symlink() {
        mode |= GO_SYMLINK;
    } else if kind.is_fifo() {
        mode |= GO_NAMED_PIPE;
    } else if kind.is_char_device() || kind.is_block_device() {
        mode |= GO_DEVICE;
        if kind.is_char_device() {
            mode |= GO_CHAR_DEVICE;
        }
        devmajor = i64::from(context::dev_major(meta.rdev()));
        devminor = i64::from(context::dev_minor(meta.rdev()));
    }
    Stat {
        path: rel.to_owned(),
        mode,
        uid: 0,
        gid: 0,
        size: if meta.is_file() { meta.len() as i64 } else { 0 },
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        linkname: String::new(),
        devmajor,
        devminor,
        xattrs: HashMap::new(),
    }
}

/// The `FileSync` service of a build's session.
pub(super) struct Served {
    dirs: HashMap<String, Listing>,
    /// The first file that could not be read: the daemon only sees "failed to copy files", the user needs
    /// its name.
    pub failed: Arc<Mutex<Option<String>>>,
    /// Content of the context's files sent so far, in bytes.
    pub sent: Arc<AtomicU64>,
}

impl Served {
    pub(super) fn new(dirs: HashMap<String, Listing>) -> Self {
        Served { dirs, failed: Arc::default(), sent: Arc::default() }
    }
}

type Packets = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

fn packet(kind: PacketType) -> Packet {
    Packet { r#type: kind as i32, ..Default::default() }
}

/// What the daemon asks for with `followpaths` (the `.dockerignore` probe, the sources of the COPY lines
/// when no step copies the whole context): each path, what lies beneath, and its directories. The paths
/// are patterns to BuildKit, and it follows symlinks among them; for a glob, an encoded path or a symlink
/// on the way, the whole listing is served instead, which the daemon narrows down itself.
fn follow(entries: &Listing, paths: &[String], encoded: bool) -> Listing {
    let plain = |p: &String| !p.contains(['*', '?', '[', '\\']);
    if paths.is_empty() || encoded || !paths.iter().all(plain) {
        return entries.clone();
    }
    let wanted = |path: &str| {
        paths.iter().any(|p| {
            let p = p.trim_start_matches("./").trim_end_matches('/');
            path == p
                || p.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
                || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let mut kept: Vec<Entry> = entries.iter().filter(|e| wanted(&e.stat.path)).cloned().collect();
    if kept.iter().any(|e| e.stat.mode & GO_SYMLINK != 0) {
        return entries.clone();
    }
    // A hard link whose first name is not served becomes a file of its own.
    let names: HashSet<String> = kept.iter().map(|e| e.stat.path.clone()).collect();
    for entry in &mut kept {
        let hard_link = entry.stat.mode & GO_DIR == 0 && matches!(entry.content, Content::File(_));
        if hard_link && !entry.stat.linkname.is_empty() && !names.contains(&entry.stat.linkname) {
            entry.stat.linkname.clear();
        }
    }
    Arc::new(kept)
}

/// Why a file could not be sent.
#[derive(Debug)]
enum NotSent {
    /// The daemon stopped listening (it had what it needed, or the build was cancelled).
    Closed,
    /// The file could not be read (or the daemon asked for something never listed).
    Failed(Status),
}

#[tonic::async_trait]
impl FileSync for Served {
    type DiffCopyStream = Packets;
    type TarStreamStream = Packets;

    async fn diff_copy(&self, request: Request<Streaming<Packet>>) -> Result<Response<Packets>, Status> {
        let metadata = request.metadata();
        let dir = metadata.get("dir-name").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let listing = self
            .dirs
            .get(&dir)
            .ok_or_else(|| Status::not_found(format!("this build's session serves no directory {dir:?}")))?;
        let paths: Vec<String> =
            metadata.get_all("followpaths").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        // `exclude-patterns` come from the same `.dockerignore` the listing already applies.
        let entries = follow(listing, &paths, metadata.get("followpaths-encoded").is_some());
        let mut inbound = request.into_inner();
        let (out, packets) = mpsc::channel::<Result<Packet, Status>>(QUEUE);

        let stats_out = out.clone();
        let listed = entries.clone();
        tokio::spawn(async move {
            for entry in listed.iter() {
                let mut p = packet(PacketType::PacketStat);
                p.stat = Some(entry.stat.clone());
                if stats_out.send(Ok(p)).await.is_err() {
                    return;
                }
            }
            // A STAT without a stat ends the listing.
            let _ = stats_out.send(Ok(packet(PacketType::PacketStat))).await;
        });

        // Requests are taken off the connection as they come (HTTP/2 limits how many small frames may wait
        // unread) and handed to a few readers, each a thread of the blocking pool that reads and sends whole
        // files (one hop per request, not one per read).
        let (wants, wanted) = std::sync::mpsc::channel::<u32>();
        let wanted = Arc::new(Mutex::new(wanted));
        for _ in 0..READERS {
            let (wanted, out, entries) = (wanted.clone(), out.clone(), entries.clone());
            let failed = self.failed.clone();
            let sent = if dir == CONTEXT { self.sent.clone() } else { Arc::default() };
            tokio::task::spawn_blocking(move || {
                loop {
                    let next = wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok(id) = next else { return };
                    match send_file(id, &entries, &out, &sent) {
                        Ok(()) => {}
                        Err(NotSent::Closed) => return,
                        Err(NotSent::Failed(status)) => {
                            failed
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .get_or_insert_with(|| status.message().to_owned());
                            let _ = out.blocking_send(Err(status));
                            return;
                        }
                    }
                }
            });
        }
        tokio::spawn(async move {
            while let Ok(Some(p)) = inbound.message().await {
                match PacketType::try_from(p.r#type) {
                    Ok(PacketType::PacketReq) => {
                        let _ = wants.send(p.id);
                    }
                    Ok(PacketType::PacketFin) => {
                        // The receiver has all it wants; it waits for our FIN to close.
                        let _ = out.send(Ok(packet(PacketType::PacketFin))).await;
                        return;
                    }
                    Ok(PacketType::PacketErr) => {
                        tracing::debug!(error = %String::from_utf8_lossy(&p.data), "the daemon's receiver failed");
                        return;
                    }
                    _ => {}
                }
            }
        });
        let packets = futures_util::stream::unfold(packets, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
        Ok(Response::new(Box::pin(packets)))
    }

    async fn tar_stream(&self, _: Request<Streaming<Packet>>) -> Result<Response<Packets>, Status> {
        Err(Status::unimplemented("this build's session sends directories with DiffCopy only"))
    }
}

/// Answers one `REQ`: the file's content in chunks, then an empty `DATA`. Blocks: run it on a thread of
/// its own.
fn send_file(
    id: u32,
    entries: &[Entry],
    out: &mpsc::Sender<Result<Packet, Status>>,
    sent: &AtomicU64,
) -> Result<(), NotSent> {
    let entry = entries.get(id as usize).ok_or_else(|| {
        NotSent::Failed(Status::invalid_argument(format!("the daemon asked for entry {id}, which was not listed")))
    })?;
    let send = |bytes: &[u8]| {
        sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let packet = Packet { r#type: PacketType::PacketData as i32, id, data: bytes.to_vec(), ..Default::default() };
        out.blocking_send(Ok(packet)).map_err(|_| NotSent::Closed)
    };
    match &entry.content {
        Content::File(path) => {
            let unreadable = |e: std::io::Error| {
                NotSent::Failed(Status::internal(format!(
                    "failed to read {} in the build context: {e}",
                    path.display()
                )))
            };
            let mut file = std::fs::File::open(path).map_err(unreadable)?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(unreadable(e)),
                };
                if n == 0 {
                    break;
                }
                send(&buf[..n])?;
            }
        }
        Content::Memory(bytes) => {
            for chunk in bytes.chunks(CHUNK) {
                send(chunk)?;
            }
        }
        Content::None => {}
    }
    send(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.stat.path.as_str()).collect()
    }

    #[test]
    fn the_listing_is_go_ordered_with_parents_first_and_links_kept() {
        let dir = std::env::temp_dir().join(format!("filesync-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::create_dir_all(dir.join("skip/keep")).unwrap();
        std::fs::write(dir.join("a/b/f"), "f").unwrap();
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        std::fs::write(dir.join("skip/x"), "x").unwrap();
        std::fs::write(dir.join("skip/keep/y"), "yy").unwrap();
        std::fs::hard_link(dir.join("a.txt"), dir.join("z")).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
        std::fs::set_permissions(dir.join("a.txt"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        let matcher = Matcher::parse("skip\n!skip/keep\n").unwrap();
        let (entries, stats) = list_context(&dir, &matcher).unwrap();
        assert_eq!(paths(&entries), ["a", "a/b", "a/b/f", "a.txt", "link", "skip", "skip/keep", "skip/keep/y", "z"]);
        assert_eq!(stats, ContextStats { entries: 9, bytes: 1 + 1 + 2 + 1, sent: None });
        let by_path = |p: &str| &entries.iter().find(|e| e.stat.path == p).unwrap().stat;
        assert_eq!(by_path("a").mode, GO_DIR | 0o755);
        assert_eq!(by_path("a.txt").mode, GO_SETUID | 0o755);
        assert_eq!((by_path("a.txt").size, by_path("a.txt").uid), (1, 0));
        assert_eq!((by_path("link").mode & GO_SYMLINK, by_path("link").linkname.as_str()), (GO_SYMLINK, "a.txt"));
        // The second name of a hard link points at the first.
        assert_eq!(by_path("z").linkname, "a.txt");
        assert_eq!(by_path("skip").mode & GO_DIR, GO_DIR);

        let listing: Listing = Arc::new(entries);
        let follow = |paths: &[&str]| follow(&listing, &paths.iter().map(|p| p.to_string()).collect::<Vec<_>>(), false);
        assert_eq!(paths(&follow(&["skip/keep/y"])), ["skip", "skip/keep", "skip/keep/y"]);
        assert_eq!(paths(&follow(&["a/"])), ["a", "a/b", "a/b/f"]);
        assert_eq!(paths(&follow(&[".dockerignore"])), Vec::<&str>::new());
        assert_eq!(follow(&[]).len(), 9);
        // A hard link served without its first name is a file of its own; with it, a link.
        assert_eq!(follow(&["z"])[0].stat.linkname, "");
        assert_eq!(follow(&["a.txt", "z"])[1].stat.linkname, "a.txt");
        // Globs, symlinks and encoded paths: everything, for the daemon to narrow down.
        assert_eq!(follow(&["a/*/f"]).len(), 9);
        assert_eq!(follow(&["link"]).len(), 9);
        assert_eq!(super::follow(&listing, &["a.txt".into()], true).len(), 9);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn files_go_in_chunks_closed_by_an_empty_packet() {
        let contents: Vec<u8> = (0..CHUNK * 2 + 5).map(|i| i as u8).collect();
        let entries = single_file("Dockerfile", &contents);
        let (out, mut packets) = mpsc::channel(QUEUE);
        let sent = AtomicU64::new(0);
        send_file(0, &entries, &out, &sent).unwrap();
        drop(out);
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while let Some(Ok(p)) = packets.blocking_recv() {
            assert_eq!((p.r#type, p.id), (PacketType::PacketData as i32, 0));
            sizes.push(p.data.len());
            got.extend(p.data);
        }
        assert_eq!(sizes, [CHUNK, CHUNK, 5, 0]);
        assert_eq!(got, contents);
        assert_eq!(sent.into_inner(), contents.len() as u64);
        let failed = |result: Result<(), NotSent>| match result {
            Err(NotSent::Failed(status)) => status,
            other => panic!("{other:?}"),
        };
        let err = failed(send_file(1, &entries, &mpsc::channel(1).0, &AtomicU64::new(0)));
        assert!(err.message().contains("entry 1"), "{err}");
        // A file gone since it was listed: the daemon's error would not name it, ours does.
        let gone = vec![Entry { stat: Stat::default(), content: Content::File("/nonexistent/ctx/app.py".into()) }];
        let err = failed(send_file(0, &gone, &mpsc::channel(4).0, &AtomicU64::new(0)));
        assert!(err.message().contains("failed to read /nonexistent/ctx/app.py in the build context"), "{err}");
        // The daemon gone is not a file's fault.
        let (out, packets) = mpsc::channel(4);
        drop(packets);
        assert!(matches!(send_file(0, &entries, &out, &AtomicU64::new(0)), Err(NotSent::Closed)));
    }
}
