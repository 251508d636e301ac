//! XML rendering of Query-protocol answers: the success and error envelopes and a small writer.

use super::error::ApiError;
use super::time::format_iso;

/// The service's XML namespace.
pub const XMLNS: &str = "http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/";

/// Escapes text for an XML element body. Quotes stay as they are (the service sends them raw);
/// characters XML 1.0 cannot carry become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Builds the inside of a Result element.
#[derive(Debug, Default)]
pub struct Xml {
    buf: String,
}

impl Xml {
    /// An empty fragment.
    pub fn new() -> Self {
        Self::default()
    }

    /// `<tag>`.
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// `</tag>`.
    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// `<tag>text</tag>`, escaped.
    pub fn leaf(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        self.buf.push_str(&escape(text));
        self.close(tag)
    }

    /// A leaf only when there is a value.
    pub fn opt(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
        self
    }

    /// A timestamp leaf (`2024-01-02T03:04:05.123Z`).
    pub fn time(&mut self, tag: &str, ms: i64) -> &mut Self {
        self.leaf(tag, &format_iso(ms))
    }

    /// A boolean leaf.
    pub fn bool(&mut self, tag: &str, v: bool) -> &mut Self {
        self.leaf(tag, if v { "true" } else { "false" })
    }

    /// A number leaf.
    pub fn num(&mut self, tag: &str, v: impl std::fmt::Display) -> &mut Self {
        self.leaf(tag, &v.to_string())
    }

    /// A list: `<tag><member>…</member></tag>`, or `<tag/>` when empty.
    pub fn list<T>(&mut self, tag: &str, items: &[T], mut each: impl FnMut(&mut Xml, &T)) -> &mut Self {
        if items.is_empty() {
            self.buf.push('<');
            self.buf.push_str(tag);
            self.buf.push_str("/>");
            return self;
        }
        self.open(tag);
        for item in items {
            self.open("member");
            each(self, item);
            self.close("member");
        }
        self.close(tag)
    }

    /// A list of strings.
    pub fn strings(&mut self, tag: &str, items: &[String]) -> &mut Self {
        self.list(tag, items, |x, s| {
            x.buf.push_str(&escape(s));
        })
    }

    /// The fragment built so far.
    pub fn finish(self) -> String {
        self.buf
    }
}

/// `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…</ResponseMetadata></OpResponse>`; the
/// Result element comes first (the Rust SDK requires it). `None` = an operation without output.
pub fn success(op: &str, request_id: &str, result: Option<&str>) -> String {
    let mut s = String::with_capacity(256 + result.map_or(0, str::len));
    s.push_str(&format!("<{op}Response xmlns=\"{XMLNS}\">"));
    if let Some(r) = result {
        s.push_str(&format!("<{op}Result>{r}</{op}Result>"));
    }
    s.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{op}Response>",
        escape(request_id)
    ));
    s
}

/// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
pub fn error(err: &ApiError, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        err.fault_type(),
        escape(&err.code),
        escape(&err.message),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;\"c'");
        assert_eq!(escape("l1\nl2\r\tx\u{1}"), "l1\nl2&#13;\tx\u{FFFD}");
        assert_eq!(escape("Grüße ✓"), "Grüße ✓");
    }

    #[test]
    fn result_element_comes_first() {
        let mut x = Xml::new();
        x.leaf("S3Bucket", "elasticbeanstalk-us-east-1-123456789012");
        let body = success("CreateStorageLocation", "rid-1", Some(&x.finish()));
        assert_eq!(
            body,
            format!(
                "<CreateStorageLocationResponse xmlns=\"{XMLNS}\"><CreateStorageLocationResult><S3Bucket>elasticbeanstalk-us-east-1-123456789012</S3Bucket></CreateStorageLocationResult><ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata></CreateStorageLocationResponse>"
            )
        );
    }

    #[test]
    fn no_output_operations_carry_only_metadata() {
        let body = success("AbortEnvironmentUpdate", "r", None);
        assert!(!body.contains("AbortEnvironmentUpdateResult"));
        assert!(body.contains("<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"));
    }

    #[test]
    fn lists_use_member_and_self_close_when_empty() {
        let mut x = Xml::new();
        x.strings("Versions", &["v1".into(), "a&b".into()]);
        x.strings("ConfigurationTemplates", &[]);
        x.list("Events", &[1, 2], |x, n| {
            x.num("N", n);
        });
        assert_eq!(
            x.finish(),
            "<Versions><member>v1</member><member>a&amp;b</member></Versions><ConfigurationTemplates/>\
             <Events><member><N>1</N></member><member><N>2</N></member></Events>"
        );
    }

    #[test]
    fn error_envelope() {
        let e = ApiError::invalid_value("No Application named 'a<b' found.");
        assert_eq!(
            error(&e, "rid"),
            format!(
                "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>No Application named 'a&lt;b' found.</Message></Error><RequestId>rid</RequestId></ErrorResponse>"
            )
        );
        assert!(error(&ApiError::internal(), "r").contains("<Type>Receiver</Type>"));
    }
}
