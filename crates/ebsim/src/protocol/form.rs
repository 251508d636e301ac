//! Decoding of awsQuery form bodies, with the protocol's flattening rules
//! (`X.member.N`, `X.member.N.Field`, `Struct.Field`, an empty list sent as `X=`), and the
//! `X.members.N` spelling some clients use.

use std::collections::BTreeMap;

use super::error::ApiError;
use super::time::parse_iso;

/// The decoded parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Decodes a form-urlencoded body (or query string); the first occurrence of a key wins.
    pub fn parse(body: &[u8]) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self { map }
    }

    /// Adds the pairs of `other` that this one lacks (query string after body).
    pub fn merge_missing(&mut self, other: Params) {
        for (k, v) in other.map {
            self.map.entry(k).or_insert(v);
        }
    }

    /// The operation name, from `Action` or the older `Operation`.
    pub fn action(&self) -> Option<&str> {
        self.get("Action").or_else(|| self.get("Operation")).filter(|a| !a.is_empty())
    }

    /// Every parameter except `Action`, `Operation` and `Version`, for the request log.
    pub fn without_envelope(&self) -> BTreeMap<String, String> {
        self.map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "Action" | "Operation" | "Version"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A raw value as sent (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A scalar string; an empty value counts as absent.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// A required scalar string.
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.string(name).ok_or_else(|| ApiError::missing(name))
    }

    /// A boolean (`true`/`false`, any case).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.string(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_value(format!("Invalid boolean value '{v}' for parameter {name}"))),
        }
    }

    /// An integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.string(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_value(format!("Invalid integer value '{v}' for parameter {name}"))),
        }
    }

    /// A timestamp, as epoch milliseconds.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.string(name) {
            None => Ok(None),
            Some(v) => parse_iso(&v)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_value(format!("Invalid timestamp '{v}' for parameter {name}"))),
        }
    }

    /// The `(N, rest)` pairs under `Name.member.` and `Name.members.`: botocore and the SDKs send
    /// `member`; einaregilsson/beanstalk-deploy sends `members`, which the service accepts too. Where
    /// both name the same index, `member` wins.
    fn members(&self, name: &str) -> BTreeMap<u32, BTreeMap<String, String>> {
        let mut items: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for infix in ["members", "member"] {
            let prefix = format!("{name}.{infix}.");
            for (k, v) in self.map.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
                let rest = &k[prefix.len()..];
                let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
                if let Ok(n) = n.parse::<u32>() {
                    items.entry(n).or_default().insert(field.to_string(), v.clone());
                }
            }
        }
        items
    }

    /// A list of scalars (`Name.member.N`), in member order. `Name=` (empty list) gives `[]`.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.members(name).into_values().filter_map(|mut fields| fields.remove("")).collect()
    }

    /// A list of structures (`Name.member.N.Field`), each as a field map, in member order.
    pub fn struct_list(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.members(name)
            .into_values()
            .map(|mut fields| {
                fields.remove("");
                fields
            })
            .filter(|fields| !fields.is_empty())
            .collect()
    }

    /// A structure's member (`Name.Field`).
    pub fn member(&self, name: &str, field: &str) -> Option<String> {
        self.string(&format!("{name}.{field}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        let p = Params::parse(b"Action=CreateApplication&Description=a+b%26c%3D%E2%9C%93");
        assert_eq!(p.action(), Some("CreateApplication"));
        assert_eq!(p.get("Description"), Some("a b&c=\u{2713}"));
    }

    #[test]
    fn accepts_operation_instead_of_action() {
        let p = Params::parse(b"Operation=DescribeEvents&Version=2010-12-01");
        assert_eq!(p.action(), Some("DescribeEvents"));
        assert!(p.without_envelope().is_empty());
    }

    #[test]
    fn scalar_lists_are_ordered_numerically() {
        let p = Params::parse(
            b"EnvironmentNames.member.10=j&EnvironmentNames.member.2=b&EnvironmentNames.member.1=a&Other.member.1=x",
        );
        assert_eq!(p.list("EnvironmentNames"), vec!["a", "b", "j"]);
        assert!(p.list("Missing").is_empty());
    }

    #[test]
    fn plural_members_are_read_as_well() {
        let p = Params::parse(b"EnvironmentNames.members.1=prod&VersionLabels.members.2=b&VersionLabels.member.1=a");
        assert_eq!(p.list("EnvironmentNames"), vec!["prod"]);
        assert_eq!(p.list("VersionLabels"), vec!["a", "b"]);
        let both = Params::parse(b"X.member.1=singular&X.members.1=plural");
        assert_eq!(both.list("X"), vec!["singular"]);
        let s = Params::parse(b"Tags.members.1.Key=k&Tags.members.1.Value=v");
        assert_eq!(s.struct_list("Tags").len(), 1);
        assert_eq!(s.struct_list("Tags")[0].get("Value").map(String::as_str), Some("v"));
        assert!(Params::parse(b"X.membersX.1=a&X.member.one=b").list("X").is_empty());
    }

    #[test]
    fn empty_list_is_sent_as_bare_name() {
        let p = Params::parse(b"Action=DescribeEnvironments&EnvironmentNames=");
        assert!(p.list("EnvironmentNames").is_empty());
        assert_eq!(p.string("EnvironmentNames"), None);
    }

    #[test]
    fn struct_lists_and_struct_members() {
        let p = Params::parse(
            b"OptionSettings.member.2.Namespace=ns2&OptionSettings.member.2.OptionName=o2&OptionSettings.member.2.Value=v2\
              &OptionSettings.member.1.Namespace=ns1&OptionSettings.member.1.OptionName=o1\
              &SourceBundle.S3Bucket=b&SourceBundle.S3Key=k%2Fz.zip",
        );
        let opts = p.struct_list("OptionSettings");
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[0].get("Namespace").map(String::as_str), Some("ns1"));
        assert_eq!(opts[0].get("Value"), None);
        assert_eq!(opts[1].get("Value").map(String::as_str), Some("v2"));
        assert_eq!(p.member("SourceBundle", "S3Key").as_deref(), Some("k/z.zip"));
    }

    #[test]
    fn typed_scalars() {
        let p = Params::parse(b"A=true&B=FALSE&C=maybe&N=25&T=2024-01-02T03:04:05.123000Z&E=");
        assert_eq!(p.bool("A"), Ok(Some(true)));
        assert_eq!(p.bool("B"), Ok(Some(false)));
        assert_eq!(p.bool("Z"), Ok(None));
        assert_eq!(p.bool("C").map_err(|e| e.code), Err("InvalidParameterValue".to_string()));
        assert_eq!(p.int("N"), Ok(Some(25)));
        assert_eq!(p.time("T"), Ok(Some(1_704_164_645_123)));
        assert_eq!(p.required("E").map_err(|e| e.code), Err("MissingParameter".to_string()));
        assert_eq!(p.required("Z").map_err(|e| e.message), Err("The request must contain the parameter Z".into()));
    }
}
