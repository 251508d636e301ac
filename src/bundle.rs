//! The Elastic Beanstalk source bundle: `Dockerrun.aws.json` pointing at the image, plus `.ebextensions`,
//! `.platform` and `bundle-dir` content, zipped deterministically (same content, same bytes, same S3 key)
//! and uploaded without ever overwriting a different object.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use crate::dockerrun::{DOCKERRUN, MAX_BUNDLE_BYTES};
use crate::sdk;

/// One file to put in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    source: PathBuf,
    mode: u32,
    is_dir: bool,
}

/// The bundle's content, collected and checked, before the Dockerrun file is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    entries: BTreeMap<String, Entry>,
    /// A `Dockerrun.aws.json` found in `bundle-dir`, used as the template when `dockerrun` is not given.
    pub bundled_template: Option<PathBuf>,
}

impl Content {
    /// Total size of the files, before compression.
    pub fn total_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for entry in self.entries.values().filter(|e| !e.is_dir) {
            total += std::fs::metadata(&entry.source)
                .with_context(|| format!("failed to read {}", entry.source.display()))?
                .len();
        }
        Ok(total)
    }

    /// Whether Beanstalk has something to validate when it processes the version: a `.ebextensions/*.config`
    /// file or an `env.yaml` (processing checks those, not the Docker configuration).
    pub fn needs_processing(&self) -> bool {
        self.entries.iter().any(|(path, e)| {
            !e.is_dir && (path == "env.yaml" || (path.starts_with(".ebextensions/") && path.ends_with(".config")))
        })
    }

    /// Paths in the zip, sorted (directories end with `/`).
    #[cfg(test)]
    pub fn paths(&self) -> Vec<String> {
        self.entries.iter().map(|(p, e)| if e.is_dir { format!("{p}/") } else { p.clone() }).collect()
    }
}

/// Collects `.ebextensions/` and `.platform/` from the workspace root and everything in `bundle_dir`.
pub fn collect(workspace: &Path, bundle_dir: Option<&Path>) -> Result<Content> {
    let mut content = Content::default();
    for dir in [".ebextensions", ".platform"] {
        let path = workspace.join(dir);
        if path.is_dir() {
            add_tree(&mut content, &path, dir, "the workspace")?;
        }
    }
    if let Some(root) = bundle_dir {
        let mut names: Vec<_> = std::fs::read_dir(root)
            .with_context(|| format!("failed to read bundle-dir {}", root.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("failed to read bundle-dir {}", root.display()))?;
        names.sort_by_key(std::fs::DirEntry::file_name);
        for entry in names {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            match name.as_str() {
                DOCKERRUN => {
                    content.bundled_template = Some(path);
                    continue;
                }
                "Dockerfile" => bail!(
                    "bundle-dir contains a Dockerfile: Elastic Beanstalk would build it on the instance instead of running the pushed image; move it out of bundle-dir"
                ),
                "docker-compose.yml" | "docker-compose.yaml" => bail!(
                    "bundle-dir contains {name}: Elastic Beanstalk would run Compose and ignore Dockerrun.aws.json; eb-deploy deploys single-container images"
                ),
                _ => {}
            }
            if path.is_dir() {
                add_tree(&mut content, &path, &name, "bundle-dir")?;
            } else {
                add_file(&mut content, &path, &name, "bundle-dir")?;
            }
        }
    }
    Ok(content)
}

fn add_tree(content: &mut Content, dir: &Path, prefix: &str, origin: &str) -> Result<()> {
    add_file(content, dir, prefix, origin)?;
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("failed to read {}", dir.display()))?;
    children.sort_by_key(std::fs::DirEntry::file_name);
    for child in children {
        let name = format!("{prefix}/{}", child.file_name().to_string_lossy());
        let path = child.path();
        if path.is_dir() {
            add_tree(content, &path, &name, origin)?;
        } else {
            add_file(content, &path, &name, origin)?;
        }
    }
    Ok(())
}

