//! What eb-deploy knows of Beanstalk's resources: environments, versions and events, reduced to the fields the
//! verdict reasons about, with status and health as types. A leaf: it imports nothing of the crate.

use std::fmt;

use serde::Serialize;

/// An environment's status (`EnvironmentStatus`); only `Ready` accepts an update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Status {
    Launching,
    Updating,
    Ready,
    Aborting,
    LinkingFrom,
    LinkingTo,
    Terminating,
    Terminated,
    /// Not given, or a value this version of eb-deploy does not know.
    #[default]
    Unknown,
}

impl Status {
    /// Reads the service's value (case-insensitively).
    pub fn parse(s: &str) -> Self {
        const ALL: [Status; 8] = [
            Status::Launching,
            Status::Updating,
            Status::Ready,
            Status::Aborting,
            Status::LinkingFrom,
            Status::LinkingTo,
            Status::Terminating,
            Status::Terminated,
        ];
        ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s)).unwrap_or(Status::Unknown)
    }

    /// The service's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Launching => "Launching",
            Status::Updating => "Updating",
            Status::Ready => "Ready",
            Status::Aborting => "Aborting",
            Status::LinkingFrom => "LinkingFrom",
            Status::LinkingTo => "LinkingTo",
            Status::Terminating => "Terminating",
            Status::Terminated => "Terminated",
            Status::Unknown => "",
        }
    }

    /// True when the environment accepts an update.
    pub fn is_ready(self) -> bool {
        self == Status::Ready
    }

    /// True when the environment is gone or going.
    pub fn is_terminated(self) -> bool {
        matches!(self, Status::Terminated | Status::Terminating)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == Status::Unknown { "unknown" } else { self.as_str() })
    }
}

/// An environment's health colour, ordered from worst to best so that a minimum compares: `Grey` (no data,
/// or checks paused during an update) < `Red` < `Yellow` < `Green`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Health {
    /// Not given.
    #[default]
    Unknown,
    Grey,
    Red,
    Yellow,
    Green,
}

impl Health {
    /// Reads the service's value (case-insensitively).
    pub fn parse(s: &str) -> Self {
        [Health::Grey, Health::Red, Health::Yellow, Health::Green]
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .unwrap_or(Health::Unknown)
    }

    /// The service's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "",
            Health::Grey => "Grey",
            Health::Red => "Red",
            Health::Yellow => "Yellow",
            Health::Green => "Green",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == Health::Unknown { "unknown" } else { self.as_str() })
    }
}

/// An environment, as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub id: String,
    pub name: String,
    pub application: String,
    pub status: Status,
    pub health: Health,
    /// Enhanced health status, e.g. `Ok`, `Degraded` (empty under basic health).
    pub health_status: String,
    pub version_label: Option<String>,
    pub cname: Option<String>,
    pub endpoint_url: Option<String>,
    /// Its ARN (tags are read and written by ARN).
    #[serde(skip)]
    pub arn: Option<String>,
    /// Epoch milliseconds of the last change, by the service's clock.
    #[serde(skip)]
    pub updated_ms: Option<i64>,
}

impl Environment {
    /// True when the environment accepts an update.
    pub fn is_ready(&self) -> bool {
        self.status.is_ready()
    }

    /// True when the environment is gone or going.
    pub fn is_terminated(&self) -> bool {
        self.status.is_terminated()
    }

    /// True when it runs `label`.
    pub fn runs(&self, label: &str) -> bool {
        self.version_label.as_deref() == Some(label)
    }

    /// `http://` + CNAME (or the endpoint when there is no CNAME).
    pub fn url(&self) -> Option<String> {
        self.cname.as_deref().or(self.endpoint_url.as_deref()).filter(|h| !h.is_empty()).map(|h| format!("http://{h}"))
    }
}

/// What Beanstalk says of a version's bundle (`ApplicationVersionStatus`; the live service sends it in
/// upper case, the SDK model in title case).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum VersionStatus {
    /// Created without processing.
    Unprocessed,
    Processing,
    Building,
    Processed,
    /// Beanstalk could not process the bundle.
    Failed,
    /// Not given, or a value this version of eb-deploy does not know.
    #[default]
    Unknown,
}

impl VersionStatus {
    /// Reads the service's value, ignoring case.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "UNPROCESSED" => VersionStatus::Unprocessed,
            "PROCESSING" => VersionStatus::Processing,
            "BUILDING" => VersionStatus::Building,
            "PROCESSED" => VersionStatus::Processed,
            "FAILED" => VersionStatus::Failed,
            _ => VersionStatus::Unknown,
        }
    }
}

/// An application version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub label: String,
    pub status: VersionStatus,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub created_ms: Option<i64>,
}

/// One Beanstalk event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub date_ms: i64,
    /// Upper case: `INFO`, `WARN`, `ERROR`, …
    pub severity: String,
    pub message: String,
    pub request_id: Option<String>,
    /// The environment it is about (none for application-wide events).
    pub environment: Option<String>,
}

impl Event {
    /// ERROR or FATAL.
    pub fn is_error(&self) -> bool {
        matches!(self.severity.as_str(), "ERROR" | "FATAL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_from_the_service_spelling() {
        assert_eq!(Status::parse("Ready"), Status::Ready);
        assert_eq!(Status::parse("LinkingTo"), Status::LinkingTo);
        assert_eq!(Status::parse("Hibernating"), Status::Unknown);
        assert_eq!(Health::parse("Yellow"), Health::Yellow);
        assert_eq!(Health::parse(""), Health::Unknown);
        assert_eq!(VersionStatus::parse("PROCESSED"), VersionStatus::Processed);
        assert_eq!(VersionStatus::parse("Processed"), VersionStatus::Processed);
        assert_eq!(VersionStatus::parse("Failed"), VersionStatus::Failed);
    }

    #[test]
    fn health_orders_worst_to_best() {
        assert!(Health::Green > Health::Yellow && Health::Yellow > Health::Red && Health::Red > Health::Grey);
        assert!(Health::Grey > Health::Unknown);
    }
}
