//! Resource tags: set at creation (`Tags`), listed and changed by ARN with ListTagsForResource and
//! UpdateTagsForResource. Changing an environment's tags is an environment update of its own, with
//! the event the EB CLI waits for.

use std::sync::Arc;

use crate::protocol::{ApiError, Doc, Params};
use crate::state::{EnvStatus, EventScope, Severity, Sim, State};

/// Most tags a resource may carry.
pub const MAX_TAGS: usize = 50;

/// A resource's tags, `(key, value)`, in the order they were added.
pub type Tags = Vec<(String, String)>;

/// Beanstalk's own tag prefixes; keys under them cannot be set or removed.
const RESERVED: [&str; 2] = ["aws:", "elasticbeanstalk:"];

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(ApiError::length("Key", key, 1, 128));
    }
    if RESERVED.iter().any(|p| key.to_ascii_lowercase().starts_with(p)) {
        return Err(ApiError::invalid_value(format!(
            "Tag key '{key}' is reserved: keys starting with 'aws:' or 'elasticbeanstalk:' belong to AWS."
        )));
    }
    Ok(())
}

/// The tag list `name` of a request (`Tags`, `TagsToAdd`), checked.
pub fn from_params(p: &Params, name: &str) -> Result<Tags, ApiError> {
    let mut tags: Tags = Vec::new();
    for m in p.struct_list(name) {
        let key = m.get("Key").cloned().unwrap_or_default();
        let value = m.get("Value").cloned().unwrap_or_default();
        check_key(&key)?;
        if value.chars().count() > 256 {
            return Err(ApiError::length("Value", &value, 0, 256));
        }
        set(&mut tags, key, value);
    }
    Ok(tags)
}

fn set(tags: &mut Tags, key: String, value: String) {
    match tags.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => tags.push((key, value)),
    }
}

fn too_many(arn: &str) -> ApiError {
    ApiError::new(
        400,
        "TooManyTagsException",
        format!("The number of tags of resource {arn} would exceed the limit of {MAX_TAGS}."),
    )
}

/// Checks the tags given at creation against the limit.
pub fn check_count(tags: &Tags, arn: &str) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS { Err(too_many(arn)) } else { Ok(()) }
}

/// What an Elastic Beanstalk ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Application(String),
    Version(String, String),
    Environment(String, String),
}

fn parse_arn(sim: &Sim, arn: &str) -> Result<Resource, ApiError> {
    let not_found = || ApiError::new(400, "ResourceNotFoundException", format!("Resource {arn} not found."));
    let unsupported = || {
        ApiError::new(
            400,
            "ResourceTypeNotSupportedException",
            format!(
                "Resource {arn} is not of a type that supports tags here (application, applicationversion, environment)."
            ),
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, _partition, service, region, account, resource] = parts.as_slice() else {
        return Err(ApiError::invalid_value(format!("Invalid ResourceArn: {arn}")));
    };
    if *prefix != "arn" || *service != "elasticbeanstalk" {
        return Err(ApiError::invalid_value(format!("Invalid ResourceArn: {arn}")));
    }
    if *region != sim.cfg.region || *account != sim.cfg.account_id {
        return Err(not_found());
    }
    let (kind, path) = resource.split_once('/').ok_or_else(unsupported)?;
    match (kind, path.split_once('/')) {
        ("application", None) => Ok(Resource::Application(path.to_string())),
        ("applicationversion", Some((app, label))) => Ok(Resource::Version(app.into(), label.into())),
        ("environment", Some((app, env))) => Ok(Resource::Environment(app.into(), env.into())),
        _ => Err(unsupported()),
    }
}

/// The tags of the resource, with Beanstalk's own on environments; `None` when it does not exist.
fn tags_of(st: &State, r: &Resource) -> Option<Tags> {
    match r {
        Resource::Application(a) => st.apps.iter().find(|x| &x.name == a).map(|x| x.tags.clone()),
        Resource::Version(a, l) => st.version(a, l).map(|v| v.tags.clone()),
        Resource::Environment(a, e) => {
            let i = st.live_env_index(Some(e), None).filter(|i| &st.envs[*i].app == a)?;
            let env = &st.envs[i];
            let mut all = vec![
                ("elasticbeanstalk:environment-name".to_string(), env.name.clone()),
                ("elasticbeanstalk:environment-id".to_string(), env.id.clone()),
            ];
            all.extend(env.tags.iter().cloned());
            Some(all)
        }
    }
}

/// ListTagsForResource.
pub fn list(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let arn = p.required("ResourceArn")?;
    let r = parse_arn(sim, &arn)?;
    let st = sim.state();
    let tags = tags_of(&st, &r)
        .ok_or_else(|| ApiError::new(400, "ResourceNotFoundException", format!("Resource {arn} not found.")))?;
    let mut x = Doc::new();
    x.leaf("ResourceArn", &arn).list("ResourceTags", &tags, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    });
    Ok(x)
}