fn add_file(content: &mut Content, path: &Path, name: &str, origin: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Follows symlinks: the bundle carries what the link points at.
    let meta = std::fs::metadata(path).with_context(|| format!("failed to read {} (from {origin})", path.display()))?;
    let entry = Entry { source: path.to_path_buf(), mode: meta.permissions().mode() & 0o777, is_dir: meta.is_dir() };
    if let Some(existing) = content.entries.get(name) {
        if existing.is_dir && entry.is_dir {
            return Ok(());
        }
        bail!("{name} is in the bundle twice ({} and {}); keep one", existing.source.display(), path.display());
    }
    content.entries.insert(name.to_owned(), entry);
    Ok(())
}

/// A finished bundle on disk; removed when dropped.
#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    pub size: u64,
    /// Hex SHA-256 of the zip.
    pub sha256: String,
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Fixed timestamps so the same content always zips to the same bytes.
fn options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(mode)
}

/// Zips the content and the rendered Dockerrun file into `dir`, refusing bundles over Beanstalk's limit.
pub fn build(content: &Content, dockerrun: &[u8], dir: &Path) -> Result<Bundle> {
    build_with_limit(content, dockerrun, dir, MAX_BUNDLE_BYTES)
}

fn build_with_limit(content: &Content, dockerrun: &[u8], dir: &Path, max_bytes: u64) -> Result<Bundle> {
    let path = dir.join(format!("eb-deploy-bundle-{}-{}.zip", std::process::id(), unique()));
    let mut bundle = Bundle { path: path.clone(), size: 0, sha256: String::new() };
    let file = File::create(&path).with_context(|| format!("failed to create {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file(DOCKERRUN, options(0o644)).context("failed to write the bundle")?;
    zip.write_all(dockerrun).context("failed to write the bundle")?;
    for (name, entry) in &content.entries {
        if entry.is_dir {
            zip.add_directory(name.as_str(), options(entry.mode | 0o700)).context("failed to write the bundle")?;
            continue;
        }
        zip.start_file(name.as_str(), options(entry.mode)).context("failed to write the bundle")?;
        let mut src =
            File::open(&entry.source).with_context(|| format!("failed to read {}", entry.source.display()))?;
        std::io::copy(&mut src, &mut zip)
            .with_context(|| format!("failed to add {} to the bundle", entry.source.display()))?;
        let written = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if written > max_bytes {
            bail!(too_big(written));
        }
    }
    let file = zip.finish().context("failed to finish the bundle")?;
    drop(file);
    bundle.size = std::fs::metadata(&path)?.len();
    if bundle.size > max_bytes {
        bail!(too_big(bundle.size));
    }
    bundle.sha256 = sha256_file(&path)?;
    Ok(bundle)
}

fn too_big(size: u64) -> String {
    format!(
        "the source bundle is over Elastic Beanstalk's 500 MB limit ({} MB so far); keep large files out of bundle-dir, .ebextensions and .platform (the image carries the app)",
        size / (1024 * 1024)
    )
}

fn unique() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("failed to read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The S3 key of a bundle: `PREFIX/LABEL-<first 12 hex of its SHA-256>.zip`.
pub fn key(prefix: &str, label: &str, sha256: &str) -> String {
    let name = format!("{label}-{}.zip", &sha256[..12.min(sha256.len())]);
    if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
}

/// Where a bundle went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub bucket: String,
    pub key: String,
    /// An identical object was already there, so nothing was uploaded.
    pub reused: bool,
}

impl Uploaded {
    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

const SHA_META: &str = "sha256";

/// Uploads the bundle unless an identical object is already at its key; never overwrites a different one.
pub async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, bundle: &Bundle) -> Result<Uploaded> {
    let done = |reused| Uploaded { bucket: bucket.to_owned(), key: key.to_owned(), reused };
    if existing_matches(s3, bucket, key, bundle).await? {
        return Ok(done(true));
    }
    let body = ByteStream::from_path(&bundle.path).await.context("failed to read the bundle for upload")?;
    let result = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .content_type("application/zip")
        .metadata(SHA_META, &bundle.sha256)
        // Atomic "create only": a concurrent writer cannot be overwritten either.
        .if_none_match("*")
        .send()
        .await;
    match result {
        Ok(_) => Ok(done(false)),
        Err(e) if matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
            if existing_matches(s3, bucket, key, bundle).await? {
                Ok(done(true))
            } else {
                bail!(
                    "s3://{bucket}/{key} was written by someone else meanwhile with different content; not overwriting it"
                )
            }
        }
        Err(e) => Err(anyhow!("{}", s3_error(&e)))
            .with_context(|| format!("failed to upload the bundle to s3://{bucket}/{key}")),
    }
}

async fn existing_matches(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, bundle: &Bundle) -> Result<bool> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => {
            let same_hash = head.metadata().and_then(|m| m.get(SHA_META)).is_some_and(|h| *h == bundle.sha256);
            let same_size = head.content_length().is_some_and(|l| l as u64 == bundle.size);
            if same_hash && same_size {
                Ok(true)
            } else {
                bail!(
                    "s3://{bucket}/{key} already exists with different content; eb-deploy never overwrites a bundle. Use a new version-label or delete that object"
                )
            }
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
        Err(e) => Err(anyhow!("{}", s3_error(&e))).with_context(|| format!("failed to check s3://{bucket}/{key}")),
    }
}

