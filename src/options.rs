//! Elastic Beanstalk configuration options as eb-deploy handles them: the step's environment variables and
//! option settings, parsed and checked before any AWS call, and the pure arithmetic of an update — whether it
//! changes anything in an environment's settings, and what would put them back. Values are never printed:
//! `Debug` and [`Changes::describe`] show keys only. A leaf: it imports nothing of the crate.

use std::collections::BTreeSet;
use std::fmt;

/// The namespace whose options are the application's environment variables.
pub const VARIABLES: &str = "aws:elasticbeanstalk:application:environment";
/// Beanstalk's limit on all of an environment's variables together, counted as `KEY=VALUE` strings.
pub const MAX_VARIABLES_BYTES: usize = 4096;
/// Longest variable name Beanstalk accepts.
pub const MAX_KEY_CHARS: usize = 128;
/// Longest variable value Beanstalk accepts.
pub const MAX_VALUE_CHARS: usize = 256;

/// Namespaces of the AWS documentation's "General options for all environments" and the Docker platform's
/// own, exactly.
const NAMESPACES: &[&str] = &[
    "aws:autoscaling:asg",
    "aws:autoscaling:launchconfiguration",
    "aws:autoscaling:scheduledaction",
    "aws:autoscaling:trigger",
    "aws:autoscaling:updatepolicy:rollingupdate",
    "aws:ec2:instances",
    "aws:ec2:vpc",
    "aws:elasticbeanstalk:application",
    VARIABLES,
    "aws:elasticbeanstalk:application:environmentsecrets",
    "aws:elasticbeanstalk:cloudwatch:logs",
    "aws:elasticbeanstalk:cloudwatch:logs:health",
    "aws:elasticbeanstalk:command",
    "aws:elasticbeanstalk:customoption",
    "aws:elasticbeanstalk:environment",
    "aws:elasticbeanstalk:environment:proxy",
    "aws:elasticbeanstalk:environment:proxy:staticfiles",
    "aws:elasticbeanstalk:healthreporting:system",
    "aws:elasticbeanstalk:hostmanager",
    "aws:elasticbeanstalk:managedactions",
    "aws:elasticbeanstalk:managedactions:platformupdate",
    "aws:elasticbeanstalk:monitoring",
    "aws:elasticbeanstalk:sns:topics",
    "aws:elasticbeanstalk:sqsd",
    "aws:elasticbeanstalk:trafficsplitting",
    "aws:elasticbeanstalk:xray",
    "aws:elb:healthcheck",
    "aws:elb:loadbalancer",
    "aws:elb:listener",
    "aws:elb:policies",
    "aws:elbv2:loadbalancer",
    "aws:rds:dbinstance",
];

/// Namespaces that end in a name of the user's (a process, a listener port, a policy, a rule), by prefix.
const NAMED_NAMESPACES: &[&str] = &[
    "aws:elasticbeanstalk:environment:process:",
    "aws:elb:listener:",
    "aws:elb:policies:",
    "aws:elbv2:listener:",
    "aws:elbv2:listenerrule:",
];

/// Whether Elastic Beanstalk has the namespace `namespace`.
pub fn known_namespace(namespace: &str) -> bool {
    NAMESPACES.contains(&namespace)
        || NAMED_NAMESPACES.iter().any(|prefix| {
            namespace.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
        })
}

/// The namespaces, for "use one of" messages (the named ones with `NAME` standing for the user's part).
pub fn namespaces_list() -> String {
    let named = NAMED_NAMESPACES.iter().map(|p| format!("{p}NAME"));
    NAMESPACES.iter().map(|n| (*n).to_owned()).chain(named).collect::<Vec<_>>().join(", ")
}

/// A variable name Beanstalk accepts: letters, digits and `_ . : / + \ - @`, up to 128 characters.
pub fn valid_variable_name(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_KEY_CHARS
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '+' | '\\' | '-' | '@'))
}

