//! Faults injected on demand through the admin API: throttling, 5xx, latency, failing or stuck
//! deploys, and the health a deploy settles on. Random choices come from a seeded generator so a
//! run can be repeated exactly.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::ApiError;
use crate::rng::SplitMix64;
use crate::state::{Health, HealthStatus};

/// The colour a successful deploy settles on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettleHealth {
    Green,
    Yellow,
    Red,
}

impl SettleHealth {
    /// Colour and enhanced status.
    pub fn health(self) -> (Health, HealthStatus) {
        match self {
            Self::Green => (Health::Green, HealthStatus::Ok),
            Self::Yellow => (Health::Yellow, HealthStatus::Warning),
            Self::Red => (Health::Red, HealthStatus::Degraded),
        }
    }
}

/// The fault settings, as `GET/POST /_ebsim/faults` show and take them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSettings {
    /// Share of API calls answered `Throttling` (0–1).
    pub throttle_fraction: f64,
    /// Share of API calls answered 500 InternalFailure or 503 ServiceUnavailable (0–1).
    pub error_5xx_fraction: f64,
    /// The next N API calls get a 5xx.
    pub next_5xx: u32,
    /// Added delay before every API answer.
    pub latency_ms: u64,
    /// The next N deploys fail at the instance step.
    pub fail_next_deploys: u32,
    /// The next N updates stay Updating until aborted.
    pub stuck_next_updates: u32,
    /// Health after a successful deploy (default Green).
    pub health_after_deploy: Option<SettleHealth>,
    /// Limit throttle/5xx/latency to these operations (none = all).
    pub ops: Option<Vec<String>>,
    /// Limit every fault to these applications and environments (names or environment ids; none = all):
    /// calls count when a parameter names one of them, deploys when their application or environment is
    /// one of them. Lets tests that share one ebsim inject faults without touching each other.
    pub environments: Option<Vec<String>>,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            throttle_fraction: 0.0,
            error_5xx_fraction: 0.0,
            next_5xx: 0,
            latency_ms: 0,
            fail_next_deploys: 0,
            stuck_next_updates: 0,
            health_after_deploy: None,
            ops: None,
            environments: None,
            seed: 0,
        }
    }
}

/// What to do to one API call.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Delay before answering.
    pub delay: Option<Duration>,
    /// Answer with this error instead of running the operation.
    pub error: Option<ApiError>,
}

/// Settings plus the seeded generator.
#[derive(Debug)]
pub struct Faults {
    settings: FaultSettings,
    rng: SplitMix64,
}

impl Default for Faults {
    fn default() -> Self {
        let settings = FaultSettings::default();
        let rng = SplitMix64::new(settings.seed);
        Self { settings, rng }
    }
}

impl Faults {
    /// The current settings.
    pub fn settings(&self) -> &FaultSettings {
        &self.settings
    }

