//! The awsQuery wire protocol: form decoding, XML envelopes, errors, timestamps, page tokens.

pub mod error;
pub mod form;
pub mod paging;
pub mod time;
pub mod xml;

pub use error::ApiError;
pub use form::Params;
