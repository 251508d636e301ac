//! Raw inputs → one typed, validated [`Config`], checked before the first AWS call.
//! Every error names the input and says what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::beanstalk::model::Health;
use crate::build_plan::{self, BuildPlan, Builder, CacheTo};
use crate::dockerrun::{DOCKERRUN, Template};
use crate::format::parse_duration;
use crate::inputs::RawInputs;
use crate::names;
use crate::options::{self, Changes};

/// What the step does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Build, push, bundle, create a version and deploy it.
    #[default]
    Deploy,
    /// Deploy an existing version label; nothing is built or uploaded.
    Rollback,
    /// Swap the CNAMEs of two environments; nothing is deployed.
    Swap,
    /// Terminate environments eb-deploy created; nothing is deployed.
    Terminate,
}

impl Mode {
    /// The input's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Deploy => "deploy",
            Mode::Rollback => "rollback",
            Mode::Swap => "swap",
            Mode::Terminate => "terminate",
        }
    }
}

/// Lowest environment health accepted once the deploy has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MinHealth {
    Any,
    Yellow,
    Green,
}

impl MinHealth {
    /// Whether an environment with `health` meets this minimum.
    pub fn accepts(self, health: Health) -> bool {
        match self {
            MinHealth::Any => true,
            MinHealth::Yellow => health >= Health::Yellow,
            MinHealth::Green => health >= Health::Green,
        }
    }

    /// The input's spelling.
    pub fn name(self) -> &'static str {
        match self {
            MinHealth::Green => "green",
            MinHealth::Yellow => "yellow",
            MinHealth::Any => "any",
        }
    }
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
    /// Build it from a context with the Docker Engine (the image stage adds the tag and the credentials).
    Build(Box<BuildPlan>),
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
    pub template: Option<Template>,
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

/// What a deploy builds and publishes.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    pub image: ImagePlan,
    pub bundle: BundlePlan,
    /// The new version's description.
    pub description: String,
    /// When the label already exists: deploy it as is (true) or fail (false).
    pub reuse_existing: bool,
}

/// What the step does to the environments.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Build (or take) an image, publish it as a new version (or reuse the label) and deploy it.
    Deploy(Box<DeployPlan>),
    /// Deploy an existing version label; nothing is built or uploaded.
    Rollback,
    /// Swap the CNAMEs of the environment and `swap-with`; nothing is deployed.
    Swap,
    /// Terminate the environments and wait until they are gone; only those eb-deploy created for this
    /// repository unless `force`.
    Terminate { force: bool },
}

impl Plan {
    /// Which mode this plan is.
    pub fn mode(&self) -> Mode {
        match self {
            Plan::Deploy(_) => Mode::Deploy,
            Plan::Rollback => Mode::Rollback,
            Plan::Swap => Mode::Swap,
            Plan::Terminate { .. } => Mode::Terminate,
        }
    }
}

/// Where the check after the verdict goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// A path on the environment's own URL.
    Path(String),
    /// A full URL (an app behind a custom domain).
    Url(String),
}

/// The check that the app really answers, once Beanstalk's verdict is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPlan {
    pub target: CheckTarget,
    /// Accepted statuses, as inclusive ranges.
    pub statuses: Vec<(u16, u16)>,
    /// Text the body must contain.
    pub body: Option<String>,
    /// How long attempts go on.
    pub timeout: Duration,
}

impl CheckPlan {
    /// Whether `status` is accepted.
    pub fn accepts(&self, status: u16) -> bool {
        self.statuses.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }

    /// The accepted statuses as the input spells them (`200-399`).
    pub fn statuses_text(&self) -> String {
        let parts: Vec<String> =
            self.statuses.iter().map(|(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") }).collect();
        parts.join(",")
    }
}

/// Parses `200-399`, `200,204`, `200-299,301`: HTTP statuses 100-599.
pub fn parse_statuses(v: &str) -> Option<Vec<(u16, u16)>> {
    let code = |s: &str| s.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((lo, hi)) => (code(lo)?, code(hi)?),
            None => (code(part)?, code(part)?),
        };
        if range.0 > range.1 {
            return None;
        }
        out.push(range);
    }
    (!out.is_empty()).then_some(out)
}

