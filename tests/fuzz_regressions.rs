//! Regression tests for what fuzzing found (fuzz/). Each one fails until the bug it names is fixed in src/.

use std::path::Path;
use std::time::Duration;

use eb_deploy::config::{Config, RunContext};
use eb_deploy::dockerrun::Template;
use eb_deploy::format::{format_duration, parse_duration};
use eb_deploy::gha::{format_file_command, parse_file_commands};
use eb_deploy::image::dockerignore::Matcher;
use eb_deploy::inputs::RawInputs;

/// fuzz target `outputs`: a name ending in `<` was written as `NAME<<<DELIM`, which the runner reads as
/// name `NAME` minus its `<` with delimiter `<DELIM`. The writer must refuse it (or the pair must read back).
#[test]
fn output_names_ending_in_lt_are_refused_or_read_back() {
    for name in ["<", "em<"] {
        if let Ok(text) = format_file_command(name, "v", "ghadelimiter_0123") {
            assert_eq!(parse_file_commands(&text).unwrap(), vec![(name.to_owned(), "v".to_owned())]);
        }
    }
}

/// fuzz target `inputs`: plain seconds skipped the one-week cap, so `wait-timeout: 10000000000000000000`
/// was accepted and `Instant::now() + timeout` overflows (a panic) when the wait starts.
#[test]
fn plain_seconds_are_capped_at_a_week_too() {
    assert_eq!(parse_duration("604800"), Some(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("604801"), None);
    assert_eq!(parse_duration("10000000000000000000"), None);
    let mut raw = RawInputs::default();
    for (k, v) in [
        ("application-name", "app"),
        ("environment-name", "env-1"),
        ("image", "x:1"),
        ("version-label", "v1"),
        ("wait-timeout", "10000000000000000000"),
    ] {
        raw.set(k, v);
    }
    let err = Config::from_inputs(&raw, &RunContext::default(), Path::new("/nonexistent")).unwrap_err();
    assert_eq!(err.0[0].input, "wait-timeout");
}

/// fuzz target `inputs`: format_duration dropped milliseconds at one second and above (8999ms → "8s"),
/// so messages misstate e.g. a 1500ms health-grace as 1s.
#[test]
fn formatted_durations_parse_back_exactly() {
    for ms in [8999, 1500, 61_001] {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(&format_duration(d)), Some(d), "{}", format_duration(d));
    }
}

/// fuzz target `dockerrun`: serde_json's default float parsing is not correctly rounded, so a template
/// number `21e30` comes out of render as `2.1000000000000002e+31` (and flips back on the next render).
/// Fixed by serde_json's `float_roundtrip` feature (or `arbitrary_precision`, which keeps the text).
#[test]
fn template_numbers_are_kept() {
    let rendered = Template::parse(r#"{"Image":{},"n":21e30}"#).unwrap().render("img", 80);
    let text = String::from_utf8(rendered).unwrap();
    let n = text.lines().find_map(|l| l.trim().strip_prefix("\"n\": ")).unwrap().trim_end_matches(',');
    assert_eq!(n.parse::<f64>().unwrap(), 21e30, "rendered as {n}");
}

/// fuzz target `dockerignore`: Docker compiles a pattern with a `]` outside a class to a regular
/// expression (moby/patternmatcher: `ch == '[' || ch == ']'` → regexpMatch); eb-deploy kept it on the
/// suffix shortcut, so `**]` excluded `x]` and `]]`, which Docker sends.
#[test]
fn lone_bracket_patterns_match_like_docker() {
    let m = Matcher::parse("**]\n").unwrap();
    assert!(m.excluded("]"));
    assert!(m.excluded("a/]"));
    assert!(!m.excluded("x]"));
    assert!(!m.excluded("]]"));
    // Same cause, prefix shortcut: Docker's `.*` does not cross a newline.
    assert!(!Matcher::parse("a]**\n").unwrap().excluded("a]\n"));
}
