//! The action's inputs and outputs (the contract `action.yml` must match) and the raw reading of their
//! values from `INPUT_*` variables or command-line flags. Typed validation happens in [`crate::config`].

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// How an input's default is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// No default: empty means "not given".
    None,
    /// A literal default, declared identically in `action.yml`.
    Value(&'static str),
    /// Computed at run time (from the GitHub context or other inputs); `action.yml` declares no default.
    Computed,
}

/// The kind of value, for `--help` and CLI parsing (a bare boolean flag means `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    Lines,
}

/// One declared input.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub name: &'static str,
    pub required: bool,
    pub default: DefaultValue,
    pub kind: Kind,
    pub description: &'static str,
}

/// One declared output.
#[derive(Debug, Clone, Copy)]
pub struct OutputSpec {
    pub name: &'static str,
    pub description: &'static str,
}

const fn input(name: &'static str, default: DefaultValue, kind: Kind, description: &'static str) -> InputSpec {
    InputSpec { name, required: false, default, kind, description }
}

use DefaultValue::{Computed, None as NoDefault, Value};
use Kind::{Bool, Lines, Text};

/// Every input, in the order `action.yml` and the README list them.
pub const INPUTS: &[InputSpec] = &[
    InputSpec {
        name: "application-name",
        required: true,
        default: NoDefault,
        kind: Text,
        description: "Elastic Beanstalk application name.",
    },
    InputSpec {
        name: "environment-name",
        required: true,
        default: NoDefault,
        kind: Text,
        description: "Elastic Beanstalk environment to deploy to. It must already exist in the application.",
    },
    input(
        "mode",
        Value("deploy"),
        Text,
        "`deploy` (build, push, bundle and deploy a new version) or `rollback` (deploy an existing version-label; no build, no upload).",
    ),
    input(
        "version-label",
        Computed,
        Text,
        "Application version label. Default: the tag name on tag pushes, else the first 12 characters of the commit SHA. Required for rollback.",
    ),
    input(
        "version-description",
        Computed,
        Text,
        "Application version description. Default: built from the ref, commit SHA and run id; cut to 200 characters.",
    ),
    input("region", NoDefault, Text, "AWS region. Default: the AWS SDK's default chain (AWS_REGION, profile)."),
    input(
        "image",
        NoDefault,
        Text,
        "Deploy this image instead of building one. An image that exists only in the local Docker Engine is pushed to ECR first.",
    ),
    input(
        "dockerrun",
        NoDefault,
        Text,
        "Path to a Dockerrun.aws.json template; its Image.Name is replaced by the pushed image and every other field is kept. Default: a generated single-container v1 file.",
    ),
    input("container-port", Value("80"), Text, "Container port the generated Dockerrun.aws.json exposes."),
    input(
        "bundle-dir",
        NoDefault,
        Text,
        "Directory whose content is added at the root of the source bundle. `.ebextensions/` and `.platform/` at the workspace root are always included when present.",
    ),
    input(
        "bucket",
        NoDefault,
        Text,
        "S3 bucket for source bundles. Default: Elastic Beanstalk's storage location (CreateStorageLocation).",
    ),
    input("bucket-prefix", Computed, Text, "S3 key prefix for source bundles. Default: the application name."),
    input(
        "reuse-existing-version",
        Value("true"),
        Bool,
        "When the version label already exists, deploy it as is (no build, no upload). When false, an existing label fails the step without touching it.",
    ),
    input(
        "wait",
        Value("true"),
        Bool,
        "Wait until the environment has settled on the new version, with health at min-health.",
    ),
    input("wait-timeout", Value("20m"), Text, "How long to wait for the deployment, e.g. `90s`, `15m`, `1h`."),
    input(
        "min-health",
        Value("green"),
        Text,
        "Lowest environment health accepted after the deploy: `green`, `yellow` or `any`.",
    ),
    input(
        "health-grace",
        Value("60s"),
        Text,
        "How long, once the environment is Ready on the new version, its health may take to reach min-health.",
    ),
    input(
        "on-busy",
        Value("wait"),
        Text,
        "When the environment is in the middle of another update: `wait` for it to finish, `abort` it, or `fail`.",
    ),
    input(
        "abort-on-timeout",
        Value("false"),
        Bool,
        "Abort the environment update when wait-timeout is reached (Elastic Beanstalk then rolls back).",
    ),
    input("abort-on-cancel", Value("false"), Bool, "Abort the environment update when the workflow is cancelled."),
    input("context", Value("."), Text, "Docker build context directory."),
    input(
        "dockerfile",
        Computed,
        Text,
        "Path to the Dockerfile (relative to the workspace). Default: `Dockerfile` in the context.",
    ),
    input("build-args", NoDefault, Lines, "Build arguments, one `KEY=VALUE` per line."),
    input(
        "labels",
        NoDefault,
        Lines,
        "Image labels, one `KEY=VALUE` per line. OCI labels (source, revision, version, created) are added unless given.",
    ),
    input("target", NoDefault, Text, "Build stage to stop at (multi-stage Dockerfiles)."),
    input("platform", NoDefault, Text, "Target platform of the build, e.g. `linux/amd64`."),
    input("no-cache", Value("false"), Bool, "Build without using the build cache."),
    input("pull", Value("false"), Bool, "Always try to pull newer versions of base images."),
    input(
        "cache-from",
        NoDefault,
        Lines,
        "Images to use as build cache, one per line (BuildKit fetches only the layers that match; the classic builder pulls them). A missing image is a warning, not a failure. The image the environment runs now is always tried too when it is in the ECR repository pushed to.",
    ),
    input(
        "cache-to",
        Value("inline"),
        Text,
        "`inline` (BuildKit writes cache metadata into the pushed image, so the next build on any runner can reuse its layers) or `none`.",
    ),
    input(
        "builder",
        Value("auto"),
        Text,
        "`auto` (BuildKit when the Docker daemon supports it, else the classic builder), `buildkit` or `classic`.",
    ),
    input(
        "secrets",
        NoDefault,
        Lines,
        "Build secrets for `RUN --mount=type=secret`, one per line: `id=NAME,env=VAR` (an environment variable of the step) or `id=NAME,src=PATH` (a file, relative to the workspace). Needs BuildKit; the values never reach the log, the outputs or the image.",
    ),
    input(
        "ecr-repository",
        Computed,
        Text,
        "ECR repository to push to. Default: the application name, made valid for ECR.",
    ),
    input("create-repository", Value("true"), Bool, "Create the ECR repository when it does not exist."),
    input("image-tag", Computed, Text, "Image tag to push. Default: the version label, made a valid Docker tag."),
    input(
        "registry",
        NoDefault,
        Text,
        "Registry host to push to instead of the one in the ECR token (dual-stack or VPC endpoint names, local registries).",
    ),
    input(
        "pin-digest",
        Value("true"),
        Bool,
        "Deploy the digest-pinned reference (`repo@sha256:…`), so a moved tag can never change what the environment runs.",
    ),
];

