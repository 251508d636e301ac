//! Environment logs: RequestEnvironmentInfo compiles an instance's logs — the engine log of what
//! ebsim did for the environment's deploys, the serving container's output, and the output of the
//! last failed deploy's container — into S3 under Beanstalk's key layout, and
//! RetrieveEnvironmentInfo answers presigned URLs to them. Beanstalk deletes them after 15 minutes.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::time::now_ms;
use crate::protocol::{ApiError, Doc, Params};
use crate::state::{EventScope, InfoSample, InfoType, Severity, Sim};

/// How long compiled logs stay in S3, and how long their presigned URLs work.
pub const LOGS_TTL: Duration = Duration::from_secs(15 * 60);

/// Lines of each log a `tail` holds.
pub const TAIL_LINES: usize = 100;

/// The S3 key Beanstalk stores an instance's compiled logs under, as in the API reference's
/// RetrieveEnvironmentInfo example (`…/tail/e-fyqyju3yjs/i-09c1c867/TailLogs-1440109397703.out`);
/// a bundle's by analogy.
pub fn key(info: InfoType, env_id: &str, instance_id: &str, sample_ms: i64) -> String {
    let file = match info {
        InfoType::Tail => format!("TailLogs-{sample_ms}.out"),
        InfoType::Bundle => format!("BundleLogs-{sample_ms}.zip"),
    };
    format!("resources/environments/logs/{}/{env_id}/{instance_id}/{file}", info.as_str())
}

/// One log file of an instance: its path there and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: String,
    pub lines: Vec<String>,
}

