//! Builds one image with eb-deploy's image stage and nothing else, for the build-context benchmark
//! (`scripts/bench`): `build_context CONTEXT_DIR [DOCKERFILE] [TAG] [BUILDER]`, an empty DOCKERFILE meaning
//! `CONTEXT_DIR/Dockerfile` and BUILDER `classic` (the default), `buildkit` or `auto`. Always a no-cache
//! build, so every run sends and copies the whole context. The build log goes to stdout; the image id is
//! the last line.

use std::path::PathBuf;
use std::process::ExitCode;

use eb_deploy::build_plan::{BuildPlan, Builder};
use eb_deploy::docker::connect;
use eb_deploy::gha::Console;
use eb_deploy::image::{BuildRequest, build};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(context) = args.next().map(PathBuf::from) else {
        eprintln!("usage: build_context CONTEXT_DIR [DOCKERFILE] [TAG]");
        return ExitCode::from(2);
    };
    let dockerfile = args.next().filter(|d| !d.is_empty()).map(PathBuf::from);
    let tag = args.next().unwrap_or_default();
    let builder = match args.next().as_deref() {
        None | Some("classic") => Builder::Classic,
        Some("buildkit") => Builder::BuildKit,
        Some("auto") => Builder::Auto,
        Some(other) => {
            eprintln!("unknown builder {other:?}: use classic, buildkit or auto");
            return ExitCode::from(2);
        }
    };
    let docker_host = std::env::var("DOCKER_HOST").ok();
    // The same runtime shape as eb-deploy's main.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let request = BuildRequest {
        plan: BuildPlan { context, dockerfile, no_cache: true, builder, ..Default::default() },
        tag,
        docker_host: docker_host.clone(),
        ..BuildRequest::default()
    };
    let result = runtime.block_on(async {
        let docker = connect(docker_host.as_deref()).await?;
        build(&docker, &request, &Console::stdout(false, false)).await
    });
    match result {
        Ok(image) => {
            println!("{}", image.id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
