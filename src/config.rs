//! Raw inputs → one typed, validated [`Config`], checked before the first AWS call.
//! Every error names the input and says what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::inputs::RawInputs;

/// What the step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Build, push, bundle, create a version and deploy it.
    Deploy,
    /// Deploy an existing version label; nothing is built or uploaded.
    Rollback,
}

/// Lowest environment health accepted once the deploy has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MinHealth {
    Any,
    Yellow,
    Green,
}

/// What to do when the environment is in the middle of another update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBusy {
    Wait,
    Abort,
    Fail,
}

/// How the image to deploy is obtained.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Build it from a context with the Docker Engine (the tag and credentials are filled in at push time).
    Build(Box<crate::image::BuildRequest>),
    /// Deploy this reference (pushed to ECR first when it exists only locally).
    Given(String),
}

/// The image half of a deploy.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub source: ImageSource,
    pub repository: String,
    pub create_repository: bool,
    pub tag: String,
    pub registry: Option<String>,
    pub pin_digest: bool,
}

/// The source bundle's content and where it goes.
#[derive(Debug, Clone)]
pub struct BundlePlan {
    /// The `dockerrun` template, or a `Dockerrun.aws.json` in `bundle-dir`, already validated.
    pub template: Option<crate::bundle::Template>,
    pub container_port: u16,
    pub bundle_dir: Option<PathBuf>,
    pub workspace: PathBuf,
    pub bucket: Option<String>,
    pub prefix: String,
}

/// How to wait for the environment to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPlan {
    pub enabled: bool,
    pub timeout: Duration,
    pub min_health: MinHealth,
    pub health_grace: Duration,
}

/// Everything the step will do, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub application: String,
    pub environment: String,
    pub version_label: String,
    pub version_description: String,
    pub region: Option<String>,
    /// `None` in rollback mode.
    pub image: Option<ImagePlan>,
    /// `None` in rollback mode.
    pub bundle: Option<BundlePlan>,
    pub reuse_existing_version: bool,
    pub wait: WaitPlan,
    pub on_busy: OnBusy,
    pub abort_on_timeout: bool,
    pub abort_on_cancel: bool,
    /// Inputs given that this mode does not use (reported as warnings).
    pub ignored: Vec<&'static str>,
}

/// The GitHub run this step belongs to, read once from `GITHUB_*` / `RUNNER_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
    pub actions: bool,
    pub debug: bool,
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    pub ref_type: Option<String>,
    pub ref_name: Option<String>,
    pub sha: Option<String>,
    pub run_id: Option<String>,
    pub repository: Option<String>,
    pub server_url: Option<String>,
    pub docker_host: Option<String>,
}

impl RunContext {
    /// Reads the run context through an injected lookup (the process environment in `main`).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        Self {
            actions: get("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            debug: get("RUNNER_DEBUG").is_some_and(|v| v == "1"),
            output_file: get("GITHUB_OUTPUT").map(PathBuf::from),
            summary_file: get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            ref_type: get("GITHUB_REF_TYPE"),
            ref_name: get("GITHUB_REF_NAME"),
            sha: get("GITHUB_SHA"),
            run_id: get("GITHUB_RUN_ID"),
            repository: get("GITHUB_REPOSITORY"),
            server_url: get("GITHUB_SERVER_URL"),
            docker_host: get("DOCKER_HOST"),
        }
    }

    /// `https://github.com/owner/repo` when known.
    pub fn repository_url(&self) -> Option<String> {
        Some(format!("{}/{}", self.server_url.as_deref().unwrap_or("https://github.com"), self.repository.as_ref()?))
    }

    /// The URL of this workflow run when known.
    pub fn run_url(&self) -> Option<String> {
        Some(format!("{}/actions/runs/{}", self.repository_url()?, self.run_id.as_ref()?))
    }
}

/// One invalid input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub input: &'static str,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input `{}`: {}", self.input, self.message)
    }
}

/// Every invalid input found, reported together so one run shows all that needs fixing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInputs(pub Vec<InputError>);

impl fmt::Display for InvalidInputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for InvalidInputs {}

/// Largest source bundle Elastic Beanstalk accepts.
pub const MAX_BUNDLE_BYTES: u64 = 500 * 1024 * 1024;

struct Checker<'a> {
    raw: &'a RawInputs,
    errors: Vec<InputError>,
}