/// What happens after a deploy fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// Deploy the previous version again (and check it) when this step's deploy failed.
    pub rollback: bool,
    /// Fetch and show the instances' tail logs.
    pub logs: bool,
}
/// The platform a created environment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// The newest "Amazon Linux 2023 … running Docker" solution stack Beanstalk lists.
    NewestDocker,
    /// A solution stack by name.
    SolutionStack(String),
    /// A platform by ARN.
    Arn(String),
}

/// How a missing environment is created (`create-environment: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub platform: Platform,
    /// `PREFIX.REGION.elasticbeanstalk.com`; Beanstalk picks one when not given.
    pub cname_prefix: Option<String>,
}

/// What the step creates when it is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Create {
    /// `create-application: true`.
    pub application: bool,
    /// `create-environment: true`, and how.
    pub environment: Option<Launch>,
    /// The user's tags for what is created (eb-deploy adds its own, [`OWNER_TAG`]).
    pub tags: Vec<(String, String)>,
}

/// The tag eb-deploy puts on what it creates: the repository it was created for (`mode: terminate` checks it).
pub const OWNER_TAG: &str = "eb-deploy:repository";
/// Most tags a Beanstalk resource carries (eb-deploy's own included).
pub const MAX_TAGS: usize = 50;

/// In which order several environments are rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Up to `max` at once, in the order given.
    Parallel { max: usize },
    /// One after another, in the order given: the first ones are the canaries.
    Sequential,
}

impl Strategy {
    /// How many environments may be under way at once.
    pub fn concurrency(self) -> usize {
        match self {
            Strategy::Parallel { max } => max.max(1),
            Strategy::Sequential => 1,
        }
    }
}

/// What a fleet does when one of its environments fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Start no more environments; those under way finish.
    Stop,
    /// Carry on with the others.
    Continue,
    /// Stop, then return every environment this step moved to its previous version.
    Rollback,
}

/// Everything the step will do, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub application: String,
    /// One or more environments of the application, in the order given (never empty).
    pub environments: Vec<String>,
    /// The version deployed: new (deploy) or existing (rollback).
    pub version_label: String,
    pub region: Option<String>,
    pub plan: Plan,
    pub wait: WaitPlan,
    pub on_busy: OnBusy,
    pub abort_on_timeout: bool,
    pub abort_on_cancel: bool,
    pub strategy: Strategy,
    pub on_failure: OnFailure,
    /// The check after the verdict, when asked for.
    pub check: Option<CheckPlan>,
    pub recovery: RecoveryPlan,
    /// Blue/green: the live environment whose CNAME the deployed one takes once verified (or, in swap mode,
    /// the other one of the pair).
    pub swap_with: Option<String>,
    /// Option settings (environment variables first) that go into the same UpdateEnvironment call as the
    /// version; empty when none were given.
    pub settings: Changes,
    /// What is created when missing.
    pub create: Create,
    /// `keep-versions`: after a successful deploy, delete the oldest versions beyond this many.
    pub keep_versions: Option<usize>,
    /// Who creates things: the repository (`owner/name`), or `local` outside Actions; the value of
    /// [`OWNER_TAG`].
    pub owner: String,
    /// Inputs given that this mode does not use (reported as warnings).
    pub ignored: Vec<&'static str>,
}

impl Config {
    /// The environments as one phrase for headlines: `shop-prod`, or `shop-eu, shop-us`.
    pub fn environments_phrase(&self) -> String {
        self.environments.join(", ")
    }
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

