//! AWS SDK errors, read in one place: the service's code and message (codes the SDK model does not know,
//! such as `InvalidParameterValue`, arrive as unhandled errors and are matched here by their code string),
//! and one helper that turns a failed call into an error with context. A leaf: it imports nothing of the
//! crate.

use std::fmt::{Debug, Display};

// Every SDK crate re-exports the same `SdkError`; the Beanstalk one names it for S3 and ECR as well.
pub use aws_sdk_elasticbeanstalk::error::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The service's error code (`InvalidParameterValue`, `Throttling`, …) when the error carries one.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// The service's message when the error carries one.
pub fn error_message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().message(),
        _ => None,
    }
}

/// "Code: message", or what went wrong on the way (unreachable, timed out).
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: Debug>(err: &SdkError<E, R>) -> String {
    match (error_code(err), error_message(err)) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => match err {
            SdkError::DispatchFailure(f) => format!("could not reach the service ({:?})", f.as_connector_error()),
            SdkError::TimeoutError(_) => "the request timed out".to_owned(),
            other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        },
    }
}

/// `.aws_context(|| "failed to …")` on the result of an SDK call: the error becomes "failed to …: Code:
/// message".
pub trait AwsContext<T> {
    /// Wraps a failed call's [`describe`]d error in the given context.
    fn aws_context<C: Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> anyhow::Result<T>;
}

impl<T, E: ProvideErrorMetadata + std::error::Error + 'static, R: Debug> AwsContext<T> for Result<T, SdkError<E, R>> {
    fn aws_context<C: Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{}", describe(&e)).context(context()))
    }
}
