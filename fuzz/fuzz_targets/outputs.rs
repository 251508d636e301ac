//! Step outputs: what `format_file_command` writes, the runner's parser (`parse_file_commands`) must read
//! back exactly; the parser never panics on any file; workflow-command escapes leave no line breaks.

#![no_main]

use eb_deploy::gha::{escape_data, escape_property, format_file_command, new_delimiter, parse_file_commands};
use libfuzzer_sys::fuzz_target;

/// The input, as text split on NUL: the first part is a file for the parser (and text for the escapes);
/// then output names and values alternate. A `\x02` in a value is replaced by the real delimiter, to
/// exercise the writer's refusal.
struct Input {
    raw: String,
    pairs: Vec<(String, String)>,
}

impl Input {
    fn decode(data: &[u8]) -> Self {
        let text = String::from_utf8_lossy(data);
        let mut parts = text.split('\0');
        let raw = parts.next().unwrap_or_default().to_owned();
        let mut pairs = Vec::new();
        while let Some(name) = parts.next() {
            pairs.push((name.to_owned(), parts.next().unwrap_or_default().to_owned()));
        }
        Input { raw, pairs }
    }
}

/// What the writer documents: CRLF and lone CR become LF.
fn normalised(value: &str) -> String {
    value.replace("\r\n", "\n").replace('\r', "\n")
}

fuzz_target!(|data: &[u8]| {
    let input = Input::decode(data);

    // The parser alone: any text, never a panic; what it accepts has non-empty names without line breaks.
    if let Ok(entries) = parse_file_commands(&input.raw) {
        for (name, _) in &entries {
            assert!(!name.is_empty() && !name.contains('\n'), "parsed name {name:?}");
        }
    }

    // Escapes: no raw CR or LF survives; properties also lose `:` and `,`; `%` only starts an escape.
    let data_escaped = escape_data(&input.raw);
    assert!(!data_escaped.contains(['\r', '\n']), "escape_data left a line break: {data_escaped:?}");
    let prop_escaped = escape_property(&input.raw);
    assert!(!prop_escaped.contains(['\r', '\n', ':', ',']), "escape_property left {prop_escaped:?}");
    for escaped in [&data_escaped, &prop_escaped] {
        for (i, _) in escaped.match_indices('%') {
            let code = escaped.get(i + 1..i + 3);
            assert!(matches!(code, Some("25" | "0D" | "0A" | "3A" | "2C")), "stray % in {escaped:?}");
        }
    }
    assert_eq!(unescape(&data_escaped), input.raw, "escape_data is not reversible");
    assert_eq!(unescape(&prop_escaped), input.raw, "escape_property is not reversible");

    // Writer then parser: every accepted pair comes back, in order, with CRs normalised.
    let delimiter = new_delimiter();
    let mut file = String::new();
    let mut expected = Vec::new();
    for (name, value) in &input.pairs {
        let value = value.replace('\x02', &delimiter);
        match format_file_command(name, &value, &delimiter) {
            Ok(entry) => {
                assert!(!value.contains(delimiter.as_str()), "accepted a value holding the delimiter");
                assert!(entry.ends_with('\n'));
                file.push_str(&entry);
                expected.push((name.clone(), normalised(&value)));
            }
            Err(_) => {
                // Refusals are for names an expression cannot reference (`steps.<id>.outputs.<name>` takes
                // letters, digits, `-` and `_`; anything else could also change how the runner splits the
                // line), and values that hold the delimiter.
                let bad_name =
                    name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
                assert!(
                    bad_name || value.contains(delimiter.as_str()),
                    "refused a harmless output {name:?} = {value:?}"
                );
            }
        }
    }
    match parse_file_commands(&file) {
        Ok(parsed) => assert_eq!(parsed, expected, "outputs did not round-trip; file:\n{file}"),
        Err(e) => panic!("the runner's parser rejects what the writer wrote: {e:#}; file:\n{file:?}"),
    }
});

/// Reverses the runner escapes (`%25`, `%0D`, `%0A`, `%3A`, `%2C`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let c = match &rest[i + 1..i + 3] {
            "25" => '%',
            "0D" => '\r',
            "0A" => '\n',
            "3A" => ':',
            "2C" => ',',
            other => panic!("unknown escape %{other}"),
        };
        out.push(c);
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}
