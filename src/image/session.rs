//! A BuildKit session of our own, as the docker CLI holds one: `POST /session` upgraded to HTTP/2, over
//! which the daemon calls us. It serves the build context and the Dockerfile (file sync), the registry
//! credentials of the cache sources (auth), build secrets, and the health check BuildKit makes every few
//! seconds.
//!
//! bollard's session serves credentials only and takes the context as a tar body, which the daemon stores
//! and then unpacks; through the session the daemon writes each file once and skips those it has. (bollard
//! serves secrets only on a path that takes the context in one piece, in memory, and gives no progress.)

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use bollard::auth::DockerCredentials;
use bollard::health::health_check_response::ServingStatus;
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use bollard::moby::buildkit::secrets::v1::secrets_server::SecretsServer;
use bollard::moby::filesync::packet::file_sync_server::FileSyncServer;
use bollard::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse, GetTokenAuthorityRequest,
    GetTokenAuthorityResponse, VerifyTokenAuthorityRequest, VerifyTokenAuthorityResponse,
};
use futures_util::{Stream, StreamExt};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::filesync::Served;
use super::{conn, secrets};

/// The methods the daemon may call, announced when the session opens.
const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
];

/// How often the connection is pinged, and how long an answer may take: a daemon that vanished without
/// closing it (a remote `DOCKER_HOST` cut off) ends the session instead of holding its transfers open.
const KEEPALIVE: Duration = Duration::from_secs(20);

/// A session the daemon can call while it lives; dropping it ends the session: the connection is closed
/// once the calls under way have ended, and the daemon forgets the session.
pub(super) struct Session {
    end: Option<oneshot::Sender<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(());
        }
    }
}

/// Opens the session `id` on the daemon at `docker_host`, serving `files` and `credentials` (by registry
/// host) and `secrets`. BuildKit keeps the files of sessions with the same `shared_key` between builds, and asks a later
/// one only for what changed.
pub(super) async fn start(
    docker_host: Option<&str>,
    id: String,
    shared_key: String,
    files: Served,
    credentials: HashMap<String, DockerCredentials>,
    secrets: secrets::Served,
) -> Result<Session> {
    let mut headers = vec![
        ("X-Docker-Expose-Session-Uuid", id),
        ("X-Docker-Expose-Session-Name", "eb-deploy".to_owned()),
        ("X-Docker-Expose-Session-Sharedkey", shared_key),
    ];
    headers.extend(METHODS.iter().map(|m| ("X-Docker-Expose-Session-Grpc-Method", (*m).to_owned())));
    let stream = conn::upgrade(docker_host, "/session", &headers).await.map_err(Unavailable::from)?;
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .add_service(HealthServer::new(Healthy))
        .add_service(FileSyncServer::new(files))
        .add_service(AuthServer::new(Credentials(credentials)))
        .add_service(SecretsServer::new(secrets));
    // One connection, then none: the server must not end when its incoming connections do, or the
    // daemon's next call finds the session closed.
    let incoming = futures_util::stream::iter([Ok::<_, std::io::Error>(conn::Accepted(stream))])
        .chain(futures_util::stream::pending());
    let (end, ended) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let ended = async {
            let _ = ended.await;
        };
        if let Err(err) = router.serve_with_incoming_shutdown(incoming, ended).await {
            tracing::debug!(error = %err, "the build session ended");
        }
    });
    Ok(Session { end: Some(end) })
}

/// The session could not be opened: the daemon, or a proxy in front of it, refused `POST /session` or dropped
/// the connection. Nothing of the build has run; `builder: auto` then builds with the classic builder.
#[derive(Debug)]
pub(super) struct Unavailable {
    /// What the daemon answered, e.g. `POST /session answered 404 Not Found (page not found)`.
    pub answer: String,
}

impl From<anyhow::Error> for Unavailable {
    fn from(err: anyhow::Error) -> Self {
        let answer = match err.downcast_ref::<conn::Refused>() {
            Some(refused) => format!("POST {} answered {}", refused.path, refused.answer),
            None => format!("{err:#}"),
        };
        Self { answer }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the daemon refused a BuildKit session: {}", self.answer)
    }
}

impl std::error::Error for Unavailable {}

struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse { status: ServingStatus::Serving as i32 }))
    }

    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not served"))
    }
}

/// Registry credentials by host; other hosts are pulled from anonymously.
struct Credentials(HashMap<String, DockerCredentials>);

impl Credentials {
    fn answer(&self, host: &str) -> CredentialsResponse {
        match self.0.get(host) {
            Some(DockerCredentials { identitytoken: Some(token), .. }) => {
                CredentialsResponse { username: String::new(), secret: token.clone() }
            }
            Some(creds) => CredentialsResponse {
                username: creds.username.clone().unwrap_or_default(),
                secret: creds.password.clone().unwrap_or_default(),
            },
            None => CredentialsResponse::default(),
        }
    }
}

#[tonic::async_trait]
impl Auth for Credentials {
    async fn credentials(&self, request: Request<CredentialsRequest>) -> Result<Response<CredentialsResponse>, Status> {
        Ok(Response::new(self.answer(&request.into_inner().host)))
    }

    // Not exposed: the daemon then fetches tokens itself with the credentials above.
    async fn fetch_token(&self, _: Request<FetchTokenRequest>) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_their_host_only() {
        let creds = Credentials(HashMap::from([
            (
                "127.0.0.1:5000".to_owned(),
                DockerCredentials { username: Some("AWS".into()), password: Some("pw".into()), ..Default::default() },
            ),
            ("ghcr.io".to_owned(), DockerCredentials { identitytoken: Some("tok".into()), ..Default::default() }),
        ]));
        assert_eq!(creds.answer("127.0.0.1:5000"), CredentialsResponse { username: "AWS".into(), secret: "pw".into() });
        assert_eq!(creds.answer("ghcr.io"), CredentialsResponse { username: String::new(), secret: "tok".into() });
        assert_eq!(creds.answer("example.invalid"), CredentialsResponse::default());
    }
}
