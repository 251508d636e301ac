//! What the user asked the build to be — context, Dockerfile, arguments, labels, builder, cache and secret
//! specs — as config validates it. A leaf: the image stage adds what only it learns (the tag, the registry's
//! credentials, the images to take layers from) when it builds.

use std::path::{Path, PathBuf};

/// The build half of a deploy's image, from the inputs alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildPlan {
    /// The build context directory (input `context`).
    pub context: PathBuf,
    /// The Dockerfile (input `dockerfile`); None means `<context>/Dockerfile`. May lie outside the context.
    pub dockerfile: Option<PathBuf>,
    /// `--build-arg` pairs.
    pub build_args: Vec<(String, String)>,
    /// Labels set on the image, the OCI provenance labels included (see [`oci_labels`]).
    pub labels: Vec<(String, String)>,
    /// Multi-stage target.
    pub target: Option<String>,
    /// Target platform, e.g. `linux/amd64`.
    pub platform: Option<String>,
    /// Ignore the build cache.
    pub no_cache: bool,
    /// Always pull newer versions of base images.
    pub pull: bool,
    /// Images to use as cache sources (the classic builder pulls them first); a missing one is only a warning.
    pub cache_from: Vec<String>,
    /// Which builder to use (input `builder`).
    pub builder: Builder,
    /// Where BuildKit writes cache metadata for later builds (input `cache-to`).
    pub cache_to: CacheTo,
    /// Build secrets (input `secrets`), served to `RUN --mount=type=secret` by BuildKit: where each value is,
    /// never the value.
    pub secrets: Vec<BuildSecret>,
}

/// The `builder` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Builder {
    /// BuildKit when the daemon supports it, the classic builder otherwise.
    #[default]
    Auto,
    BuildKit,
    Classic,
}

impl Builder {
    /// The input's spellings.
    pub const CHOICES: [(&'static str, Builder); 3] =
        [("auto", Builder::Auto), ("buildkit", Builder::BuildKit), ("classic", Builder::Classic)];
}

/// The `cache-to` input: where a BuildKit build writes cache metadata for later builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheTo {
    /// Into the image's config (`BUILDKIT_INLINE_CACHE=1`), so the pushed image is the next build's cache.
    #[default]
    Inline,
    None,
}

impl CacheTo {
    /// The input's spellings.
    pub const CHOICES: [(&'static str, CacheTo); 2] = [("inline", CacheTo::Inline), ("none", CacheTo::None)];
}

/// BuildKit's limit on one secret.
pub const MAX_SECRET_BYTES: u64 = 500 * 1024;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFrom {
    /// An environment variable of the step (`env=VAR`).
    Env(String),
    /// A file (`src=PATH`, relative to the workspace).
    File(PathBuf),
}

/// One line of the `secrets` input: `id=NAME,env=VAR` or `id=NAME,src=PATH`. Holds no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSecret {
    pub id: String,
    pub from: SecretFrom,
}

/// Parses the `secrets` input's lines (blank lines and `#` comments skipped); paths are taken relative to
/// `workspace` and must name readable files no larger than BuildKit takes.
pub fn parse_secrets(lines: &[String], workspace: &Path) -> Result<Vec<BuildSecret>, String> {
    let mut secrets: Vec<BuildSecret> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let at = format!("line {} ({line:?})", n + 1);
        let mut id = None;
        let mut from = None;
        for part in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("{at}: {part:?} is not key=value; write id=NAME,env=VAR or id=NAME,src=PATH"));
            };
            let value = value.trim();
            match key.trim() {
                "id" => id = Some(value.to_owned()),
                "env" => from = Some(SecretFrom::Env(value.to_owned())),
                "src" | "source" => from = Some(SecretFrom::File(workspace.join(value))),
                other => return Err(format!("{at}: unknown key {other:?}; use id, and env or src")),
            }
        }
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            return Err(format!("{at}: no id; write id=NAME, the id `RUN --mount=type=secret,id=NAME` uses"));
        };
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(format!("{at}: the id {id:?} may hold only letters, digits, `_`, `-` and `.`"));
        }
        if secrets.iter().any(|s| s.id == id) {
            return Err(format!("{at}: the id {id} is given twice"));
        }
        let from = match from {
            Some(SecretFrom::Env(var)) if var.is_empty() || var.contains(char::is_whitespace) => {
                return Err(format!("{at}: {var:?} is not an environment variable name"));
            }
            Some(SecretFrom::File(path)) => {
                let len = std::fs::metadata(&path).ok().filter(|m| m.is_file()).map(|m| m.len()).ok_or_else(|| {
                    format!("{at}: {} is not a file (paths are relative to the workspace)", path.display())
                })?;
                if len > MAX_SECRET_BYTES {
                    return Err(format!(
                        "{at}: {} is larger than BuildKit's 500 KB limit for a secret",
                        path.display()
                    ));
                }
                SecretFrom::File(path)
            }
            Some(env) => env,
            None => return Err(format!("{at}: say where the value is, with env=VAR or src=PATH")),
        };
        secrets.push(BuildSecret { id, from });
    }
    Ok(secrets)
}