    /// Who creates things, for the [`OWNER_TAG`]: the repository, or `local` outside Actions.
    pub fn owner(&self) -> String {
        self.repository.clone().unwrap_or_else(|| "local".to_owned())
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

/// The most environments one step deploys (Beanstalk's own default quota is 200 per region; beyond a few
/// dozen, split the fleet over jobs).
pub const MAX_ENVIRONMENTS: usize = 50;

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

    /// Whether the input was given with a value other than its declared default.
    fn given(&self, name: &str) -> bool {
        let default = crate::inputs::spec(name).map(|s| s.default);
        self.raw.get(name).is_some_and(|v| !matches!(default, Some(crate::inputs::DefaultValue::Value(d)) if d == v))
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

    /// `check-path`/`check-url` and their settings.
    fn check_plan(&mut self) -> Option<CheckPlan> {
        let target = match (self.get("check-path"), self.get("check-url")) {
            (Some(_), Some(_)) => {
                self.fail("check-url", "give check-path (on the environment's URL) or check-url, not both");
                return None;
            }
            (Some(path), None) if !path.starts_with('/') || path.contains(char::is_whitespace) => {
                let path = path.to_owned();
                self.fail("check-path", format!("{path:?} is not a path; it starts with / (e.g. /health)"));
                return None;
            }
            (Some(path), None) => CheckTarget::Path(path.to_owned()),
            (None, Some(url)) => {
                let parsed =
                    url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if parsed.is_none() {
                    let url = url.to_owned();
                    self.fail("check-url", format!("{url:?} is not an http:// or https:// URL"));
                    return None;
                }
                CheckTarget::Url(url.to_owned())
            }
            (None, None) => {
                for name in ["check-body"] {
                    if self.get(name).is_some() {
                        self.fail(name, "needs check-path or check-url: say what to check");
                    }
                }
                return None;
            }
        };
        let statuses = match parse_statuses(self.or_default("check-status")) {
            Some(s) => s,
            None => {
                let v = self.or_default("check-status").to_owned();
                self.fail("check-status", format!("{v:?} is not a list of HTTP statuses; use e.g. 200-399 or 200,204"));
                Vec::new()
            }
        };
        let timeout = self.duration("check-timeout", false);
        Some(CheckPlan { target, statuses, body: self.get("check-body").map(str::to_owned), timeout })
    }

    /// A parsed value, or its errors recorded against `input`.
    fn parsed<T>(&mut self, input: &'static str, result: Result<T, Vec<String>>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(errors) => {
                for e in errors {
                    self.fail(input, e);
                }
                None
            }
        }
    }

    /// `environment-variables`, `remove-environment-variables` and `option-settings`, as one set of changes.
    fn settings(&mut self) -> Changes {
        let text = |c: &Self, name: &str| c.get(name).unwrap_or_default();
        let variables =
            self.parsed("environment-variables", options::parse_variables(text(self, "environment-variables")));
        let removed = self
            .parsed("remove-environment-variables", options::parse_names(text(self, "remove-environment-variables")));
        let option_settings = match self.get("option-settings") {
            Some(yaml) => self.parsed("option-settings", options::parse_option_settings(yaml)),
            None => Some(Vec::new()),
        };
        let (Some(variables), Some(removed), Some(option_settings)) = (variables, removed, option_settings) else {
            return Changes::default();
        };
        match options::combine(variables, removed, option_settings) {
            Ok(changes) => changes,
            Err(errors) => {
                for (input, message) in errors {
                    self.fail(input, message);
                }
                Changes::default()
            }
        }
    }

    /// `tags`: KEY=VALUE lines within Beanstalk's limits, leaving room and the key for eb-deploy's own tag.
    fn tags(&mut self) -> Vec<(String, String)> {
        let tags = self.key_values("tags");
        for (n, (key, value)) in tags.iter().enumerate() {
            let lower = key.to_ascii_lowercase();
            if key.chars().count() > 128 || value.chars().count() > 256 {
                self.fail("tags", format!("{key}: keys have at most 128 characters and values at most 256"));
            } else if ["aws:", "elasticbeanstalk:", "eb-deploy:"].iter().any(|p| lower.starts_with(p)) {
                self.fail(
                    "tags",
                    format!("{key}: keys starting with aws:, elasticbeanstalk: or eb-deploy: are reserved"),
                );
            } else if tags[..n].iter().any(|(k, _)| k == key) {
                self.fail("tags", format!("{key} is given twice"));
            }
        }
        if tags.len() >= MAX_TAGS {
            self.fail(
                "tags",
                format!("gives {} tags; Elastic Beanstalk allows {MAX_TAGS}, one of them eb-deploy's", tags.len()),
            );
        }
        tags
    }

