//! The container provider: one container per lease on a Docker Engine API (Docker itself,
//! or Podman's compatible socket), through bollard. It is an
//! [`EphemeralPool`](super::ephemeral::EphemeralPool) over [`ContainerBackend`]: the
//! container runs the image's buildlet in reverse mode, so no port is published; CPU and
//! memory limits come from the host type; every container carries the owner's label.
//!
//! [`image`] builds the buildlet image from a static `buildlet` and a static busybox, with
//! no registry involved.

pub mod image;

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, RemoveContainerOptions,
};

use super::ephemeral::{Backend, BackendError, InstanceSpec, InstanceState, OWNER_LABEL};

/// Where Docker and rootful Podman listen by default.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// The engine's socket when none is configured: `$DOCKER_HOST` if it names a Unix socket
/// (the only transport this backend speaks), else [`DEFAULT_SOCKET`].
pub fn default_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|s| s.starts_with("unix://"))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_owned())
}

/// A container engine reached over its Docker-compatible API.
#[derive(Debug, Clone)]
pub struct ContainerBackend {
    docker: Docker,
    socket: String,
    network: Option<String>,
}

/// Whether the engine answered 404 (no such container or image).
fn not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl ContainerBackend {
    /// Connects to the engine at `socket` (`unix:///run/podman/podman.sock`) and agrees on
    /// an API version; containers join `network` (`host`, `bridge`, a named network; `None`
    /// is the engine's default).
    pub async fn connect(
        socket: &str,
        network: Option<String>,
    ) -> Result<ContainerBackend, BackendError> {
        let path = socket.strip_prefix("unix://").unwrap_or(socket);
        let docker = Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| format!("container engine at {socket}: {e}"))?
            .negotiate_version()
            .await
            .map_err(|e| format!("container engine at {socket}: {e}"))?;
        Ok(ContainerBackend {
            docker,
            socket: socket.to_owned(),
            network,
        })
    }

    /// The bollard client, for what this backend does not wrap.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// `GET path` on the engine's API at the negotiated version, as JSON.
    async fn get_json(&self, path: &str) -> Result<serde_json::Value, BackendError> {
        use http_body_util::BodyExt;
        let sock = self.socket.strip_prefix("unix://").unwrap_or(&self.socket);
        let stream = tokio::net::UnixStream::connect(sock).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let v = self.docker.client_version();
        let req = http::Request::get(format!("/v{}.{}{path}", v.major_version, v.minor_version))
            .header(http::header::HOST, "engine")
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(format!("{path}: {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Kills container `name` at once (SIGKILL), as a crash would.
    pub async fn kill(&self, name: &str) -> Result<(), BackendError> {
        self.docker
            .kill_container(
                name,
                Some(KillContainerOptions {
                    signal: "KILL".into(),
                }),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Backend for ContainerBackend {
    fn kind(&self) -> &'static str {
        "container"
    }

    async fn create(&self, spec: &InstanceSpec<'_>) -> Result<(), BackendError> {
        let mib = 1024 * 1024;
        let body = ContainerCreateBody {
            image: Some(spec.host.image.clone()),
            hostname: Some(spec.name.to_owned()),
            cmd: Some(spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone().into_iter().collect::<HashMap<_, _>>()),
            host_config: Some(HostConfig {
                nano_cpus: Some(spec.host.cpus as i64 * 1_000_000_000),
                memory: Some(spec.host.memory_mib as i64 * mib),
                // No swap beyond the memory limit: a build that outgrows it fails clearly.
                memory_swap: Some(spec.host.memory_mib as i64 * mib),
                network_mode: self.network.clone(),
                // A fork bomb in a build must not take the host down.
                pids_limit: Some(4096),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.to_owned()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match e {
                e if not_found(&e) => format!(
                    "image {} not found in the engine at {}: build it with \
                     `coordinator image build --tag {}` ({e})",
                    spec.host.image, self.socket, spec.host.image
                ),
                e => e.to_string(),
            })?;
        self.docker.start_container(spec.name, None).await?;
        Ok(())
    }

    async fn state(&self, name: &str) -> Result<InstanceState, BackendError> {
        let info = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => i,
            Err(e) if not_found(&e) => {
                return Ok(InstanceState::Failed("the container disappeared".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(state) = info.state else {
            return Ok(InstanceState::Starting(None));
        };
        use ContainerStateStatusEnum as S;
        Ok(match state.status {
            Some(S::EXITED | S::DEAD) => {
                let oom = if state.oom_killed == Some(true) {
                    " (OOMKilled: out of memory)"
                } else {
                    ""
                };
                let err = state.error.filter(|e| !e.is_empty());
                InstanceState::Failed(format!(
                    "the container exited with code {}{oom}{}",
                    state.exit_code.unwrap_or(-1),
                    err.map(|e| format!(": {e}")).unwrap_or_default()
                ))
            }
            _ => InstanceState::Starting(None),
        })
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, owner: &str) -> Result<Vec<String>, BackendError> {
        // Not bollard's `list_containers`: Podman reports stopped containers in the state
        // `stopped`, which bollard's generated enum refuses, failing the whole listing.
        let filters = serde_json::json!({"label": [format!("{OWNER_LABEL}={owner}")]});
        let query: String =
            form_urlencoded::byte_serialize(filters.to_string().as_bytes()).collect();
        let list = self
            .get_json(&format!("/containers/json?all=true&filters={query}"))
            .await?;
        let names = list
            .as_array()
            .ok_or("the engine's container list is not a JSON array")?
            .iter()
            .filter_map(|c| c["Names"][0].as_str())
            .map(|n| n.trim_start_matches('/').to_owned())
            .collect();
        Ok(names)
    }
}