/// UpdateTagsForResource: removals, then additions. On an environment it runs as an update of its
/// own (Updating for a step, then `Environment tag update completed successfully.`), so the
/// environment must be Ready.
pub fn update(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<(), ApiError> {
    let arn = p.required("ResourceArn")?;
    let add = from_params(p, "TagsToAdd")?;
    let remove = p.list("TagsToRemove");
    for k in &remove {
        check_key(k)?;
    }
    let r = parse_arn(sim, &arn)?;
    let mut st = sim.state();
    let not_found = || ApiError::new(400, "ResourceNotFoundException", format!("Resource {arn} not found."));
    let apply = |tags: &mut Tags| -> Result<(), ApiError> {
        let mut next = tags.clone();
        next.retain(|(k, _)| !remove.contains(k));
        for (k, v) in add.iter().cloned() {
            set(&mut next, k, v);
        }
        check_count(&next, &arn)?;
        *tags = next;
        Ok(())
    };
    match &r {
        Resource::Application(a) => {
            let app = st.apps.iter_mut().find(|x| &x.name == a).ok_or_else(not_found)?;
            apply(&mut app.tags)
        }
        Resource::Version(a, l) => {
            let v = st.versions.iter_mut().find(|v| &v.app == a && &v.label == l).ok_or_else(not_found)?;
            apply(&mut v.tags)
        }
        Resource::Environment(a, e) => {
            let i = st.live_env_index(Some(e), None).filter(|i| &st.envs[*i].app == a).ok_or_else(not_found)?;
            let env = &mut st.envs[i];
            if env.status != EnvStatus::Ready || env.swapping {
                return Err(ApiError::new(
                    400,
                    "OperationInProgressFailure",
                    format!(
                        "Unable to update the tags of environment {e}: an operation is in progress on it, please retry again shortly."
                    ),
                ));
            }
            let mut tags = env.tags.clone();
            apply(&mut tags)?;
            let (health, health_status) = (env.health, env.health_status);
            env.generation += 1;
            env.set(EnvStatus::Updating, health, health_status);
            let (seq, generation) = (env.seq, env.generation);
            let scope = EventScope {
                app: Some(a.clone()),
                env: Some(e.clone()),
                label: None,
                request_id: Some(rid.to_string()),
            };
            drop(st);
            let sim = Arc::clone(sim);
            let pause = sim.cfg.timing.step.draw(&mut sim.pace());
            tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                let mut st = sim.state();
                let Some(i) = st.env_index_by_seq(seq) else { return };
                if st.envs[i].generation != generation {
                    return;
                }
                let env = &mut st.envs[i];
                env.tags = tags;
                env.set(EnvStatus::Ready, health, health_status);
                st.event(&scope, Severity::Info, "Environment tag update completed successfully.");
            });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::deploy::NoRuntime;
    use crate::store::MemoryStore;

    fn sim() -> Arc<Sim> {
        Sim::new(Config::for_tests(), Arc::new(MemoryStore::default()), Arc::new(NoRuntime))
    }

    #[test]
    fn arns_name_applications_versions_and_environments() {
        let s = sim();
        let p = |a: &str| parse_arn(&s, a);
        assert_eq!(
            p("arn:aws:elasticbeanstalk:us-east-1:123456789012:application/shop"),
            Ok(Resource::Application("shop".into()))
        );
        assert_eq!(
            p("arn:aws:elasticbeanstalk:us-east-1:123456789012:applicationversion/shop/v/1"),
            Ok(Resource::Version("shop".into(), "v/1".into()))
        );
        assert_eq!(
            p("arn:aws:elasticbeanstalk:us-east-1:123456789012:environment/shop/prod"),
            Ok(Resource::Environment("shop".into(), "prod".into()))
        );
        let code = |a: &str| p(a).map_err(|e| e.code);
        assert_eq!(
            code("arn:aws:elasticbeanstalk:us-east-1:123456789012:configurationtemplate/shop/t"),
            Err("ResourceTypeNotSupportedException".into())
        );
        assert_eq!(
            code("arn:aws:elasticbeanstalk:eu-west-1:123456789012:application/shop"),
            Err("ResourceNotFoundException".into())
        );
        assert_eq!(code("arn:aws:s3:::bucket"), Err("InvalidParameterValue".into()));
        assert_eq!(code("shop"), Err("InvalidParameterValue".into()));
    }

    #[test]
    fn tag_keys_and_values() {
        assert!(check_key("team").is_ok());
        assert_eq!(check_key("").map_err(|e| e.code), Err("ValidationError".into()));
        assert_eq!(check_key(&"k".repeat(129)).map_err(|e| e.code), Err("ValidationError".into()));
        assert_eq!(
            check_key("elasticbeanstalk:environment-name").map_err(|e| e.code),
            Err("InvalidParameterValue".into())
        );
        assert_eq!(check_key("AWS:x").map_err(|e| e.code), Err("InvalidParameterValue".into()));
        let p = Params::parse(b"Tags.member.1.Key=a&Tags.member.1.Value=1&Tags.member.2.Key=a&Tags.member.2.Value=2");
        assert_eq!(from_params(&p, "Tags"), Ok(vec![("a".to_string(), "2".to_string())]));
        let many: Tags = (0..51).map(|n| (n.to_string(), String::new())).collect();
        assert_eq!(check_count(&many, "arn").map_err(|e| e.code), Err("TooManyTagsException".into()));
    }
}
