//! Source bundles: a ZIP with `Dockerrun.aws.json`, `Dockerfile` or `docker-compose.yml` at its root.

use std::io::{Cursor, Read};

use serde_json::Value;

/// What a bundle asks the Docker platform to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Dockerrun v1: pull and run an image.
    Image(ImageSpec),
    /// Build the image from the bundle's Dockerfile; the port from Dockerrun if it has one.
    Dockerfile { port: Option<u16> },
    /// A Compose bundle ebsim cannot run (its first service builds instead of naming an image).
    Compose(String),
}

/// Dockerrun v1's essentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// `Image.Name`.
    pub name: String,
    /// `Ports[0].ContainerPort`.
    pub port: u16,
    /// `Image.Update` (pull on every deploy).
    pub update: bool,
    /// `Entrypoint`, split into words.
    pub entrypoint: Option<Vec<String>>,
    /// `Command`, split into words.
    pub command: Option<Vec<String>>,
    /// Environment variables the bundle sets (Compose `environment`).
    pub env: Vec<(String, String)>,
}

/// Why a bundle cannot be deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// Not a readable ZIP.
    NotZip(String),
    /// None of Dockerrun.aws.json, Dockerfile, docker-compose.yml at the root.
    MissingDockerfiles,
    /// Dockerrun.aws.json is unusable.
    BadDockerrun(String),
    /// docker-compose.yml is unusable.
    BadCompose(String),
    /// An `.ebextensions/*.config` file or `env.yaml` is neither YAML nor JSON.
    BadConfig(ConfigError),
}

/// A configuration file Beanstalk cannot read, with what its YAML and JSON parsers said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path in the bundle (`.ebextensions/01-app.config`, `env.yaml`).
    pub path: String,
    pub yaml: String,
    pub json: String,
}

impl ConfigError {
    /// The ERROR event Beanstalk emits when it meets the file deploying version `label`.
    pub fn event(&self, label: &str) -> String {
        let what = if self.path == ENV_MANIFEST { "environment manifest" } else { "configuration file" };
        format!(
            "The {what} {} in application version {label} contains invalid YAML or JSON. YAML exception: Invalid Yaml: {}, JSON exception: Invalid JSON: {}. Update the configuration file.",
            self.path, self.yaml, self.json
        )
    }
}

impl std::fmt::Display for BundleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotZip(e) => write!(f, "source bundle is not a readable ZIP archive: {e}"),
            Self::MissingDockerfiles => f.write_str(
                "source bundle has neither Dockerrun.aws.json, Dockerfile nor docker-compose.yml at its root",
            ),
            Self::BadDockerrun(e) => write!(f, "Dockerrun.aws.json is invalid: {e}"),
            Self::BadCompose(e) => write!(f, "docker-compose.yml is invalid: {e}"),
            Self::BadConfig(e) => {
                write!(f, "{} is neither YAML nor JSON (YAML: {}; JSON: {})", e.path, e.yaml, e.json)
            }
        }
    }
}

/// The environment manifest at the bundle's root.
pub const ENV_MANIFEST: &str = "env.yaml";

/// Root-level files of a bundle that matter to the Docker platform, and Beanstalk's own
/// configuration files (`.ebextensions/*.config`, `env.yaml`) with their content.
#[derive(Debug, Default)]
struct RootFiles {
    dockerrun: Option<Vec<u8>>,
    dockerfile: bool,
    compose: Option<Vec<u8>>,
    configs: Vec<(String, Vec<u8>)>,
}

/// Beanstalk reads the `.config` files directly in `.ebextensions/` at the root, in name order.
fn is_config_file(name: &str) -> bool {
    name.strip_prefix(".ebextensions/")
        .is_some_and(|rest| !rest.contains('/') && rest.len() > ".config".len() && rest.ends_with(".config"))
        || name == ENV_MANIFEST
}

