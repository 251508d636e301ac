//! Service errors: code, message and HTTP status, as the Query protocol reports them.

use std::fmt;

/// One error answer of the API (`<ErrorResponse>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// `Error/Code`.
    pub code: String,
    /// `Error/Message`.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_string(), message: message.into() }
    }

    /// `InvalidParameterValue` (400).
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterValue", message)
    }

    /// `InvalidParameterCombination` (400).
    pub fn invalid_combination(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterCombination", message)
    }

    /// `MissingParameter` (400) naming the absent parameter.
    pub fn missing(param: &str) -> Self {
        Self::new(400, "MissingParameter", format!("The request must contain the parameter {param}"))
    }

    /// `ValidationError` (400) for a length constraint, in the service's wording.
    pub fn length(param: &str, value: &str, min: usize, max: usize) -> Self {
        let (cmp, bound) = if value.chars().count() < min {
            ("greater than or equal to", min)
        } else {
            ("less than or equal to", max)
        };
        let field = lower_first(param);
        Self::new(
            400,
            "ValidationError",
            format!(
                "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have length {cmp} {bound}"
            ),
        )
    }

    /// `InvalidRequestException` (400).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }

    /// `Throttling` (400) "Rate exceeded".
    pub fn throttling() -> Self {
        Self::new(400, "Throttling", "Rate exceeded")
    }

    /// `InternalFailure` (500).
    pub fn internal() -> Self {
        Self::new(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// `ServiceUnavailable` (503).
    pub fn unavailable() -> Self {
        Self::new(503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.")
    }

    /// `InvalidAction` (400) for an operation this service does not have.
    pub fn invalid_action(action: &str) -> Self {
        Self::new(400, "InvalidAction", format!("Could not find operation {action} for version 2010-12-01"))
    }

    /// `Sender` for client faults, `Receiver` for server faults.
    pub fn fault_type(&self) -> &'static str {
        if self.status >= 500 { "Receiver" } else { "Sender" }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_error_names_the_bound() {
        let e = ApiError::length("EnvironmentName", "abc", 4, 40);
        assert_eq!(e.code, "ValidationError");
        assert!(e.message.contains("at 'environmentName'"), "{}", e.message);
        assert!(e.message.ends_with("greater than or equal to 4"), "{}", e.message);
        let long = "x".repeat(101);
        let e = ApiError::length("VersionLabel", &long, 1, 100);
        assert!(e.message.ends_with("less than or equal to 100"), "{}", e.message);
    }

    #[test]
    fn server_faults_are_receiver_faults() {
        assert_eq!(ApiError::internal().fault_type(), "Receiver");
        assert_eq!(ApiError::unavailable().status, 503);
        assert_eq!(ApiError::throttling().fault_type(), "Sender");
        assert_eq!(ApiError::throttling().status, 400);
    }
}
