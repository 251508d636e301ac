//! action.yml is the contract users read; the binary's input table is what runs. They must agree exactly:
//! names and order, required flags, defaults, descriptions, outputs, and the image the action runs.

use eb_deploy::inputs::{DefaultValue, INPUTS, OUTPUTS};
use serde_yaml_ng::{Mapping, Value};

fn action() -> Mapping {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).expect("read action.yml");
    match serde_yaml_ng::from_str(&text).expect("action.yml is YAML") {
        Value::Mapping(m) => m,
        other => panic!("action.yml is not a mapping: {other:?}"),
    }
}

fn section<'a>(m: &'a Mapping, key: &str) -> &'a Mapping {
    m.get(key).and_then(Value::as_mapping).unwrap_or_else(|| panic!("action.yml has no `{key}` mapping"))
}

fn text<'a>(m: &'a Mapping, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

#[test]
fn inputs_match_the_binary_exactly() {
    let action = action();
    let inputs = section(&action, "inputs");
    let declared: Vec<&str> = inputs.keys().filter_map(Value::as_str).collect();
    let binary: Vec<&str> = INPUTS.iter().map(|s| s.name).collect();
    assert_eq!(declared, binary, "input names or order differ");

    let mut problems = Vec::new();
    for spec in INPUTS {
        let entry = inputs.get(spec.name).and_then(Value::as_mapping).expect("input entry");
        let required = entry.get("required").and_then(Value::as_bool).unwrap_or(false);
        if required != spec.required {
            problems
                .push(format!("{}: required is {required} in action.yml, {} in the binary", spec.name, spec.required));
        }
        let default = entry.get("default").map(|v| match v {
            Value::String(s) => s.clone(),
            other => panic!("{}: default must be a string, not {other:?}", spec.name),
        });
        match (spec.default, default.as_deref()) {
            (DefaultValue::Value(want), Some(got)) if want == got => {}
            (DefaultValue::None | DefaultValue::Computed, None) => {}
            (want, got) => {
                problems.push(format!("{}: default {got:?} in action.yml, {want:?} in the binary", spec.name))
            }
        }
        if text(entry, "description") != Some(spec.description) {
            problems.push(format!(
                "{}: description differs\n  action.yml: {:?}\n  binary:     {:?}",
                spec.name,
                text(entry, "description"),
                spec.description
            ));
        }
    }
    assert!(problems.is_empty(), "action.yml disagrees with src/inputs.rs:\n{}", problems.join("\n"));
}

#[test]
fn outputs_match_the_binary_exactly() {
    let action = action();
    let outputs = section(&action, "outputs");
    let declared: Vec<&str> = outputs.keys().filter_map(Value::as_str).collect();
    let binary: Vec<&str> = OUTPUTS.iter().map(|o| o.name).collect();
    assert_eq!(declared, binary, "output names or order differ");
    for spec in OUTPUTS {
        let entry = outputs.get(spec.name).and_then(Value::as_mapping).expect("output entry");
        assert_eq!(text(entry, "description"), Some(spec.description), "description of output {}", spec.name);
    }
}

#[test]
fn runs_the_prebuilt_image_of_this_version() {
    let action = action();
    let runs = section(&action, "runs");
    assert_eq!(text(runs, "using"), Some("docker"));
    let image = text(runs, "image").expect("runs.image");
    assert_eq!(
        image,
        format!("docker://ghcr.io/team/eb-deploy:{}", env!("CARGO_PKG_VERSION")),
        "action.yml must run the prebuilt image of the version in Cargo.toml (never a Dockerfile build on the runner)"
    );
    let branding = section(&action, "branding");
    assert!(text(branding, "icon").is_some() && text(branding, "color").is_some(), "Marketplace needs branding");
    assert!(text(&action, "name").is_some() && text(&action, "description").is_some());
}
