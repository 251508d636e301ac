//! The fault-injection settings (`POST /faults`) and the per-request decision made from them.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Current fault settings, as shown and set through the admin API. Counters (`next_5xx`,
/// `cut_times`) count down as faults are applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer this many matching requests with `error_status` instead of forwarding them.
    pub next_5xx: u64,
    /// Status of injected errors.
    pub error_status: u16,
    /// Probability (0..=1) that any other matching request gets an injected error.
    pub error_5xx_fraction: f64,
    /// Delay before a matching request is forwarded (TCP: before connecting upstream).
    pub latency_ms: u64,
    /// Faults apply only to requests matching every given field; absent = all requests.
    #[serde(rename = "match")]
    pub filter: Option<Match>,
    /// Close both connections once this many body bytes (request + response) of a matching
    /// request (TCP: bytes in both directions) would be exceeded.
    pub cut_after_bytes: Option<u64>,
    /// How many requests/connections may still be cut.
    pub cut_times: u64,
    /// Answer nothing: close matching connections at once.
    pub refuse: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            next_5xx: 0,
            error_status: 503,
            error_5xx_fraction: 0.0,
            latency_ms: 0,
            filter: None,
            cut_after_bytes: None,
            cut_times: 1,
            refuse: false,
        }
    }
}

/// Request filter; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    /// SigV4 signing service (`s3`, `ecr`, `elasticbeanstalk`), case-insensitive.
    pub service: Option<String>,
    /// HTTP method, case-insensitive.
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    /// Substring of the `X-Amz-Target` header.
    pub target_contains: Option<String>,
}

/// The parts of an HTTP request that filters look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    pub service: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub target: Option<&'a str>,
}

impl Match {
    fn is_empty(&self) -> bool {
        self.service.is_none() && self.method.is_none() && self.path_prefix.is_none() && self.target_contains.is_none()
    }

    /// `None` stands for a TCP connection, which only an empty filter matches.
    fn matches(&self, request: Option<&RequestInfo<'_>>) -> bool {
        let Some(req) = request else {
            return self.is_empty();
        };
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_ref().is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        eq(&self.service, req.service)
            && eq(&self.method, Some(req.method))
            && self.path_prefix.as_ref().is_none_or(|p| req.path.starts_with(p.as_str()))
            && self.target_contains.as_ref().is_none_or(|t| req.target.is_some_and(|h| h.contains(t.as_str())))
    }
}

impl Faults {
    /// Merges a JSON object into the settings: given keys replace, `null` resets a key to its
    /// default. Setting `cut_after_bytes` without `cut_times` re-arms one cut.
    pub fn merge(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(patch) = patch else {
            return Err("faults must be a JSON object".into());
        };
        let mut current = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        let Some(fields) = current.as_object_mut() else {
            return Err("internal: faults did not serialize to an object".into());
        };
        if patch.contains_key("cut_after_bytes") && !patch.contains_key("cut_times") {
            fields.remove("cut_times");
        }
        for (key, value) in patch {
            if value.is_null() {
                fields.remove(&key);
            } else {
                fields.insert(key, value);
            }
        }
        let merged: Faults = serde_json::from_value(current).map_err(|e| e.to_string())?;
        merged.validate()?;
        *self = merged;
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        if !(400..=599).contains(&self.error_status) {
            return Err(format!("error_status must be 400..=599, got {}", self.error_status));
        }
        if !(0.0..=1.0).contains(&self.error_5xx_fraction) {
            return Err(format!("error_5xx_fraction must be within 0..=1, got {}", self.error_5xx_fraction));
        }
        Ok(())
    }

    fn matches(&self, request: Option<&RequestInfo<'_>>) -> bool {
        self.filter.as_ref().is_none_or(|m| m.matches(request))
    }
}

/// What to do with one request or connection.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decision {
    pub refuse: bool,
    pub latency: Option<Duration>,
    /// Answer with this status instead of forwarding.
    pub error_status: Option<u16>,
    /// Arm a cut after this many bytes.
    pub cut_after: Option<u64>,
}

/// Fault settings shared by all connections.
pub struct FaultState {
    inner: Mutex<(Faults, Rng)>,
}

impl Default for FaultState {
    fn default() -> Self {
        Self { inner: Mutex::new((Faults::default(), Rng::seeded())) }
    }
}

