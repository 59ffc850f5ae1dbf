//! The reference coordinator: finds work, runs builds on buildlets, keeps results and logs,
//! and shows them.
//!
//! It owns no protocol: it composes the workspace's crates. Work comes from a git poller
//! ([`poller`]) and an HTTP API; the build runner ([`runner`]) leases buildlets from a
//! `pool` provider, pushes a `git archive` of the commit, runs the builder's steps and
//! streams their output into a live log ([`livelog`]); results and logs live in SQLite
//! ([`db`]); the web UI ([`web`]) shows the grid (also as the dashboard's JSON), logs,
//! status and metrics, and mounts perfstore under `/perf`.
//!
//! # Layout
//! - [`config`]: the TOML configuration and its zero-config defaults.
//! - [`git`]: mirrors, new commits, archives (the `git` CLI).
//! - [`db`], [`livelog`], [`runner`], [`poller`], [`metrics`], [`web`].

pub mod config;
pub mod db;
pub mod git;
pub mod livelog;
pub mod metrics;
pub mod poller;
pub mod pools;
pub mod runner;
pub mod serve;
pub mod tls;
pub mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pool::BuildletPool;
use pool::providers::local::{LocalPool, LocalPoolConfig};
use pool::providers::reverse::{ReversePool, ReversePoolConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::git::Mirror;
use crate::livelog::LiveLog;
use crate::runner::Running;

/// The file name of the build database inside the data directory.
pub const BUILDS_DB: &str = "builds.db";
/// The file name of the perf data database inside the data directory.
pub const PERF_DB: &str = "perf.db";

/// The running coordinator: configuration, stores, pool and the builds in flight.
pub struct Coordinator {
    /// The configuration, defaults filled in.
    pub config: Config,
    /// Builds and logs.
    pub db: Db,
    /// Where buildlets come from.
    pub pool: Arc<dyn BuildletPool>,
    /// Perf data.
    pub perf: Arc<dyn perfstore::Store>,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// The built-in builder catalogue, for builders' `policy`.
    pub catalogue: dashboard_types::catalogue::Catalogue,
    mirrors: HashMap<String, Mirror>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    /// Signalled when builds are queued.
    pub work: Notify,
    /// Signalled to poll the sources now.
    pub poll_now: Notify,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
    /// Where reverse buildlets register, when enabled.
    pub reverse_addr: Option<std::net::SocketAddr>,
    /// The address the web listener was bound to (set once it is).
    pub web_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The data directory's lock, held for the coordinator's life.
    _lock: std::fs::File,
}

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "coordinator.lock";

/// Takes the data directory for this process: two coordinators on one directory would
/// run each other's builds. The lock is the kernel's (released when the process ends,
/// however it ends); the file also says which process holds it.
fn lock_data_dir(data: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    if let Err(e) = f.try_lock() {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        anyhow::bail!(
            "the data directory {} is in use by another coordinator ({}; {e}); stop it, \
             or give this one another --data-dir",
            data.display(),
            if holder.is_empty() {
                "process unknown".to_owned()
            } else {
                holder.to_owned()
            }
        );
    }
    f.set_len(0)?;
    f.rewind()?;
    writeln!(f, "PID {}", std::process::id())?;
    Ok(f)
}

/// Starts the reverse pool's TLS listener.
async fn start_reverse(
    config: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(
    ReversePool,
    std::collections::BTreeSet<String>,
    std::net::SocketAddr,
)> {
    let identity = tls::load_or_create(&config.data_dir.join("tls"))?;
    let key = tls::master_key(&Coordinator::master_key_path(config))?;
    let mut cfg = ReversePoolConfig::new(key);
    cfg.limits = config.limits.to_limits();
    cfg.dialer.keep_alive = std::time::Duration::from_secs(config.revdial.keep_alive_secs.max(1));
    cfg.dialer.write_timeout =
        std::time::Duration::from_secs(config.revdial.write_timeout_secs.max(1));
    cfg.host_types = config
        .pools
        .reverse
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let pool = ReversePool::new(cfg);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("reverse listener {addr}: {e}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        fingerprint = %identity.fingerprint,
        ca = %identity.ca_path.display(),
        "reverse buildlets register here over TLS (buildlet --reverse-type TYPE --coordinator ADDR --coordinator-ca CA --key-file KEY)"
    );
    let bound = listener.local_addr()?;
    let p = pool.clone();
    tokio::spawn(async move { p.serve(listener, Some(identity.acceptor)).await });
    Ok((pool, config.pools.reverse.keys().cloned().collect(), bound))
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// The base of links in replies: `public_url` from the configuration, or `http://`
    /// and the address the web listener is bound to. Never a request's `Host` header,
    /// which any client can set.
    pub fn base_url(&self) -> String {
        match &self.config.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!(
                "http://{}",
                self.web_addr.get().copied().unwrap_or(self.config.listen)
            ),
        }
    }

    /// Opens the data directory and starts the local buildlets (no polling or building
    /// yet: see [`Coordinator::spawn_workers`]).
    pub async fn open(config: Config) -> anyhow::Result<Arc<Coordinator>> {
        let data = config.data_dir.clone();
        tokio::fs::create_dir_all(&data).await?;
        let lock = lock_data_dir(&data)?;
        let db = {
            let path = data.join(BUILDS_DB);
            tokio::task::spawn_blocking(move || Db::open(&path)).await??
        };
        let perf: Arc<dyn perfstore::Store> = match &config.perf.postgres_url {
            Some(url) => Arc::new(perfstore::store::postgres::PgStore::connect(url, None).await?),
            None => Arc::new(perfstore::SqliteStore::open(data.join(PERF_DB)).await?),
        };
        let local = LocalPool::start(LocalPoolConfig {
            base_dir: data.join("buildlets"),
            machines: config
                .pools
                .local
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        })
        .await?;
        let reverse = match config.reverse_listen {
            Some(addr) => Some(start_reverse(&config, addr).await?),
            None => None,
        };
        let (reverse, reverse_addr) = match reverse {
            Some((pool, types, addr)) => (Some((pool, types)), Some(addr)),
            None => (None, None),
        };
        let pool = pools::Pools { local, reverse };
        let mirrors = config
            .sources
            .iter()
            .map(|s| (s.name.clone(), Mirror::new(&data.join("git"), s)))
            .collect();
        Ok(Arc::new(Coordinator {
            config,
            db,
            pool: Arc::new(pool),
            perf,
            metrics: metrics::Metrics::default(),
            catalogue: dashboard_types::catalogue::Catalogue::builtin(),
            mirrors,
            running: Mutex::new(HashMap::new()),
            work: Notify::new(),
            poll_now: Notify::new(),
            shutdown: CancellationToken::new(),
            reverse_addr,
            web_addr: std::sync::OnceLock::new(),
            _lock: lock,
        }))
    }

    /// The master key file in use.
    pub fn master_key_path(config: &Config) -> std::path::PathBuf {
        config
            .master_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("master.key"))
    }

    /// Starts the poller and the build dispatcher.
    pub fn spawn_workers(self: &Arc<Self>) {
        tokio::spawn(poller::poll_loop(self.clone()));
        tokio::spawn(runner::dispatch_loop(self.clone()));
    }

    /// The mirror of a source.
    pub fn mirror(&self, source: &str) -> Option<&Mirror> {
        self.mirrors.get(source)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a build as in flight; `None` if it already is.
    fn running_insert(&self, id: &str) -> Option<Arc<Running>> {
        let mut map = self.lock_running();
        if map.contains_key(id) {
            return None;
        }
        let r = Arc::new(Running {
            log: LiveLog::new(),
            cancel: self.shutdown.child_token(),
        });
        map.insert(id.to_string(), r.clone());
        self.metrics.running.set(map.len() as i64);
        Some(r)
    }

    fn running_remove(&self, id: &str) {
        let mut map = self.lock_running();
        map.remove(id);
        self.metrics.running.set(map.len() as i64);
    }

    /// A build in flight.
    pub fn running(&self, id: &str) -> Option<Arc<Running>> {
        self.lock_running().get(id).cloned()
    }
}