/// The `tail` text: the last [`TAIL_LINES`] of each file under a header naming it.
pub fn tail(files: &[LogFile]) -> String {
    let rule = "----------------------------------------";
    let mut out = String::new();
    for f in files {
        out.push_str(&format!("{rule}\n{}\n{rule}\n", f.path));
        for line in &f.lines[f.lines.len().saturating_sub(TAIL_LINES)..] {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// The `bundle` zip: each file whole, at its path.
pub fn bundle(files: &[LogFile]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for f in files {
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        if w.start_file(f.path.trim_start_matches('/'), opts).is_ok() {
            let _ = w.write_all((f.lines.join("\n") + "\n").as_bytes());
        }
    }
    w.finish().map(std::io::Cursor::into_inner).unwrap_or_default()
}

fn info_type(p: &Params) -> Result<InfoType, ApiError> {
    let v = p.required("InfoType")?;
    match (InfoType::parse(&v), v.as_str()) {
        (Some(t), _) => Ok(t),
        (None, "analyze") => Err(ApiError::invalid_value(
            "InfoType analyze (AI analysis of the logs) is not available in ebsim; request tail or bundle.",
        )),
        (None, _) => Err(ApiError::new(
            400,
            "ValidationError",
            format!(
                "1 validation error detected: Value '{v}' at 'infoType' failed to satisfy constraint: Member must satisfy enum value set: [tail, bundle, analyze]"
            ),
        )),
    }
}

/// The live environment a logs call names: `(index, app, name, id, instance id)`.
fn target(st: &crate::state::State, p: &Params) -> Result<(usize, String, String, String, String), ApiError> {
    let (name, id) = (p.string("EnvironmentName"), p.string("EnvironmentId"));
    if name.is_none() && id.is_none() {
        return Err(ApiError::new(
            400,
            "MissingRequiredParameter",
            "Either EnvironmentName or EnvironmentId must be specified.",
        ));
    }
    let i = st.live_env_index(name.as_deref(), id.as_deref()).ok_or_else(|| match (&name, &id) {
        (Some(n), _) => ApiError::invalid_value(format!("No Environment found for EnvironmentName = '{n}'.")),
        (None, Some(i)) => ApiError::invalid_value(format!("No Environment found for EnvironmentId = '{i}'.")),
        (None, None) => ApiError::invalid_value("No Environment found."),
    })?;
    let e = &st.envs[i];
    Ok((i, e.app.clone(), e.name.clone(), e.id.clone(), e.instance_id.clone()))
}

/// RequestEnvironmentInfo: `requestEnvironmentInfo is starting.`, then, a step later, the logs in S3
/// and `Pulled logs for environment instances.` (what `eb logs` waits for), all with the call's
/// RequestId.
pub fn request(sim: &Arc<Sim>, p: &Params, rid: &str) -> Result<(), ApiError> {
    let info = info_type(p)?;
    let mut st = sim.state();
    let (_, app, env_name, env_id, instance_id) = target(&st, p)?;
    let scope = EventScope { app: Some(app), env: Some(env_name.clone()), label: None, request_id: Some(rid.into()) };
    st.event(&scope, Severity::Info, "requestEnvironmentInfo is starting.");
    drop(st);
    let sim = Arc::clone(sim);
    let pause = sim.cfg.timing.step.draw(&mut sim.pace());
    tokio::spawn(async move {
        tokio::time::sleep(pause).await;
        let outcome = compile_and_store(&sim, info, &env_id, &instance_id).await;
        let mut st = sim.state();
        match outcome {
            Ok(sample) => {
                if let Some(i) = st.live_env_index(None, Some(&env_id)) {
                    let env = &mut st.envs[i];
                    env.info.retain(|s| !(s.info_type == info && s.instance_id == sample.instance_id));
                    env.info.push(sample.clone());
                }
                st.event(&scope, Severity::Info, "Pulled logs for environment instances.");
                drop(st);
                schedule_expiry(sim, env_id, sample);
            }
            Err(why) => {
                tracing::warn!(env = %env_name, "failed to compile {} logs: {why}", info.as_str());
                st.event(&scope, Severity::Error, "Failed to pull logs for environment instances.");
            }
        }
    });
    Ok(())
}

/// Reads the environment's logs, writes them to the storage bucket; the sample to list.
async fn compile_and_store(sim: &Sim, info: InfoType, env_id: &str, instance_id: &str) -> Result<InfoSample, String> {
    let (engine, serving, failed) = {
        let st = sim.state();
        let i = st.live_env_index(None, Some(env_id)).ok_or("the environment is gone")?;
        let e = &st.envs[i];
        (e.engine_log.iter().cloned().collect::<Vec<_>>(), e.container.clone(), e.failed_instance.clone())
    };
    let mut files = vec![LogFile { path: "/var/log/eb-engine.log".into(), lines: engine }];
    if let Some(c) = serving {
        let lines = sim.runtime.output(&c, TAIL_LINES).await;
        let short = &c[..c.len().min(12)];
        files.push(LogFile {
            path: format!("/var/log/eb-docker/containers/eb-current-app/eb-{short}-stdouterr.log"),
            lines,
        });
    }
    if let Some(f) = failed {
        files.push(LogFile {
            path: format!("/var/log/eb-docker/containers/eb-staging-app/{}-stdouterr.log", f.container),
            lines: f.output,
        });
    }
    let body = match info {
        InfoType::Tail => tail(&files).into_bytes(),
        InfoType::Bundle => bundle(&files),
    };
    let bucket = sim.cfg.storage_bucket();
    let now = now_ms();
    let key = key(info, env_id, instance_id, now);
    sim.store.ensure_bucket(&bucket).await.map_err(|e| format!("failed to create bucket {bucket}: {e}"))?;
    sim.store.put(&bucket, &key, body).await.map_err(|e| format!("failed to write s3://{bucket}/{key}: {e}"))?;
    Ok(InfoSample {
        info_type: info,
        instance_id: instance_id.to_string(),
        bucket,
        key,
        sample_ms: now,
        expires_ms: now + sim.cfg.logs_ttl.as_millis() as i64,
    })
}

/// Deletes the compiled logs once they expire, unless newer ones replaced them meanwhile.
fn schedule_expiry(sim: Arc<Sim>, env_id: String, sample: InfoSample) {
    tokio::spawn(async move {
        tokio::time::sleep(sim.cfg.logs_ttl).await;
        let current = {
            let mut st = sim.state();
            let mut current = false;
            for e in st.envs.iter_mut().filter(|e| e.id == env_id) {
                let before = e.info.len();
                e.info.retain(|s| s != &sample);
                current |= e.info.len() != before;
            }
            current
        };
        if current && let Err(e) = sim.store.delete(&sample.bucket, &sample.key).await {
            tracing::warn!("failed to delete expired logs s3://{}/{}: {e}", sample.bucket, sample.key);
        }
    });
}

/// RetrieveEnvironmentInfo: the compiled logs of that type not yet expired, as presigned URLs.
pub async fn retrieve(sim: &Arc<Sim>, p: &Params) -> Result<Doc, ApiError> {
    let info = info_type(p)?;
    let samples: Vec<InfoSample> = {
        let st = sim.state();
        let (i, ..) = target(&st, p)?;
        let now = now_ms();
        st.envs[i].info.iter().filter(|s| s.info_type == info && s.expires_ms > now).cloned().collect()
    };
    let mut described = Vec::new();
    for s in samples {
        // Whole seconds, rounded up: the URL works as long as the object is there.
        let left_secs = ((s.expires_ms - now_ms()).max(1) as u64).div_ceil(1000);
        let left = Duration::from_secs(left_secs).min(LOGS_TTL);
        let url = sim.store.presign_get(&s.bucket, &s.key, left).await.map_err(|e| {
            tracing::error!("failed to presign s3://{}/{}: {e}", s.bucket, s.key);
            ApiError::internal()
        })?;
        described.push((s, url));
    }
    let mut x = Doc::new();
    x.list("EnvironmentInfo", &described, |x, (s, url)| {
        x.leaf("InfoType", s.info_type.as_str())
            .leaf("Ec2InstanceId", &s.instance_id)
            .time("SampleTimestamp", s.sample_ms)
            .leaf("Message", url);
    });
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_hundred_lines_of_each_file() {
        let many: Vec<String> = (1..=150).map(|n| format!("line {n}")).collect();
        let files = [
            LogFile { path: "/var/log/eb-engine.log".into(), lines: vec!["a".into(), "b".into()] },
            LogFile { path: "/var/log/app.log".into(), lines: many },
        ];
        let text = tail(&files);
        assert!(text.starts_with(
            "----------------------------------------\n/var/log/eb-engine.log\n----------------------------------------\na\nb\n\n"
        ));
        assert!(text.contains("/var/log/app.log\n----------------------------------------\nline 51\n"), "{text}");
        assert!(!text.contains("line 50\n"));
        assert!(text.ends_with("line 150\n\n"));
        let zip = bundle(&files);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let mut app = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("var/log/app.log").unwrap(), &mut app).unwrap();
        assert_eq!(app.lines().count(), 150, "a bundle holds whole files");
    }

    #[test]
    fn keys_follow_beanstalks_layout() {
        assert_eq!(
            key(InfoType::Tail, "e-fyqyju3yjs", "i-09c1c867", 1_440_109_397_703),
            "resources/environments/logs/tail/e-fyqyju3yjs/i-09c1c867/TailLogs-1440109397703.out"
        );
        assert_eq!(
            key(InfoType::Bundle, "e-abc", "i-0123", 5),
            "resources/environments/logs/bundle/e-abc/i-0123/BundleLogs-5.zip"
        );
    }
}