/// Every output, in the order `action.yml` and the README list them.
pub const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "result",
        description: "`deployed`, `unchanged`, `started` (with `wait: false`), `failed`, `timed-out` or `cancelled`.",
    },
    OutputSpec { name: "version-label", description: "The version label deployed (or attempted)." },
    OutputSpec { name: "previous-version-label", description: "The version the environment ran before this step." },
    OutputSpec {
        name: "running-version-label",
        description: "The version the environment runs when the step ends (differs from version-label when Elastic Beanstalk reverted the deploy).",
    },
    OutputSpec { name: "image", description: "The image reference written into the bundle." },
    OutputSpec { name: "image-digest", description: "The digest (`sha256:…`) of the pushed image." },
    OutputSpec { name: "bundle", description: "The source bundle's S3 location (`s3://bucket/key`)." },
    OutputSpec { name: "environment-id", description: "Elastic Beanstalk environment id." },
    OutputSpec { name: "environment-url", description: "The environment's URL (`http://` + its CNAME)." },
    OutputSpec { name: "environment-cname", description: "The environment's CNAME." },
    OutputSpec { name: "status", description: "Environment status when the step ended, e.g. `Ready`." },
    OutputSpec { name: "health", description: "Environment health colour when the step ended, e.g. `Green`." },
    OutputSpec {
        name: "health-status",
        description: "Enhanced health status when the step ended, e.g. `Ok` (empty without enhanced health).",
    },
    OutputSpec { name: "duration-seconds", description: "Wall-clock seconds the step took." },
];

