//! The local provider, the embedded default: real buildlet servers (the same code as the
//! `buildlet` binary) running in-process on loopback, each with its own work dir.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use buildlet_proto::server::{Config, serve};
use buildlet_proto::{BuildletClient, HttpClient};
use dashboard_types::ReverseBuilderStatus;
use tokio_util::sync::CancellationToken;

use super::machines::{self, Machines};
use crate::{BuildletPool, Lease, LeaseRequest, Result};

/// How many local buildlets to run, per host type.
#[derive(Debug, Clone)]
pub struct LocalPoolConfig {
    /// Parent of every buildlet's work dir (`<base>/<host type>/<n>`).
    pub base_dir: PathBuf,
    /// `(host type, machines)`.
    pub machines: Vec<(String, usize)>,
}

/// A pool of in-process buildlets on 127.0.0.1. Dropping it stops them.
pub struct LocalPool {
    machines: Arc<Machines>,
    stop: CancellationToken,
}

impl std::fmt::Debug for LocalPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPool").finish_non_exhaustive()
    }
}

impl LocalPool {
    /// Starts the buildlets (inside a tokio runtime).
    pub async fn start(cfg: LocalPoolConfig) -> Result<LocalPool> {
        let machines = Arc::new(Machines::default());
        let stop = CancellationToken::new();
        for (host_type, n) in &cfg.machines {
            machines.serve_type(host_type, *n as i64);
            for i in 0..*n {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?.to_string();
                let workdir = cfg.base_dir.join(host_type).join(i.to_string());
                std::fs::create_dir_all(&workdir)?;
                let token = stop.clone();
                tokio::spawn(serve(listener, Config::new(workdir), async move {
                    token.cancelled().await
                }));
                let client: Arc<dyn BuildletClient> = Arc::new(HttpClient::tcp(&addr).build());
                let name = format!("local-{host_type}-{i}");
                machines.add(
                    &name,
                    host_type,
                    &buildlet_proto::api::VERSION.to_string(),
                    client,
                );
            }
        }
        Ok(LocalPool { machines, stop })
    }
}

impl Drop for LocalPool {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl BuildletPool for LocalPool {
    async fn lease(&self, req: LeaseRequest) -> Result<Lease> {
        machines::lease(&self.machines, req).await
    }

    fn status(&self) -> ReverseBuilderStatus {
        self.machines.status()
    }
}
