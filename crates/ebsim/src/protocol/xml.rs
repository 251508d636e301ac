//! XML rendering of Query-protocol answers: a document's members and the success and error envelopes.

use super::doc::{Doc, Item, Node, Scalar};
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

/// Writes a document's members as XML.
pub fn render(doc: &Doc) -> String {
    let mut out = String::new();
    for n in &doc.nodes() {
        node(&mut out, n);
    }
    out
}

fn scalar(out: &mut String, v: &Scalar) {
    match v {
        Scalar::Text(t) => out.push_str(&escape(t)),
        Scalar::Time(ms) => out.push_str(&format_iso(*ms)),
        Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Scalar::Int(n) => out.push_str(&n.to_string()),
        Scalar::Null => {}
    }
}

fn node(out: &mut String, n: &Node) {
    match n {
        Node::Leaf(_, Scalar::Null) => {}
        Node::Leaf(tag, v) => {
            out.push_str(&format!("<{tag}>"));
            scalar(out, v);
            out.push_str(&format!("</{tag}>"));
        }
        Node::Struct(tag, members) => {
            out.push_str(&format!("<{tag}>"));
            for m in members {
                node(out, m);
            }
            out.push_str(&format!("</{tag}>"));
        }
        Node::List(tag, items) if items.is_empty() => out.push_str(&format!("<{tag}/>")),
        Node::List(tag, items) => {
            out.push_str(&format!("<{tag}>"));
            for item in items {
                out.push_str("<member>");
                match item {
                    Item::Scalar(v) => scalar(out, v),
                    Item::Struct(members) => {
                        for m in members {
                            node(out, m);
                        }
                    }
                }
                out.push_str("</member>");
            }
            out.push_str(&format!("</{tag}>"));
        }
    }
}

/// `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…</ResponseMetadata></OpResponse>`; the
/// Result element comes first (the Rust SDK requires it). `None` = an operation without output.
pub fn success(op: &str, request_id: &str, result: Option<&Doc>) -> String {
    let mut s = String::with_capacity(1024);
    s.push_str(&format!("<{op}Response xmlns=\"{XMLNS}\">"));
    if let Some(r) = result {
        s.push_str(&format!("<{op}Result>{}</{op}Result>", render(r)));
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
        let mut x = Doc::new();
        x.leaf("S3Bucket", "elasticbeanstalk-us-east-1-123456789012");
        let body = success("CreateStorageLocation", "rid-1", Some(&x));
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
        let mut x = Doc::new();
        x.strings("Versions", &["v1".into(), "a&b".into()]);
        x.strings("ConfigurationTemplates", &[]);
        x.list("Events", &[1, 2], |x, n| {
            x.num("N", *n);
        });
        x.opt("Absent", None).time("At", 0).bool("B", false);
        assert_eq!(
            render(&x),
            "<Versions><member>v1</member><member>a&amp;b</member></Versions><ConfigurationTemplates/>\
             <Events><member><N>1</N></member><member><N>2</N></member></Events>\
             <At>1970-01-01T00:00:00.000Z</At><B>false</B>"
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