/// One configuration option, as Beanstalk identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionKey {
    pub namespace: String,
    pub name: String,
    /// The resource it applies to (scheduled actions), when any.
    pub resource: Option<String>,
}

impl OptionKey {
    /// The environment variable `name`.
    pub fn variable(name: &str) -> Self {
        Self { namespace: VARIABLES.to_owned(), name: name.to_owned(), resource: None }
    }

    /// True for an environment variable.
    pub fn is_variable(&self) -> bool {
        self.namespace == VARIABLES
    }
}

impl fmt::Display for OptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_variable() {
            return f.write_str(&self.name);
        }
        match &self.resource {
            Some(r) => write!(f, "{} {} ({r})", self.namespace, self.name),
            None => write!(f, "{} {}", self.namespace, self.name),
        }
    }
}

/// What an update changes in an environment's settings: options set (with their values) and options removed,
/// in Beanstalk's merge semantics (options not named keep their values).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub set: Vec<(OptionKey, String)>,
    pub remove: Vec<OptionKey>,
}

/// Keys only: values may be secrets.
impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<String> = self.set.iter().map(|(k, _)| k.to_string()).collect();
        let remove: Vec<String> = self.remove.iter().map(ToString::to_string).collect();
        f.debug_struct("Changes").field("set", &set).field("remove", &remove).finish()
    }
}

impl Changes {
    /// Nothing set, nothing removed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// The values of the environment variables it sets (to mask).
    pub fn variable_values(&self) -> impl Iterator<Item = &str> {
        self.set.iter().filter(|(k, _)| k.is_variable()).map(|(_, v)| v.as_str())
    }

    /// What it does, by key: `environment variables API_URL, GREETING; removes OLD_FLAG; options
    /// aws:elasticbeanstalk:command Timeout`. Never a value.
    pub fn describe(&self) -> String {
        let names = |keys: Vec<String>| keys.join(", ");
        let variables: Vec<String> =
            self.set.iter().filter(|(k, _)| k.is_variable()).map(|(k, _)| k.to_string()).collect();
        let options: Vec<String> =
            self.set.iter().filter(|(k, _)| !k.is_variable()).map(|(k, _)| k.to_string()).collect();
        let removed: Vec<String> = self.remove.iter().map(ToString::to_string).collect();
        let mut parts = Vec::new();
        if !variables.is_empty() {
            parts.push(format!("environment variables {}", names(variables)));
        }
        if !removed.is_empty() {
            parts.push(format!("removes {}", names(removed)));
        }
        if !options.is_empty() {
            parts.push(format!("options {}", names(options)));
        }
        if parts.is_empty() { "no settings".to_owned() } else { parts.join("; ") }
    }
}

/// What applying [`Changes`] to an environment with given settings means.
#[derive(Clone, PartialEq, Eq)]
pub struct Effect {
    /// Some option would change (otherwise the environment already has these settings).
    pub differs: bool,
    /// The changes that put the settings back as they are now.
    pub restore: Changes,
    /// Bytes the environment's variables would take afterwards, as `KEY=VALUE` strings.
    pub variables_bytes: usize,
}

impl fmt::Debug for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Effect")
            .field("differs", &self.differs)
            .field("restore", &self.restore)
            .field("variables_bytes", &self.variables_bytes)
            .finish()
    }
}

/// The effect of `changes` on an environment whose settings are `current` (as DescribeConfigurationSettings
/// lists them).
pub fn effect(current: &[(OptionKey, String)], changes: &Changes) -> Effect {
    let now = |key: &OptionKey| current.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mut restore = Changes::default();
    for (key, value) in &changes.set {
        match now(key) {
            Some(old) if old == value => {}
            Some(old) => restore.set.push((key.clone(), old.to_owned())),
            None => restore.remove.push(key.clone()),
        }
    }
    for key in &changes.remove {
        if let Some(old) = now(key) {
            restore.set.push((key.clone(), old.to_owned()));
        }
    }
    let mut variables: Vec<(&str, &str)> = current
        .iter()
        .filter(|(k, _)| k.is_variable() && !changes.remove.contains(k) && !changes.set.iter().any(|(s, _)| s == k))
        .map(|(k, v)| (k.name.as_str(), v.as_str()))
        .collect();
    variables.extend(changes.set.iter().filter(|(k, _)| k.is_variable()).map(|(k, v)| (k.name.as_str(), v.as_str())));
    Effect { differs: !restore.is_empty(), restore, variables_bytes: variables_bytes(variables) }
}

