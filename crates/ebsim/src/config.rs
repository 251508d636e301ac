//! The command line, parsed into a checked [`Config`] before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::rng::SplitMix64;

/// A duration drawn afresh each time it is used, uniformly between `min_ms` and `max_ms`
/// (inclusive): Beanstalk's steps take a different time on every deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Span {
    /// Always `ms`.
    pub const fn fixed(ms: u64) -> Self {
        Self { min_ms: ms, max_ms: ms }
    }

    /// Between `min_ms` and `max_ms`.
    pub const fn between(min_ms: u64, max_ms: u64) -> Self {
        Self { min_ms, max_ms }
    }

    /// One duration from the span.
    pub fn draw(&self, rng: &mut SplitMix64) -> Duration {
        Duration::from_millis(rng.between(self.min_ms, self.max_ms))
    }

    /// `N` (fixed) or `MIN-MAX`.
    fn parse(v: &str, flag: &str) -> Result<Self> {
        match v.split_once('-') {
            None => Ok(Self::fixed(number(v, flag)?)),
            Some((a, b)) => {
                let (min, max) = (number(a, flag)?, number(b, flag)?);
                if min > max {
                    bail!("{flag} {v:?}: the minimum is above the maximum");
                }
                Ok(Self::between(min, max))
            }
        }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min_ms == self.max_ms {
            write!(f, "{} ms", self.min_ms)
        } else {
            write!(f, "{}-{} ms", self.min_ms, self.max_ms)
        }
    }
}

/// How fast the emulated lifecycle moves. The ranges and their origin are in the README ("Timing").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Pause before each lifecycle step (event, status change) of a deploy, launch or termination.
    pub step: Span,
    /// How long processing a version (`Process=true`) takes.
    pub processing: Span,
    /// How long health stays Red after a failed deploy.
    pub red_ms: u64,
    /// How long a new instance may take to answer its health check.
    pub health_timeout_ms: u64,
}

impl Timing {
    /// Tests: a deploy in about a second.
    pub const FAST: Timing = Timing {
        step: Span::between(50, 300),
        processing: Span::between(20, 200),
        red_ms: 2_000,
        health_timeout_ms: 20_000,
    };
    /// Demos and benchmarks: steps a person can follow, spread like Beanstalk's.
    pub const DEMO: Timing = Timing {
        step: Span::between(500, 4_000),
        processing: Span::between(300, 2_500),
        red_ms: 10_000,
        health_timeout_ms: 60_000,
    };
}

/// Everything ebsim is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the API (and admin API).
    pub listen: SocketAddr,
    /// Region in ARNs, CNAMEs and the storage bucket name.
    pub region: String,
    /// Account in ARNs and the storage bucket name.
    pub account_id: String,
    /// S3 endpoint for bundles (path-style).
    pub s3_endpoint: Option<String>,
    /// ECR endpoint for `GetAuthorizationToken`.
    pub ecr_endpoint: Option<String>,
    /// Docker Engine address (`unix://…`, `tcp://…`); default: the local socket.
    pub docker_host: Option<String>,
    /// Registry host rewrites, `FROM` → `TO`.
    pub registry_aliases: Vec<(String, String)>,
    /// Lifecycle speed.
    pub timing: Timing,
    /// Seed of the timing draws: the same seed and the same calls give the same durations.
    pub seed: u64,
    /// JSON-lines file every API request is appended to.
    pub request_log: Option<PathBuf>,
    /// Extra labels on every instance container.
    pub instance_labels: Vec<(String, String)>,
    /// Application version quota.
    pub max_versions: usize,
    /// Address of the CNAME proxy (`None`: off). Port 0 picks a free one; the binary puts the
    /// address it got here before anything reads it.
    pub proxy_listen: Option<SocketAddr>,
    /// How long logs compiled by RequestEnvironmentInfo stay in S3 (15 minutes, as on AWS).
    pub logs_ttl: Duration,
}

