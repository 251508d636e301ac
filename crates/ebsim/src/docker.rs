//! Instances as Docker containers, through the Docker Engine API (bollard). Images are resolved in
//! the registry first, then pulled with credentials passed per request (never written to disk).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::bundle::{self, Plan};
use crate::deploy::{Failure, Instance, LaunchSpec, Liveness, Runtime};
use crate::registry::{self, Credentials, Ecr, ImageRef, RegistryClient};

/// Label every instance container carries.
pub const INSTANCE_LABEL: &str = "ebsim.instance";
/// Label naming the ebsim process that started a container.
pub const OWNER_LABEL: &str = "ebsim.owner";

/// Runs instances as local Docker containers.
pub struct DockerRuntime {
    docker: Docker,
    registry: RegistryClient,
    ecr: Option<Ecr>,
    aliases: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    /// Names and ids of every container started and not yet removed.
    started: Mutex<BTreeSet<String>>,
    /// Value of the `ebsim.owner` label of this process's containers.
    owner: String,
    /// Images built from bundles' Dockerfiles, removed at shutdown.
    built: Mutex<Vec<String>>,
    /// The last lines of the most recently removed containers: `(name or id, lines)`.
    kept: Mutex<VecDeque<(BTreeSet<String>, Vec<String>)>>,
}

/// How many removed containers' output is kept, and how many lines of each.
const KEPT_CONTAINERS: usize = 32;
const KEPT_LINES: usize = 200;

impl DockerRuntime {
    /// Connects to the Engine at `host` (default: the local socket) and negotiates the API version.
    pub async fn connect(
        host: Option<&str>,
        ecr: Option<Ecr>,
        aliases: Vec<(String, String)>,
        labels: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let docker = match host {
            Some(h) => Docker::connect_with_host(h).with_context(|| format!("failed to connect to Docker at {h}"))?,
            None => Docker::connect_with_local_defaults().context("failed to connect to the local Docker Engine")?,
        };
        let docker = docker.negotiate_version().await.context("failed to negotiate the Docker API version")?;
        let owner = format!("{}-{}", std::process::id(), crate::ids::short_suffix());
        Ok(Self {
            docker,
            registry: RegistryClient::default(),
            ecr,
            aliases,
            labels,
            started: Mutex::new(BTreeSet::new()),
            owner,
            built: Mutex::new(Vec::new()),
            kept: Mutex::new(VecDeque::new()),
        })
    }

