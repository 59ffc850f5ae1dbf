//! The local provider, the embedded default: real buildlet servers (the same code as the
//! `buildlet` binary) running in-process on loopback, each with its own work dir and a
//! random password (any local process can reach a loopback port).
//!
//! A buildlet that is destroyed (its lease ended in [`Lease::destroy`], or wiping its work
//! dir failed) is stopped and replaced by a fresh one, so the pool keeps its size: a
//! local pool has no other source of machines.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use buildlet_proto::server::{Config, serve};
use buildlet_proto::{BuildletClient, HttpClient};
use dashboard_types::ReverseBuilderStatus;
use tokio_util::sync::CancellationToken;

use super::machines::{self, Machines};
use crate::{BuildletPool, Error, Lease, LeaseRequest, Release, Result};

/// How many local buildlets to run, per host type.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LocalPoolConfig {
    /// Parent of every buildlet's work dir (`<base>/<host type>/<n>`).
    pub base_dir: PathBuf,
    /// `(host type, machines)`.
    pub machines: Vec<(String, usize)>,
}

impl LocalPoolConfig {
    /// `machines` buildlets per host type, with work dirs under `base_dir`.
    pub fn new(base_dir: PathBuf, machines: Vec<(String, usize)>) -> Self {
        LocalPoolConfig { base_dir, machines }
    }
}

/// A pool of in-process buildlets on 127.0.0.1. Dropping it stops them.
pub struct LocalPool {
    inner: Arc<Inner>,
}

struct Inner {
    machines: Arc<Machines>,
    stop: CancellationToken,
    base_dir: PathBuf,
    /// Buildlets started so far, for unique names and work dirs.
    started: AtomicUsize,
    /// Each running buildlet server's stop token, by machine name.
    servers: std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>,
}

impl std::fmt::Debug for LocalPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPool").finish_non_exhaustive()
    }
}

impl Inner {
    /// Starts one buildlet of `host_type` and adds it to the pool.
    async fn start_one(&self, host_type: &str) -> Result<()> {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let workdir = self.base_dir.join(host_type).join(n.to_string());
        if workdir.exists() {
            std::fs::remove_dir_all(&workdir)?;
        }
        std::fs::create_dir_all(&workdir)?;
        let mut config = Config::new(workdir);
        config.password = random_password();
        let client: Arc<dyn BuildletClient> = Arc::new(
            HttpClient::tcp(&addr)
                .password(config.password.clone())
                .build(),
        );
        let token = self.stop.child_token();
        let name = format!("local-{host_type}-{n}");
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), token.clone());
        tokio::spawn(serve(
            listener,
            config,
            async move { token.cancelled().await },
        ));
        self.machines.add(
            &name,
            host_type,
            &buildlet_proto::api::VERSION.to_string(),
            "",
            client,
        );
        Ok(())
    }

    /// Stops the server of machine `name`, taken out of the pool, and starts its
    /// successor, retrying while starting fails.
    fn replace(self: &Arc<Self>, name: &str, host_type: String) {
        if let Some(token) = self
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        {
            token.cancel();
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(100);
            while !me.stop.is_cancelled() {
                match me.start_one(&host_type).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(%host_type, error = %e, "replacing a local buildlet");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(10));
                    }
                }
            }
        });
    }
}

/// 32 random hex digits.
fn random_password() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl LocalPool {
    /// Starts the buildlets (inside a tokio runtime).
    pub async fn start(cfg: LocalPoolConfig) -> Result<LocalPool> {
        let inner = Arc::new(Inner {
            machines: Arc::new(Machines::default()),
            stop: CancellationToken::new(),
            base_dir: cfg.base_dir,
            started: AtomicUsize::new(0),
            servers: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        for (host_type, n) in &cfg.machines {
            inner.machines.serve_type(host_type, *n as i64);
            for _ in 0..*n {
                inner.start_one(host_type).await?;
            }
        }
        Ok(LocalPool { inner })
    }
}

impl Drop for LocalPool {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

#[async_trait]
impl BuildletPool for LocalPool {
    async fn lease(&self, req: LeaseRequest) -> Result<Lease> {
        let host_type = req.item.host_type.clone();
        let lease = match machines::lease(&self.inner.machines, req).await {
            Ok(lease) => lease,
            Err(Error::Prepare { name, source }) => {
                // The machine failed its wipe and left the pool: start its successor.
                self.inner.replace(&name, host_type);
                return Err(Error::Prepare { name, source });
            }
            Err(e) => return Err(e),
        };
        let (name, client) = (lease.name().to_owned(), lease.client_arc());
        let inner = self.inner.clone();
        Ok(Lease::new(
            name,
            host_type.clone(),
            client,
            move |how| match how {
                Release::Return => drop(lease),
                Release::Destroy => {
                    let name = lease.name().to_owned();
                    lease.destroy();
                    inner.replace(&name, host_type);
                }
            },
        ))
    }

    fn status(&self) -> ReverseBuilderStatus {
        self.inner.machines.status()
    }
}