    /// `create-application`, `create-environment` and what a created environment needs.
    fn create(&mut self, environments: usize) -> Create {
        let application = self.boolean("create-application");
        let environment = self.boolean("create-environment");
        let platform = match self.get("solution-stack") {
            None => Platform::NewestDocker,
            Some(v) if v.contains(['\n', '\r']) || v.chars().count() > 200 => {
                self.fail("solution-stack", "must be one solution stack name or platform ARN, on one line");
                Platform::NewestDocker
            }
            Some(v) if v.starts_with("arn:") => {
                if !(v.contains(":elasticbeanstalk:") && v.contains(":platform/")) {
                    self.fail(
                        "solution-stack",
                        format!("{v:?} is not an Elastic Beanstalk platform ARN (arn:aws:elasticbeanstalk:REGION::platform/NAME/VERSION)"),
                    );
                }
                Platform::Arn(v.to_owned())
            }
            Some(v) => Platform::SolutionStack(v.to_owned()),
        };
        let cname_prefix = self.get("cname-prefix").map(str::to_owned);
        if let Some(p) = &cname_prefix {
            let ok = (4..=63).contains(&p.len())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !p.starts_with('-')
                && !p.ends_with('-');
            if !ok {
                self.fail(
                    "cname-prefix",
                    format!("{p:?} is not a CNAME prefix: 4 to 63 letters, digits or hyphens, not starting or ending with a hyphen"),
                );
            } else if environments > 1 {
                self.fail("cname-prefix", "is one environment's CNAME: give a single environment-name with it");
            }
        }
        let tags = self.tags();
        if !environment {
            for name in ["solution-stack", "cname-prefix"] {
                if self.get(name).is_some() {
                    self.fail(
                        name,
                        "is used only to create an environment: set create-environment: true, or remove it",
                    );
                }
            }
            if !application && !tags.is_empty() {
                self.fail("tags", "are used only for what eb-deploy creates: set create-environment or create-application: true, or remove them");
            }
        }
        let environment = environment.then_some(Launch { platform, cname_prefix });
        Create { application, environment, tags }
    }