    fn track(&self, name: &str) {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string());
    }

    async fn credentials_for(&self, original: &ImageRef, aliased: &ImageRef) -> Result<Option<Credentials>, Failure> {
        // A loopback registry stands in for ECR in the local stack, so it gets ECR's credentials too.
        let wants_ecr = registry::is_ecr_host(&original.registry)
            || original.registry != aliased.registry
            || registry::reachable(&original.registry);
        match (&self.ecr, wants_ecr) {
            (Some(ecr), true) => ecr.credentials().await.map(Some).map_err(Failure::Generic),
            _ => Ok(None),
        }
    }

    /// Resolves and pulls a Dockerrun image; the local reference to run.
    async fn pull(&self, name: &str, update: bool) -> Result<String, Failure> {
        let original = ImageRef::parse(name).map_err(Failure::Generic)?;
        let image = original.aliased(&self.aliases);
        let creds = self.credentials_for(&original, &image).await?;
        let digest = self
            .registry
            .resolve(&image, creds.as_ref())
            .await
            .map_err(|e| Failure::Generic(format!("image {name} could not be resolved: {e}")))?;
        let local = format!("{}@{digest}", image.repo_path());
        if !update && self.docker.inspect_image(&local).await.is_ok() {
            return Ok(local);
        }
        let opts = CreateImageOptionsBuilder::default().from_image(&image.repo_path()).tag(&digest).build();
        let docker_creds = creds.map(|c| DockerCredentials {
            username: Some(c.username),
            password: Some(c.password),
            serveraddress: Some(image.registry.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.create_image(Some(opts), None, docker_creds);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Err(Failure::Generic(format!("docker pull of {local} failed: {e}")));
                    }
                }
                Err(e) => return Err(Failure::Generic(format!("docker pull of {local} failed: {e}"))),
            }
        }
        Ok(local)
    }

    /// Builds the bundle's Dockerfile; the image tag and its first exposed port.
    async fn build(&self, spec: &LaunchSpec) -> Result<(String, Option<u16>), Failure> {
        let tar = bundle::to_tar(&spec.bundle).map_err(|e| Failure::Generic(e.to_string()))?;
        let tag =
            format!("ebsim-build/{}:{}", spec.env_name.to_ascii_lowercase(), spec.container_name.to_ascii_lowercase());
        let opts = BuildImageOptionsBuilder::default().t(&tag).rm(true).forcerm(true).build();
        self.built.lock().unwrap_or_else(|p| p.into_inner()).push(tag.clone());
        let mut stream = self.docker.build_image(opts, None, Some(bollard::body_full(Bytes::from(tar))));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Err(Failure::Generic(format!("docker build of the bundle's Dockerfile failed: {e}")));
                    }
                }
                Err(e) => return Err(Failure::Generic(format!("docker build of the bundle's Dockerfile failed: {e}"))),
            }
        }
        let exposed = self
            .docker
            .inspect_image(&tag)
            .await
            .ok()
            .and_then(|i| i.config)
            .and_then(|c| c.exposed_ports)
            .and_then(|p| p.into_iter().filter_map(|s| s.split('/').next()?.parse::<u16>().ok()).min());
        Ok((tag, exposed))
    }

    async fn run(
        &self,
        spec: &LaunchSpec,
        image: &str,
        port: u16,
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
    ) -> Result<Instance, Failure> {
        let key = format!("{port}/tcp");
        let mut labels: HashMap<String, String> = self.labels.iter().cloned().collect();
        labels.insert(INSTANCE_LABEL.into(), "1".into());
        labels.insert(OWNER_LABEL.into(), self.owner.clone());
        labels.insert("ebsim.environment".into(), spec.env_name.clone());
        labels.insert("ebsim.application".into(), spec.app.clone());
        labels.insert("ebsim.version-label".into(), spec.label.clone());
        let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            env: Some(spec.env_vars.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: Some(vec![key.clone()]),
            entrypoint,
            cmd,
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(key.clone(), Some(vec![binding]))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = &spec.container_name;
        self.track(name);
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let created = match self.docker.create_container(Some(opts), body).await {
            Ok(c) => c,
            Err(e) => {
                self.remove_now(name).await;
                return Err(Failure::Generic(format!("failed to create the instance container from {image}: {e}")));
            }
        };
        self.track(&created.id);
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.remove_now(name).await;
            return Err(Failure::Generic(format!("failed to start the instance container: {e}")));
        }
        let host_port = self
            .docker
            .inspect_container(&created.id, None)
            .await
            .ok()
            .and_then(|c| c.network_settings)
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&key).cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse::<u16>().ok()));
        match host_port {
            Some(hp) => Ok(Instance { container_id: created.id, addr: SocketAddr::from(([127, 0, 0, 1], hp)) }),
            None => {
                let running = matches!(self.liveness(&created.id).await, Liveness::Running);
                let why = self.exit_reason(&created.id).await;
                self.remove_now(name).await;
                Err(Failure::Generic(if running {
                    format!("the instance container published no port for {key}")
                } else {
                    format!("the application container stopped right after starting: {why}")
                }))
            }
        }
    }

    async fn exit_reason(&self, id: &str) -> String {
        let code = self
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.exit_code)
            .map_or("unknown".to_string(), |c| c.to_string());
        let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).tail("5").build();
        let lines: Vec<String> = self
            .docker
            .logs(id, Some(opts))
            .filter_map(|l| async move { l.ok().map(|l| l.to_string().trim_end().to_string()) })
            .collect()
            .await;
        if lines.is_empty() {
            format!("exit code {code}")
        } else {
            format!("exit code {code}; last output: {}", lines.join(" | "))
        }
    }

    /// The last `lines` lines of a container's stdout and stderr, in order.
    async fn tail(&self, container: &str, lines: usize) -> Result<Vec<String>, bollard::errors::Error> {
        let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let chunks: Vec<_> = self.docker.logs(container, Some(opts)).collect().await;
        let mut text = String::new();
        for chunk in chunks {
            text.push_str(&chunk?.to_string());
        }
        Ok(text.lines().map(str::to_string).collect())
    }

    async fn remove_now(&self, container: &str) {
        // Keep what it wrote: a failed deploy's output must outlive its container.
        if let Ok(lines) = self.tail(container, KEPT_LINES).await {
            let names = self
                .docker
                .inspect_container(container, None)
                .await
                .ok()
                .map(|c| {
                    let mut n: BTreeSet<String> = c.id.into_iter().collect();
                    n.extend(c.name.map(|x| x.trim_start_matches('/').to_string()));
                    n
                })
                .unwrap_or_default();
            let mut names = names;
            names.insert(container.to_string());
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.retain(|(n, _)| n.is_disjoint(&names));
            kept.push_back((names, lines));
            while kept.len() > KEPT_CONTAINERS {
                kept.pop_front();
            }
        }
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(container, Some(opts)).await {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => tracing::warn!("failed to remove container {container}: {e}"),
        }
        self.started.lock().unwrap_or_else(|p| p.into_inner()).remove(container);
    }
}

