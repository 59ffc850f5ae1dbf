//! The running coordinator ([`Coordinator`]): configuration, store, pools, mirrors and
//! the builds in flight, and [`Coordinator::run`], which serves until a signal and then
//! shuts down in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pool::BuildletPool;
use pool::providers::local::{LocalPool, LocalPoolConfig};
use pool::providers::reverse::{ReversePool, ReversePoolConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Error;
use crate::logs::live::LiveLog;
use crate::runner::Running;
use crate::shutdown::Shutdown;
use crate::sources::Mirror;
use crate::store::{AccessStore, BuildStore, SqliteStore};
use crate::{metrics, pools, tls};

/// The file name of the build database inside the data directory.
pub const BUILDS_DB: &str = "builds.db";
/// The file name of the perf data database inside the data directory.
pub const PERF_DB: &str = "perf.db";

/// The running coordinator: configuration, stores, pool and the builds in flight.
pub struct Coordinator {
    /// The configuration, defaults filled in.
    pub config: Config,
    /// Builds, steps, logs and branch heads.
    pub store: Arc<dyn BuildStore>,
    /// API tokens and the audit log (the same database).
    pub access: Arc<dyn AccessStore>,
    /// Signs the URLs buildlets fetch from the coordinator.
    pub signer: crate::auth::signed::Signer,
    /// Where buildlets come from.
    pub pool: Arc<dyn BuildletPool>,
    /// Perf data.
    pub perf: Arc<dyn perfstore::Store>,
    /// Built trees, by (builder, revision).
    pub snapshots: Arc<dyn crate::snapshots::SnapshotStore>,
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
    /// Shutdown: draining, the cut-off and the tasks it waits for.
    pub shutdown: Shutdown,
    /// Where reverse buildlets register, when on a listener of their own.
    pub reverse_addr: Option<std::net::SocketAddr>,
    /// The web listener's TLS server (`[tls] enabled`).
    pub web_tls: Option<pool::tls::ServerTls>,
    /// The reverse pool registering through the web listener (`[tls] one_port`).
    pub one_port: Option<ReversePool>,
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
fn lock_data_dir(data: &std::path::Path) -> Result<std::fs::File, Error> {
    use std::io::{Read, Seek, Write};
    let path = data.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::Startup(format!("opening {}: {e}", path.display())))?;
    if let Err(e) = f.try_lock() {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(Error::Startup(format!(
            "the data directory {} is in use by another coordinator ({}; {e}); stop it, \
             or give this one another --data-dir",
            data.display(),
            if holder.is_empty() {
                "process unknown".to_owned()
            } else {
                holder.to_owned()
            }
        )));
    }
    let mark = |e: std::io::Error| Error::Startup(format!("writing {}: {e}", path.display()));
    f.set_len(0).map_err(mark)?;
    f.rewind().map_err(mark)?;
    writeln!(f, "PID {}", std::process::id()).map_err(mark)?;
    Ok(f)
}

/// The reverse pool for `config`, and the TLS identity buildlets see.
fn reverse_pool(config: &Config) -> Result<(ReversePool, tls::Identity), Error> {
    let startup = |e: &dyn std::fmt::Display| Error::Startup(e.to_string());
    let identity = tls::load_or_create(&config.data_dir.join("tls")).map_err(|e| startup(&e))?;
    let key = tls::master_key(&Coordinator::master_key_path(config)).map_err(|e| startup(&e))?;
    let mut cfg = ReversePoolConfig::new(key);
    cfg.limits = config.limits.to_limits();
    cfg.dialer.keep_alive = config.revdial.keep_alive();
    cfg.dialer.write_timeout = config.revdial.write_timeout();
    // One meaning for both modes: mux PINGs follow the keep-alive settings.
    cfg.mux = config
        .revdial
        .mux
        .then(|| revdial::MuxConfig::following(&cfg.dialer));
    cfg.host_types = config
        .pools
        .reverse
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    Ok((ReversePool::new(cfg), identity))
}

/// This coordinator's id, kept in `<data_dir>/instance-id` (made on first start): the
/// owner label of its containers and pods, so that after a crash the next start of the
/// same data directory finds and removes them.
fn instance_id(data: &std::path::Path) -> Result<String, Error> {
    let path = data.join("instance-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Startup(format!("reading {}: {e}", path.display()))),
    }
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| Error::Startup(format!("randomness: {e}")))?;
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|e| Error::Startup(format!("writing {}: {e}", path.display())))?;
    Ok(id)
}