    /// Merges the fields present in `patch` (a JSON object); `null` clears an optional field.
    /// A `seed` in the patch restarts the generator.
    pub fn merge(&mut self, patch: &Value) -> Result<(), String> {
        let Value::Object(fields) = patch else {
            return Err("fault settings must be a JSON object".into());
        };
        let mut merged = serde_json::to_value(&self.settings).map_err(|e| e.to_string())?;
        if let Value::Object(target) = &mut merged {
            for (k, v) in fields {
                if !target.contains_key(k) {
                    return Err(format!("unknown fault setting {k:?}"));
                }
                target.insert(k.clone(), v.clone());
            }
        }
        let next: FaultSettings = serde_json::from_value(merged).map_err(|e| format!("invalid fault settings: {e}"))?;
        for (name, f) in
            [("throttle_fraction", next.throttle_fraction), ("error_5xx_fraction", next.error_5xx_fraction)]
        {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if fields.contains_key("seed") {
            self.rng = SplitMix64::new(next.seed);
        }
        self.settings = next;
        Ok(())
    }

    /// Back to no faults, generator restarted.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Whether faults apply to something named by any of `names` (always, when unscoped).
    fn in_scope(&self, names: &[&str]) -> bool {
        self.settings.environments.as_ref().is_none_or(|scope| names.iter().any(|n| scope.iter().any(|s| s == n)))
    }

    /// Decides the fate of one call of operation `op`, whose parameter values are `mentions`.
    pub fn judge(&mut self, op: &str, mentions: &[&str]) -> Verdict {
        if !self.in_scope(mentions) {
            return Verdict::default();
        }
        let s = &self.settings;
        if let Some(ops) = &s.ops
            && !ops.iter().any(|o| o == op)
        {
            return Verdict::default();
        }
        let delay = (s.latency_ms > 0).then(|| Duration::from_millis(s.latency_ms));
        let five =
            |rng: &mut SplitMix64| if rng.next_f64() < 0.5 { ApiError::internal() } else { ApiError::unavailable() };
        let error = if s.next_5xx > 0 {
            self.settings.next_5xx -= 1;
            Some(five(&mut self.rng))
        } else if s.error_5xx_fraction > 0.0 && self.rng.next_f64() < s.error_5xx_fraction {
            Some(five(&mut self.rng))
        } else if s.throttle_fraction > 0.0 && self.rng.next_f64() < s.throttle_fraction {
            Some(ApiError::throttling())
        } else {
            None
        };
        Verdict { delay, error }
    }

    /// Consumes one "fail the next deploy" for a deploy of `app`/`env`, if any is left.
    pub fn take_failing_deploy(&mut self, app: &str, env: &str) -> bool {
        self.in_scope(&[app, env]) && take(&mut self.settings.fail_next_deploys)
    }

    /// Consumes one "stuck update" for an update of `app`/`env`, if any is left.
    pub fn take_stuck_update(&mut self, app: &str, env: &str) -> bool {
        self.in_scope(&[app, env]) && take(&mut self.settings.stuck_next_updates)
    }

    /// Where health settles after a successful deploy of `app`/`env`.
    pub fn settle_health(&self, app: &str, env: &str) -> SettleHealth {
        if !self.in_scope(&[app, env]) {
            return SettleHealth::Green;
        }
        self.settings.health_after_deploy.unwrap_or(SettleHealth::Green)
    }
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(f: &mut Faults, op: &str, n: usize) -> Vec<Option<String>> {
        (0..n).map(|_| f.judge(op, &[]).error.map(|e| e.code)).collect()
    }

    #[test]
    fn no_faults_by_default() {
        let mut f = Faults::default();
        assert_eq!(f.judge("DescribeEvents", &[]), Verdict::default());
        assert!(!f.take_failing_deploy("app", "env"));
        assert_eq!(f.settle_health("app", "env"), SettleHealth::Green);
    }

    #[test]
    fn next_5xx_counts_down() {
        let mut f = Faults::default();
        f.merge(&json!({"next_5xx": 2})).unwrap();
        let got = codes(&mut f, "X", 3);
        assert!(got[0].as_deref().is_some_and(|c| c == "InternalFailure" || c == "ServiceUnavailable"));
        assert!(got[1].is_some());
        assert_eq!(got[2], None);
    }

    #[test]
    fn throttling_is_reproducible_with_a_seed() {
        let mut a = Faults::default();
        a.merge(&json!({"throttle_fraction": 0.5, "seed": 42})).unwrap();
        let mut b = Faults::default();
        b.merge(&json!({"seed": 42, "throttle_fraction": 0.5})).unwrap();
        let (ra, rb) = (codes(&mut a, "X", 64), codes(&mut b, "X", 64));
        assert_eq!(ra, rb);
        let throttled = ra.iter().filter(|c| c.as_deref() == Some("Throttling")).count();
        assert!((16..=48).contains(&throttled), "{throttled} of 64 throttled");
    }

    #[test]
    fn ops_limit_what_is_faulted() {
        let mut f = Faults::default();
        f.merge(&json!({"throttle_fraction": 1.0, "latency_ms": 5, "ops": ["DescribeEvents"]})).unwrap();
        assert_eq!(f.judge("DescribeEnvironments", &[]), Verdict::default());
        let v = f.judge("DescribeEvents", &[]);
        assert_eq!(v.delay, Some(Duration::from_millis(5)));
        assert_eq!(v.error.map(|e| e.code).as_deref(), Some("Throttling"));
    }

    #[test]
    fn environments_scope_every_fault() {
        let mut f = Faults::default();
        f.merge(&json!({"throttle_fraction": 1.0, "fail_next_deploys": 1, "stuck_next_updates": 1,
            "health_after_deploy": "Red", "environments": ["shop", "web-1", "e-abc"]}))
            .unwrap();
        assert_eq!(f.judge("DescribeEvents", &["other-app", "e-zzz"]), Verdict::default());
        assert_eq!(f.judge("DescribeEvents", &["e-abc"]).error.map(|e| e.code).as_deref(), Some("Throttling"));
        assert!(!f.take_failing_deploy("other", "web-2"));
        assert!(!f.take_stuck_update("other", "web-2"));
        assert_eq!(f.settle_health("other", "web-2"), SettleHealth::Green);
        assert_eq!(f.settle_health("shop", "web-1"), SettleHealth::Red);
        assert!(f.take_stuck_update("shop", "web-1"));
        assert!(f.take_failing_deploy("x", "web-1"));
    }

    #[test]
    fn merge_keeps_other_fields_and_null_clears() {
        let mut f = Faults::default();
        f.merge(&json!({"fail_next_deploys": 1, "health_after_deploy": "Yellow"})).unwrap();
        f.merge(&json!({"latency_ms": 10})).unwrap();
        assert_eq!(f.settings().fail_next_deploys, 1);
        assert_eq!(f.settle_health("app", "env"), SettleHealth::Yellow);
        f.merge(&json!({"health_after_deploy": null})).unwrap();
        assert_eq!(f.settle_health("app", "env"), SettleHealth::Green);
        assert!(f.take_failing_deploy("app", "env"));
        assert!(!f.take_failing_deploy("app", "env"));
        assert!(f.merge(&json!({"nope": 1})).is_err());
        assert!(f.merge(&json!({"throttle_fraction": 2.0})).is_err());
        assert!(f.merge(&json!({"health_after_deploy": "Purple"})).is_err());
        assert_eq!(f.settings().latency_ms, 10);
        f.reset();
        assert_eq!(f.settings(), &FaultSettings::default());
    }
}
