//! `Dockerrun.aws.json` (single-container v1): the template users give or eb-deploy generates, rendered to
//! point at the pushed image; and the limits of the bundle it goes in. A leaf: it imports nothing of the crate.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// Largest source bundle Elastic Beanstalk accepts.
pub const MAX_BUNDLE_BYTES: u64 = 500 * 1024 * 1024;

/// The file Elastic Beanstalk's Docker platform reads.
pub const DOCKERRUN: &str = "Dockerrun.aws.json";

/// A validated `Dockerrun.aws.json` template (v1, with an `Image` object).
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Value);

impl Template {
    /// Reads and validates a template file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not a usable Dockerrun.aws.json", path.display()))
    }

    /// Validates template text.
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| anyhow!("invalid JSON: {e}"))?;
        let Some(obj) = value.as_object() else {
            bail!("the top level must be a JSON object");
        };
        match obj.get("AWSEBDockerrunVersion") {
            None => {}
            Some(v) if v == "1" || v == 1 => {}
            Some(v) => bail!(
                "AWSEBDockerrunVersion {v} is not supported: eb-deploy renders single-container v1 files (v2 is the ECS platform, v3 goes with docker-compose.yml)"
            ),
        }
        match obj.get("Image") {
            Some(Value::Object(_)) => Ok(Self(value)),
            Some(_) => bail!("\"Image\" must be an object like {{\"Name\": \"…\"}}"),
            None => bail!("it has no \"Image\" object, so there is nothing to point at the pushed image"),
        }
    }

    /// A generated single-container v1 file.
    pub fn generated(container_port: u16) -> Self {
        Self(json!({
            "AWSEBDockerrunVersion": "1",
            "Image": { "Name": "", "Update": "true" },
            "Ports": [ { "ContainerPort": container_port.to_string() } ]
        }))
    }

    /// The file's bytes with `Image.Name` set to `image`; every other field is kept. Ports are added from
    /// `container_port` only when the template has none (the platform requires them with an image).
    pub fn render(&self, image: &str, container_port: u16) -> Vec<u8> {
        let mut value = self.0.clone();
        if let Some(obj) = value.as_object_mut() {
            obj.entry("AWSEBDockerrunVersion").or_insert_with(|| json!("1"));
            if let Some(Value::Object(img)) = obj.get_mut("Image") {
                img.insert("Name".to_owned(), json!(image));
            }
            let has_ports = obj.get("Ports").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
            if !has_ports {
                obj.insert("Ports".to_owned(), json!([{ "ContainerPort": container_port.to_string() }]));
            }
        }
        let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_keeps_fields_and_sets_image() {
        let t = Template::parse(
            r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"old","Update":"false"},"Ports":[{"ContainerPort":"8080"}],"Volumes":[{"HostDirectory":"/d","ContainerDirectory":"/c"}],"Logging":"/var/log/app"}"#,
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&t.render("repo@sha256:abc", 80)).unwrap();
        assert_eq!(out["Image"]["Name"], "repo@sha256:abc");
        assert_eq!(out["Image"]["Update"], "false");
        assert_eq!(out["Ports"][0]["ContainerPort"], "8080");
        assert_eq!(out["Volumes"][0]["HostDirectory"], "/d");
        assert_eq!(out["Logging"], "/var/log/app");
    }

    #[test]
    fn generated_file_is_v1_with_ports() {
        let out: Value = serde_json::from_slice(&Template::generated(3000).render("img:1", 3000)).unwrap();
        assert_eq!(out["AWSEBDockerrunVersion"], "1");
        assert_eq!(out["Image"]["Name"], "img:1");
        assert_eq!(out["Ports"][0]["ContainerPort"], "3000");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(Template::parse("{not json").unwrap_err().to_string().contains("invalid JSON"));
        assert!(Template::parse("[]").unwrap_err().to_string().contains("JSON object"));
        assert!(Template::parse(r#"{"Ports":[]}"#).unwrap_err().to_string().contains("no \"Image\""));
        assert!(Template::parse(r#"{"Image":"x"}"#).unwrap_err().to_string().contains("must be an object"));
        let v2 = r#"{"AWSEBDockerrunVersion":2,"containerDefinitions":[]}"#;
        assert!(Template::parse(v2).unwrap_err().to_string().contains("not supported"));
    }
}