/// Bytes variables take as `KEY=VALUE` strings, the way Beanstalk counts its limit.
pub fn variables_bytes<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    vars.into_iter().map(|(k, v)| k.len() + 1 + v.len()).sum()
}

/// `environment-variables`: one `KEY=VALUE` per line (blank lines and `#` comments skipped). Errors never
/// quote a value: a line without `=` is named by its number only.
pub fn parse_variables(text: &str) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            errors.push(format!("line {} has no `=`; give one KEY=VALUE per line", n + 1));
            continue;
        };
        let key = key.trim();
        if !valid_variable_name(key) {
            errors.push(format!(
                "line {}: {key:?} is not a variable name Elastic Beanstalk accepts (letters, digits and _ . : / + \\ - @, up to {MAX_KEY_CHARS} characters)",
                n + 1
            ));
        } else if vars.iter().any(|(k, _)| k == key) {
            errors.push(format!("{key} is given twice"));
        } else if value.chars().count() > MAX_VALUE_CHARS {
            errors.push(format!(
                "the value of {key} has {} characters; Elastic Beanstalk allows {MAX_VALUE_CHARS}",
                value.chars().count()
            ));
        } else {
            vars.push((key.to_owned(), value.to_owned()));
        }
    }
    if errors.is_empty() { Ok(vars) } else { Err(errors) }
}

/// `remove-environment-variables`: one name per line.
pub fn parse_names(text: &str) -> Result<Vec<String>, Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for name in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if !valid_variable_name(name) {
            errors.push(format!(
                "{name:?} is not a variable name (letters, digits and _ . : / + \\ - @, up to {MAX_KEY_CHARS} characters); give one name per line"
            ));
        } else if names.iter().any(|n| n == name) {
            errors.push(format!("{name} is given twice"));
        } else {
            names.push(name.to_owned());
        }
    }
    if errors.is_empty() { Ok(names) } else { Err(errors) }
}