impl FaultState {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Faults, Rng)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self) -> Faults {
        self.lock().0.clone()
    }

    pub fn merge(&self, patch: Value) -> Result<Faults, String> {
        let mut guard = self.lock();
        guard.0.merge(patch)?;
        Ok(guard.0.clone())
    }

    pub fn reset(&self) -> Faults {
        let mut guard = self.lock();
        guard.0 = Faults::default();
        guard.0.clone()
    }

    /// True when every new connection is to be refused before anything is read.
    pub fn refuse_all(&self) -> bool {
        let guard = self.lock();
        guard.0.refuse && guard.0.filter.as_ref().is_none_or(Match::is_empty)
    }

    /// Decides the faults for one request (`None`: a TCP connection), consuming `next_5xx`.
    pub fn decide(&self, request: Option<&RequestInfo<'_>>) -> Decision {
        let mut guard = self.lock();
        let (faults, rng) = &mut *guard;
        if !faults.matches(request) {
            return Decision::default();
        }
        if faults.refuse {
            return Decision { refuse: true, ..Decision::default() };
        }
        let latency = (faults.latency_ms > 0).then(|| Duration::from_millis(faults.latency_ms));
        let error_status = if request.is_none() {
            None
        } else if faults.next_5xx > 0 {
            faults.next_5xx -= 1;
            Some(faults.error_status)
        } else if faults.error_5xx_fraction > 0.0 && rng.next_f64() < faults.error_5xx_fraction {
            Some(faults.error_status)
        } else {
            None
        };
        let cut_after = match faults.cut_after_bytes {
            Some(limit) if error_status.is_none() && faults.cut_times > 0 => Some(limit),
            _ => None,
        };
        Decision { refuse: false, latency, error_status, cut_after }
    }

    /// Takes one cut from the budget; false when other connections already used it up.
    pub fn take_cut(&self) -> bool {
        let mut guard = self.lock();
        if guard.0.cut_times > 0 {
            guard.0.cut_times -= 1;
            true
        } else {
            false
        }
    }
}

/// xorshift64*: enough randomness to spread injected errors, without a dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Self(nanos | 1)
    }

    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(service: &'a str, method: &'a str, path: &'a str) -> RequestInfo<'a> {
        RequestInfo { service: Some(service), method, path, target: None }
    }

    #[test]
    fn merge_replaces_given_keys_and_null_resets() {
        let mut f = Faults::default();
        f.merge(json!({"next_5xx": 2, "latency_ms": 10})).unwrap();
        f.merge(json!({"error_status": 500})).unwrap();
        assert_eq!((f.next_5xx, f.latency_ms, f.error_status), (2, 10, 500));
        f.merge(json!({"latency_ms": null})).unwrap();
        assert_eq!(f.latency_ms, 0);
        assert!(f.merge(json!({"nope": 1})).is_err());
        assert!(f.merge(json!({"error_status": 200})).is_err());
        assert!(f.merge(json!({"error_5xx_fraction": 2.0})).is_err());
        assert!(f.merge(json!([1])).is_err());
        assert_eq!(f.next_5xx, 2, "a rejected patch changes nothing");
    }

    #[test]
    fn setting_cut_rearms_one_cut() {
        let state = FaultState::default();
        state.merge(json!({"cut_after_bytes": 5})).unwrap();
        assert!(state.take_cut());
        assert!(!state.take_cut());
        state.merge(json!({"cut_after_bytes": 5})).unwrap();
        assert_eq!(state.get().cut_times, 1);
        state.merge(json!({"cut_after_bytes": 5, "cut_times": 3})).unwrap();
        assert_eq!(state.get().cut_times, 3);
    }

    #[test]
    fn next_5xx_counts_down_only_for_matching_requests() {
        let state = FaultState::default();
        state
            .merge(json!({"next_5xx": 1, "match": {"service": "S3", "method": "put", "path_prefix": "/bucket"}}))
            .unwrap();
        assert_eq!(state.decide(Some(&req("ecr", "PUT", "/bucket/x"))), Decision::default());
        assert_eq!(state.decide(Some(&req("s3", "GET", "/bucket/x"))), Decision::default());
        assert_eq!(state.decide(Some(&req("s3", "PUT", "/other"))), Decision::default());
        assert_eq!(state.decide(Some(&req("s3", "PUT", "/bucket/x"))).error_status, Some(503));
        assert_eq!(state.decide(Some(&req("s3", "PUT", "/bucket/x"))).error_status, None);
        // A filter naming HTTP fields never matches a TCP connection.
        state.merge(json!({"refuse": true})).unwrap();
        assert!(!state.refuse_all());
        assert!(!state.decide(None).refuse);
    }

    #[test]
    fn target_filter_and_fraction() {
        let state = FaultState::default();
        state.merge(json!({"error_5xx_fraction": 1.0, "match": {"target_contains": "PutImage"}})).unwrap();
        let mut r = req("ecr", "POST", "/");
        r.target = Some("AmazonEC2ContainerRegistry_V20150921.PutImage");
        assert_eq!(state.decide(Some(&r)).error_status, Some(503));
        r.target = Some("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken");
        assert_eq!(state.decide(Some(&r)).error_status, None);
        r.target = None;
        assert_eq!(state.decide(Some(&r)).error_status, None);
    }

    #[test]
    fn refuse_without_filter_refuses_everything() {
        let state = FaultState::default();
        state.merge(json!({"refuse": true})).unwrap();
        assert!(state.refuse_all());
        assert!(state.decide(None).refuse);
        state.reset();
        assert!(!state.refuse_all());
    }

    #[test]
    fn rng_stays_in_unit_interval() {
        let mut rng = Rng::seeded();
        let mut low = 0;
        for _ in 0..10_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
            if x < 0.5 {
                low += 1;
            }
        }
        assert!((4_000..6_000).contains(&low), "{low}");
    }
}