impl<'a> Checker<'a> {
    fn fail(&mut self, input: &'static str, message: impl Into<String>) {
        self.errors.push(InputError { input, message: message.into() });
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.raw.get(name)
    }

    fn or_default(&self, name: &'static str) -> &'a str {
        match (self.raw.get(name), crate::inputs::spec(name).map(|s| s.default)) {
            (Some(v), _) => v,
            (None, Some(crate::inputs::DefaultValue::Value(v))) => v,
            _ => "",
        }
    }

    fn required(&mut self, name: &'static str, hint: &str) -> String {
        match self.get(name) {
            Some(v) => v.to_owned(),
            None => {
                self.fail(name, format!("is required: {hint} (with: {name}: … in the workflow, or --{name})"));
                String::new()
            }
        }
    }

    fn boolean(&mut self, name: &'static str) -> bool {
        match parse_bool(self.or_default(name)) {
            Some(b) => b,
            None => {
                let v = self.or_default(name).to_owned();
                self.fail(name, format!("{v:?} is not a boolean; use true or false (also True/TRUE/False/FALSE)"));
                false
            }
        }
    }

    fn duration(&mut self, name: &'static str, allow_zero: bool) -> Duration {
        let v = self.or_default(name);
        match parse_duration(v) {
            Some(d) if allow_zero || !d.is_zero() => d,
            Some(_) => {
                self.fail(name, "must be longer than zero");
                Duration::ZERO
            }
            None => {
                let v = v.to_owned();
                self.fail(name, format!("{v:?} is not a duration; use e.g. 90s, 15m, 1h or 1h30m"));
                Duration::ZERO
            }
        }
    }

    fn choice<T: Copy>(&mut self, name: &'static str, choices: &[(&str, T)]) -> Option<T> {
        let v = self.or_default(name);
        let found = choices.iter().find(|(c, _)| c.eq_ignore_ascii_case(v)).map(|(_, t)| *t);
        if found.is_none() {
            let allowed: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
            let v = v.to_owned();
            self.fail(name, format!("{v:?} is not allowed; use one of: {}", allowed.join(", ")));
        }
        found
    }

    fn key_values(&mut self, name: &'static str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for (n, line) in self.get(name).unwrap_or_default().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !k.trim().contains(char::is_whitespace) => {
                    pairs.push((k.trim().to_owned(), v.to_owned()));
                }
                _ => {
                    self.fail(name, format!("line {} ({line:?}) is not KEY=VALUE; give one KEY=VALUE per line", n + 1))
                }
            }
        }
        pairs
    }

    fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn template(&mut self, name: &'static str, path: &Path) -> Option<crate::bundle::Template> {
        match crate::bundle::Template::load(path) {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(name, format!("{e:#}; it must be a Dockerrun.aws.json v1 object with an \"Image\" object"));
                None
            }
        }
    }

    fn path(&mut self, name: &'static str, workspace: &Path, want_dir: bool) -> Option<PathBuf> {
        let v = self.get(name)?;
        let path = workspace.join(v);
        let ok = if want_dir { path.is_dir() } else { path.is_file() };
        if !ok {
            let what = if want_dir { "directory" } else { "file" };
            self.fail(name, format!("{what} {v:?} does not exist (paths are relative to {})", workspace.display()));
            return None;
        }
        Some(path)
    }
}

/// The toolkit's `getBooleanInput`: exactly `true|True|TRUE|false|False|FALSE`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Parses `90s`, `15m`, `1h`, `1h30m`, `500ms` or plain seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = v;
    if let Ok(secs) = v.parse::<u64>() {
        total = Duration::from_secs(secs);
        rest = "";
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    // Anything beyond a week is surely a typo, and would overflow deadline arithmetic sooner or later.
    (total <= Duration::from_secs(7 * 24 * 3600)).then_some(total)
}

