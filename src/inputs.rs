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
        kind: Lines,
        description: "Elastic Beanstalk environment(s) to deploy to: one name, or several of the same application (one per line, or comma-separated). They must already exist, unless create-environment is true. The image is built and the version created once for all of them.",
    },
    input(
        "mode",
        Value("deploy"),
        Text,
        "`deploy` (build, push, bundle and deploy a new version), `rollback` (deploy an existing version-label; no build, no upload), `swap` (swap the CNAMEs of environment-name and swap-with, nothing deployed: swap-with takes the CNAME environment-name holds, which undoes a blue/green release run with the same names) or `terminate` (terminate environment-name and wait until it is gone; only an environment eb-deploy created for this repository, unless force-terminate).",
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
    input(
        "strategy",
        Value("parallel"),
        Text,
        "With several environments: `parallel` (up to max-parallel at once) or `sequential` (one after another, in the order given: the first ones are the canaries).",
    ),
    input(
        "max-parallel",
        NoDefault,
        Text,
        "With strategy: parallel, how many environments are updated at once. Default: all of them.",
    ),
    input(
        "on-failure",
        Value("stop"),
        Text,
        "With several environments, when one fails: `stop` (start no more; those under way finish), `continue`, or `rollback` (also return every environment this step moved to its previous version, and wait for it).",
    ),
    input(
        "check-path",
        NoDefault,
        Text,
        "After Beanstalk's verdict, check that the app answers: GET this path on the environment's URL (e.g. `/health`). No check when neither this nor check-url is given.",
    ),
    input(
        "check-url",
        NoDefault,
        Text,
        "The check's full URL instead (an app behind a custom domain). Honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY, follows redirects within the same host, validates TLS.",
    ),
    input(
        "check-status",
        Value("200-399"),
        Text,
        "HTTP statuses the check accepts: codes and ranges, comma-separated, e.g. `200`, `200-299,301`.",
    ),
    input("check-body", NoDefault, Text, "Text the check's response body must contain."),
    input(
        "check-timeout",
        Value("60s"),
        Text,
        "How long the check keeps trying (with backoff) before it fails the deploy.",
    ),
    input(
        "rollback-on-failure",
        Value("false"),
        Bool,
        "When this step's deploy fails (error events, health not reached, the check, or a timeout) and Beanstalk did not already revert it, deploy the previous version again, wait for it and check it. The result is then `rolled-back` (the step still fails: the release did not go out).",
    ),
    input(
        "logs-on-failure",
        Value("true"),
        Bool,
        "When a deploy fails, times out or is rolled back, fetch the instances' tail logs (RequestEnvironmentInfo) and show them in the log and the job summary. Trouble fetching them is one warning.",
    ),
    input(
        "swap-with",
        NoDefault,
        Text,
        "Blue/green: the live environment. The version is deployed to environment-name (the idle one) and, only once that deploy is verified, the two swap CNAMEs (SwapEnvironmentCNAMEs); the step waits for the swap to complete. A failed deploy never swaps.",
    ),
    input(
        "environment-variables",
        NoDefault,
        Lines,
        "Environment variables for the application, one `KEY=VALUE` per line (e.g. from secrets). They go into the same UpdateEnvironment call as the version, so the new code never runs with the old values; variables not named keep theirs. Values are masked and never printed.",
    ),
    input(
        "remove-environment-variables",
        NoDefault,
        Lines,
        "Environment variables to remove, one name per line (in the same call as the version).",
    ),
    input(
        "option-settings",
        NoDefault,
        Text,
        "More configuration options for the same call: a YAML or JSON list of `namespace`, `option-name`, `value` (and `resource-name` where one is needed), e.g. `[{namespace: aws:elasticbeanstalk:command, option-name: Timeout, value: 900}]`.",
    ),
    input("create-application", Value("false"), Bool, "Create the application when it does not exist (with tags)."),
    input(
        "create-environment",
        Value("false"),
        Bool,
        "Create each environment of environment-name that does not exist, launched with the version, environment-variables, option-settings and tags; it gets the same verdict as a deploy. eb-deploy tags what it creates with the repository (`eb-deploy:repository`).",
    ),
    input(
        "solution-stack",
        NoDefault,
        Text,
        "Platform of a created environment: a solution stack name (e.g. `64bit Amazon Linux 2023 v4.3.0 running Docker`) or a platform ARN. Default: the newest Docker on Amazon Linux 2023 solution stack.",
    ),
    input(
        "cname-prefix",
        NoDefault,
        Text,
        "CNAME prefix of a created environment (`PREFIX.REGION.elasticbeanstalk.com`), checked for availability before anything is created. Default: chosen by Elastic Beanstalk.",
    ),
    input("tags", NoDefault, Lines, "Tags of a created application and environment, one `KEY=VALUE` per line."),
    input(
        "force-terminate",
        Value("false"),
        Bool,
        "With mode: terminate, also terminate an environment eb-deploy did not create for this repository.",
    ),
    input(
        "keep-versions",
        NoDefault,
        Text,
        "After a successful deploy, delete the application's oldest versions beyond this many, with their bundles in S3, except versions an environment runs and the one this step replaced. Default: keep every version.",
    ),
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
        description: "`deployed`, `unchanged`, `started` (with `wait: false`), `swapped` (mode `swap`), `terminated` (mode `terminate`), `rolled-back` (the deploy failed and the previous version was deployed again), `failed`, `timed-out` or `cancelled`. With several environments, the worst of their results.",
    },
    OutputSpec { name: "version-label", description: "The version label deployed (or attempted)." },
    OutputSpec {
        name: "previous-version-label",
        description: "The version the environment ran before this step. This and the other environment outputs below are empty when several environments are given: see `environments`.",
    },
    OutputSpec {
        name: "running-version-label",
        description: "The version the environment runs when the step ends (differs from version-label when Elastic Beanstalk reverted the deploy).",
    },
    OutputSpec {
        name: "rolled-back-to",
        description: "With rollback-on-failure: the version the environment was returned to (empty when there was no rollback).",
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
    OutputSpec {
        name: "environments",
        description: "JSON array, one object per environment: `name`, `id`, `result`, `version_label`, `previous_version_label`, `running_version_label`, `status`, `health`, `url`, `seconds`, `message`, `created`.",
    },
    OutputSpec {
        name: "live-environment",
        description: "With swap-with or mode `swap`: the environment that serves the live CNAME when the step ends.",
    },
    OutputSpec {
        name: "environment-created",
        description: "`true` when this step created the environment (create-environment), else `false`; empty when several environments are given.",
    },
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