/// Bundles larger than this are not downloaded just to name their image.
const IMAGE_PEEK_MAX: i64 = 20 * 1024 * 1024;

/// The image an existing bundle deploys (its Dockerrun `Image.Name`), when it can be read cheaply.
pub async fn image_of(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<String>> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| anyhow!("{}", s3_error(&e)))?;
    if out.content_length().unwrap_or(0) > IMAGE_PEEK_MAX {
        return Ok(None);
    }
    let bytes = out.body.collect().await.context("failed to download the bundle")?.into_bytes();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("the bundle is not a zip")?;
    let Ok(mut file) = archive.by_name(DOCKERRUN) else { return Ok(None) };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let value: Value = serde_json::from_str(&text)?;
    Ok(value.pointer("/Image/Name").and_then(Value::as_str).map(str::to_owned))
}

fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    match (e.code(), e.message()) {
        (Some("AccessDenied"), _) => {
            "AccessDenied: the credentials need s3:ListBucket on the bundle bucket and s3:GetObject and s3:PutObject on its objects (without ListBucket, S3 answers 403 instead of 404 for a bundle not uploaded yet)".to_owned()
        }
        (Some("NoSuchBucket"), _) => "NoSuchBucket: the bucket does not exist (or is in another region)".to_owned(),
        _ => sdk::describe(e),
    }
}

