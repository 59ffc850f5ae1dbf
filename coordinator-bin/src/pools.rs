//! The coordinator's pool: local, reverse, container and Kubernetes buildlets behind one
//! [`BuildletPool`], each host type served by exactly the pool the configuration names. A
//! host type no pool serves is an error, never a silent local buildlet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use dashboard_types::ReverseBuilderStatus;
use pool::providers::ephemeral::{Backend, EphemeralConfig, EphemeralPool};
use pool::providers::reverse::ReversePool;
use pool::{BuildletPool, Lease, LeaseRequest, ProviderStatus};

use crate::config::Config;
use crate::config::ondemand::OnDemandConfig;
use crate::error::Error;

/// Pools by host type.
#[derive(Default)]
pub struct Pools {
    routes: BTreeMap<String, Arc<dyn BuildletPool>>,
    all: Vec<Arc<dyn BuildletPool>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("host_types", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Pools {
    /// Adds `pool`, serving `host_types`.
    pub fn add(
        &mut self,
        pool: Arc<dyn BuildletPool>,
        host_types: impl IntoIterator<Item = String>,
    ) {
        for ht in host_types {
            self.routes.insert(ht, pool.clone());
        }
        self.all.push(pool);
    }

    /// Starts `[pools.container]` and `[pools.kubernetes]` if configured: their buildlets
    /// register through `reverse`, reaching it at `front_door` unless the section names
    /// another address; `owner` labels their instances.
    pub async fn start_on_demand(
        &mut self,
        config: &Config,
        reverse: Option<&ReversePool>,
        front_door: Option<SocketAddr>,
        owner: &str,
    ) -> Result<(), Error> {
        if let Some(c) = &config.pools.container {
            let backend = pool::providers::container::ContainerBackend::connect(
                &c.socket
                    .clone()
                    .unwrap_or_else(pool::providers::container::default_socket),
                c.network.clone(),
            )
            .await
            .map_err(|e| Error::Startup(format!("[pools.container]: {e}")))?;
            let p = on_demand(config, c, backend, reverse, front_door, owner).await?;
            self.add(Arc::new(p), c.host_types.keys().cloned());
        }
        #[cfg(feature = "kubernetes")]
        if let Some(c) = &config.pools.kubernetes {
            let backend = pool::providers::kubernetes::KubernetesBackend::connect(
                c.kubeconfig.as_deref(),
                c.namespace.as_deref().unwrap_or("default"),
            )
            .await
            .map_err(|e| Error::Startup(format!("[pools.kubernetes]: {e}")))?;
            let p = on_demand(config, c, backend, reverse, front_door, owner).await?;
            self.add(Arc::new(p), c.host_types.keys().cloned());
        }
        Ok(())
    }
}

/// Starts one on-demand pool over `backend`.
async fn on_demand<B: Backend>(
    config: &Config,
    c: &OnDemandConfig,
    backend: B,
    reverse: Option<&ReversePool>,
    front_door: Option<SocketAddr>,
    owner: &str,
) -> Result<EphemeralPool<B>, Error> {
    let kind = backend.kind();
    let startup = |e: &dyn std::fmt::Display| Error::Startup(format!("[pools.{kind}]: {e}"));
    let reverse = reverse.ok_or_else(|| startup(&"needs the reverse front door"))?;
    let coordinator = match (&c.coordinator, front_door) {
        (Some(a), _) => a.clone(),
        // A wildcard listener is reached on loopback from the host's network.
        (None, Some(a)) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        (None, Some(a)) => a.to_string(),
        (None, None) => return Err(startup(&"set coordinator (host:port instances dial)")),
    };
    let ca_file = c
        .ca_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("tls").join("cert.pem"));
    let ca = std::fs::read_to_string(&ca_file)
        .map_err(|e| startup(&format!("ca_file {}: {e}", ca_file.display())))?;
    let cfg = EphemeralConfig::new(owner, coordinator.clone(), c.host_specs(), c.limits())
        .startup_timeout(std::time::Duration::from_secs(c.startup_timeout_secs))
        .sweep_interval(std::time::Duration::from_secs(c.sweep_secs))
        .coordinator_ca_pem(Some(ca));
    let p = EphemeralPool::start(cfg, backend, reverse.clone())
        .await
        .map_err(|e| startup(&e))?;
    tracing::info!(
        kind,
        %coordinator,
        host_types = ?c.host_types.keys().collect::<Vec<_>>(),
        "on-demand buildlets: one instance per lease, dialing back to the coordinator"
    );
    Ok(p)
}

#[async_trait]
impl BuildletPool for Pools {
    async fn lease(&self, req: LeaseRequest) -> pool::Result<Lease> {
        match self.routes.get(&req.item.host_type) {
            Some(pool) => pool.lease(req).await,
            None => Err(pool::Error::UnknownHostType(req.item.host_type.clone())),
        }
    }

    fn status(&self) -> ReverseBuilderStatus {
        let mut all = ReverseBuilderStatus::default();
        for p in &self.all {
            all.host_types.extend(p.status().host_types);
        }
        all
    }

    fn providers(&self) -> Vec<ProviderStatus> {
        self.all.iter().flat_map(|p| p.providers()).collect()
    }

    async fn drain(&self, within: std::time::Duration) -> bool {
        let mut all = true;
        for p in &self.all {
            all &= p.drain(within).await;
        }
        all
    }
}