impl Config {
    /// Defaults for in-process use (tests): fast timing, no endpoints.
    pub fn for_tests() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            s3_endpoint: None,
            ecr_endpoint: None,
            docker_host: None,
            registry_aliases: Vec::new(),
            timing: Timing::FAST,
            seed: 1,
            request_log: None,
            instance_labels: Vec::new(),
            max_versions: 500,
            proxy_listen: None,
            logs_ttl: crate::logs::LOGS_TTL,
        }
    }

    /// The storage bucket CreateStorageLocation names.
    pub fn storage_bucket(&self) -> String {
        format!("elasticbeanstalk-{}-{}", self.region, self.account_id)
    }

    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut cfg = Self::for_tests();
        cfg.listen = SocketAddr::from(([127, 0, 0, 1], 4567));
        cfg.proxy_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut listen_given = false;
        let (mut step, mut processing, mut red, mut health) = (None, None, None, None);
        let mut seed = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flag == "--help" || flag == "-h" {
                bail!("{}", USAGE);
            }
            let mut value = || -> Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => args.next().with_context(|| format!("flag {flag} needs a value\n{USAGE}")),
                }
            };
            match flag.as_str() {
                "--listen" => {
                    let v = value()?;
                    cfg.listen = v.parse().with_context(|| format!("--listen {v:?} is not HOST:PORT"))?;
                    listen_given = true;
                }
                "--proxy-listen" => {
                    let v = value()?;
                    cfg.proxy_listen = match v.as_str() {
                        "off" => None,
                        _ => Some(v.parse().with_context(|| format!("--proxy-listen {v:?} is not HOST:PORT or off"))?),
                    };
                }
                "--region" => cfg.region = value()?,
                "--account-id" => cfg.account_id = value()?,
                "--s3-endpoint" => cfg.s3_endpoint = Some(value()?),
                "--ecr-endpoint" => cfg.ecr_endpoint = Some(value()?),
                "--docker-host" => cfg.docker_host = Some(value()?),
                "--registry-alias" => cfg.registry_aliases.push(pair(&value()?, "--registry-alias")?),
                "--instance-label" => cfg.instance_labels.push(pair(&value()?, "--instance-label")?),
                "--timing" => {
                    cfg.timing = match value()?.as_str() {
                        "fast" => Timing::FAST,
                        "demo" => Timing::DEMO,
                        other => bail!("--timing must be fast or demo, not {other:?}"),
                    }
                }
                "--step-ms" => step = Some(Span::parse(&value()?, "--step-ms")?),
                "--processing-ms" => processing = Some(Span::parse(&value()?, "--processing-ms")?),
                "--seed" => seed = Some(number(&value()?, "--seed")?),
                "--red-ms" => red = Some(number(&value()?, "--red-ms")?),
                "--health-timeout-ms" => health = Some(number(&value()?, "--health-timeout-ms")?),
                "--request-log" => cfg.request_log = Some(PathBuf::from(value()?)),
                "--max-versions" => {
                    cfg.max_versions = number(&value()?, "--max-versions")? as usize;
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        if !listen_given {
            bail!("--listen 127.0.0.1:PORT is required\n{USAGE}");
        }
        if let Some(s) = step {
            cfg.timing.step = s;
        }
        if let Some(p) = processing {
            cfg.timing.processing = p;
        }
        cfg.seed = match seed {
            Some(s) => s,
            None => {
                // A fresh seed each start, reported in the log and /_ebsim/config so a run can be
                // repeated; below 2^53 so every JSON reader gets it exactly.
                let mut b = [0u8; 8];
                let _ = getrandom::fill(&mut b);
                u64::from_le_bytes(b) >> 11
            }
        };
        if let Some(r) = red {
            cfg.timing.red_ms = r;
        }
        if let Some(h) = health {
            cfg.timing.health_timeout_ms = h;
        }
        Ok(cfg)
    }
}

fn pair(v: &str, flag: &str) -> Result<(String, String)> {
    match v.split_once('=') {
        Some((a, b)) if !a.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => bail!("{flag} takes KEY=VALUE, got {v:?}"),
    }
}

fn number(v: &str, flag: &str) -> Result<u64> {
    v.parse().with_context(|| format!("{flag} takes a whole number, got {v:?}"))
}