/// Formats a duration the way users write it (`1h30m`, `90s` → `1m30s`, `1500ms` → `1s500ms`), in a form
/// [`parse_duration`] reads back exactly (to the millisecond).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s, ms) = (secs / 3600, secs % 3600 / 60, secs % 60, d.subsec_millis());
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (u64::from(ms), "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

fn valid_environment_name(v: &str) -> bool {
    (4..=40).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

fn valid_region(v: &str) -> bool {
    // e.g. us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().take(parts.len() - 1).all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts.last().is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn valid_bucket(v: &str) -> bool {
    (3..=63).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !v.contains("..")
}

/// The Docker tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_docker_tag(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && !v.starts_with(['.', '-'])
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// ECR repository names, as ECR documents them: 2–256 characters of path components
/// `[a-z0-9]+(?:[._-][a-z0-9]+)*` separated by `/` (so no separator at either end or twice in a row).
fn valid_ecr_repository(v: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (2..=256).contains(&v.len())
        && v.split('/').all(|part| {
            part.starts_with(alnum)
                && part.ends_with(alnum)
                && part.chars().all(|c| alnum(c) || matches!(c, '.' | '_' | '-'))
                && !part.as_bytes().windows(2).any(|w| !alnum(char::from(w[0])) && !alnum(char::from(w[1])))
        })
}

/// The default version label: the tag on tag refs, else the short commit SHA.
fn default_label(ctx: &RunContext) -> Option<String> {
    if ctx.ref_type.as_deref() == Some("tag")
        && let Some(tag) = &ctx.ref_name
    {
        return Some(tag.clone());
    }
    ctx.sha.as_ref().map(|sha| sha.chars().take(12).collect())
}

fn default_description(ctx: &RunContext, label: &str) -> String {
    let mut parts = vec![format!("{label} deployed by eb-deploy")];
    if let Some(name) = &ctx.ref_name {
        parts.push(format!("from {} {name}", ctx.ref_type.as_deref().unwrap_or("ref")));
    }
    if let Some(sha) = &ctx.sha {
        parts.push(format!("at {sha}"));
    }
    if let Some(run) = &ctx.run_id {
        parts.push(format!("(run {run})"));
    }
    parts.join(" ")
}

/// Cuts to at most `max` characters (Beanstalk limits count characters).
fn cut_chars(v: &str, max: usize) -> String {
    v.chars().take(max).collect()
}

fn single_line(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Config {
    /// Validates raw inputs against the run context; `workspace` is where relative paths start.
    pub fn from_inputs(raw: &RawInputs, ctx: &RunContext, workspace: &Path) -> Result<Config, InvalidInputs> {
        let mut c = Checker { raw, errors: Vec::new() };

        let application = c.required("application-name", "name the Elastic Beanstalk application");
        if !application.is_empty() && application.chars().count() > 100 {
            c.fail("application-name", "is longer than 100 characters, the Elastic Beanstalk limit");
        }
        let environment = c.required("environment-name", "name the Elastic Beanstalk environment to deploy to");
        if !environment.is_empty() && !valid_environment_name(&environment) {
            c.fail(
                "environment-name",
                format!(
                    "{environment:?} is not a valid environment name: 4 to 40 letters, digits or hyphens, not starting or ending with a hyphen"
                ),
            );
        }

        let mode = c.choice("mode", &[("deploy", Mode::Deploy), ("rollback", Mode::Rollback)]).unwrap_or(Mode::Deploy);

        let version_label = match (c.get("version-label"), mode) {
            (Some(v), _) => v.to_owned(),
            (None, Mode::Rollback) => {
                c.fail("version-label", "is required in rollback mode: give the existing version label to return to");
                String::new()
            }
            (None, Mode::Deploy) => default_label(ctx).unwrap_or_else(|| {
                c.fail(
                    "version-label",
                    "was not given and there is no GITHUB_SHA/GITHUB_REF_NAME to derive it from; pass --version-label",
                );
                String::new()
            }),
        };
        if version_label.is_empty() && !c.errors.iter().any(|e| e.input == "version-label") {
            c.fail("version-label", "came out empty from the run's ref (an empty tag name?); pass --version-label");
        }
        if version_label.chars().count() > 100 {
            c.fail("version-label", "is longer than 100 characters, the Elastic Beanstalk limit");
        }
        if version_label.chars().any(char::is_control) {
            c.fail("version-label", "contains control characters");
        }
        let version_description = cut_chars(
            &single_line(
                c.get("version-description")
                    .map_or_else(|| default_description(ctx, &version_label), str::to_owned)
                    .as_str(),
            ),
            200,
        );

        let region = c.get("region").map(str::to_owned);
        if let Some(r) = &region
            && !valid_region(r)
        {
            c.fail("region", format!("{r:?} is not an AWS region name such as us-east-1 or eu-west-2"));
        }

        let reuse_existing_version = c.boolean("reuse-existing-version");
        let wait_enabled = c.boolean("wait");
        let timeout = c.duration("wait-timeout", false);
        let health_grace = c.duration("health-grace", true);
        let min_health = c
            .choice(
                "min-health",
                &[("green", MinHealth::Green), ("yellow", MinHealth::Yellow), ("any", MinHealth::Any)],
            )
            .unwrap_or(MinHealth::Green);
        let on_busy = c
            .choice("on-busy", &[("wait", OnBusy::Wait), ("abort", OnBusy::Abort), ("fail", OnBusy::Fail)])
            .unwrap_or(OnBusy::Wait);
        let abort_on_timeout = c.boolean("abort-on-timeout");
        let abort_on_cancel = c.boolean("abort-on-cancel");

        // Image and bundle inputs: always syntax-checked, used only when deploying.
        let container_port = match c.or_default("container-port").parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                let v = c.or_default("container-port").to_owned();
                c.fail("container-port", format!("{v:?} is not a port number (1-65535)"));
                0
            }
        };
        let bucket = c.get("bucket").map(str::to_owned);
        if let Some(b) = &bucket
            && !valid_bucket(b)
        {
            c.fail(
                "bucket",
                format!("{b:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"),
            );
        }
        let prefix = c.get("bucket-prefix").unwrap_or(&application).trim_matches('/').to_owned();
        if prefix.len() > 900 {
            c.fail("bucket-prefix", "is too long for an S3 key (keep it under 900 characters)");
        }
        let build_args = c.key_values("build-args");
        let mut labels = c.key_values("labels");
        let cache_from = c.lines("cache-from");
        let builder = c.choice("builder", &crate::image::Builder::CHOICES).unwrap_or_default();
        let secrets = match crate::image::secrets::parse(&c.lines("secrets"), workspace) {
            Ok(secrets) => secrets,
            Err(message) => {
                c.fail("secrets", message);
                Vec::new()
            }
        };
        if builder == crate::image::Builder::Classic && !secrets.is_empty() {
            c.fail("secrets", "needs BuildKit, and `builder` is classic; set `builder: auto` or `buildkit`");
        }
        let cache_to = c.choice("cache-to", &crate::image::CacheTo::CHOICES).unwrap_or_default();
        let no_cache = c.boolean("no-cache");
        let pull = c.boolean("pull");
        let create_repository = c.boolean("create-repository");
        let pin_digest = c.boolean("pin-digest");
        let repository = match c.get("ecr-repository") {
            Some(r) => {
                if !valid_ecr_repository(r) {
                    c.fail(
                        "ecr-repository",
                        format!("{r:?} is not a valid ECR repository name (lowercase letters, digits, . _ - and / between parts; 2-256 characters)"),
                    );
                }
                r.to_owned()
            }
            None => crate::registry::ecr_repository_name(&application),
        };
        let tag = match c.get("image-tag") {
            Some(t) => {
                if !valid_docker_tag(t) {
                    c.fail(
                        "image-tag",
                        format!("{t:?} is not a valid Docker tag (letters, digits, _ . -; not starting with . or -; at most 128)"),
                    );
                }
                t.to_owned()
            }
            None => crate::registry::docker_tag(&version_label),
        };
        if let Some(r) = c.get("registry")
            && (r.contains("://") || r.contains('/') || r.is_empty())
        {
            c.fail("registry", format!("{r:?} must be a registry host (and optional port), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        }
        if let Some(p) = c.get("platform")
            && !p.contains('/')
        {
            c.fail("platform", format!("{p:?} is not a platform; use os/arch such as linux/amd64 or linux/arm64"));
        }

        let mut ignored = Vec::new();
        let (image, bundle) = match mode {
            Mode::Rollback => {
                for name in [
                    "image",
                    "dockerrun",
                    "bundle-dir",
                    "build-args",
                    "labels",
                    "target",
                    "cache-from",
                    "secrets",
                    "ecr-repository",
                    "image-tag",
                ] {
                    if c.get(name).is_some() {
                        ignored.push(crate::inputs::spec(name).map_or("image", |s| s.name));
                    }
                }
                (None, None)
            }
            Mode::Deploy => {
                let source = match c.get("image") {
                    Some(image) => {
                        if image.contains(char::is_whitespace) {
                            c.fail("image", format!("{image:?} is not an image reference"));
                        }
                        ImageSource::Given(image.to_owned())
                    }
                    None => {
                        let context = c.or_default("context").to_owned();
                        let context_path = workspace.join(&context);
                        if !context_path.is_dir() {
                            c.fail(
                                "context",
                                format!("build context {context:?} is not a directory (paths are relative to {}); or give `image` to deploy a prebuilt image", workspace.display()),
                            );
                        }
                        let dockerfile = match c.get("dockerfile") {
                            Some(_) => c.path("dockerfile", workspace, false),
                            None => {
                                if context_path.is_dir() && !context_path.join("Dockerfile").is_file() {
                                    c.fail(
                                        "dockerfile",
                                        format!("there is no Dockerfile in the build context {context:?}; set `dockerfile`, `context`, or give `image`"),
                                    );
                                }
                                None
                            }
                        };
                        add_oci_labels(&mut labels, ctx, &version_label);
                        ImageSource::Build(Box::new(crate::image::BuildRequest {
                            context: context_path,
                            dockerfile,
                            build_args,
                            labels,
                            target: c.get("target").map(str::to_owned),
                            platform: c.get("platform").map(str::to_owned),
                            no_cache,
                            pull,
                            cache_from,
                            builder,
                            cache_to,
                            secrets,
                            ..Default::default()
                        }))
                    }
                };
                let image = ImagePlan {
                    source,
                    repository,
                    create_repository,
                    tag,
                    registry: c.get("registry").map(str::to_owned),
                    pin_digest,
                };
                let dockerrun = c.path("dockerrun", workspace, false);
                let bundle_dir = c.path("bundle-dir", workspace, true);
                let bundled = bundle_dir.as_ref().map(|d| d.join(crate::bundle::DOCKERRUN)).filter(|p| p.is_file());
                let template = match (dockerrun, bundled) {
                    (Some(given), Some(bundled)) => {
                        c.fail(
                            "dockerrun",
                            format!(
                                "bundle-dir already has {}; give the template one way, not both",
                                bundled.display()
                            ),
                        );
                        let _ = given;
                        None
                    }
                    (Some(path), None) => c.template("dockerrun", &path),
                    (None, Some(path)) => c.template("bundle-dir", &path),
                    (None, None) => None,
                };
                let bundle = BundlePlan {
                    template,
                    container_port,
                    bundle_dir,
                    workspace: workspace.to_path_buf(),
                    bucket,
                    prefix,
                };
                (Some(image), Some(bundle))
            }
        };

        if !c.errors.is_empty() {
            return Err(InvalidInputs(c.errors));
        }
        Ok(Config {
            mode,
            application,
            environment,
            version_label,
            version_description,
            region,
            image,
            bundle,
            reuse_existing_version,
            wait: WaitPlan { enabled: wait_enabled, timeout, min_health, health_grace },
            on_busy,
            abort_on_timeout,
            abort_on_cancel,
            ignored,
        })
    }
}

fn add_oci_labels(labels: &mut Vec<(String, String)>, ctx: &RunContext, version: &str) {
    let created = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    let source = ctx.repository_url();
    for (key, value) in crate::image::oci_labels(source.as_deref(), ctx.sha.as_deref(), version, &created) {
        // Labels the user gave win.
        if !labels.iter().any(|(k, _)| *k == key) {
            labels.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&'static str, &str)]) -> RawInputs {
        let mut raw = RawInputs::default();
        for (k, v) in pairs {
            raw.set(k, v);
        }
        raw
    }

    fn ctx() -> RunContext {
        RunContext {
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ref_type: Some("branch".into()),
            ref_name: Some("main".into()),
            run_id: Some("42".into()),
            repository: Some("team/app".into()),
            ..RunContext::default()
        }
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![("application-name", "My App"), ("environment-name", "my-env"), ("image", "nginx:1")]
    }

    fn check(extra: &[(&'static str, &str)]) -> Result<Config, InvalidInputs> {
        let mut pairs = base();
        pairs.extend_from_slice(extra);
        Config::from_inputs(&raw(&pairs), &ctx(), Path::new("/nonexistent-workspace"))
    }

    #[test]
    fn defaults_from_the_run() {
        let cfg = check(&[]).unwrap();
        assert_eq!(cfg.version_label, "0123456789ab");
        assert_eq!(cfg.mode, Mode::Deploy);
        assert_eq!(cfg.wait.timeout, Duration::from_secs(1200));
        assert_eq!(cfg.wait.health_grace, Duration::from_secs(60));
        assert_eq!(cfg.wait.min_health, MinHealth::Green);
        assert_eq!(cfg.on_busy, OnBusy::Wait);
        assert!(cfg.reuse_existing_version && cfg.wait.enabled && !cfg.abort_on_timeout);
        let image = cfg.image.unwrap();
        assert_eq!(image.repository, "my-app");
        assert_eq!(image.tag, "0123456789ab");
        assert!(image.pin_digest);
        let bundle = cfg.bundle.unwrap();
        assert_eq!(bundle.prefix, "My App");
        assert_eq!(bundle.container_port, 80);
        assert!(cfg.version_description.contains("0123456789abcdef"));
    }

    #[test]
    fn tag_refs_use_the_tag() {
        let mut c = ctx();
        c.ref_type = Some("tag".into());
        c.ref_name = Some("v1.2.3".into());
        let cfg = Config::from_inputs(&raw(&base()), &c, Path::new("/x")).unwrap();
        assert_eq!(cfg.version_label, "v1.2.3");
        assert_eq!(cfg.image.unwrap().tag, "v1.2.3");
    }

    #[test]
    fn an_empty_tag_name_is_not_a_label() {
        let mut c = ctx();
        c.ref_type = Some("tag".into());
        c.ref_name = Some(String::new());
        let err = Config::from_inputs(&raw(&base()), &c, Path::new("/x")).unwrap_err();
        assert_eq!(err.0[0].input, "version-label", "{err}");
    }

    #[test]
    fn description_is_one_line_and_cut_to_200_chars() {
        let long = "é".repeat(300) + "\nsecond line";
        let cfg = check(&[("version-description", &long)]).unwrap();
        assert_eq!(cfg.version_description.chars().count(), 200);
        let cfg = check(&[("version-description", "a\nb")]).unwrap();
        assert_eq!(cfg.version_description, "a b");
    }

    #[test]
    fn reports_every_bad_input_by_name() {
        let err = Config::from_inputs(
            &raw(&[
                ("environment-name", "-bad"),
                ("wait-timeout", "soon"),
                ("wait", "yes"),
                ("min-health", "blue"),
                ("container-port", "99999"),
            ]),
            &ctx(),
            Path::new("/x"),
        )
        .unwrap_err();
        let names: Vec<_> = err.0.iter().map(|e| e.input).collect();
        for want in ["application-name", "environment-name", "wait-timeout", "wait", "min-health", "container-port"] {
            assert!(names.contains(&want), "{want} missing in {err}");
        }
        assert!(err.to_string().contains("use one of: green, yellow, any"), "{err}");
    }

    #[test]
    fn rollback_needs_an_explicit_label_and_builds_nothing() {
        let err = Config::from_inputs(
            &raw(&[("application-name", "a"), ("environment-name", "envx"), ("mode", "rollback")]),
            &ctx(),
            Path::new("/x"),
        )
        .unwrap_err();
        assert_eq!(err.0[0].input, "version-label");
        let cfg = Config::from_inputs(
            &raw(&[
                ("application-name", "a"),
                ("environment-name", "envx"),
                ("mode", "rollback"),
                ("version-label", "v1"),
                ("image", "x:1"),
            ]),
            &ctx(),
            Path::new("/x"),
        )
        .unwrap();
        assert!(cfg.image.is_none() && cfg.bundle.is_none());
        assert_eq!(cfg.ignored, vec!["image"]);
    }

    #[test]
    fn build_needs_a_context_with_a_dockerfile() {
        let dir = std::env::temp_dir().join(format!("cfg-ctx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("app")).unwrap();
        let pairs = [("application-name", "a"), ("environment-name", "envx"), ("context", "app")];
        let err = Config::from_inputs(&raw(&pairs), &ctx(), &dir).unwrap_err();
        assert_eq!(err.0[0].input, "dockerfile", "{err}");
        std::fs::write(dir.join("app/Dockerfile"), "FROM scratch\n").unwrap();
        let cfg = Config::from_inputs(&raw(&pairs), &ctx(), &dir).unwrap();
        let ImageSource::Build(spec) = cfg.image.unwrap().source else { panic!("expected a build") };
        assert_eq!(spec.context, dir.join("app"));
        assert!(
            spec.labels
                .iter()
                .any(|(k, v)| k == "org.opencontainers.image.source" && v == "https://github.com/team/app")
        );
        assert!(spec.labels.iter().any(|(k, v)| k == "org.opencontainers.image.version" && v == "0123456789ab"));
        let err = Config::from_inputs(&raw(&[pairs[0], pairs[1], ("context", "missing")]), &ctx(), &dir).unwrap_err();
        assert_eq!(err.0[0].input, "context");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_value_lines() {
        let cfg = Config::from_inputs(
            &raw(&[
                ("application-name", "a"),
                ("environment-name", "envx"),
                ("context", "."),
                ("build-args", "A=1\n\n# comment\nB=x=y\n"),
                ("labels", "org.opencontainers.image.version=custom"),
            ]),
            &ctx(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
        );
        // src/ has no Dockerfile: the only error is that one.
        let err = cfg.unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        let err = check(&[("build-args", "A=1\nnot a pair")]).unwrap_err();
        assert!(err.0[0].message.contains("line 2"), "{err}");
    }

    #[test]
    fn builder_and_cache_to_choices() {
        let err = check(&[("builder", "kaniko"), ("cache-to", "registry")]).unwrap_err();
        let names: Vec<_> = err.0.iter().map(|e| e.input).collect();
        assert_eq!(names, ["builder", "cache-to"], "{err}");
        assert!(err.to_string().contains("use one of: auto, buildkit, classic"), "{err}");
        assert!(err.to_string().contains("use one of: inline, none"), "{err}");

        let (dir, build) = build_fixture("builder");
        let choices = |extra: &[(&'static str, &str)]| {
            let request = build(extra).unwrap();
            (request.builder, request.cache_to)
        };
        assert_eq!(choices(&[]), (crate::image::Builder::Auto, crate::image::CacheTo::Inline));
        assert_eq!(
            choices(&[("builder", "Classic"), ("cache-to", "none")]),
            (crate::image::Builder::Classic, crate::image::CacheTo::None)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_are_checked_and_need_buildkit() {
        let (dir, build) = build_fixture("secrets");
        let request = build(&[("secrets", "id=pip,env=PIP_TOKEN\n# a comment\n")]).unwrap();
        assert_eq!(request.secrets.len(), 1);
        let err = build(&[("secrets", "id=pip,env=PIP_TOKEN"), ("builder", "classic")]).unwrap_err();
        assert_eq!(err.0[0].input, "secrets");
        assert!(err.0[0].message.contains("needs BuildKit"), "{err}");
        let err = build(&[("secrets", "id=x,src=nowhere.txt")]).unwrap_err();
        assert!(err.to_string().starts_with("input `secrets`: line 1"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A workspace with a Dockerfile, and the build request `extra` inputs make of it.
    #[allow(clippy::type_complexity)]
    fn build_fixture(
        name: &str,
    ) -> (PathBuf, impl Fn(&[(&'static str, &str)]) -> Result<crate::image::BuildRequest, InvalidInputs>) {
        let dir = std::env::temp_dir().join(format!("cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        let workspace = dir.clone();
        let build = move |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("application-name", "a"), ("environment-name", "envx")];
            pairs.extend_from_slice(extra);
            let cfg = Config::from_inputs(&raw(&pairs), &ctx(), &workspace)?;
            match cfg.image.map(|i| i.source) {
                Some(ImageSource::Build(request)) => Ok(*request),
                other => panic!("expected a build, got {other:?}"),
            }
        };
        (dir, build)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("120"), Some(Duration::from_secs(120)));
        for bad in ["", "m", "10x", "1.5h", "-1s", "s10", "99999999999999999999h", "9000h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn booleans_are_the_toolkits() {
        for ok in ["true", "True", "TRUE", "false", "False", "FALSE"] {
            assert!(parse_bool(ok).is_some());
        }
        for bad in ["yes", "1", "tRUE", "on"] {
            assert!(parse_bool(bad).is_none());
        }
    }

    #[test]
    fn derived_names() {
        // Derived defaults always pass the checks given values must pass.
        for app in ["My App_2", "X", "a//b", "-x-"] {
            assert!(valid_ecr_repository(&crate::registry::ecr_repository_name(app)), "{app}");
        }
        for label in ["release/1.0+build", ".hidden", &"x".repeat(300), ""] {
            assert!(valid_docker_tag(&crate::registry::docker_tag(label)), "{label}");
        }
        assert!(valid_region("us-east-1") && valid_region("us-gov-west-1") && !valid_region("useast1"));
        assert!(valid_ecr_repository("team/app-1") && valid_ecr_repository("a.b_c-d"));
        for bad in ["Team/App", "a--b", "a/-b", "a//b", "-ab", "a", "ab/"] {
            assert!(!valid_ecr_repository(bad), "{bad}");
        }
    }
}
