//! `Dockerrun.aws.json` templates: any text is accepted or refused without a panic; an accepted template
//! renders to JSON whose `Image.Name` is the image, with every other field of the template kept.

#![no_main]

use eb_deploy::dockerrun::Template;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// The input: two bytes of container port (little-endian), then the image reference, a NUL, and the
/// template text.
struct Input {
    port: u16,
    image: String,
    text: String,
}

impl Input {
    fn decode(data: &[u8]) -> Option<Self> {
        let (port, rest) = data.split_first_chunk::<2>()?;
        let rest = String::from_utf8_lossy(rest);
        let (image, text) = rest.split_once('\0')?;
        Some(Input { port: u16::from_le_bytes(*port), image: image.to_owned(), text: text.to_owned() })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::decode(data) else { return };
    let text = input.text.clone();
    let Ok(template) = Template::parse(&text) else {
        return;
    };
    // Accepted: a JSON object with an `Image` object and no version other than 1.
    let original: Value = serde_json::from_str(&text).expect("accepted text is JSON");
    let original = original.as_object().expect("accepted text is an object");
    assert!(original.get("Image").is_some_and(Value::is_object));
    if let Some(v) = original.get("AWSEBDockerrunVersion") {
        assert!(v == "1" || v.as_i64() == Some(1) || v.as_u64() == Some(1), "accepted version {v}");
    }

    let rendered_bytes = template.render(&input.image, input.port);
    let rendered: Value = serde_json::from_slice(&rendered_bytes).expect("rendered file is valid JSON");
    let rendered = rendered.as_object().expect("rendered file is an object");

    // Image.Name is the image; every other Image field is kept.
    let image = rendered["Image"].as_object().expect("Image stays an object");
    assert_eq!(image.get("Name"), Some(&json!(input.image)));
    for (k, v) in original["Image"].as_object().unwrap() {
        if k != "Name" {
            assert!(image.get(k).is_some_and(|r| r == v), "Image.{k} changed: {v} → {:?}", image.get(k));
        }
    }
    assert_eq!(
        image.len(),
        original["Image"].as_object().unwrap().len()
            + usize::from(!original["Image"].as_object().unwrap().contains_key("Name"))
    );

    // Every other top-level field is kept; the version and ports are only added when missing.
    for (k, v) in original {
        match k.as_str() {
            "Image" => {}
            "Ports" if !v.as_array().is_some_and(|p| !p.is_empty()) => {}
            _ => {
                assert!(rendered.get(k).is_some_and(|r| r == v), "field {k:?} changed: {v} → {:?}", rendered.get(k))
            }
        }
    }
    for k in rendered.keys() {
        assert!(
            original.contains_key(k) || k == "AWSEBDockerrunVersion" || k == "Ports",
            "rendering added field {k:?}"
        );
    }
    if !original.contains_key("AWSEBDockerrunVersion") {
        assert_eq!(rendered["AWSEBDockerrunVersion"], json!("1"));
    }
    let ports = rendered["Ports"].as_array().expect("Ports is a list");
    assert!(!ports.is_empty(), "rendered file has no ports");
    if !original.get("Ports").and_then(Value::as_array).is_some_and(|p| !p.is_empty()) {
        assert_eq!(rendered["Ports"], json!([{ "ContainerPort": input.port.to_string() }]));
    }

    // The rendered file is itself a valid template, and rendering it again changes nothing.
    let text = std::str::from_utf8(&rendered_bytes).expect("rendered file is UTF-8");
    let again = Template::parse(text).expect("a rendered file is a valid template");
    let twice = again.render(&input.image, input.port);
    let twice_value: Value = serde_json::from_slice(&twice).expect("rendered twice is JSON");
    assert!(
        twice_value == Value::Object(rendered.clone()),
        "rendering is not stable:\n{text}\n→\n{}",
        String::from_utf8_lossy(&twice)
    );

    // The generated template renders to the documented single-container file.
    let generated: Value = serde_json::from_slice(&Template::generated(input.port).render(&input.image, input.port))
        .expect("generated file is JSON");
    assert_eq!(
        generated,
        json!({
            "AWSEBDockerrunVersion": "1",
            "Image": { "Name": input.image, "Update": "true" },
            "Ports": [ { "ContainerPort": input.port.to_string() } ]
        })
    );
});
