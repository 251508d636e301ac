//! Action inputs: raw values and the GitHub run context → `Config::from_inputs` never panics, and a
//! config it accepts keeps the limits AWS and Docker impose. Also the duration and boolean parsers, and
//! `inputs::read` on arbitrary environments and command lines.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use eb_deploy::config::{Config, ImageSource, InvalidInputs, Mode, Plan, RunContext, parse_bool};
use eb_deploy::format::{format_duration, parse_duration};
use eb_deploy::inputs::{INPUTS, Kind, RawInputs, env_var_name, read};
use eb_deploy::names::{docker_tag, ecr_repository_name};
use libfuzzer_sys::fuzz_target;

/// The input, as text split on NUL, each part one of:
/// - `NAME=VALUE`: an environment variable; a declared input's name stands for its `INPUT_*` variable,
///   and `GITHUB_*` variables make the run context;
/// - `--NAME=VALUE`, `--NAME VALUE`, `--NAME`, `--json`, `--debug`, `--help`: a command-line argument
///   (two for `--NAME VALUE`); `arg:TEXT` is any other argument;
/// - `duration=TEXT`, `millis=N`, `bool=TEXT`: values for the duration and boolean parsers.
///
/// A leading `+` starts from a valid deploy (application, environment and image given).
#[derive(Debug, Default)]
struct Input {
    env: BTreeMap<String, String>,
    argv: Vec<Arg>,
    duration_text: Option<String>,
    duration_millis: u64,
    bool_text: Option<String>,
}