impl Runtime for DockerRuntime {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Instance, Failure>> {
        Box::pin(async move {
            let (image, port, entrypoint, cmd) = match &spec.plan {
                Plan::Image(s) => {
                    (self.pull(&s.name, s.update).await?, s.port, s.entrypoint.clone(), s.command.clone())
                }
                Plan::Dockerfile { port } => {
                    let (tag, exposed) = self.build(&spec).await?;
                    (tag, port.or(exposed).unwrap_or(80), None, None)
                }
                Plan::Compose(why) => {
                    return Err(Failure::Generic(format!("unsupported docker-compose.yml: {why}")));
                }
            };
            let mut spec = spec;
            if let Plan::Image(s) = &spec.plan {
                // Options set on the environment win over the bundle's own variables.
                let mut env = s.env.clone();
                env.retain(|(k, _)| !spec.env_vars.iter().any(|(o, _)| o == k));
                env.append(&mut spec.env_vars);
                spec.env_vars = env;
            }
            self.run(&spec, &image, port, entrypoint, cmd).await
        })
    }

    fn liveness<'a>(&'a self, container: &'a str) -> BoxFuture<'a, Liveness> {
        Box::pin(async move {
            match self.docker.inspect_container(container, None).await {
                Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => Liveness::Running,
                Ok(_) => Liveness::Gone(self.exit_reason(container).await),
                Err(e) => Liveness::Gone(format!("the container is gone: {e}")),
            }
        })
    }

    fn remove<'a>(&'a self, container: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.remove_now(container))
    }

    fn output<'a>(&'a self, container: &'a str, lines: usize) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            match self.tail(container, lines).await {
                Ok(out) => out,
                Err(_) => {
                    let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
                    let found = kept.iter().rev().find(|(names, _)| {
                        names.contains(container)
                            || names.iter().any(|n| n.starts_with(container) && container.len() >= 12)
                    });
                    found.map(|(_, l)| l[l.len().saturating_sub(lines)..].to_vec()).unwrap_or_default()
                }
            }
        })
    }

    fn remove_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut all: Vec<String> = self.started.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
            // Also whatever carries this process's label, in case a launch was cut short.
            let filters = HashMap::from([("label", vec![format!("{OWNER_LABEL}={}", self.owner)])]);
            let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
            if let Ok(list) = self.docker.list_containers(Some(opts)).await {
                all.extend(list.into_iter().filter_map(|c| c.id));
            }
            for c in all {
                self.remove_now(&c).await;
            }
            let images: Vec<String> = std::mem::take(&mut *self.built.lock().unwrap_or_else(|p| p.into_inner()));
            for image in images {
                let opts = RemoveImageOptionsBuilder::default().force(true).build();
                if let Err(e) = self.docker.remove_image(&image, Some(opts), None).await {
                    tracing::debug!("failed to remove built image {image}: {e}");
                }
            }
        })
    }
}