/// Starts the reverse pool's own TLS listener.
async fn start_reverse(
    config: &Config,
    addr: std::net::SocketAddr,
) -> Result<(ReversePool, std::net::SocketAddr), Error> {
    let (pool, identity) = reverse_pool(config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Startup(format!("reverse listener {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Startup(e.to_string()))?;
    tracing::info!(
        addr = %bound,
        fingerprint = %identity.fingerprint,
        ca = %identity.ca_path.display(),
        "reverse buildlets register here over TLS (buildlet --reverse-type TYPE --coordinator ADDR --coordinator-ca CA --key-file KEY)"
    );
    let p = pool.clone();
    tokio::spawn(async move { p.serve(listener, Some(identity.acceptor)).await });
    Ok((pool, bound))
}

/// The web listener's TLS server: the configured certificate, or the generated one
/// (`loaded` when one-port mode has it already).
fn web_tls(config: &Config, loaded: Option<tls::Identity>) -> Result<pool::tls::ServerTls, Error> {
    let startup = |e: &dyn std::fmt::Display| Error::Startup(format!("[tls]: {e}"));
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| Error::Startup(format!("[tls]: {}: {e}", p.display())))
        };
        return pool::tls::ServerTls::from_pem(&read(cert)?, &read(key)?).map_err(|e| startup(&e));
    }
    let identity = match loaded {
        Some(identity) => identity,
        None => tls::load_or_create(&config.data_dir.join("tls")).map_err(|e| startup(&e))?,
    };
    tracing::info!(
        fingerprint = %identity.fingerprint,
        ca = %identity.ca_path.display(),
        "serving HTTPS with the generated self-signed certificate (clients trust its ca.pem)"
    );
    Ok(identity.acceptor)
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
                "{}://{}",
                if self.config.tls.enabled {
                    "https"
                } else {
                    "http"
                },
                self.web_addr.get().copied().unwrap_or(self.config.listen)
            ),
        }
    }

    /// Opens the data directory (locking it), the stores, the local buildlets and the
    /// reverse listener; puts builds a previous process held back in the queue. Nothing
    /// polls or builds until [`Coordinator::run`] (or [`Coordinator::spawn_workers`]).
    pub async fn open(config: Config) -> Result<Arc<Coordinator>, Error> {
        config.check()?;
        let startup = |e: &dyn std::fmt::Display| Error::Startup(e.to_string());
        let data = config.data_dir.clone();
        tokio::fs::create_dir_all(&data)
            .await
            .map_err(|e| Error::Startup(format!("creating {}: {e}", data.display())))?;
        let lock = lock_data_dir(&data)?;
        let store = {
            let path = data.join(BUILDS_DB);
            tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| startup(&e))??
        };
        let store = Arc::new(store);
        let signer = crate::auth::signed::Signer::load_or_create(&data).map_err(|e| {
            Error::Startup(format!("the URL signing key in {}: {e}", data.display()))
        })?;
        let orphans = store.requeue_orphans().await?;
        if orphans > 0 {
            tracing::info!(
                builds = orphans,
                "builds cut off by the previous run are queued again"
            );
        }
        let perf: Arc<dyn perfstore::Store> = match &config.perf.postgres_url {
            Some(url) => Arc::new(
                perfstore::store::postgres::PgStore::connect(url, None)
                    .await
                    .map_err(|e| startup(&e))?,
            ),
            None => Arc::new(
                perfstore::SqliteStore::open(data.join(PERF_DB))
                    .await
                    .map_err(|e| startup(&e))?,
            ),
        };
        let snapshots = crate::snapshots::DirSnapshots::open(
            &data.join("snapshots"),
            config.snapshot_max_mb.saturating_mul(1 << 20),
        )
        .map_err(|e| startup(&e))?;
        let local = LocalPool::start(LocalPoolConfig::new(
            data.join("buildlets"),
            config
                .pools
                .local
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        ))
        .await
        .map_err(|e| startup(&e))?;
        // One-port mode: the pool registers buildlets through the web listener.
        let (reverse, reverse_addr, one_port, identity) = match config.reverse_listen {
            _ if config.tls.one_port => {
                let (pool, identity) = reverse_pool(&config)?;
                (Some(pool.clone()), None, Some(pool), Some(identity))
            }
            Some(addr) => {
                let (pool, bound) = start_reverse(&config, addr).await?;
                (Some(pool), Some(bound), None, None)
            }
            None => (None, None, None, None),
        };
        let web_tls = if config.tls.enabled {
            Some(web_tls(&config, identity)?)
        } else {
            None
        };
        let mut pool = pools::Pools::default();
        pool.add(Arc::new(local), config.pools.local.keys().cloned());
        if let Some(r) = &reverse {
            pool.add(Arc::new(r.clone()), config.pools.reverse.keys().cloned());
        }
        let front_door = reverse_addr.or(config.tls.one_port.then_some(config.listen));
        pool.start_on_demand(&config, reverse.as_ref(), front_door, &instance_id(&data)?)
            .await?;
        let pool: Arc<dyn BuildletPool> = Arc::new(pool);
        let fetch_limit = std::time::Duration::from_secs(config.git_timeout_secs.max(1));
        let mirrors = config
            .sources
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Mirror::new(&data.join("git"), s, fetch_limit),
                )
            })
            .collect();
        Ok(Arc::new(Coordinator {
            config,
            access: store.clone(),
            store,
            signer,
            pool,
            perf,
            snapshots: Arc::new(snapshots),
            metrics: metrics::Metrics::default(),
            catalogue: dashboard_types::catalogue::Catalogue::builtin(),
            mirrors,
            running: Mutex::new(HashMap::new()),
            work: Notify::new(),
            poll_now: Notify::new(),
            shutdown: Shutdown::default(),
            reverse_addr,
            web_tls,
            one_port,
            web_addr: std::sync::OnceLock::new(),
            _lock: lock,
        }))
    }

    /// Serves the web UI and API on `listener` and runs the poller and the dispatcher
    /// until `signal` resolves; then drains: no new connections or builds, log streams
    /// end, running builds get `shutdown_grace_secs` to finish and are requeued if they
    /// do not.
    pub async fn run(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()>,
    ) {
        if let Ok(addr) = listener.local_addr() {
            let _ = self.web_addr.set(addr);
        }
        self.spawn_workers();
        let app = crate::api::http::router(self.clone());
        let drain = self.shutdown.drain_token();
        let front = crate::serve::Front {
            tls: self.web_tls.clone(),
            reverse: self.one_port.clone(),
            control: (
                self.config.revdial.keep_alive(),
                self.config.revdial.write_timeout(),
            ),
        };
        let serving = crate::serve::serve(
            listener,
            app,
            self.config.limits.to_limits(),
            front,
            async move { drain.cancelled().await },
        );
        let stopping = async {
            signal.await;
            tracing::info!("shutting down");
            let grace = std::time::Duration::from_secs(self.config.shutdown_grace_secs);
            self.shutdown.drain(grace).await;
            // Builds have stopped and given their buildlets back: let the containers and
            // pods they ran on be removed before the process exits.
            let within = std::time::Duration::from_secs(15);
            if !self.pool.drain(within).await {
                tracing::warn!(
                    "shutdown: on-demand buildlets still being removed after {within:?}; the \
                     next start removes what is left"
                );
            }
        };
        tokio::join!(serving, stopping);
    }

    /// The master key file in use.
    pub fn master_key_path(config: &Config) -> std::path::PathBuf {
        config
            .master_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("master.key"))
    }

    /// Starts the poller and the build dispatcher (they stop when shutdown begins).
    pub fn spawn_workers(self: &Arc<Self>) {
        tokio::spawn(crate::sources::poller::poll_loop(self.clone()));
        tokio::spawn(crate::runner::dispatch_loop(self.clone()));
    }

    /// The mirror of a source.
    pub fn mirror(&self, source: &str) -> Option<&Mirror> {
        self.mirrors.get(source)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a build as in flight; `None` if it already is.
    pub(crate) fn running_insert(&self, id: &str, host_type: &str) -> Option<Arc<Running>> {
        let mut map = self.lock_running();
        if map.contains_key(id) {
            return None;
        }
        let r = Arc::new(Running {
            log: LiveLog::new(),
            cancel: CancellationToken::new(),
            host_type: host_type.to_owned(),
        });
        map.insert(id.to_string(), r.clone());
        self.metrics.running.set(map.len() as i64);
        Some(r)
    }

    pub(crate) fn running_remove(&self, id: &str) {
        let mut map = self.lock_running();
        map.remove(id);
        self.metrics.running.set(map.len() as i64);
    }

    /// A build in flight.
    pub fn running(&self, id: &str) -> Option<Arc<Running>> {
        self.lock_running().get(id).cloned()
    }

    /// How many builds of `host_type` are in flight.
    pub fn in_flight(&self, host_type: &str) -> usize {
        self.lock_running()
            .values()
            .filter(|r| r.host_type == host_type)
            .count()
    }
}