/// `option-settings`: a YAML (or JSON) list of `{namespace, option-name, value, resource-name}` (the AWS CLI's
/// `Namespace`, `OptionName`, `Value`, `ResourceName` too). Errors name items by position and keys, never a
/// value.
pub fn parse_option_settings(text: &str) -> Result<Vec<(OptionKey, String)>, Vec<String>> {
    use serde_yaml_ng::Value;
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            // serde's message can quote the text, which may hold a secret: say only where it broke.
            let at = e.location().map(|l| format!(" (line {}, column {})", l.line(), l.column())).unwrap_or_default();
            return Err(vec![format!("is not valid YAML or JSON{at}")]);
        }
    };
    let Value::Sequence(items) = doc else {
        return Err(vec![
            "must be a list of settings, e.g. `- {namespace: aws:elasticbeanstalk:command, option-name: Timeout, value: \"900\"}`".to_owned(),
        ]);
    };
    let mut settings: Vec<(OptionKey, String)> = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let Value::Mapping(fields) = item else {
            errors.push(format!("item {n} is not a mapping of namespace, option-name and value"));
            continue;
        };
        let mut namespace = None;
        let mut name = None;
        let mut value = None;
        let mut resource = None;
        let mut ok = true;
        for (k, v) in fields {
            let Some(k) = k.as_str() else {
                errors.push(format!("item {n} has a key that is not text"));
                ok = false;
                continue;
            };
            let slot = match k {
                "namespace" | "Namespace" => &mut namespace,
                "option-name" | "option_name" | "OptionName" => &mut name,
                "value" | "Value" => &mut value,
                "resource-name" | "resource_name" | "ResourceName" => &mut resource,
                other => {
                    errors.push(format!(
                        "item {n} has an unknown key {other:?}; use namespace, option-name, value and resource-name"
                    ));
                    ok = false;
                    continue;
                }
            };
            match scalar(v) {
                Some(text) => *slot = Some(text),
                None => {
                    errors.push(format!("item {n}: {k} must be a single value, not a list or mapping"));
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        let (Some(namespace), Some(name)) = (namespace, name) else {
            errors.push(format!("item {n} needs a namespace and an option-name"));
            continue;
        };
        let Some(value) = value else {
            errors.push(format!("item {n} ({namespace} {name}) has no value"));
            continue;
        };
        if !known_namespace(&namespace) {
            errors.push(format!(
                "item {n}: {namespace:?} is not an Elastic Beanstalk namespace; use one of: {}",
                namespaces_list()
            ));
            continue;
        }
        let key = OptionKey { namespace, name, resource: resource.filter(|r| !r.is_empty()) };
        if key.is_variable() && !valid_variable_name(&key.name) {
            errors.push(format!("item {n}: {:?} is not a variable name Elastic Beanstalk accepts", key.name));
        } else if key.is_variable() && value.chars().count() > MAX_VALUE_CHARS {
            errors.push(format!("item {n}: the value of {} is over {MAX_VALUE_CHARS} characters", key.name));
        } else if settings.iter().any(|(k, _)| *k == key) {
            errors.push(format!("item {n}: {key} is given twice"));
        } else {
            settings.push((key, value));
        }
    }
    if errors.is_empty() { Ok(settings) } else { Err(errors) }
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// The values `environment-variables` sets, read leniently (malformed lines included), so they can be masked
/// before anything could print them. (`option-settings` values are not masked: a value that is a plain word
/// would be hidden wherever it appears in the log; they are never printed either.)
pub fn values_to_mask(variables: &str) -> Vec<String> {
    variables
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.strip_suffix('\r').unwrap_or(v).to_owned()))
        .collect()
}