    /// `keep-versions`: a positive number, or none.
    fn keep_versions(&mut self) -> Option<usize> {
        let v = self.get("keep-versions")?;
        match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Some(n),
            _ => {
                let v = v.to_owned();
                self.fail(
                    "keep-versions",
                    format!("{v:?} is not a number of versions from 1 to 1000 (leave it empty to keep them all)"),
                );
                None
            }
        }
    }

    /// `environment-name`: one or more valid names, one per line or comma-separated, each once.
    fn environment_names(&mut self) -> Vec<String> {
        let given = self.required("environment-name", "name the Elastic Beanstalk environment(s) to deploy to");
        let mut names: Vec<String> = Vec::new();
        for name in given.split(['\n', ',']).map(str::trim).filter(|n| !n.is_empty()) {
            if !names::valid_environment_name(name) {
                self.fail(
                    "environment-name",
                    format!(
                        "{name:?} is not a valid environment name: 4 to 40 letters, digits or hyphens, not starting or ending with a hyphen"
                    ),
                );
            } else if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                self.fail("environment-name", format!("{name} is given twice"));
            } else {
                names.push(name.to_owned());
            }
        }
        if names.len() > MAX_ENVIRONMENTS {
            self.fail(
                "environment-name",
                format!("names {} environments; one step deploys at most {MAX_ENVIRONMENTS}", names.len()),
            );
        }
        names
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

    fn template(&mut self, name: &'static str, path: &Path) -> Option<Template> {
        match Template::load(path) {
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
        let environments = c.environment_names();
        let mode = c
            .choice(
                "mode",
                &[
                    ("deploy", Mode::Deploy),
                    ("rollback", Mode::Rollback),
                    ("swap", Mode::Swap),
                    ("terminate", Mode::Terminate),
                ],
            )
            .unwrap_or(Mode::Deploy);

        let version_label = match (c.get("version-label"), mode) {
            (Some(v), _) => v.to_owned(),
            // Nothing is deployed: the label only names the step in the report.
            (None, Mode::Swap | Mode::Terminate) => default_label(ctx).unwrap_or_else(|| mode.name().to_owned()),
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
            && !names::valid_region(r)
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
        let max_parallel = match c.get("max-parallel") {
            None => environments.len().max(1),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    let v = v.to_owned();
                    c.fail("max-parallel", format!("{v:?} is not a positive whole number"));
                    1
                }
            },
        };
        let strategy = c
            .choice(
                "strategy",
                &[("parallel", Strategy::Parallel { max: max_parallel }), ("sequential", Strategy::Sequential)],
            )
            .unwrap_or(Strategy::Sequential);
        let on_failure = c
            .choice(
                "on-failure",
                &[("stop", OnFailure::Stop), ("continue", OnFailure::Continue), ("rollback", OnFailure::Rollback)],
            )
            .unwrap_or(OnFailure::Stop);
        let check = c.check_plan();
        let recovery = RecoveryPlan { rollback: c.boolean("rollback-on-failure"), logs: c.boolean("logs-on-failure") };
        if recovery.rollback && mode == Mode::Swap {
            c.fail(
                "rollback-on-failure",
                "does not apply to mode: swap (nothing is deployed); to undo a swap, swap again",
            );
        }
        let swap_with = c.get("swap-with").map(str::to_owned);
        if let Some(live) = &swap_with {
            if !names::valid_environment_name(live) {
                c.fail(
                    "swap-with",
                    format!("{live:?} is not a valid environment name: 4 to 40 letters, digits or hyphens, not starting or ending with a hyphen"),
                );
            } else if environments.iter().any(|e| e.eq_ignore_ascii_case(live)) {
                c.fail(
                    "swap-with",
                    format!(
                        "{live} is also in environment-name; name the live environment here and the idle one there"
                    ),
                );
            }
            if environments.len() > 1 {
                c.fail(
                    "swap-with",
                    "pairs one idle environment with one live one; give a single environment-name with it",
                );
            }
            if !wait_enabled && mode == Mode::Deploy {
                c.fail("swap-with", "needs wait: true: the CNAMEs are swapped only once the deploy is verified");
            }
        } else if mode == Mode::Swap {
            c.fail("swap-with", "is required with mode: swap: name the environment whose CNAME environment-name takes");
        }
        if mode == Mode::Swap && environments.len() > 1 {
            c.fail("environment-name", "mode: swap swaps two environments: give one here and the other in swap-with");
        }

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
            && !names::valid_bucket(b)
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
        let builder = c.choice("builder", &Builder::CHOICES).unwrap_or_default();
        let secrets = match build_plan::parse_secrets(&c.lines("secrets"), workspace) {
            Ok(secrets) => secrets,
            Err(message) => {
                c.fail("secrets", message);
                Vec::new()
            }
        };
        if builder == Builder::Classic && !secrets.is_empty() {
            c.fail("secrets", "needs BuildKit, and `builder` is classic; set `builder: auto` or `buildkit`");
        }
        let cache_to = c.choice("cache-to", &CacheTo::CHOICES).unwrap_or_default();
        let no_cache = c.boolean("no-cache");
        let pull = c.boolean("pull");
        let create_repository = c.boolean("create-repository");
        let pin_digest = c.boolean("pin-digest");
        let repository = match c.get("ecr-repository") {
            Some(r) => {
                if !names::valid_ecr_repository(r) {
                    c.fail(
                        "ecr-repository",
                        format!("{r:?} is not a valid ECR repository name (lowercase letters, digits, . _ - and / between parts; 2-256 characters)"),
                    );
                }
                r.to_owned()
            }
            None => names::ecr_repository_name(&application),
        };
        let tag = match c.get("image-tag") {
            Some(t) => {
                if !names::valid_docker_tag(t) {
                    c.fail(
                        "image-tag",
                        format!("{t:?} is not a valid Docker tag (letters, digits, _ . -; not starting with . or -; at most 128)"),
                    );
                }
                t.to_owned()
            }
            None => names::docker_tag(&version_label),
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

        let settings = c.settings();
        let create = c.create(environments.len());
        let keep_versions = c.keep_versions();
        let force_terminate = c.boolean("force-terminate");
        // Only a deploy or a rollback changes settings, creates, or prunes versions (checked above all the same,
        // so a bad value fails in any mode).
        let (settings, create, keep_versions) = match mode {
            Mode::Deploy | Mode::Rollback => (settings, create, keep_versions),
            Mode::Swap | Mode::Terminate => (Changes::default(), Create::default(), None),
        };

        let mut ignored = Vec::new();
        // Inputs of what a deploy or rollback changes besides the version, ignored in the modes that change no
        // version; and the other way round.
        let lifecycle = [
            "environment-variables",
            "remove-environment-variables",
            "option-settings",
            "create-application",
            "create-environment",
            "solution-stack",
            "cname-prefix",
            "tags",
            "keep-versions",
        ];
        let unused: Vec<&'static str> = match mode {
            Mode::Deploy | Mode::Rollback => vec!["force-terminate"],
            Mode::Swap => lifecycle.to_vec(),
            Mode::Terminate => [&lifecycle[..], &["swap-with"]].concat(),
        };
        ignored.extend(unused.into_iter().filter(|name| c.given(name)));
        let plan = match mode {
            Mode::Rollback | Mode::Swap | Mode::Terminate => {
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
                match mode {
                    Mode::Swap => Plan::Swap,
                    Mode::Terminate => Plan::Terminate { force: force_terminate },
                    _ => Plan::Rollback,
                }
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
                        ImageSource::Build(Box::new(BuildPlan {
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
                let bundled = bundle_dir.as_ref().map(|d| d.join(DOCKERRUN)).filter(|p| p.is_file());
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
                Plan::Deploy(Box::new(DeployPlan {
                    image,
                    bundle,
                    description: version_description,
                    reuse_existing: reuse_existing_version,
                }))
            }
        };

        if !c.errors.is_empty() {
            return Err(InvalidInputs(c.errors));
        }
        Ok(Config {
            application,
            environments,
            version_label,
            region,
            plan,
            wait: WaitPlan { enabled: wait_enabled, timeout, min_health, health_grace },
            on_busy,
            abort_on_timeout,
            abort_on_cancel,
            strategy,
            on_failure,
            check,
            recovery,
            swap_with,
            settings,
            create,
            keep_versions,
            owner: ctx.owner(),
            ignored,
        })
    }
}

fn add_oci_labels(labels: &mut Vec<(String, String)>, ctx: &RunContext, version: &str) {
    let created = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    let source = ctx.repository_url();
    for (key, value) in build_plan::oci_labels(source.as_deref(), ctx.sha.as_deref(), version, &created) {
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

    fn deploy(cfg: Config) -> DeployPlan {
        match cfg.plan {
            Plan::Deploy(plan) => *plan,
            Plan::Rollback | Plan::Swap | Plan::Terminate { .. } => panic!("expected a deploy plan"),
        }
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
        assert_eq!(cfg.plan.mode(), Mode::Deploy);
        assert_eq!(cfg.wait.timeout, Duration::from_secs(1200));
        assert_eq!(cfg.wait.health_grace, Duration::from_secs(60));
        assert_eq!(cfg.wait.min_health, MinHealth::Green);
        assert_eq!(cfg.on_busy, OnBusy::Wait);
        assert!(cfg.wait.enabled && !cfg.abort_on_timeout);
        let plan = deploy(cfg);
        assert!(plan.reuse_existing);
        let image = plan.image;
        assert_eq!(image.repository, "my-app");
        assert_eq!(image.tag, "0123456789ab");
        assert!(image.pin_digest);
        let bundle = plan.bundle;
        assert_eq!(bundle.prefix, "My App");
        assert_eq!(bundle.container_port, 80);
        assert!(plan.description.contains("0123456789abcdef"));
    }

    #[test]
    fn tag_refs_use_the_tag() {
        let mut c = ctx();
        c.ref_type = Some("tag".into());
        c.ref_name = Some("v1.2.3".into());
        let cfg = Config::from_inputs(&raw(&base()), &c, Path::new("/x")).unwrap();
        assert_eq!(cfg.version_label, "v1.2.3");
        assert_eq!(deploy(cfg).image.tag, "v1.2.3");
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
        assert_eq!(deploy(cfg).description.chars().count(), 200);
        let cfg = check(&[("version-description", "a\nb")]).unwrap();
        assert_eq!(deploy(cfg).description, "a b");
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
        assert!(matches!(cfg.plan, Plan::Rollback));
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
        let ImageSource::Build(spec) = deploy(cfg).image.source else { panic!("expected a build") };
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
            let plan = build(extra).unwrap();
            (plan.builder, plan.cache_to)
        };
        assert_eq!(choices(&[]), (Builder::Auto, CacheTo::Inline));
        assert_eq!(choices(&[("builder", "Classic"), ("cache-to", "none")]), (Builder::Classic, CacheTo::None));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_are_checked_and_need_buildkit() {
        let (dir, build) = build_fixture("secrets");
        let plan = build(&[("secrets", "id=pip,env=PIP_TOKEN\n# a comment\n")]).unwrap();
        assert_eq!(plan.secrets.len(), 1);
        let err = build(&[("secrets", "id=pip,env=PIP_TOKEN"), ("builder", "classic")]).unwrap_err();
        assert_eq!(err.0[0].input, "secrets");
        assert!(err.0[0].message.contains("needs BuildKit"), "{err}");
        let err = build(&[("secrets", "id=x,src=nowhere.txt")]).unwrap_err();
        assert!(err.to_string().starts_with("input `secrets`: line 1"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A workspace with a Dockerfile, and the build plan `extra` inputs make of it.
    #[allow(clippy::type_complexity)]
    fn build_fixture(name: &str) -> (PathBuf, impl Fn(&[(&'static str, &str)]) -> Result<BuildPlan, InvalidInputs>) {
        let dir = std::env::temp_dir().join(format!("cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        let workspace = dir.clone();
        let build = move |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("application-name", "a"), ("environment-name", "envx")];
            pairs.extend_from_slice(extra);
            let cfg = Config::from_inputs(&raw(&pairs), &ctx(), &workspace)?;
            match cfg.plan {
                Plan::Deploy(plan) => match plan.image.source {
                    ImageSource::Build(plan) => Ok(*plan),
                    other => panic!("expected a build, got {other:?}"),
                },
                _ => panic!("expected a deploy plan"),
            }
        };
        (dir, build)
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
    fn several_environments_one_per_line_or_comma_separated() {
        let cfg = check(&[("environment-name", "shop-eu\nshop-us, shop-ap\n")]).unwrap();
        assert_eq!(cfg.environments, ["shop-eu", "shop-us", "shop-ap"]);
        assert_eq!(cfg.strategy, Strategy::Parallel { max: 3 });
        assert_eq!(cfg.strategy.concurrency(), 3);
        assert_eq!(cfg.on_failure, OnFailure::Stop);
        let cfg = check(&[("environment-name", "shop-eu,shop-us"), ("max-parallel", "1")]).unwrap();
        assert_eq!(cfg.strategy.concurrency(), 1);
        let cfg = check(&[("environment-name", "shop-eu,shop-us"), ("strategy", "sequential")]).unwrap();
        assert_eq!(cfg.strategy, Strategy::Sequential);
        assert_eq!(cfg.environments_phrase(), "shop-eu, shop-us");
    }

    #[test]
    fn settings_from_three_inputs_go_with_the_version() {
        let cfg = check(&[
            ("environment-variables", "API_URL=https://api\nTOKEN=s3cr3t"),
            ("remove-environment-variables", "OLD_FLAG"),
            ("option-settings", "- {namespace: aws:elasticbeanstalk:command, option-name: Timeout, value: 900}"),
            ("keep-versions", "20"),
        ])
        .unwrap();
        assert_eq!(
            cfg.settings.describe(),
            "environment variables API_URL, TOKEN; removes OLD_FLAG; options aws:elasticbeanstalk:command Timeout"
        );
        assert_eq!(cfg.keep_versions, Some(20));
        assert_eq!(cfg.owner, "team/app");
        let err = check(&[("environment-variables", "TOKEN=a\nTOKEN=b"), ("keep-versions", "0")]).unwrap_err();
        let inputs: Vec<_> = err.0.iter().map(|e| e.input).collect();
        assert_eq!(inputs, ["environment-variables", "keep-versions"], "{err}");
        assert!(!err.to_string().contains("TOKEN=a"), "values are never quoted: {err}");
    }

    #[test]
    fn creation_needs_create_environment_and_one_name_per_cname() {
        let cfg = check(&[
            ("create-application", "true"),
            ("create-environment", "true"),
            ("cname-prefix", "shop-preview"),
            ("tags", "team=web\ncost-centre=42"),
        ])
        .unwrap();
        assert!(cfg.create.application);
        let launch = cfg.create.environment.clone().unwrap();
        assert_eq!(launch.platform, Platform::NewestDocker);
        assert_eq!(launch.cname_prefix.as_deref(), Some("shop-preview"));
        assert_eq!(cfg.create.tags.len(), 2);
        let cfg = check(&[
            ("create-environment", "true"),
            (
                "solution-stack",
                "arn:aws:elasticbeanstalk:us-east-1::platform/Docker running on 64bit Amazon Linux 2023/4.3.0",
            ),
        ])
        .unwrap();
        assert!(matches!(cfg.create.environment.unwrap().platform, Platform::Arn(_)));

        let err = check(&[("cname-prefix", "shop-preview"), ("solution-stack", "x")]).unwrap_err();
        assert!(err.0.iter().all(|e| e.message.contains("create-environment: true")), "{err}");
        let err = check(&[
            ("create-environment", "true"),
            ("environment-name", "shop-a1,shop-b1"),
            ("cname-prefix", "shop-preview"),
        ])
        .unwrap_err();
        assert_eq!(err.0[0].input, "cname-prefix");
        let err = check(&[("create-environment", "true"), ("tags", "eb-deploy:repository=me")]).unwrap_err();
        assert!(err.0[0].message.contains("reserved"), "{err}");
    }

    #[test]
    fn terminate_builds_nothing_and_changes_no_settings() {
        let cfg =
            check(&[("mode", "terminate"), ("environment-variables", "A=1"), ("force-terminate", "true")]).unwrap();
        assert!(matches!(cfg.plan, Plan::Terminate { force: true }));
        assert!(cfg.settings.is_empty());
        assert_eq!(cfg.ignored, vec!["environment-variables", "image"]);
        // A default value given the way the runner passes defaults is not "ignored".
        let cfg = check(&[("mode", "terminate"), ("create-environment", "false")]).unwrap();
        assert_eq!(cfg.ignored, vec!["image"]);
        let cfg = check(&[("force-terminate", "true")]).unwrap();
        assert_eq!(cfg.ignored, vec!["force-terminate"]);
    }

    #[test]
    fn blue_green_pairs_one_idle_environment_with_a_live_one() {
        let cfg = check(&[("swap-with", "my-live")]).unwrap();
        assert_eq!(cfg.swap_with.as_deref(), Some("my-live"));
        let cfg = check(&[("swap-with", "my-live"), ("mode", "swap")]).unwrap();
        assert!(matches!(cfg.plan, Plan::Swap));
        assert_eq!(cfg.ignored, vec!["image"], "a swap builds nothing");
        let err = check(&[("mode", "swap")]).unwrap_err();
        assert_eq!(err.0[0].input, "swap-with", "{err}");
    }
}
