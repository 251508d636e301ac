//! The awsQuery wire protocol: form decoding, XML and JSON answers, errors, timestamps, page tokens.

pub mod doc;
pub mod error;
pub mod form;
pub mod json;
pub mod paging;
pub mod time;
pub mod xml;

pub use doc::Doc;
pub use error::ApiError;
pub use form::Params;

/// The form an answer is written in: the service answers XML unless the request asks for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Xml,
    Json,
}

impl Format {
    /// The form an `Accept` header asks for: JSON when it names `application/json` ahead of any XML type.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Self::Xml };
        for range in accept.split(',') {
            let media = range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            match media.as_str() {
                "application/json" => return Self::Json,
                "text/xml" | "application/xml" => return Self::Xml,
                _ => {}
            }
        }
        Self::Xml
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xml => "text/xml",
            Self::Json => json::CONTENT_TYPE,
        }
    }

    /// A success answer; `None` for operations without output.
    pub fn success(self, op: &str, request_id: &str, result: Option<&Doc>) -> String {
        match self {
            Self::Xml => xml::success(op, request_id, result),
            Self::Json => json::success(op, request_id, result),
        }
    }

    /// An error answer.
    pub fn error(self, err: &ApiError, request_id: &str) -> String {
        match self {
            Self::Xml => xml::error(err, request_id),
            Self::Json => json::error(err, request_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn json_only_when_asked_for() {
        assert_eq!(Format::from_accept(None), Format::Xml);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Xml);
        assert_eq!(Format::from_accept(Some("application/json")), Format::Json);
        assert_eq!(Format::from_accept(Some("Application/JSON; charset=utf-8")), Format::Json);
        assert_eq!(Format::from_accept(Some("text/html, application/json;q=0.9")), Format::Json);
        assert_eq!(Format::from_accept(Some("text/xml, application/json")), Format::Xml);
        assert_eq!(Format::content_type(Format::Json), "application/json");
    }
}