fn read_root(bytes: &[u8]) -> Result<RootFiles, BundleError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| BundleError::NotZip(e.to_string()))?;
    let mut files = RootFiles::default();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| BundleError::NotZip(e.to_string()))?;
        let name = entry.name().map_err(|e| BundleError::NotZip(e.to_string()))?.into_owned();
        match name.as_str() {
            "Dockerrun.aws.json" => {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(|e| BundleError::NotZip(e.to_string()))?;
                files.dockerrun = Some(buf);
            }
            "Dockerfile" => files.dockerfile = true,
            "docker-compose.yml" | "docker-compose.yaml" => {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(|e| BundleError::NotZip(e.to_string()))?;
                files.compose = Some(buf);
            }
            other if is_config_file(other) && entry.is_file() => {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(|e| BundleError::NotZip(e.to_string()))?;
                files.configs.push((name, buf));
            }
            _ => {}
        }
    }
    files.configs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The first configuration file that is neither YAML nor JSON, as Beanstalk reads them.
fn check_configs(files: &RootFiles) -> Result<(), BundleError> {
    for (path, raw) in &files.configs {
        let yaml = match serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(raw) {
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        let json = match serde_json::from_slice::<Value>(raw) {
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        return Err(BundleError::BadConfig(ConfigError { path: path.clone(), yaml, json }));
    }
    Ok(())
}

/// The bundle's `.ebextensions/*.config` files, in name order, with their content.
pub fn ebextensions(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
    Ok(read_root(bytes)?.configs.into_iter().filter(|(path, _)| path != ENV_MANIFEST).collect())
}

/// Beanstalk's own check of a bundle's configuration files, which it runs when processing a
/// version and again when deploying one.
pub fn check_config(bytes: &[u8]) -> Result<(), BundleError> {
    check_configs(&read_root(bytes)?)
}

/// Whether the bundle can be processed (CreateApplicationVersion with `Process=true`): its
/// `.ebextensions/*.config` files and `env.yaml` are YAML or JSON (what Beanstalk checks) and, as
/// ebsim also checks, it has something the Docker platform can run.
pub fn check(bytes: &[u8]) -> Result<(), BundleError> {
    let files = read_root(bytes)?;
    check_configs(&files)?;
    if files.dockerrun.is_none() && !files.dockerfile && files.compose.is_none() {
        return Err(BundleError::MissingDockerfiles);
    }
    Ok(())
}

/// Reads the deploy plan out of a bundle, with the platform's precedence:
/// Compose, then Dockerfile, then Dockerrun v1.
pub fn plan(bytes: &[u8]) -> Result<Plan, BundleError> {
    let files = read_root(bytes)?;
    if let Some(compose) = &files.compose {
        return compose_plan(compose);
    }
    let dockerrun = match &files.dockerrun {
        Some(raw) => Some(
            serde_json::from_slice::<Value>(raw).map_err(|e| BundleError::BadDockerrun(format!("not JSON: {e}")))?,
        ),
        None => None,
    };
    if files.dockerfile {
        let port = dockerrun.as_ref().and_then(|d| first_port(d).ok());
        return Ok(Plan::Dockerfile { port });
    }
    let Some(d) = dockerrun else {
        return Err(BundleError::MissingDockerfiles);
    };
    let version = d.get("AWSEBDockerrunVersion").map(scalar).unwrap_or_default();
    if version != "1" {
        return Err(BundleError::BadDockerrun(format!(
            "AWSEBDockerrunVersion {version:?} is not supported on the Docker platform (v1 runs an image; v2 is for ECS, v3 needs docker-compose.yml)"
        )));
    }
    let image = d.get("Image").ok_or_else(|| BundleError::BadDockerrun("Image is missing".into()))?;
    let name = image
        .get("Name")
        .map(scalar)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| BundleError::BadDockerrun("Image.Name is missing".into()))?;
    let update = image.get("Update").map(scalar).is_none_or(|u| !u.eq_ignore_ascii_case("false"));
    Ok(Plan::Image(ImageSpec {
        name: name.trim().to_string(),
        port: first_port(&d)?,
        update,
        entrypoint: d.get("Entrypoint").map(scalar).map(words),
        command: d.get("Command").map(scalar).map(words),
        env: Vec::new(),
    }))
}

/// A Compose bundle runs its first service: its image, first port, environment, entrypoint, command.
fn compose_plan(raw: &[u8]) -> Result<Plan, BundleError> {
    let bad = |m: String| BundleError::BadCompose(m);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_slice(raw).map_err(|e| bad(format!("not YAML: {e}")))?;
    let services =
        doc.get("services").and_then(serde_yaml_ng::Value::as_mapping).ok_or_else(|| bad("no services".into()))?;
    let (name, svc) = services.iter().next().ok_or_else(|| bad("no services".into()))?;
    let name = name.as_str().unwrap_or("service").to_string();
    let Some(image) = svc.get("image").and_then(serde_yaml_ng::Value::as_str) else {
        return Ok(Plan::Compose(format!("service {name} has no image (ebsim does not build Compose services)")));
    };
    let port = match svc.get("ports").and_then(serde_yaml_ng::Value::as_sequence).and_then(|p| p.first()) {
        None => 80,
        Some(p) => compose_port(p).ok_or_else(|| bad(format!("service {name}: cannot read port {p:?}")))?,
    };
    let env = match svc.get("environment") {
        Some(serde_yaml_ng::Value::Mapping(m)) => {
            m.iter().filter_map(|(k, v)| Some((yaml_scalar(k)?, yaml_scalar(v).unwrap_or_default()))).collect()
        }
        Some(serde_yaml_ng::Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| {
                let text = yaml_scalar(i)?;
                let (k, v) = text.split_once('=').unwrap_or((text.as_str(), ""));
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    };
    let words_of = |v: Option<&serde_yaml_ng::Value>| -> Option<Vec<String>> {
        match v? {
            serde_yaml_ng::Value::Sequence(items) => Some(items.iter().filter_map(yaml_scalar).collect()),
            other => yaml_scalar(other).map(words),
        }
    };
    Ok(Plan::Image(ImageSpec {
        name: image.trim().to_string(),
        port,
        update: true,
        entrypoint: words_of(svc.get("entrypoint")),
        command: words_of(svc.get("command")),
        env,
    }))
}

/// The container side of a Compose port: `80`, `8080:80`, `127.0.0.1:8080:80/tcp`, `{target: 80}`.
fn compose_port(p: &serde_yaml_ng::Value) -> Option<u16> {
    if let Some(t) = p.get("target") {
        return yaml_scalar(t)?.parse().ok();
    }
    let text = yaml_scalar(p)?;
    let spec = text.split('/').next()?;
    spec.rsplit(':').next()?.split('-').next()?.trim().parse().ok().filter(|p| *p > 0)
}

fn yaml_scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_port(d: &Value) -> Result<u16, BundleError> {
    let port = d
        .get("Ports")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .and_then(|p| p.get("ContainerPort"))
        .ok_or_else(|| BundleError::BadDockerrun("Ports[0].ContainerPort is missing".into()))?;
    let text = scalar(port);
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| BundleError::BadDockerrun(format!("ContainerPort {text:?} is not a port number")))
}

/// Dockerrun values are often strings where numbers or booleans are meant.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn words(s: String) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The bundle as a tar archive, to build its Dockerfile through the Engine.
pub fn to_tar(bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| BundleError::NotZip(e.to_string()))?;
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| BundleError::NotZip(e.to_string()))?;
        let Some(path) = entry.enclosed_name() else { continue };
        let mut header = tar::Header::new_gnu();
        let mode = entry.unix_mode().unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 });
        header.set_mode(mode & 0o7777);
        if entry.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, &path, std::io::empty()).map_err(|e| BundleError::NotZip(e.to_string()))?;
        } else {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(|e| BundleError::NotZip(e.to_string()))?;
            header.set_size(buf.len() as u64);
            tar.append_data(&mut header, &path, buf.as_slice()).map_err(|e| BundleError::NotZip(e.to_string()))?;
        }
    }
    tar.into_inner().map_err(|e| BundleError::NotZip(e.to_string()))
}

