//! Stage: ship the image — build it (or take the one given), push it to ECR, and say which reference the
//! bundle deploys.

use anyhow::Result;

use super::cache::RunningImage;
use crate::config::{ImagePlan, ImageSource};
use crate::gha::Console;
use crate::{docker, image, registry};

/// What the image stage produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedImage {
    /// The reference written into Dockerrun.aws.json (digest-pinned by default).
    pub reference: String,
    pub digest: Option<String>,
}

/// The image half of a deploy (build and push), injected so the engine can be tested without a daemon.
pub trait ImageStage {
    /// Builds or resolves the image and pushes it; returns the reference to deploy. A build may take layers
    /// from `cache`, the images the environment runs and ran (empty when there are none to use).
    fn ship(
        &self,
        plan: &ImagePlan,
        cache: &RunningImage,
        console: &Console,
    ) -> impl Future<Output = Result<ShippedImage>>;
}

/// The real image stage: the Docker Engine builds (or finds) the image, and it is pushed to ECR.
pub struct DockerImages {
    /// `DOCKER_HOST`, read at the edge.
    pub docker_host: Option<String>,
    pub ecr: aws_sdk_ecr::Client,
}

impl ImageStage for DockerImages {
    async fn ship(&self, plan: &ImagePlan, cache: &RunningImage, console: &Console) -> Result<ShippedImage> {
        let docker = docker::connect(self.docker_host.as_deref()).await?;
        let auth = registry::ecr_login(&self.ecr, plan.registry.as_deref(), console).await?;
        let pushed = match &plan.source {
            ImageSource::Build(build) => {
                let reference = format!("{}/{}:{}", auth.registry(), plan.repository, plan.tag);
                // What only this stage knows: where the image goes, the login, and the daemon's address.
                let request = image::BuildRequest {
                    plan: build.as_ref().clone(),
                    tag: reference.clone(),
                    registry_auth: Some(auth.clone()),
                    running_image: cache.image.clone(),
                    earlier_images: cache.earlier.clone(),
                    docker_host: self.docker_host.clone(),
                };
                // Build before creating anything in ECR: a failing build leaves no trace there.
                image::build(&docker, &request, console).await?;
                registry::ensure_repository(&self.ecr, &plan.repository, plan.create_repository, console).await?;
                registry::push(&docker, &auth, &reference, &plan.repository, &plan.tag, console).await?
            }
            ImageSource::Given(image) => {
                // A repository is needed only when the image has to be pushed (it exists only locally).
                if docker.inspect_image(image).await.is_ok() {
                    registry::ensure_repository(&self.ecr, &plan.repository, plan.create_repository, console).await?;
                }
                registry::ensure_pushed(&docker, &auth, image, &plan.repository, &plan.tag, console).await?
            }
        };
        let reference = if plan.pin_digest { pushed.pinned() } else { pushed.reference.clone() };
        Ok(ShippedImage { reference, digest: Some(pushed.digest) })
    }
}
