//! The JSON form of Query-protocol answers, which the service sends when a request says
//! `Accept: application/json` (einaregilsson/beanstalk-deploy parses only this form):
//! `{"OpResponse": {"OpResult": {…}, "ResponseMetadata": {"RequestId": …}}}`, lists as arrays,
//! timestamps as epoch seconds (a number), absent optional members as `null`, and errors as
//! `{"Error": {"Code": …, "Message": …, "Type": …}, "RequestId": …}`.

use super::doc::{Doc, Item, Node, Scalar};
use super::error::ApiError;

/// The `Content-Type` of JSON answers. Exactly this: beanstalk-deploy compares the whole header.
pub const CONTENT_TYPE: &str = "application/json";

fn string(out: &mut String, s: &str) {
    // serde_json's string escaping cannot fail for a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Epoch milliseconds as epoch seconds with their fraction (`1704164645.123`).
fn seconds(out: &mut String, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    out.push_str(&format!("{sign}{}.{:03}", abs / 1000, abs % 1000));
}

fn scalar(out: &mut String, v: &Scalar) {
    match v {
        Scalar::Text(t) => string(out, t),
        Scalar::Time(ms) => seconds(out, *ms),
        Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Scalar::Int(n) => out.push_str(&n.to_string()),
        Scalar::Null => out.push_str("null"),
    }
}

fn object(out: &mut String, members: &[Node]) {
    out.push('{');
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        member(out, m);
    }
    out.push('}');
}

fn member(out: &mut String, n: &Node) {
    match n {
        Node::Leaf(tag, v) => {
            string(out, tag);
            out.push(':');
            scalar(out, v);
        }
        Node::Struct(tag, members) => {
            string(out, tag);
            out.push(':');
            object(out, members);
        }
        Node::List(tag, items) => {
            string(out, tag);
            out.push_str(":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Item::Scalar(v) => scalar(out, v),
                    Item::Struct(members) => object(out, members),
                }
            }
            out.push(']');
        }
    }
}

/// A document's members as one JSON object.
pub fn render(doc: &Doc) -> String {
    let mut out = String::new();
    object(&mut out, &doc.nodes());
    out
}

/// `{"OpResponse": {"OpResult": {…}, "ResponseMetadata": {"RequestId": …}}}`; operations without
/// output carry only `ResponseMetadata`.
pub fn success(op: &str, request_id: &str, result: Option<&Doc>) -> String {
    let mut out = String::with_capacity(1024);
    out.push('{');
    string(&mut out, &format!("{op}Response"));
    out.push_str(":{");
    if let Some(r) = result {
        string(&mut out, &format!("{op}Result"));
        out.push(':');
        out.push_str(&render(r));
        out.push(',');
    }
    out.push_str("\"ResponseMetadata\":{\"RequestId\":");
    string(&mut out, request_id);
    out.push_str("}}}");
    out
}

/// `{"Error": {"Code": …, "Message": …, "Type": …}, "RequestId": …}`.
pub fn error(err: &ApiError, request_id: &str) -> String {
    let mut out = String::from("{\"Error\":{\"Code\":");
    string(&mut out, &err.code);
    out.push_str(",\"Message\":");
    string(&mut out, &err.message);
    out.push_str(",\"Type\":");
    string(&mut out, err.fault_type());
    out.push_str("},\"RequestId\":");
    string(&mut out, request_id);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    #[test]
    fn success_envelope_with_every_kind_of_member() {
        let mut d = Doc::new();
        d.leaf("Name", "a \"quoted\" <b>\n")
            .time("EventDate", 1_704_164_645_123)
            .bool("Abortable", true)
            .num("Ok", 1)
            .opt("Description", None)
            .open("Tier")
            .leaf("Type", "Standard")
            .close("Tier")
            .strings("Versions", &["v2".into(), "v1".into()])
            .list::<()>("EnvironmentLinks", &[], |_, _| {});
        d.list("Events", &["m"], |d, m| {
            d.leaf("Message", m);
        });
        let v = parse(&success("DescribeThings", "rid", Some(&d)));
        assert_eq!(
            v,
            json!({"DescribeThingsResponse": {
                "DescribeThingsResult": {
                    "Name": "a \"quoted\" <b>\n",
                    "EventDate": 1_704_164_645.123,
                    "Abortable": true,
                    "Ok": 1,
                    "Description": null,
                    "Tier": {"Type": "Standard"},
                    "Versions": ["v2", "v1"],
                    "EnvironmentLinks": [],
                    "Events": [{"Message": "m"}],
                },
                "ResponseMetadata": {"RequestId": "rid"},
            }})
        );
    }

    #[test]
    fn timestamps_are_epoch_seconds_numbers() {
        let mut d = Doc::new();
        d.time("T", 1_000).time("Before", -1);
        let text = render(&d);
        assert_eq!(text, "{\"T\":1.000,\"Before\":-0.001}");
        assert_eq!(parse(&text)["T"].as_f64(), Some(1.0));
    }

    #[test]
    fn no_output_operations_and_errors() {
        let v = parse(&success("AbortEnvironmentUpdate", "r", None));
        assert_eq!(v, json!({"AbortEnvironmentUpdateResponse": {"ResponseMetadata": {"RequestId": "r"}}}));
        let e = parse(&error(&ApiError::throttling(), "r2"));
        assert_eq!(
            e,
            json!({"Error": {"Code": "Throttling", "Message": "Rate exceeded", "Type": "Sender"}, "RequestId": "r2"})
        );
    }
}