/// Builds a ZIP from `(name, content)` pairs (tests and tools). Executables (ELF binaries and
/// `#!` scripts) get mode 755, everything else 644.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, body) in files {
        let exec = body.starts_with(b"\x7fELF") || body.starts_with(b"#!");
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(if exec { 0o755 } else { 0o644 });
        if w.start_file(*name, opts).is_ok() {
            let _ = std::io::Write::write_all(&mut w, body);
        }
    }
    w.finish().map(Cursor::into_inner).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dockerrun(json: &str) -> Vec<u8> {
        zip_of(&[("Dockerrun.aws.json", json.as_bytes())])
    }

    #[test]
    fn reads_a_v1_dockerrun_with_string_values() {
        let z = dockerrun(
            r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"123.dkr.ecr.us-east-1.amazonaws.com/app:v1","Update":"false"},
               "Ports":[{"ContainerPort":"8080","HostPort":"80"}],"Command":"httpd -f -p 8080"}"#,
        );
        assert_eq!(check(&z), Ok(()));
        assert_eq!(
            plan(&z),
            Ok(Plan::Image(ImageSpec {
                name: "123.dkr.ecr.us-east-1.amazonaws.com/app:v1".into(),
                port: 8080,
                update: false,
                entrypoint: None,
                command: Some(vec!["httpd".into(), "-f".into(), "-p".into(), "8080".into()]),
                env: Vec::new(),
            }))
        );
    }

    #[test]
    fn numbers_and_defaults() {
        let z = dockerrun(r#"{"AWSEBDockerrunVersion":1,"Image":{"Name":"img"},"Ports":[{"ContainerPort":80}]}"#);
        match plan(&z) {
            Ok(Plan::Image(s)) => {
                assert_eq!(s.port, 80);
                assert!(s.update);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dockerrun_errors() {
        let no_ports = dockerrun(r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"img"}}"#);
        assert!(matches!(plan(&no_ports), Err(BundleError::BadDockerrun(m)) if m.contains("ContainerPort")));
        let v2 = dockerrun(r#"{"AWSEBDockerrunVersion":2,"containerDefinitions":[]}"#);
        assert!(matches!(plan(&v2), Err(BundleError::BadDockerrun(m)) if m.contains("ECS")));
        let junk = dockerrun("{not json");
        assert!(matches!(plan(&junk), Err(BundleError::BadDockerrun(_))));
        let no_name =
            dockerrun(r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":" "},"Ports":[{"ContainerPort":"80"}]}"#);
        assert!(matches!(plan(&no_name), Err(BundleError::BadDockerrun(m)) if m.contains("Image.Name")));
    }

    #[test]
    fn platform_precedence() {
        let both = zip_of(&[
            ("Dockerfile", b"FROM scratch\n"),
            ("Dockerrun.aws.json", br#"{"AWSEBDockerrunVersion":"1","Ports":[{"ContainerPort":"9000"}]}"#),
        ]);
        assert_eq!(plan(&both), Ok(Plan::Dockerfile { port: Some(9000) }));
        let compose =
            zip_of(&[("docker-compose.yml", b"services:\n  web:\n    build: .\n"), ("Dockerfile", b"FROM scratch\n")]);
        assert!(matches!(plan(&compose), Ok(Plan::Compose(why)) if why.contains("no image")));
    }

    #[test]
    fn compose_runs_its_first_service() {
        let yml = b"services:\n  web:\n    image: 127.0.0.1:5000/app:v1\n    ports:\n      - \"127.0.0.1:8080:3000/tcp\"\n    environment:\n      - A=1\n      - B\n    command: [\"serve\", \"--port\", \"3000\"]\n  db:\n    image: postgres\n";
        let z = zip_of(&[("docker-compose.yml", yml)]);
        assert_eq!(
            plan(&z),
            Ok(Plan::Image(ImageSpec {
                name: "127.0.0.1:5000/app:v1".into(),
                port: 3000,
                update: true,
                entrypoint: None,
                command: Some(vec!["serve".into(), "--port".into(), "3000".into()]),
                env: vec![("A".into(), "1".into()), ("B".into(), String::new())],
            }))
        );
        let long = b"services:\n  web:\n    image: app\n    ports:\n      - target: 8000\n        published: 80\n    environment:\n      MODE: prod\n";
        match plan(&zip_of(&[("docker-compose.yml", long)])) {
            Ok(Plan::Image(s)) => {
                assert_eq!(s.port, 8000);
                assert_eq!(s.env, vec![("MODE".to_string(), "prod".to_string())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(plan(&zip_of(&[("docker-compose.yml", b"- a\n")])), Err(BundleError::BadCompose(_))));
        assert!(matches!(
            plan(&zip_of(&[("docker-compose.yml", b"services:\n  w:\n    image: a\n    ports: [\"x:y\"]\n")])),
            Err(BundleError::BadCompose(_))
        ));
    }

    #[test]
    fn missing_files_and_wrapping_folder() {
        let wrapped = zip_of(&[("app/Dockerrun.aws.json", b"{}")]);
        assert_eq!(check(&wrapped), Err(BundleError::MissingDockerfiles));
        assert_eq!(plan(&wrapped), Err(BundleError::MissingDockerfiles));
        assert!(matches!(check(b"PK\x03\x04 not really"), Err(BundleError::NotZip(_))));
        assert!(matches!(plan(b""), Err(BundleError::NotZip(_))));
    }

    #[test]
    fn configuration_files_must_be_yaml_or_json() {
        let run: &[u8] = br#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"img"},"Ports":[{"ContainerPort":"80"}]}"#;
        let good = zip_of(&[
            ("Dockerrun.aws.json", run),
            (
                ".ebextensions/01-env.config",
                b"option_settings:\n  aws:elasticbeanstalk:application:environment:\n    A: 1\n",
            ),
            (
                ".ebextensions/02-json.config",
                br#"{"option_settings": [{"namespace": "n", "option_name": "o", "value": "v"}]}"#,
            ),
            (".ebextensions/empty.config", b""),
            (".ebextensions/notes.txt", b"{{{ not read"),
            (".ebextensions/nested/x.config", b"{{{ not read either"),
            ("env.yaml", b"AWSConfigurationTemplateVersion: 1.1.0.0\n"),
        ]);
        assert_eq!(check(&good), Ok(()));
        assert_eq!(check_config(&good), Ok(()));
        // The indentation mistake of a real report: a mapping value where none may be.
        let bad = zip_of(&[
            ("Dockerrun.aws.json", run),
            (".ebextensions/01-ok.config", b"commands: {}\n"),
            (".ebextensions/02-logs.config", b"option_settings:\n  - namespace: ns\n     option_name: StreamLogs\n"),
        ]);
        let Err(BundleError::BadConfig(e)) = check(&bad) else { panic!("{:?}", check(&bad)) };
        assert_eq!(e.path, ".ebextensions/02-logs.config");
        let event = e.event("v7");
        assert!(
            event.starts_with(
                "The configuration file .ebextensions/02-logs.config in application version v7 contains invalid YAML or JSON. YAML exception: Invalid Yaml: "
            ),
            "{event}"
        );
        assert!(
            event.contains(", JSON exception: Invalid JSON: ") && event.ends_with(". Update the configuration file.")
        );
        assert!(matches!(check_config(&bad), Err(BundleError::BadConfig(_))));
        // The plan (what runs) does not depend on configuration files: the deploy checks them first.
        assert!(matches!(plan(&bad), Ok(Plan::Image(_))));
        let manifest = zip_of(&[("Dockerrun.aws.json", run), ("env.yaml", b"a: [1, 2\n")]);
        let Err(BundleError::BadConfig(e)) = check(&manifest) else { panic!() };
        assert!(e.event("v1").starts_with("The environment manifest env.yaml in application version v1"));
    }

    #[test]
    fn converts_to_tar() {
        let z = zip_of(&[("Dockerfile", b"FROM scratch\n"), ("www/index.html", b"hi"), ("run.sh", b"#!/bin/sh\n")]);
        let t = to_tar(&z).unwrap();
        let mut a = tar::Archive::new(t.as_slice());
        let entries: Vec<(String, u32)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), e.header().mode().unwrap())
            })
            .collect();
        assert_eq!(
            entries,
            vec![("Dockerfile".into(), 0o644), ("www/index.html".into(), 0o644), ("run.sh".into(), 0o755)]
        );
    }
}