/// The standard OCI annotations for provenance, as image labels (absent values are left out).
pub fn oci_labels(
    source_url: Option<&str>,
    revision: Option<&str>,
    version: &str,
    created_rfc3339: &str,
) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut push = |key: &str, value: Option<&str>| {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            labels.push((format!("org.opencontainers.image.{key}"), value.to_owned()));
        }
    };
    push("source", source_url);
    push("revision", revision);
    push("version", Some(version));
    push("created", Some(created_rfc3339));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn secret_lines_name_an_id_and_a_source() {
        let dir = std::env::temp_dir().join(format!("secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token.txt"), "t").unwrap();
        let parsed = parse_secrets(&lines("id=pip,env=PIP_TOKEN\nid=npmrc, src=token.txt"), &dir).unwrap();
        assert_eq!(
            parsed,
            vec![
                BuildSecret { id: "pip".into(), from: SecretFrom::Env("PIP_TOKEN".into()) },
                BuildSecret { id: "npmrc".into(), from: SecretFrom::File(dir.join("token.txt")) },
            ]
        );
        for (bad, says) in [
            ("env=X", "no id"),
            ("id=a", "env=VAR or src=PATH"),
            ("id=a,env=X,mode=0400", "unknown key \"mode\""),
            ("id=a b,env=X", "may hold only"),
            ("id=a,src=missing.txt", "is not a file"),
            ("id=a,env", "is not key=value"),
            ("id=a,env=X\nid=a,env=Y", "given twice"),
        ] {
            let err = parse_secrets(&lines(bad), &dir).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        std::fs::write(dir.join("big"), vec![b'x'; 600 * 1024]).unwrap();
        assert!(parse_secrets(&lines("id=a,src=big"), &dir).unwrap_err().contains("500 KB"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn oci_labels_cover_provenance() {
        let labels = oci_labels(Some("https://github.com/o/r"), Some("abc123"), "v1", "2024-05-01T10:00:00Z");
        assert_eq!(
            labels,
            vec![
                ("org.opencontainers.image.source".to_owned(), "https://github.com/o/r".to_owned()),
                ("org.opencontainers.image.revision".to_owned(), "abc123".to_owned()),
                ("org.opencontainers.image.version".to_owned(), "v1".to_owned()),
                ("org.opencontainers.image.created".to_owned(), "2024-05-01T10:00:00Z".to_owned()),
            ]
        );
        let minimal = oci_labels(None, Some(" "), "v2", "2024-05-01T10:00:00Z");
        assert_eq!(minimal.len(), 2);
        assert_eq!(minimal[0].0, "org.opencontainers.image.version");
    }
}