/// Looks an input up by name.
pub fn spec(name: &str) -> Option<&'static InputSpec> {
    INPUTS.iter().find(|s| s.name == name)
}

/// The environment variable the runner uses for an input: `INPUT_` + name uppercased, spaces to `_`,
/// hyphens kept.
pub fn env_var_name(input: &str) -> String {
    format!("INPUT_{}", input.replace(' ', "_").to_uppercase())
}

/// Input values as given, before validation. Empty values are "not given" and never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawInputs {
    values: BTreeMap<&'static str, String>,
    /// `INPUT_*` variables or flags that name no input (reported as warnings).
    pub unknown: Vec<String>,
}

impl RawInputs {
    /// The value of an input when it was given (non-empty after trimming).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Sets a value, treating blank as "not given".
    pub fn set(&mut self, name: &'static str, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            self.values.remove(name);
        } else {
            self.values.insert(name, value.to_owned());
        }
    }

    /// Names of the inputs that were given.
    pub fn given(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.keys().copied()
    }
}

/// Options for the program itself, not action inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliFlags {
    pub json: bool,
    pub help: bool,
    pub version: bool,
    pub debug: bool,
}

/// Reads inputs from `INPUT_*` variables (through `env`) and then command-line flags, flags winning.
pub fn read(
    env: &dyn Fn(&str) -> Option<String>,
    env_names: &[String],
    args: &[String],
) -> Result<(RawInputs, CliFlags)> {
    let mut raw = RawInputs::default();
    for spec in INPUTS {
        if let Some(value) = env(&env_var_name(spec.name)) {
            raw.set(spec.name, &value);
        }
    }
    for name in env_names {
        if let Some(rest) = name.strip_prefix("INPUT_") {
            let known = INPUTS.iter().any(|s| env_var_name(s.name) == *name);
            let blank = env(name).is_none_or(|v| v.trim().is_empty());
            if !known && !blank {
                raw.unknown.push(rest.to_lowercase());
            }
        }
    }
    let flags = parse_args(args, &mut raw)?;
    Ok((raw, flags))
}

fn parse_args(args: &[String], raw: &mut RawInputs) -> Result<CliFlags> {
    let mut flags = CliFlags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "--json" => flags.json = true,
            "-h" | "--help" => flags.help = true,
            "-V" | "--version" => flags.version = true,
            "--debug" => flags.debug = true,
            _ => {
                let Some(flag) = arg.strip_prefix("--") else {
                    bail!("unexpected argument {arg:?}: options are given as --name value (see --help)");
                };
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (flag, None),
                };
                let Some(spec) = spec(name) else {
                    bail!("unknown option --{name}{}", suggestion(name));
                };
                let value = match inline {
                    Some(v) => v,
                    // A bare boolean flag (`--no-cache`) means true, as on any CLI.
                    None if spec.kind == Bool && args.get(i).is_none_or(|next| next.starts_with("--")) => {
                        "true".to_owned()
                    }
                    None => {
                        let Some(v) = args.get(i) else {
                            bail!("option --{name} needs a value");
                        };
                        i += 1;
                        v.clone()
                    }
                };
                raw.set(spec.name, &value);
            }
        }
    }
    Ok(flags)
}