/// Checks a user-given bucket before anything is built: it must exist and be reachable with these
/// credentials (in `region`).
pub async fn check_bucket(s3: &aws_sdk_s3::Client, bucket: &str, region: &str) -> Result<()> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = match e.raw_response().map(|r| r.status().as_u16()) {
                Some(404) => "does not exist".to_owned(),
                Some(403) => "is not accessible with these credentials".to_owned(),
                _ => format!("could not be checked ({})", s3_error(&e)),
            };
            bail!("bucket {bucket} {why}; check the `bucket` input (it must be in {region})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bundle-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn zip_is_deterministic_and_keeps_exec_bits() {
        let ws = tmp("ws");
        std::fs::create_dir_all(ws.join(".platform/hooks/predeploy")).unwrap();
        std::fs::create_dir_all(ws.join(".ebextensions")).unwrap();
        std::fs::write(ws.join(".ebextensions/01.config"), "option_settings: {}\n").unwrap();
        let hook = ws.join(".platform/hooks/predeploy/01.sh");
        std::fs::write(&hook, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let extra = tmp("extra");
        std::fs::write(extra.join("notes.txt"), "x").unwrap();
        std::fs::write(extra.join(DOCKERRUN), r#"{"Image":{"Name":"x"}}"#).unwrap();

        let content = collect(&ws, Some(&extra)).unwrap();
        assert!(content.needs_processing(), ".ebextensions/01.config is validated by processing");
        assert!(!Content::default().needs_processing());
        assert_eq!(content.bundled_template, Some(extra.join(DOCKERRUN)));
        assert_eq!(
            content.paths(),
            vec![
                ".ebextensions/",
                ".ebextensions/01.config",
                ".platform/",
                ".platform/hooks/",
                ".platform/hooks/predeploy/",
                ".platform/hooks/predeploy/01.sh",
                "notes.txt"
            ]
        );
        let out = tmp("out");
        let a = build(&content, b"{}", &out).unwrap();
        let b = build(&content, b"{}", &out).unwrap();
        assert_eq!(a.sha256, b.sha256, "same content must give the same bytes");
        let c = build(&content, b"{\"x\":1}", &out).unwrap();
        assert_ne!(a.sha256, c.sha256);

        let mut archive = zip::ZipArchive::new(File::open(&a.path).unwrap()).unwrap();
        let hook = archive.by_name(".platform/hooks/predeploy/01.sh").unwrap();
        assert_eq!(hook.unix_mode().unwrap() & 0o777, 0o755);
        drop(hook);
        let mut dockerrun = String::new();
        archive.by_name(DOCKERRUN).unwrap().read_to_string(&mut dockerrun).unwrap();
        assert_eq!(dockerrun, "{}");
        let path = a.path.clone();
        drop(a);
        assert!(!path.exists(), "the temporary zip is removed");
        for d in [ws, extra, out] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn bundle_dir_with_a_dockerfile_or_compose_file_is_refused() {
        let ws = tmp("ws2");
        let extra = tmp("extra2");
        std::fs::write(extra.join("Dockerfile"), "FROM scratch").unwrap();
        assert!(collect(&ws, Some(&extra)).unwrap_err().to_string().contains("Dockerfile"));
        std::fs::remove_file(extra.join("Dockerfile")).unwrap();
        std::fs::write(extra.join("docker-compose.yml"), "services: {}").unwrap();
        assert!(collect(&ws, Some(&extra)).unwrap_err().to_string().contains("Compose"));
        std::fs::remove_dir_all(ws).unwrap();
        std::fs::remove_dir_all(extra).unwrap();
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let ws = tmp("ws3");
        std::fs::create_dir_all(ws.join(".ebextensions")).unwrap();
        std::fs::write(ws.join(".ebextensions/a.config"), "x").unwrap();
        let extra = tmp("extra3");
        std::fs::create_dir_all(extra.join(".ebextensions")).unwrap();
        std::fs::write(extra.join(".ebextensions/a.config"), "y").unwrap();
        let err = collect(&ws, Some(&extra)).unwrap_err().to_string();
        assert!(err.contains(".ebextensions/a.config is in the bundle twice"), "{err}");
        std::fs::remove_dir_all(ws).unwrap();
        std::fs::remove_dir_all(extra).unwrap();
    }

    #[test]
    fn oversized_bundles_are_refused_and_leave_no_file() {
        let ws = tmp("ws4");
        let extra = tmp("extra4");
        // Incompressible bytes, so the zip really grows past the limit.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(extra.join("blob.bin"), &noise).unwrap();
        let content = collect(&ws, Some(&extra)).unwrap();
        let out = tmp("out4");
        let err = build_with_limit(&content, b"{}", &out, 32 * 1024).unwrap_err().to_string();
        assert!(err.contains("500 MB limit"), "{err}");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "no partial zip left behind");
        assert!(build_with_limit(&content, b"{}", &out, 1024 * 1024).is_ok());
        for d in [ws, extra, out] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn keys_are_content_addressed() {
        assert_eq!(key("app", "v1", "0123456789abcdef"), "app/v1-0123456789ab.zip");
        assert_eq!(key("", "v1", "0123456789abcdef"), "v1-0123456789ab.zip");
    }
}
