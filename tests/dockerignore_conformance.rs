//! `.dockerignore` conformance: each context tree is built against the same daemon by eb-deploy's
//! `image::build` and by the docker CLI, with a `COPY . /ctx` Dockerfile, and the files that land in `/ctx`
//! (paths, types, modes, link targets, contents) must be the same: eb-deploy's classic builder against
//! `docker build` with `DOCKER_BUILDKIT=0`, then eb-deploy's BuildKit (the context through its session's file
//! sync) against `docker build` with `DOCKER_BUILDKIT=1`. The known differences (`Case::cli_misses` in the
//! classic run, `BUILDKIT_CLI_EMPTIES` in the BuildKit one) are checked to be exactly those, then taken out of
//! the comparison. Needs only a Docker daemon (`DOCKER_HOST` or the local socket) and the `docker` CLI (with
//! buildx for the BuildKit run).
#![cfg(feature = "e2e")]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::RemoveContainerOptions;
use eb_deploy::build_plan::{BuildPlan, Builder};
use eb_deploy::gha::Console;
use eb_deploy::image::{self, BuildRequest};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

const COPY_ALL: &str = "FROM scratch\nCOPY . /ctx\n";

#[derive(Clone, Copy)]
enum Node {
    File(&'static str),
    FileMode(&'static str, u32),
    Dir(u32),
    Symlink(&'static str),
    Hardlink(&'static str),
}

#[derive(Clone, Copy)]
enum DockerfileAt {
    /// `<context>/Dockerfile`, not passed with `-f`.
    Default,
    /// A path inside the context, passed with `-f`.
    Inside(&'static str),
    /// A file beside the context directory, passed with `-f`.
    Outside,
}

struct Case {
    name: &'static str,
    tree: &'static [(&'static str, Node)],
    dockerignore: Option<&'static str>,
    dockerfile: DockerfileAt,
    /// Paths under /ctx that eb-deploy sends and the classic CLI does not: the CLI only looks
    /// inside an excluded directory when a `!` pattern literally starts with that directory's path,
    /// while eb-deploy (like BuildKit) also follows `!` patterns with wildcards.
    cli_misses: &'static [&'static str],
}

const BASIC: &[(&str, Node)] = &[
    ("app.txt", Node::File("app")),
    ("src/main.rs", Node::File("fn main() {}")),
    ("src/lib/util.rs", Node::File("pub fn x() {}")),
    ("bin/run.sh", Node::FileMode("#!/bin/sh\n", 0o755)),
];

fn cases() -> Vec<Case> {
    use DockerfileAt::*;
    use Node::*;
    vec![
        Case { name: "no-dockerignore", tree: BASIC, dockerignore: None, dockerfile: Default, cli_misses: &[] },
        Case {
            name: "comments-blank-lines-trailing-spaces",
            tree: &[("secret.txt", File("s")), ("# not a comment", File("c")), ("#x", File("x")), ("keep", File("k"))],
            dockerignore: Some("# a comment\n\n   \nsecret.txt   \n  #x\r\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "leading-slash-anchors-at-root",
            tree: &[("build/out", File("o")), ("sub/build/out", File("o")), ("keep", File("k"))],
            dockerignore: Some("/build\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "star-is-one-level",
            tree: &[("a.log", File("a")), ("dir/b.log", File("b")), ("c.txt", File("c"))],
            dockerignore: Some("*.log\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "star-in-subdirectory",
            tree: &[("a.log", File("a")), ("dir/b.log", File("b")), ("dir/deeper/c.log", File("c"))],
            dockerignore: Some("*/*.log\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "question-mark",
            tree: &[("file1.txt", File("1")), ("file12.txt", File("12")), ("d/file2.txt", File("2"))],
            dockerignore: Some("file?.txt\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "double-star-any-depth",
            tree: &[("a.tmp", File("a")), ("x/b.tmp", File("b")), ("x/y/z/c.tmp", File("c")), ("x/keep", File("k"))],
            dockerignore: Some("**/*.tmp\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "double-star-in-the-middle",
            tree: &[("a/z", File("1")), ("a/b/z", File("2")), ("a/b/c/z", File("3")), ("a/zz", File("4"))],
            dockerignore: Some("a/**/z\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "double-star-trailing",
            tree: &[("cache/a", File("a")), ("cache/b/c", File("c")), ("cachex", File("x"))],
            dockerignore: Some("cache/**\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "double-star-suffix-quirk",
            tree: &[("xfoo", File("1")), ("d/foo", File("2")), ("foox", File("3"))],
            dockerignore: Some("**foo\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "character-class",
            tree: &[("log1.txt", File("1")), ("loga.txt", File("a")), ("datab", File("b")), ("datad", File("d"))],
            dockerignore: Some("log[0-9].txt\ndata[a-c]\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "negated-class",
            tree: &[("file1", File("1")), ("fileA", File("A")), ("file-", File("-"))],
            dockerignore: Some("file[^0-9]\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "backslash-escapes",
            tree: &[("*star", File("s")), ("xstar", File("x")), ("q?", File("q")), ("qx", File("x"))],
            dockerignore: Some("\\*star\nq\\?\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "parent-excludes-children",
            tree: &[("node_modules/a/index.js", File("a")), ("node_modules/b.js", File("b")), ("src/x.js", File("x"))],
            dockerignore: Some("node_modules\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "exclusion-reincludes",
            tree: &[("README.md", File("r")), ("CHANGES.md", File("c")), ("docs/x.md", File("x"))],
            dockerignore: Some("*.md\n!README.md\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "file-reincluded-under-excluded-dir",
            tree: &[("docs/a.md", File("a")), ("docs/keep.md", File("k")), ("docs/sub/b.md", File("b"))],
            dockerignore: Some("docs\n!docs/keep.md\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "dir-reincluded-under-excluded-dir",
            tree: &[("docs/a.md", File("a")), ("docs/sub/b.md", File("b")), ("docs/sub/deep/c.md", File("c"))],
            dockerignore: Some("docs\n!docs/sub\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "last-match-wins",
            tree: &[("README.md", File("r")), ("OTHER.md", File("o")), ("keep.txt", File("k"))],
            dockerignore: Some("*.md\n!README.md\nREADME.md\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "repeated-pattern-after-reinclude",
            tree: &[("a/f", File("f")), ("a/g", File("g")), ("b", File("b"))],
            dockerignore: Some("a\n!a/f\na\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "exclude-all-keep-some",
            tree: &[("src/main.rs", File("m")), ("src/secret/key", File("k")), ("target/big", File("b"))],
            dockerignore: Some("*\n!src\nsrc/secret\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "dockerfile-and-dockerignore-excluded-are-still-sent",
            tree: &[("app.txt", File("a"))],
            dockerignore: Some("Dockerfile\n.dockerignore\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "nested-dockerfile-in-excluded-dir",
            tree: &[("build/other", File("o")), ("app.txt", File("a"))],
            dockerignore: Some("build\n"),
            dockerfile: Inside("build/Dockerfile.app"),
            cli_misses: &[],
        },
        Case {
            name: "dockerfile-outside-context",
            tree: BASIC,
            dockerignore: None,
            dockerfile: Outside,
            cli_misses: &[],
        },
        Case {
            name: "dockerfile-outside-context-with-dockerignore",
            tree: &[("a.log", File("l")), ("app.txt", File("a"))],
            dockerignore: Some("*.log\n"),
            dockerfile: Outside,
            cli_misses: &[],
        },
        Case {
            name: "symlinks-are-sent-as-links",
            tree: &[
                ("target.txt", File("t")),
                ("rel-link", Symlink("target.txt")),
                ("abs-link", Symlink("/etc/hostname")),
                ("dangling", Symlink("does/not/exist")),
                ("dir/file", File("f")),
                ("dir-link", Symlink("dir")),
                ("ignored-link", Symlink("target.txt")),
            ],
            dockerignore: Some("ignored-link\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "modes-are-kept",
            tree: &[
                ("private", FileMode("p", 0o600)),
                ("exec", FileMode("e", 0o755)),
                ("setuid", FileMode("s", 0o4755)),
                ("readonly", FileMode("r", 0o444)),
                ("closed", Dir(0o700)),
                ("closed/inner", File("i")),
                ("sticky", Dir(0o1777)),
                ("setgid", Dir(0o2755)),
            ],
            dockerignore: None,
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "hardlinks",
            tree: &[("one", File("same")), ("two", Hardlink("one")), ("sub/three", Hardlink("one"))],
            dockerignore: Some("sub\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "patterns-are-cleaned",
            tree: &[("b/x", File("x")), ("a/y", File("y")), ("foo/bar", File("fb")), ("c", File("c"))],
            dockerignore: Some("./a/../b/\nfoo//bar\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "spaces-unicode-and-dotfiles",
            tree: &[
                ("with space.txt", File("s")),
                ("ünïcode.txt", File("u")),
                (".env", File("e")),
                (".git/HEAD", File("h")),
                (".github/workflow.yml", File("w")),
            ],
            dockerignore: Some("with space.txt\n.env\n.git\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "empty-dirs",
            tree: &[("empty", Dir(0o755)), ("ignored-empty", Dir(0o755)), ("full/f", File("f"))],
            dockerignore: Some("ignored-empty\n"),
            dockerfile: Default,
            cli_misses: &[],
        },
        Case {
            name: "wildcard-reinclude-under-excluded-dir",
            tree: &[("vendor/x/LICENSE", File("l")), ("vendor/x/code.go", File("c")), ("vendor/README", File("r"))],
            dockerignore: Some("vendor\n!vendor/*/LICENSE\n"),
            dockerfile: Default,
            cli_misses: &["vendor/x/LICENSE"],
        },
        Case {
            name: "double-star-reinclude-under-excluded-dirs",
            tree: &[("keep", File("1")), ("a/keep", File("2")), ("a/b/keep", File("3")), ("a/drop", File("d"))],
            dockerignore: Some("*\n!**/keep\n"),
            dockerfile: Default,
            cli_misses: &["a/keep", "a/b/keep"],
        },
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    kind: char,
    mode: u32,
    link: Option<String>,
    sha256: Option<String>,
}

struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("OS randomness");
    hex::encode(bytes)
}

fn materialize(case: &Case, base: &Path) -> (PathBuf, Option<PathBuf>) {
    let ctx = base.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let mut dirs_with_modes = Vec::new();
    for (rel, node) in case.tree {
        let path = ctx.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match *node {
            Node::File(text) => fs::write(&path, text).unwrap(),
            Node::FileMode(text, mode) => {
                fs::write(&path, text).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Dir(mode) => {
                fs::create_dir_all(&path).unwrap();
                dirs_with_modes.push((path, mode));
            }
            Node::Symlink(target) => symlink(target, &path).unwrap(),
            Node::Hardlink(to) => fs::hard_link(ctx.join(to), &path).unwrap(),
        }
    }
    // Last, so files can still be created inside restrictive directories.
    for (path, mode) in dirs_with_modes {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    if let Some(ignore) = case.dockerignore {
        fs::write(ctx.join(".dockerignore"), ignore).unwrap();
    }
    let dockerfile = match case.dockerfile {
        DockerfileAt::Default => {
            fs::write(ctx.join("Dockerfile"), COPY_ALL).unwrap();
            None
        }
        DockerfileAt::Inside(rel) => {
            let path = ctx.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, COPY_ALL).unwrap();
            Some(path)
        }
        DockerfileAt::Outside => {
            let path = base.join("Dockerfile.outside");
            fs::write(&path, COPY_ALL).unwrap();
            Some(path)
        }
    };
    (ctx, dockerfile)
}

async fn files_under_ctx(docker: &Docker, image: &str) -> BTreeMap<String, Listed> {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["/not-run".to_owned()]),
        ..Default::default()
    };
    let container = docker.create_container(None, body).await.expect("create a container to export").id;
    let chunks: Vec<bytes::Bytes> = docker.export_container(&container).try_collect().await.expect("export");
    let _ =
        docker.remove_container(&container, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
    let data = chunks.concat();
    let mut archive = tar::Archive::new(data.as_slice());
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("read export") {
        let mut entry = entry.expect("export entry");
        let path = entry.path().expect("path").to_string_lossy().trim_end_matches('/').to_owned();
        let Some(rel) = path.strip_prefix("ctx/") else { continue };
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular => 'f',
            other => panic!("unexpected entry type {other:?} for {path}"),
        };
        let mode = header.mode().expect("mode") & 0o7777;
        let link = entry.link_name().expect("link").map(|l| l.to_string_lossy().into_owned());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("content");
        let sha256 = (kind == 'f').then(|| hex::encode(Sha256::digest(mask_generated_names(&content))));
        out.insert(rel.to_owned(), Listed { kind, mode, link, sha256 });
    }
    out
}

/// The name a Dockerfile from outside the context travels under is random (`.dockerfile.` and 20
/// hex digits, for the CLI and for eb-deploy); it shows up in the `.dockerignore` that hides it.
fn mask_generated_names(content: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b".dockerfile.";
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while i < content.len() {
        let rest = &content[i..];
        if rest.starts_with(PREFIX)
            && rest.len() >= PREFIX.len() + 20
            && rest[PREFIX.len()..PREFIX.len() + 20].iter().all(u8::is_ascii_hexdigit)
        {
            out.extend_from_slice(b".dockerfile.<random>");
            i += PREFIX.len() + 20;
        } else {
            out.push(content[i]);
            i += 1;
        }
    }
    out
}

/// `docker build` (buildx 0.13) lands these files empty: their stat is re-included, their content not.
/// eb-deploy lands them as the classic builder does, with their content.
const BUILDKIT_CLI_EMPTIES: &[(&str, &str)] = &[("repeated-pattern-after-reinclude", "a/f")];

/// The differences between eb-deploy under BuildKit and `docker build` with BuildKit that are known and
/// deliberate; each is checked to be exactly that, then taken out of the comparison. (The Dockerfile is
/// not one: both send it apart from the context, through the build's session.)
fn buildkit_known_differences(
    case: &Case,
    ours: &BTreeMap<String, Listed>,
    cli: &mut BTreeMap<String, Listed>,
    failures: &mut Vec<String>,
) {
    for (name, path) in BUILDKIT_CLI_EMPTIES {
        if *name != case.name {
            continue;
        }
        match (cli.get(*path), ours.get(*path)) {
            (Some(theirs), Some(mine)) if theirs.sha256 == Some(hex::encode(Sha256::digest(b""))) => {
                cli.insert((*path).to_owned(), mine.clone());
            }
            (theirs, _) => failures.push(format!(
                "{}: docker build no longer sends {path} empty ({theirs:?}): drop it from BUILDKIT_CLI_EMPTIES",
                case.name
            )),
        }
    }
}

fn cli_build(
    builder: Builder,
    docker_host: Option<&str>,
    tag: &str,
    ctx: &Path,
    dockerfile: Option<&Path>,
) -> Result<(), String> {
    let mut cmd = Command::new("docker");
    let buildkit = if builder == Builder::BuildKit { "1" } else { "0" };
    cmd.env("DOCKER_BUILDKIT", buildkit).args(["build", "-q", "-t", tag]);
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    if let Some(dockerfile) = dockerfile {
        cmd.arg("-f").arg(dockerfile);
    }
    let output = cmd.arg(ctx).output().map_err(|e| format!("failed to run the docker CLI: {e}"))?;
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

/// Hard links come out of `docker export` as links to whichever name the layer stored first;
/// the file behind them is what matters, so compare them as the file they point to.
fn resolve_hardlinks(files: &BTreeMap<String, Listed>) -> BTreeMap<String, Listed> {
    files
        .iter()
        .map(|(path, listed)| {
            let mut listed = listed.clone();
            if listed.kind == 'h' {
                let target = listed.link.take().unwrap_or_default();
                let target = target.strip_prefix("ctx/").unwrap_or(&target);
                if let Some(file) = files.get(target) {
                    listed = file.clone();
                }
            }
            (path.clone(), listed)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerignore_matches_the_docker_cli() {
    conformance(Builder::Classic).await;
}

/// The same cases built by eb-deploy with BuildKit, the context served through its session's file sync,
/// against `docker build` with BuildKit: the same files must land, but for `BUILDKIT_CLI_EMPTIES`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerignore_matches_the_docker_cli_under_buildkit() {
    conformance(Builder::BuildKit).await;
}

async fn conformance(builder: Builder) {
    let docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let docker =
        eb_deploy::docker::connect(docker_host.as_deref()).await.expect("a Docker daemon is needed for this test");
    let run = random_hex();
    let base = Scratch(std::env::temp_dir().join(format!("dockerignore-conformance-{run}-{builder:?}")));
    let console = Console::with_writer(false, false, Box::new(std::io::sink()));
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let dir = base.0.join(case.name);
        let (ctx, dockerfile) = materialize(case, &dir);
        let ours = format!("ebd-conformance-{run}-{}:ours", case.name);
        let theirs = format!("ebd-conformance-{run}-{}:cli", case.name);
        let request = BuildRequest {
            docker_host: docker_host.clone(),
            plan: BuildPlan { context: ctx.clone(), dockerfile: dockerfile.clone(), builder, ..Default::default() },
            tag: ours.clone(),
            ..Default::default()
        };
        if let Err(err) = image::build(&docker, &request, &console).await {
            failures.push(format!("{}: eb-deploy build failed: {err:#}", case.name));
            continue;
        }
        if let Err(err) = cli_build(builder, docker_host.as_deref(), &theirs, &ctx, dockerfile.as_deref()) {
            failures.push(format!("{}: docker CLI build failed: {err}", case.name));
            stackkit::discard_images(&[&ours]);
            continue;
        }
        let ours_files = resolve_hardlinks(&files_under_ctx(&docker, &ours).await);
        let mut cli_files = resolve_hardlinks(&files_under_ctx(&docker, &theirs).await);
        stackkit::discard_images(&[&ours, &theirs]);

        // Known, deliberate difference: add what the CLI skips, then the trees must be equal.
        let cli_misses = if builder == Builder::Classic { case.cli_misses } else { &[] };
        for missed in cli_misses {
            if cli_files.contains_key(*missed) {
                failures.push(format!("{}: the CLI unexpectedly sent {missed}", case.name));
            }
            match ours_files.get(*missed) {
                Some(listed) => {
                    cli_files.insert((*missed).to_owned(), listed.clone());
                    // Directories implied by the re-included file are created by the daemon.
                    for ancestor in Path::new(missed).ancestors().skip(1) {
                        let dir = ancestor.to_string_lossy().into_owned();
                        if dir.is_empty() {
                            break;
                        }
                        if let (false, Some(d)) = (cli_files.contains_key(&dir), ours_files.get(&dir)) {
                            cli_files.insert(dir, d.clone());
                        }
                    }
                }
                None => failures.push(format!("{}: eb-deploy did not send {missed}", case.name)),
            }
        }
        if builder == Builder::BuildKit {
            buildkit_known_differences(case, &ours_files, &mut cli_files, &mut failures);
        }
        if ours_files != cli_files {
            let mut diff = Vec::new();
            for (path, listed) in &ours_files {
                match cli_files.get(path) {
                    None => diff.push(format!("  only eb-deploy: {path} {listed:?}")),
                    Some(other) if other != listed => {
                        diff.push(format!("  differs: {path} ours {listed:?} cli {other:?}"))
                    }
                    Some(_) => {}
                }
            }
            for (path, listed) in &cli_files {
                if !ours_files.contains_key(path) {
                    diff.push(format!("  only CLI: {path} {listed:?}"));
                }
            }
            failures.push(format!("{}:\n{}", case.name, diff.join("\n")));
        } else {
            eprintln!("ok: {} ({} paths)", case.name, ours_files.len());
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