/// Usage text.
pub const USAGE: &str = "usage: ebsim --listen 127.0.0.1:PORT [--proxy-listen 127.0.0.1:PORT|off] [--region R] [--account-id A] \
--s3-endpoint URL --ecr-endpoint URL [--docker-host URL] [--registry-alias FROM=TO]... \
[--timing fast|demo] [--step-ms N|MIN-MAX] [--processing-ms N|MIN-MAX] [--seed N] [--red-ms N] \
[--health-timeout-ms N] [--request-log PATH] [--instance-label KEY=VALUE]... [--max-versions N]";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_the_contract_command_line() {
        let c = Config::parse(args(
            "--listen 127.0.0.1:9000 --region eu-west-1 --account-id 111122223333 --s3-endpoint http://127.0.0.1:1 \
             --ecr-endpoint=http://127.0.0.1:2 --registry-alias 1.dkr.ecr.eu-west-1.amazonaws.com=127.0.0.1:5000 \
             --timing demo --red-ms 500 --instance-label owner=test --max-versions 3",
        ))
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.storage_bucket(), "elasticbeanstalk-eu-west-1-111122223333");
        assert_eq!(c.ecr_endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(c.registry_aliases, vec![("1.dkr.ecr.eu-west-1.amazonaws.com".into(), "127.0.0.1:5000".into())]);
        assert_eq!(c.timing.step, Timing::DEMO.step);
        assert_eq!(c.timing.red_ms, 500);
        assert_eq!(c.instance_labels, vec![("owner".into(), "test".into())]);
        assert_eq!(c.max_versions, 3);
        assert_eq!(c.proxy_listen, Some(SocketAddr::from(([127, 0, 0, 1], 0))), "a CNAME proxy on a free port");
        let fixed = Config::parse(args("--listen 127.0.0.1:1 --proxy-listen 127.0.0.1:8099")).unwrap();
        assert_eq!(fixed.proxy_listen.map(|a| a.port()), Some(8099));
        let off = Config::parse(args("--listen 127.0.0.1:1 --proxy-listen off")).unwrap();
        assert_eq!(off.proxy_listen, None);
        assert!(Config::parse(args("--listen 127.0.0.1:1 --proxy-listen nowhere")).is_err());
    }

    #[test]
    fn step_override_wins_whatever_the_order() {
        let c = Config::parse(args("--step-ms 5 --listen 127.0.0.1:1 --timing demo")).unwrap();
        assert_eq!(c.timing.step, Span::fixed(5));
        assert_eq!(c.timing.processing, Timing::DEMO.processing);
        assert_eq!(c.timing.red_ms, Timing::DEMO.red_ms);
    }

    #[test]
    fn ranges_and_seed() {
        let c = Config::parse(args("--listen 127.0.0.1:1 --step-ms 100-900 --processing-ms=40 --seed 42")).unwrap();
        assert_eq!(c.timing.step, Span::between(100, 900));
        assert_eq!(c.timing.processing, Span::fixed(40));
        assert_eq!(c.seed, 42);
        assert_eq!(c.timing.step.to_string(), "100-900 ms");
        assert!(Config::parse(args("--listen 127.0.0.1:1 --step-ms 9-1")).is_err());
        assert!(Config::parse(args("--listen 127.0.0.1:1 --step-ms 1-x")).is_err());
        assert!(Config::parse(args("--listen 127.0.0.1:1 --seed -1")).is_err());
        let mut rng = SplitMix64::new(c.seed);
        let d = c.timing.step.draw(&mut rng);
        assert!((100..=900).contains(&(d.as_millis() as u64)), "{d:?}");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Config::parse(args("--region x")).is_err());
        assert!(Config::parse(args("--listen nowhere")).is_err());
        assert!(Config::parse(args("--listen 127.0.0.1:1 --timing slow")).is_err());
        assert!(Config::parse(args("--listen 127.0.0.1:1 --registry-alias nope")).is_err());
        assert!(Config::parse(args("--listen 127.0.0.1:1 --bogus")).is_err());
        assert!(Config::parse(args("--listen")).is_err());
    }
}