/// The step's changes from its three inputs, each already parsed: variables set, variables removed, options
/// set. Cross-input conflicts come back as (input, message).
pub fn combine(
    variables: Vec<(String, String)>,
    removed: Vec<String>,
    options: Vec<(OptionKey, String)>,
) -> Result<Changes, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let given: BTreeSet<&str> = variables.iter().map(|(k, _)| k.as_str()).collect();
    for (key, _) in options.iter().filter(|(k, _)| k.is_variable()) {
        if given.contains(key.name.as_str()) {
            errors.push(("option-settings", format!("sets {} too; give it once, in environment-variables", key.name)));
        }
    }
    for name in &removed {
        let set_here = given.contains(name.as_str()) || options.iter().any(|(k, _)| k.is_variable() && k.name == *name);
        if set_here {
            errors.push(("remove-environment-variables", format!("{name} is also set; set it or remove it, not both")));
        }
    }
    let mut changes = Changes::default();
    changes.set.extend(variables.into_iter().map(|(k, v)| (OptionKey::variable(&k), v)));
    changes.set.extend(options);
    changes.remove.extend(removed.iter().map(|n| OptionKey::variable(n)));
    let bytes = variables_bytes(
        changes.set.iter().filter(|(k, _)| k.is_variable()).map(|(k, v)| (k.name.as_str(), v.as_str())),
    );
    if bytes > MAX_VARIABLES_BYTES {
        errors.push((
            "environment-variables",
            format!(
                "the variables take {bytes} bytes as KEY=VALUE; Elastic Beanstalk allows {MAX_VARIABLES_BYTES} for all of an environment's variables together"
            ),
        ));
    }
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(k: &str, v: &str) -> (OptionKey, String) {
        (OptionKey::variable(k), v.to_owned())
    }

    fn opt(ns: &str, n: &str, v: &str) -> (OptionKey, String) {
        (OptionKey { namespace: ns.into(), name: n.into(), resource: None }, v.to_owned())
    }

    #[test]
    fn variables_parse_and_errors_never_quote_a_value() {
        let vars = parse_variables("A=1\n\n# comment\nB=x=y\nEMPTY=\n").unwrap();
        assert_eq!(vars, vec![("A".into(), "1".into()), ("B".into(), "x=y".into()), ("EMPTY".into(), String::new())]);
        let errors =
            parse_variables(&("A=1\ns3cr3t-without-equals\nbad key=1\nA=2\nLONG=".to_owned() + &"x".repeat(257)))
                .unwrap_err();
        let all = errors.join("\n");
        assert!(all.contains("line 2 has no `=`"), "{all}");
        assert!(!all.contains("s3cr3t"), "a line without = may be a secret: {all}");
        assert!(all.contains("\"bad key\" is not a variable name"), "{all}");
        assert!(all.contains("A is given twice"), "{all}");
        assert!(all.contains("the value of LONG has 257 characters"), "{all}");
        assert!(!all.contains("xxxx"), "{all}");
    }

    #[test]
    fn variable_names_follow_beanstalk() {
        for ok in ["A", "DATABASE_URL", "a.b:c/d+e\\f-g@h", &"K".repeat(128)] {
            assert!(valid_variable_name(ok), "{ok}");
        }
        for bad in ["", "two words", "A=B", "é", "$HOME", &"K".repeat(129)] {
            assert!(!valid_variable_name(bad), "{bad}");
        }
    }

    #[test]
    fn option_settings_in_yaml_json_and_the_cli_spelling() {
        let yaml = "- namespace: aws:elasticbeanstalk:command\n  option-name: Timeout\n  value: 900\n- namespace: aws:autoscaling:scheduledaction\n  resource-name: nightly\n  option-name: MinSize\n  value: '0'\n";
        let parsed = parse_option_settings(yaml).unwrap();
        assert_eq!(parsed[0], opt("aws:elasticbeanstalk:command", "Timeout", "900"));
        assert_eq!(parsed[1].0.resource.as_deref(), Some("nightly"));
        let json = r#"[{"Namespace":"aws:elasticbeanstalk:environment:process:default","OptionName":"HealthCheckPath","Value":"/health"}]"#;
        assert_eq!(
            parse_option_settings(json).unwrap(),
            vec![opt("aws:elasticbeanstalk:environment:process:default", "HealthCheckPath", "/health")]
        );
    }

    #[test]
    fn bad_option_settings_are_named_by_item_without_values() {
        let err = |text: &str| parse_option_settings(text).unwrap_err().join("\n");
        let unknown = err("- {namespace: aws:elasticbeanstalk:comand, option-name: Timeout, value: s3cr3t}");
        assert!(unknown.contains("\"aws:elasticbeanstalk:comand\" is not an Elastic Beanstalk namespace"), "{unknown}");
        assert!(unknown.contains("aws:elasticbeanstalk:command,"), "lists the known ones: {unknown}");
        assert!(!unknown.contains("s3cr3t"), "{unknown}");
        assert!(err("{namespace: x}").contains("must be a list"));
        assert!(err("- [1, 2]").contains("item 1 is not a mapping"));
        assert!(err("- {namespace: aws:ec2:vpc, value: x}").contains("needs a namespace and an option-name"));
        assert!(err("- {namespace: aws:ec2:vpc, option-name: VPCId}").contains("has no value"));
        assert!(
            err("- {namespace: aws:ec2:vpc, option-name: VPCId, value: x, colour: red}")
                .contains("unknown key \"colour\"")
        );
        let broken = err("- {namespace: s3cr3t-value: [");
        assert!(broken.contains("is not valid YAML or JSON (line"), "{broken}");
        assert!(!broken.contains("s3cr3t"), "{broken}");
        let twice = err(
            "- {namespace: aws:ec2:vpc, option-name: VPCId, value: a}\n- {namespace: aws:ec2:vpc, option-name: VPCId, value: b}",
        );
        assert!(twice.contains("item 2: aws:ec2:vpc VPCId is given twice"), "{twice}");
    }

    #[test]
    fn namespaces_are_the_documented_ones() {
        assert!(known_namespace(VARIABLES));
        assert!(known_namespace("aws:elbv2:listener:443"));
        assert!(known_namespace("aws:elasticbeanstalk:environment:process:api"));
        assert!(!known_namespace("aws:elbv2:listener:"));
        assert!(!known_namespace("aws:elasticbeanstalk:application:env"));
        assert!(!known_namespace("AWS:autoscaling:asg"));
    }

    #[test]
    fn combining_the_inputs_catches_conflicts_and_the_size_limit() {
        let changes = combine(
            vec![("A".into(), "1".into())],
            vec!["OLD".into()],
            vec![opt("aws:elasticbeanstalk:command", "Timeout", "900")],
        )
        .unwrap();
        assert_eq!(
            changes.describe(),
            "environment variables A; removes OLD; options aws:elasticbeanstalk:command Timeout"
        );
        assert_eq!(changes.variable_values().collect::<Vec<_>>(), vec!["1"]);

        let errors = combine(vec![("A".into(), "1".into())], vec!["A".into()], vec![var("A", "2")]).unwrap_err();
        let inputs: Vec<&str> = errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(inputs, vec!["option-settings", "remove-environment-variables"]);

        // 20 variables of 204 bytes fit (4,080); 21 do not.
        let big = |n: usize| (0..n).map(|i| (format!("K{i:02}"), "v".repeat(200))).collect::<Vec<_>>();
        assert!(combine(big(20), vec![], vec![]).is_ok());
        let errors = combine(big(21), vec![], vec![]).unwrap_err();
        assert_eq!(errors[0].0, "environment-variables");
        assert!(errors[0].1.contains("take 4284 bytes"), "{}", errors[0].1);
    }

    #[test]
    fn the_effect_of_an_update_and_what_restores_it() {
        let current = vec![var("KEEP", "k"), var("GREETING", "hello"), var("DROP", "d"), opt("ns:x", "Timeout", "600")];
        let changes = Changes {
            set: vec![var("GREETING", "hi"), var("NEW", "n"), opt("ns:x", "Timeout", "600")],
            remove: vec![OptionKey::variable("DROP"), OptionKey::variable("ABSENT")],
        };
        let e = effect(&current, &changes);
        assert!(e.differs);
        // GREETING goes back to hello, NEW goes, DROP comes back; Timeout did not change, ABSENT was absent.
        assert_eq!(e.restore.set, vec![var("GREETING", "hello"), var("DROP", "d")]);
        assert_eq!(e.restore.remove, vec![OptionKey::variable("NEW")]);
        // After: KEEP=k, GREETING=hi, NEW=n.
        assert_eq!(e.variables_bytes, "KEEP=k".len() + "GREETING=hi".len() + "NEW=n".len());

        let same = Changes { set: vec![var("KEEP", "k")], remove: vec![OptionKey::variable("ABSENT")] };
        let e = effect(&current, &same);
        assert!(!e.differs, "already applied");
        assert!(e.restore.is_empty());
    }

    #[test]
    fn debug_never_shows_values() {
        let changes = Changes { set: vec![var("TOKEN", "s3cr3t-value")], remove: vec![] };
        let shown = format!("{changes:?} {:?}", effect(&[var("TOKEN", "old-s3cr3t")], &changes));
        assert!(shown.contains("TOKEN") && !shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn values_to_mask_are_read_leniently() {
        assert_eq!(values_to_mask("A=first-secret\nbad line\nB=x=second\r\n"), vec!["first-secret", "x=second"]);
        assert!(values_to_mask("").is_empty());
    }
}
