//! Names of AWS and Docker things: how eb-deploy derives them (ECR repository from the application, image tag
//! from the version label) and how it validates the ones users give, in one place so derived names always
//! pass the checks given ones must pass. Also the parts of image references. A leaf: it imports nothing of
//! the crate.

/// A Beanstalk environment name: 4 to 40 letters, digits or hyphens, no hyphen at either end.
pub fn valid_environment_name(v: &str) -> bool {
    (4..=40).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

/// An AWS region name such as `us-east-1`.
pub fn valid_region(v: &str) -> bool {
    // e.g. us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().take(parts.len() - 1).all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts.last().is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// An S3 bucket name.
pub fn valid_bucket(v: &str) -> bool {
    (3..=63).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !v.contains("..")
}

/// The Docker tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_docker_tag(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && !v.starts_with(['.', '-'])
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// ECR repository names, as ECR documents them: 2–256 characters of path components
/// `[a-z0-9]+(?:[._-][a-z0-9]+)*` separated by `/` (so no separator at either end or twice in a row).
pub fn valid_ecr_repository(v: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (2..=256).contains(&v.len())
        && v.split('/').all(|part| {
            part.starts_with(alnum)
                && part.ends_with(alnum)
                && part.chars().all(|c| alnum(c) || matches!(c, '.' | '_' | '-'))
                && !part.as_bytes().windows(2).any(|w| !alnum(char::from(w[0])) && !alnum(char::from(w[1])))
        })
}

/// An ECR repository name derived from an application name: lowercase, only `[a-z0-9._/-]`, no
/// leading, trailing or doubled separators, 2–256 characters.
pub fn ecr_repository_name(application_name: &str) -> String {
    let mut name = String::new();
    let mut pending_separator: Option<char> = None;
    for c in application_name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if let Some(sep) = pending_separator.take()
                && !name.is_empty()
            {
                name.push(sep);
            }
            name.push(c);
        } else {
            let sep = if matches!(c, '.' | '_' | '-' | '/') { c } else { '-' };
            // A run of separators collapses to one; a slash wins, since it is the one that means something.
            pending_separator = match pending_separator {
                Some('/') => Some('/'),
                _ if sep == '/' => Some('/'),
                Some(existing) => Some(existing),
                None => Some(sep),
            };
        }
        if name.len() >= 256 {
            break;
        }
    }
    name.truncate(256);
    let mut name = name.trim_end_matches(['.', '_', '-', '/']).to_owned();
    if name.len() < 2 {
        name = if name.is_empty() { "app".to_owned() } else { format!("{name}-app") };
    }
    name
}

/// A valid Docker tag made from any label: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, other
/// characters replaced by `-` (a bad first character by `_`).
pub fn docker_tag(label: &str) -> String {
    let mut tag: String = label
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
        .take(128)
        .collect();
    match tag.chars().next() {
        None => tag.push_str("latest"),
        Some('.' | '-') => tag.replace_range(..1, "_"),
        Some(_) => {}
    }
    tag
}

/// The host of an endpoint URL (`https://h:1/x` → `h:1`).
pub fn host_of(endpoint: &str) -> String {
    let endpoint = endpoint.trim();
    let without_scheme = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or_default().to_owned()
}

/// The registry host of an image reference, if it names one ("localhost:5000/a" → "localhost:5000").
pub fn reference_host(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// The reference without its registry host.
pub fn reference_path(reference: &str) -> &str {
    match reference_host(reference) {
        Some(host) => &reference[host.len() + 1..],
        None => reference,
    }
}

/// The reference without its `@sha256:…` digest.
pub fn strip_digest(reference: &str) -> &str {
    reference.split_once('@').map_or(reference, |(name, _)| name)
}

/// The reference without its `:tag`.
pub fn strip_tag(reference: &str) -> &str {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(colon) => &reference[..last_slash + colon],
        None => reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_ecr_rules() {
        assert_eq!(ecr_repository_name("My App"), "my-app");
        assert_eq!(ecr_repository_name("My_App.v2"), "my_app.v2");
        assert_eq!(ecr_repository_name("--team//service--"), "team/service");
        assert_eq!(ecr_repository_name("a -- b"), "a-b");
        assert_eq!(ecr_repository_name("a-/b"), "a/b");
        assert_eq!(ecr_repository_name("Café Ünïcode"), "caf-n-code");
        assert_eq!(ecr_repository_name("x"), "x-app");
        assert_eq!(ecr_repository_name("!!!"), "app");
        let long = ecr_repository_name(&"ab-".repeat(200));
        assert!(long.len() <= 256 && !long.ends_with('-'), "{long}");
        for input in ["My App", "a._-b", "..x..", "UPPER/lower", &"z".repeat(300), "/lead", "trail/"] {
            let name = ecr_repository_name(input);
            assert!((2..=256).contains(&name.len()), "{input} → {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(c)));
            assert!(!name.starts_with(['.', '_', '-', '/']) && !name.ends_with(['.', '_', '-', '/']), "{name}");
            let seps: Vec<char> = name.chars().collect();
            assert!(seps.windows(2).all(|w| !("._/-".contains(w[0]) && "._/-".contains(w[1]))), "{name}");
        }
    }

    #[test]
    fn tags_are_valid_docker_tags() {
        assert_eq!(docker_tag("v1.2.3"), "v1.2.3");
        assert_eq!(docker_tag("feature/x y"), "feature-x-y");
        assert_eq!(docker_tag(".hidden"), "_hidden");
        assert_eq!(docker_tag("-dash"), "_dash");
        assert_eq!(docker_tag(""), "latest");
        assert_eq!(docker_tag("é"), "_");
        assert_eq!(docker_tag(&"a".repeat(200)).len(), 128);
    }

    #[test]
    fn derived_names_pass_the_checks() {
        for app in ["My App_2", "X", "a//b", "-x-"] {
            assert!(valid_ecr_repository(&ecr_repository_name(app)), "{app}");
        }
        for label in ["release/1.0+build", ".hidden", &"x".repeat(300), ""] {
            assert!(valid_docker_tag(&docker_tag(label)), "{label}");
        }
        assert!(valid_region("us-east-1") && valid_region("us-gov-west-1") && !valid_region("useast1"));
        assert!(valid_ecr_repository("team/app-1") && valid_ecr_repository("a.b_c-d"));
        for bad in ["Team/App", "a--b", "a/-b", "a//b", "-ab", "a", "ab/"] {
            assert!(!valid_ecr_repository(bad), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert_eq!(reference_host("127.0.0.1:5000/app:1"), Some("127.0.0.1:5000"));
        assert_eq!(reference_host("localhost/app"), Some("localhost"));
        assert_eq!(reference_host("library/nginx"), None);
        assert_eq!(reference_host("nginx"), None);
        assert_eq!(reference_path("1.dkr.ecr.x.amazonaws.com/team/app:v1"), "team/app:v1");
        assert_eq!(host_of("https://123.dkr.ecr.us-east-1.amazonaws.com"), "123.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(strip_tag(strip_digest("h:5000/team/app:v1@sha256:ab")), "h:5000/team/app");
    }
}