#[derive(Debug)]
enum Arg {
    Inline(&'static str, String),
    Separate(&'static str, String),
    Bare(&'static str),
    Json,
    Debug,
    Help,
    Raw(String),
}

impl Input {
    fn decode(data: &[u8]) -> Self {
        let text = String::from_utf8_lossy(data);
        let mut input = Input::default();
        let text = match text.strip_prefix('+') {
            Some(rest) => {
                for (name, value) in
                    [("application-name", "My App"), ("environment-name", "my-env"), ("image", "nginx:1")]
                {
                    input.env.insert(env_var_name(name), value.to_owned());
                }
                rest
            }
            None => &text,
        };
        for part in text.split('\0') {
            if let Some(arg) = part.strip_prefix("arg:") {
                input.argv.push(Arg::Raw(arg.to_owned()));
            } else if let Some(flag) = part.strip_prefix("--") {
                let end = flag.find(['=', ' ']).unwrap_or(flag.len());
                let spec = INPUTS.iter().find(|s| s.name == &flag[..end]);
                input.argv.push(match (flag, spec) {
                    ("json", _) => Arg::Json,
                    ("debug", _) => Arg::Debug,
                    ("help", _) => Arg::Help,
                    (_, Some(spec)) if end == flag.len() => Arg::Bare(spec.name),
                    (_, Some(spec)) if flag[end..].starts_with('=') => {
                        Arg::Inline(spec.name, flag[end + 1..].to_owned())
                    }
                    (_, Some(spec)) => Arg::Separate(spec.name, flag[end + 1..].to_owned()),
                    (_, None) => Arg::Raw(part.to_owned()),
                });
            } else if let Some((key, value)) = part.split_once('=') {
                match key {
                    "duration" => input.duration_text = Some(value.to_owned()),
                    "millis" => input.duration_millis = value.trim().parse().unwrap_or_default(),
                    "bool" => input.bool_text = Some(value.to_owned()),
                    _ if INPUTS.iter().any(|s| s.name == key) => {
                        input.env.insert(env_var_name(key), value.to_owned());
                    }
                    _ => {
                        input.env.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
        }
        input
    }
}

/// Inputs that name paths stay inside the scratch workspace: a fuzzer must not go reading arbitrary files.
const PATH_INPUTS: &[&str] = &["context", "dockerfile", "dockerrun", "bundle-dir"];
const PATHS: &[&str] =
    &[".", "app", "app2", "missing", "Dockerfile", "app/Dockerfile", "good.json", "bad.json", "bundle"];

fn confine(raw: &mut RawInputs) {
    for name in PATH_INPUTS {
        if let Some(v) = raw.get(name)
            && (v.starts_with('/') || v.split('/').any(|part| part == ".."))
        {
            let v = PATHS[v.len() % PATHS.len()];
            raw.set(name, v);
        }
    }
}

/// A workspace with a build context, templates and bundle directories, made once per process.
fn workspace() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("eb-deploy-fuzz-ws-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let template =
            r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"x","Update":"true"},"Ports":[{"ContainerPort":"8080"}]}"#;
        for (path, content) in [
            ("Dockerfile", "FROM scratch\n"),
            ("app/Dockerfile", "FROM scratch\n"),
            ("app2/readme", "no Dockerfile here\n"),
            ("good.json", template),
            ("bad.json", r#"{"Image":"x"}"#),
            ("v2.json", r#"{"AWSEBDockerrunVersion":2,"Image":{}}"#),
            ("bundle/Dockerrun.aws.json", template),
            ("bundle/.ebextensions/x.config", "option_settings: []\n"),
            ("bundle-empty/readme", "x\n"),
        ] {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let input = Input::decode(data);
    durations_and_booleans(&input);
    let raw = command_line(&input);
    config(&input, raw);
});

fn durations_and_booleans(input: &Input) {
    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
    if let Some(text) = &input.duration_text
        && let Some(d) = parse_duration(text)
    {
        assert!(d <= WEEK, "{text:?} parsed to more than a week");
        assert_round_trip(d, &format_duration(d));
        assert_eq!(parse_duration(&format!(" {text} ")), Some(d), "surrounding spaces matter");
    }
    let d = Duration::from_millis(input.duration_millis % (WEEK.as_millis() as u64 + 1));
    let formatted = format_duration(d);
    assert!(!formatted.is_empty());
    assert_round_trip(d, &formatted);

    if let Some(text) = &input.bool_text {
        let b = parse_bool(text);
        let allowed = ["true", "True", "TRUE", "false", "False", "FALSE"];
        assert_eq!(b.is_some(), allowed.contains(&text.as_str()), "{text:?}");
        if let Some(b) = b {
            assert_eq!(b, text.eq_ignore_ascii_case("true"));
        }
    }
}

/// `format_duration` output parses back to exactly the duration (to the millisecond).
fn assert_round_trip(d: Duration, formatted: &str) {
    let d = Duration::from_millis(d.as_millis() as u64);
    assert_eq!(parse_duration(formatted), Some(d), "{d:?} → {formatted:?} does not parse back");
}

/// `read`: never a panic; flags win over `INPUT_*` variables; stored values are trimmed and non-empty;
/// unknown `INPUT_*` variables are reported; every `--name value` form given is read back. Returns what
/// was read (from the environment alone when the command line is refused).
fn command_line(input: &Input) -> RawInputs {
    let vars = &input.env;
    let names: Vec<String> = vars.keys().cloned().collect();
    let lookup = |k: &str| vars.get(k).cloned();

    // What the command line should leave, from the documented rules; `ok` is false once the model stops.
    let mut expected = RawInputs::default();
    for spec in INPUTS {
        if let Some(v) = vars.get(&env_var_name(spec.name)) {
            expected.set(spec.name, v);
        }
    }
    let mut argv = Vec::new();
    let mut ok = true;
    let (mut json, mut debug, mut help) = (false, false, false);
    for arg in &input.argv {
        match arg {
            Arg::Inline(name, v) => {
                argv.push(format!("--{name}={v}"));
                expected.set(name, v);
            }
            Arg::Separate(name, v) => {
                let spec = INPUTS.iter().find(|s| s.name == *name).unwrap();
                argv.push(format!("--{name}"));
                argv.push(v.clone());
                if spec.kind == Kind::Bool && v.starts_with("--") {
                    // A bare boolean flag, then another option.
                    ok = false;
                }
                expected.set(name, v);
            }
            Arg::Bare(name) => {
                let spec = INPUTS.iter().find(|s| s.name == *name).unwrap();
                argv.push(format!("--{name}"));
                // Every generated argument but `Raw` starts with `--`, so a bare boolean means true (a `Raw`
                // after it voids the model anyway); any other input takes the next argument as its value.
                if spec.kind == Kind::Bool {
                    expected.set(name, "true");
                } else {
                    ok = false;
                }
            }
            Arg::Json => {
                argv.push("--json".into());
                json = true;
            }
            Arg::Debug => {
                argv.push("--debug".into());
                debug = true;
            }
            Arg::Help => {
                argv.push("--help".into());
                help = true;
            }
            Arg::Raw(s) => {
                argv.push(s.clone());
                ok = false;
            }
        }
    }
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("INPUT_") && !INPUTS.iter().any(|s| env_var_name(s.name) == **n))
        .filter(|n| !vars[*n].trim().is_empty())
        .map(|n| n["INPUT_".len()..].to_lowercase())
        .collect();
    match read(&lookup, &names, &argv) {
        Ok((raw, flags)) => {
            for name in raw.given() {
                let value = raw.get(name).unwrap();
                assert!(!value.is_empty() && value.trim() == value, "{name} = {value:?} is not trimmed");
                assert!(INPUTS.iter().any(|s| s.name == name));
            }
            assert_eq!(raw.unknown, unknown);
            if ok {
                expected.unknown = raw.unknown.clone();
                assert_eq!(raw, expected, "argv {argv:?}");
                assert_eq!((flags.json, flags.debug, flags.help), (json, debug, help));
            }
            raw
        }
        Err(e) => {
            assert!(!ok, "read refused a well-formed command line {argv:?}: {e:#}");
            read(&lookup, &names, &[]).expect("the environment alone is always readable").0
        }
    }
}

fn config(input: &Input, mut raw: RawInputs) {
    confine(&mut raw);
    let ctx = RunContext::from_env(&|k| input.env.get(k).cloned());
    let ws = workspace();

    let cfg = match Config::from_inputs(&raw, &ctx, ws) {
        Ok(cfg) => cfg,
        Err(InvalidInputs(errors)) => {
            assert!(!errors.is_empty(), "an error with no invalid input");
            for e in &errors {
                assert!(INPUTS.iter().any(|s| s.name == e.input), "error names no input: {e}");
                assert!(!e.message.is_empty());
            }
            return;
        }
    };
    check_config(&cfg, &raw);
    // The same inputs give the same config (apart from the build time label).
    let again = Config::from_inputs(&raw, &ctx, ws).expect("accepted once, refused the second time");
    assert_eq!(
        format!("{:?}", without_created(cfg)),
        format!("{:?}", without_created(again)),
        "from_inputs is not deterministic"
    );
}

fn check_config(cfg: &Config, raw: &RawInputs) {
    let app = &cfg.application;
    assert_eq!(raw.get("application-name"), Some(app.as_str()));
    assert!((1..=100).contains(&app.chars().count()), "application {app:?}");

    assert!(!cfg.environments.is_empty(), "no environment");
    for (i, env) in cfg.environments.iter().enumerate() {
        assert!((4..=40).contains(&env.len()), "environment {env:?}");
        assert!(env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "environment {env:?}");
        assert!(!env.starts_with('-') && !env.ends_with('-'), "environment {env:?}");
        assert!(!cfg.environments[..i].iter().any(|e| e.eq_ignore_ascii_case(env)), "{env} twice");
    }

    let label = &cfg.version_label;
    assert!((1..=100).contains(&label.chars().count()), "version label {label:?}");
    assert!(!label.chars().any(char::is_control), "version label {label:?}");
    if let Some(given) = raw.get("version-label") {
        assert_eq!(label, given);
    }
    if cfg.plan.mode() == Mode::Rollback {
        assert!(raw.get("version-label").is_some(), "rollback without an explicit label");
    }
    assert_eq!(cfg.plan.mode() == Mode::Rollback, raw.get("mode").is_some_and(|m| m.eq_ignore_ascii_case("rollback")));

    if let Some(region) = &cfg.region {
        let parts: Vec<&str> = region.split('-').collect();
        assert!(parts.len() >= 3 && parts[0].len() == 2, "region {region:?}");
        assert!(parts.last().unwrap().chars().all(|c| c.is_ascii_digit()), "region {region:?}");
    }

    let wait = &cfg.wait;
    assert!(!wait.timeout.is_zero(), "zero wait-timeout accepted");
    for (name, value) in [("wait-timeout", wait.timeout), ("health-grace", wait.health_grace)] {
        assert!(value <= Duration::from_secs(7 * 24 * 3600), "{name} of {value:?} accepted");
    }
    let timeout_text = raw.get("wait-timeout").unwrap_or("20m");
    assert_eq!(Some(wait.timeout), parse_duration(timeout_text));

    match &cfg.plan {
        Plan::Rollback | Plan::Swap | Plan::Terminate { .. } => {}
        Plan::Deploy(plan) => {
            let (image, bundle) = (&plan.image, &plan.bundle);
            assert!(cfg.ignored.is_empty(), "deploy ignored {:?}", cfg.ignored);
            let desc = &plan.description;
            assert!(desc.chars().count() <= 200, "description of {} chars", desc.chars().count());
            assert!(!desc.chars().any(|c| c.is_whitespace() && c != ' '), "description is not one line: {desc:?}");
            if let Some(given) = raw.get("version-description") {
                let one_line = given.split_whitespace().collect::<Vec<_>>().join(" ");
                assert_eq!(*desc, one_line.chars().take(200).collect::<String>());
            }
            assert!(valid_docker_tag(&image.tag), "image tag {:?}", image.tag);
            // Derived names meet ECR's strict pattern; given ones the rule the action documents (parts of
            // `[a-z0-9._-]` that start and end with a letter or digit), which also admits `a--b`.
            let strict = raw.get("ecr-repository").is_none();
            assert!(valid_ecr_repository(&image.repository, strict), "ECR repository {:?}", image.repository);
            if raw.get("image-tag").is_none() {
                assert_eq!(image.tag, docker_tag(label));
            }
            if raw.get("ecr-repository").is_none() {
                assert_eq!(image.repository, ecr_repository_name(app));
            }
            if let Some(registry) = &image.registry {
                assert!(!registry.contains('/') && !registry.is_empty(), "registry {registry:?}");
            }
            match &image.source {
                ImageSource::Given(reference) => {
                    assert_eq!(raw.get("image"), Some(reference.as_str()));
                    assert!(!reference.contains(char::is_whitespace), "image {reference:?}");
                }
                ImageSource::Build(build) => {
                    assert!(raw.get("image").is_none());
                    assert!(build.context.is_dir(), "context {:?}", build.context);
                    match &build.dockerfile {
                        Some(path) => assert!(path.is_file()),
                        None => assert!(build.context.join("Dockerfile").is_file()),
                    }
                    for (k, _) in build.build_args.iter().chain(&build.labels) {
                        assert!(!k.is_empty() && !k.contains(char::is_whitespace), "key {k:?}");
                    }
                    for key in ["version", "created"] {
                        let key = format!("org.opencontainers.image.{key}");
                        assert!(build.labels.iter().any(|(k, _)| *k == key), "no {key} label");
                    }
                }
            }
            assert!(bundle.container_port > 0);
            assert!(!bundle.prefix.starts_with('/') && !bundle.prefix.ends_with('/'), "prefix {:?}", bundle.prefix);
            assert!(bundle.prefix.len() <= 900);
            if let Some(bucket) = &bundle.bucket {
                assert!((3..=63).contains(&bucket.len()), "bucket {bucket:?}");
            }
            if let Some(template) = &bundle.template {
                let rendered: serde_json::Value =
                    serde_json::from_slice(&template.render("img:1", bundle.container_port)).unwrap();
                assert_eq!(rendered["Image"]["Name"], "img:1");
            }
        }
    }
}

fn without_created(mut cfg: Config) -> Config {
    if let Plan::Deploy(plan) = &mut cfg.plan
        && let ImageSource::Build(build) = &mut plan.image.source
    {
        build.labels.retain(|(k, _)| k != "org.opencontainers.image.created");
    }
    cfg
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_docker_tag(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// ECR's repository name rule, `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2–256
/// characters; without `strict`, runs of separators inside a part are allowed.
fn valid_ecr_repository(v: &str, strict: bool) -> bool {
    (2..=256).contains(&v.len())
        && v.split('/').all(|part| {
            let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
            part.starts_with(alnum)
                && part.ends_with(alnum)
                && part.chars().all(|c| alnum(c) || matches!(c, '.' | '_' | '-'))
                && (!strict || part.split(['.', '_', '-']).all(|run| !run.is_empty()))
        })
}