fn suggestion(name: &str) -> String {
    let close = INPUTS.iter().map(|s| s.name).min_by_key(|candidate| edit_distance(name, candidate));
    match close {
        Some(c) if edit_distance(name, c) <= 3 => format!(" (did you mean --{c}?)"),
        _ => " (see --help for the list)".to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The `--help` text, generated from the input table so it cannot drift from `action.yml`.
pub fn help() -> String {
    let mut text = String::from(
        "eb-deploy: build, push and deploy a Docker app to AWS Elastic Beanstalk, and wait until it has settled.\n\n\
         Usage: eb-deploy --application-name APP --environment-name ENV [options]\n\n\
         Every option is also read from the INPUT_<NAME> environment variable GitHub Actions sets\n\
         (e.g. INPUT_APPLICATION-NAME); flags win. Empty values mean \"not given\".\n\nOptions:\n",
    );
    for spec in INPUTS {
        let default = match spec.default {
            Value(v) => format!(" [default: {v}]"),
            _ if spec.required => " (required)".to_owned(),
            _ => String::new(),
        };
        text.push_str(&format!("  --{}{default}\n      {}\n", spec.name, spec.description));
    }
    text.push_str(
        "  --json\n      Print the outputs as JSON at the end (outside GitHub Actions).\n  \
         --debug\n      Print diagnostic lines.\n  -h, --help\n  -V, --version\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn env_names_keep_hyphens() {
        assert_eq!(env_var_name("application-name"), "INPUT_APPLICATION-NAME");
        assert_eq!(env_var_name("some name"), "INPUT_SOME_NAME");
    }

    #[test]
    fn reads_env_and_flags_with_flags_winning_and_empty_as_missing() {
        let vars: BTreeMap<String, String> = [
            ("INPUT_APPLICATION-NAME", "app"),
            ("INPUT_ENVIRONMENT-NAME", "env-one"),
            ("INPUT_REGION", "   "),
            ("INPUT_MODE", ""),
            ("INPUT_BOGUS", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let names: Vec<String> = vars.keys().cloned().collect();
        let lookup = |k: &str| vars.get(k).cloned();
        let (raw, flags) =
            read(&lookup, &names, &args(&["--environment-name", "env-two", "--no-cache", "--wait=false", "--json"]))
                .unwrap();
        assert_eq!(raw.get("application-name"), Some("app"));
        assert_eq!(raw.get("environment-name"), Some("env-two"));
        assert_eq!(raw.get("region"), None);
        assert_eq!(raw.get("mode"), None);
        assert_eq!(raw.get("no-cache"), Some("true"));
        assert_eq!(raw.get("wait"), Some("false"));
        assert_eq!(raw.unknown, vec!["bogus".to_owned()]);
        assert!(flags.json);
    }

    #[test]
    fn bool_flag_takes_a_following_value() {
        let (raw, _) = read(&|_| None, &[], &args(&["--pull", "false", "--no-cache"])).unwrap();
        assert_eq!(raw.get("pull"), Some("false"));
        assert_eq!(raw.get("no-cache"), Some("true"));
    }

    #[test]
    fn unknown_flag_suggests_the_closest() {
        let err = read(&|_| None, &[], &args(&["--enviroment-name", "x"])).unwrap_err().to_string();
        assert!(err.contains("did you mean --environment-name?"), "{err}");
        let err = read(&|_| None, &[], &args(&["--image"])).unwrap_err().to_string();
        assert!(err.contains("--image needs a value"), "{err}");
        let err = read(&|_| None, &[], &args(&["stray"])).unwrap_err().to_string();
        assert!(err.contains("unexpected argument"), "{err}");
    }

    #[test]
    fn help_lists_every_input_and_default() {
        let help = help();
        for spec in INPUTS {
            assert!(help.contains(&format!("--{}", spec.name)), "{}", spec.name);
        }
        assert!(help.contains("--wait-timeout [default: 20m]"));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = INPUTS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), INPUTS.len());
    }
}
