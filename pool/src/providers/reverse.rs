//! The reverse provider: machines behind NAT dial in (`GET /reverse`), and the pool reaches
//! each through its own revdial Dialer (spec pool-and-coordinator §5, buildlet §6.2).
//!
//! Registration checks run in upstream's order with upstream's replies: TLS (500), revdial
//! version (400), host name (400), host type (400), key (412, constant time). The pool then
//! answers Go's exact `HTTP/0.0 101`, probes `/status` through revdial, and keeps only
//! buildlets of version 23 or later. Each machine gets a health check every 10–14 s (busy
//! machines are skipped); a failed check, a dead heartbeat or a closed control connection
//! removes it, and makes the calls of a lease on it fail at once.
//!
//! Unlike upstream, a lease's machine goes back to the pool when the lease is dropped
//! (its work dir is wiped before the next lease) instead of being halted after every build;
//! [`crate::Lease::destroy`] halts it.
//!
//! A provider that starts buildlets itself (a container, a pod) tells the pool to
//! [`expect`](ReversePool::expect) one by name: that buildlet must present the key of its
//! own name ([`instance_key`]) rather than its host type's, and is handed to the provider
//! instead of joining the pool, so no port of the instance needs publishing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use buildlet_proto::client::Connect;
use buildlet_proto::{BuildletClient, HttpClientBuilder};
use dashboard_types::ReverseBuilderStatus;
use dashboard_types::keys::{builder_key, secrets_equal, verify_builder_key};
use revdial::http1::{GO_SWITCHING_PROTOCOLS, MUX_SWITCHING_PROTOCOLS, write_go_error};
use revdial::io::Io;
use revdial::{Dialer, DialerConfig, HijackedRequest, MuxConfig, PickupService, Registry, RevConn};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::machines::{self, Machines};
use crate::{BuildletPool, Lease, LeaseRequest, Result};

/// Oldest buildlet protocol version accepted.
pub const MIN_VERSION: i64 = 23;

/// How the pool watches its machines.
#[derive(Debug, Clone)]
pub struct Health {
    /// Shortest pause between checks of one machine. Default 10 s.
    pub min_interval: Duration,
    /// A random extra of up to this much is added. Default 4 s.
    pub jitter: Duration,
    /// A check must answer within this. Default 20 s.
    pub timeout: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            min_interval: Duration::from_secs(10),
            jitter: Duration::from_secs(4),
            timeout: Duration::from_secs(20),
        }
    }
}

/// Configuration of a reverse pool.
#[derive(Clone)]
pub struct ReversePoolConfig {
    /// Master key; a machine's key is hex HMAC-MD5(master, host type).
    pub master_key: Vec<u8>,
    /// Host types served, with their expected machine counts (for status pages).
    pub host_types: Vec<(String, i64)>,
    /// Health checking.
    pub health: Health,
    /// revdial settings for each machine's Dialer.
    pub dialer: DialerConfig,
    /// Refuse registrations and pickups that did not arrive over TLS (upstream: always).
    pub require_tls: bool,
    /// Connection caps and timeouts of [`ReversePool::serve`]'s listener.
    pub limits: netguard::Limits,
    /// Accept revdial's multiplexed mode from buildlets that offer it (ours; Go buildlets
    /// never do and get v2). `None` speaks only v2.
    pub mux: Option<MuxConfig>,
}

impl std::fmt::Debug for ReversePoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReversePoolConfig")
            .field("host_types", &self.host_types)
            .field("health", &self.health)
            .finish()
    }
}

impl ReversePoolConfig {
    /// Upstream's defaults for `master_key`.
    pub fn new(master_key: impl Into<Vec<u8>>) -> ReversePoolConfig {
        ReversePoolConfig {
            master_key: master_key.into(),
            host_types: Vec::new(),
            health: Health::default(),
            dialer: DialerConfig::default(),
            require_tls: true,
            limits: netguard::Limits::default(),
            mux: Some(MuxConfig::default()),
        }
    }
}

struct Inner {
    cfg: ReversePoolConfig,
    machines: Arc<Machines>,
    registry: Registry,
    dialers: Mutex<HashMap<u64, Dialer>>,
    /// Buildlets a provider started and waits for, by host name: (host type, waiter).
    expected: Mutex<HashMap<String, (String, oneshot::Sender<Arrival>)>>,
    stop: CancellationToken,
}

/// The key an expected buildlet named `hostname` registers with: HMAC-MD5 of the master key
/// over `ephemeral/` and the name, so a key leaked from one instance opens nothing else.
pub fn instance_key(master_key: &[u8], hostname: &str) -> String {
    builder_key(master_key, &format!("ephemeral/{hostname}"))
}

/// How a registration's key admitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admitted {
    /// With its host type's key: it joins the pool.
    Machine,
    /// With its instance key: it goes to whoever expects it.
    Expected,
}

/// An expected buildlet that registered and answered `/status`.
pub struct Arrival {
    /// The buildlet, reached through its revdial connection.
    pub client: Arc<dyn BuildletClient>,
    /// Its revdial connection: [`Dialer::done`] says when it went away, and closing it
    /// ends the buildlet's calls at once.
    pub dialer: Dialer,
    /// The version it advertised (`X-Go-Builder-Version`).
    pub version: String,
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrival")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A pending [`ReversePool::expect`]; dropping it stops expecting the buildlet.
#[derive(Debug)]
pub struct Expected {
    pool: ReversePool,
    hostname: String,
    rx: oneshot::Receiver<Arrival>,
}

impl Expected {
    /// Waits for the buildlet to register; `None` if the pool shut down first.
    pub async fn arrived(&mut self) -> Option<Arrival> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        // Closing first makes this expectation's sender report closed, telling it apart
        // from a newer expectation of the same name.
        self.rx.close();
        let mut expected = self.pool.expected();
        if expected
            .get(&self.hostname)
            .is_some_and(|(_, tx)| tx.is_closed())
        {
            expected.remove(&self.hostname);
        }
    }
}

/// A pool of machines that dialed in. Cheap to clone; [`ReversePool::shutdown`] ends it.
#[derive(Clone)]
pub struct ReversePool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReversePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReversePool")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

/// What became of a registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Refused with this status before the switch.
    Refused(u16),
    /// Switched, but the `/status` probe failed or reported too old a version.
    Dropped(String),
    /// In the pool under this machine id.
    Added(u64),
    /// Handed to the provider that expected it ([`ReversePool::expect`]).
    Expected,
}

fn header(req: &HijackedRequest<impl Io>, name: &str) -> String {
    req.head
        .header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

impl ReversePool {
    /// A pool with no machines yet.
    pub fn new(cfg: ReversePoolConfig) -> ReversePool {
        let machines = Arc::new(Machines::default());
        for (ht, expect) in &cfg.host_types {
            machines.serve_type(ht, *expect);
        }
        ReversePool {
            inner: Arc::new(Inner {
                cfg,
                machines,
                registry: Registry::new(),
                dialers: Mutex::new(HashMap::new()),
                expected: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// The master key builder keys derive from.
    pub fn master_key(&self) -> &[u8] {
        &self.inner.cfg.master_key
    }

    /// The service to mount at `/revdial` for this pool's machines.
    pub fn pickup_service(&self) -> PickupService {
        let p = PickupService::new(self.inner.registry.clone());
        if self.inner.cfg.require_tls {
            p
        } else {
            p.allow_plaintext()
        }
    }

    /// Disconnects every machine and stops health checks.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
        let dialers: Vec<Dialer> = self.dialers().drain().map(|(_, d)| d).collect();
        for d in dialers {
            d.close();
        }
    }

    fn dialers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Dialer>> {
        self.inner.dialers.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[allow(clippy::type_complexity)]
    fn expected(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, oneshot::Sender<Arrival>)>> {
        self.inner
            .expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Expects a buildlet of `host_type` named `hostname`, registering with
    /// [`instance_key`]`(master, hostname)`: when it registers and answers `/status` it is
    /// handed to the returned [`Expected`] instead of joining the pool. A name expected
    /// twice replaces the first expectation.
    pub fn expect(&self, hostname: &str, host_type: &str) -> Expected {
        let (tx, rx) = oneshot::channel();
        self.expected()
            .insert(hostname.to_owned(), (host_type.to_owned(), tx));
        Expected {
            pool: self.clone(),
            hostname: hostname.to_owned(),
            rx,
        }
    }

    /// Whether `key` admits a buildlet, and as what: an expected one needs its own
    /// instance key, any other its host type's key.
    fn key_admits(&self, hostname: &str, host_type: &str, key: &str) -> Option<Admitted> {
        let master = &self.inner.cfg.master_key;
        match self.expected().get(hostname) {
            Some((ht, _)) => (ht == host_type
                && secrets_equal(instance_key(master, hostname).as_bytes(), key.as_bytes()))
            .then_some(Admitted::Expected),
            None => verify_builder_key(master, host_type, key).then_some(Admitted::Machine),
        }
    }

    /// Handles `GET /reverse` on a hijacked connection.
    pub async fn handle_reverse<IO: Io>(
        &self,
        req: HijackedRequest<IO>,
    ) -> std::io::Result<Registration> {
        let cfg = &self.inner.cfg;
        let refuse = |status: u16, msg: &'static str| (status, msg);
        let version = header(&req, "x-revdial-version");
        let hostname = header(&req, "x-go-builder-hostname");
        let host_type = header(&req, "x-go-host-type");
        let key = header(&req, "x-go-builder-key");
        let offered = header(&req, "x-revdial-mux");
        let mux = cfg
            .mux
            .as_ref()
            .filter(|_| revdial::mux::offers_mux(Some(&offered)));
        let admitted = self.key_admits(&hostname, &host_type, &key);
        let refusal = if cfg.require_tls && !req.tls {
            Some(refuse(500, "buildlet registration requires SSL"))
        } else if version.is_empty() {
            Some(refuse(400, "buildlet binary is too old"))
        } else if version != "2" {
            Some(refuse(400, "unknown revdial version"))
        } else if hostname.is_empty() {
            Some(refuse(400, "missing X-Go-Builder-Hostname header"))
        } else if host_type.is_empty() {
            Some(refuse(400, "missing X-Go-Host-Type; old buildlet binary?"))
        } else if admitted.is_none() {
            Some(refuse(412, "invalid build key"))
        } else {
            None
        };
        let mut io = req.io;
        if let Some((status, msg)) = refusal {
            // Operators must be able to see why a machine never showed up.
            let cut = |s: &str| s.chars().take(100).collect::<String>();
            tracing::warn!(
                status,
                reason = msg,
                host_type = %cut(&host_type),
                hostname = %cut(&hostname),
                "refused a reverse buildlet's registration"
            );
            write_go_error(&mut io, status, &[], msg).await?;
            return Ok(Registration::Refused(status));
        }
        io.write_all(if mux.is_some() {
            MUX_SWITCHING_PROTOCOLS
        } else {
            GO_SWITCHING_PROTOCOLS
        })
        .await?;
        io.flush().await?;
        let advertised = header_version(&req.head);
        let dialer = match mux {
            Some(m) => Dialer::new_mux(io, m),
            None => Dialer::new(io, &self.inner.registry, cfg.dialer.clone()),
        };
        let as_expected = admitted == Some(Admitted::Expected);
        Ok(self
            .register(dialer, hostname, host_type, advertised, as_expected)
            .await)
    }

    async fn register(
        &self,
        dialer: Dialer,
        hostname: String,
        host_type: String,
        advertised: String,
        as_expected: bool,
    ) -> Registration {
        let d = dialer.clone();
        let connect: Connect = Arc::new(move || {
            let d = d.clone();
            Box::pin(async move { d.dial().await.map_err(std::io::Error::other) })
        });
        let machines = self.inner.machines.clone();
        let id_cell: Arc<Mutex<Option<u64>>> = Arc::default();
        let on_dead = {
            let (machines, id_cell, dialer) = (machines.clone(), id_cell.clone(), dialer.clone());
            move || {
                if let Some(id) = *id_cell.lock().unwrap_or_else(|p| p.into_inner()) {
                    machines.remove(id);
                }
                dialer.close();
            }
        };
        let http = HttpClientBuilder::new(hostname.clone(), connect)
            .on_dead(on_dead)
            .build();
        match tokio::time::timeout(self.inner.cfg.health.timeout, http.status()).await {
            Ok(Ok(st)) if st.version >= MIN_VERSION => {}
            Ok(Ok(st)) => {
                dialer.close();
                http.abort();
                return Registration::Dropped(format!(
                    "buildlet version {} is older than {MIN_VERSION}",
                    st.version
                ));
            }
            other => {
                dialer.close();
                http.abort();
                return Registration::Dropped(format!("/status probe failed: {other:?}"));
            }
        }
        let client: Arc<dyn BuildletClient> = Arc::new(http.clone());
        let waiter = as_expected
            .then(|| self.expected().remove(&hostname).map(|(_, tx)| tx))
            .flatten();
        if as_expected && waiter.is_none() {
            // Its key admits it only as the instance nobody waits for any more (the start
            // timed out): it must not join the pool as an ordinary machine.
            dialer.close();
            http.abort();
            return Registration::Dropped(format!("{hostname} is no longer expected"));
        }
        if let Some(tx) = waiter {
            let (arrival_dialer, pool) = (dialer.clone(), self.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = arrival_dialer.done() => {}
                    _ = pool.inner.stop.cancelled() => arrival_dialer.close(),
                }
                http.abort();
            });
            let arrival = Arrival {
                client,
                dialer: dialer.clone(),
                version: advertised,
            };
            if tx.send(arrival).is_err() {
                // Nobody waits any more (start-up timed out): the instance is being removed.
                dialer.close();
                return Registration::Dropped(format!("{hostname} is no longer expected"));
            }
            tracing::info!(%hostname, %host_type, revdial = dialer.mode().as_str(), "expected buildlet registered");
            return Registration::Expected;
        }
        let id = machines.add(
            &hostname,
            &host_type,
            &advertised,
            dialer.mode().as_str(),
            client,
        );
        *id_cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        self.dialers().insert(id, dialer.clone());
        tracing::info!(%hostname, %host_type, revdial = dialer.mode().as_str(), "reverse buildlet registered");
        // The control connection ending (EOF, bad control line, write timeout) removes it,
        // and fails the calls of a lease on it at once.
        let pool = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = dialer.done() => {}
                _ = pool.inner.stop.cancelled() => dialer.close(),
            }
            http.abort();
            pool.inner.machines.remove(id);
            pool.dialers().remove(&id);
        });
        tokio::spawn(self.clone().health_loop(id));
        Registration::Added(id)
    }

    async fn health_loop(self, id: u64) {
        let h = self.inner.cfg.health.clone();
        loop {
            let pause = h.min_interval + jitter(h.jitter);
            tokio::select! {
                _ = self.inner.stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            if !self.inner.machines.contains(id) {
                return;
            }
            // A busy machine is healthy by definition; its lease exercises it.
            let Some(client) = self.inner.machines.begin_check(id) else {
                continue;
            };
            match tokio::time::timeout(h.timeout, client.status()).await {
                Ok(Ok(_)) => self.inner.machines.set_idle(id),
                failed => {
                    tracing::warn!(
                        id,
                        "health check failed ({failed:?}); removing reverse buildlet"
                    );
                    self.inner.machines.remove(id);
                    if let Some(d) = self.dialers().remove(&id) {
                        d.close();
                    }
                    return;
                }
            }
        }
    }

    /// Serves `/reverse` and `/revdial` on `listener` (TLS when `tls` is given) until
    /// shutdown; any other path gets 404. A coordinator with its own front door calls
    /// [`handle_reverse`](Self::handle_reverse) and the pickup service directly instead.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        tls: Option<crate::tls::ServerTls>,
    ) {
        let pickup = self.pickup_service();
        let guard = netguard::Guard::new(self.inner.cfg.limits);
        let mut log = netguard::AcceptLog::new("reverse");
        loop {
            let (tcp, peer, permit) = tokio::select! {
                _ = self.inner.stop.cancelled() => return,
                c = netguard::accept_admitted(&listener, &guard, &mut log) => c,
            };
            let _ = tcp.set_nodelay(true);
            // Registrations become control connections: make a machine that vanishes
            // without a FIN detectable within keep_alive + write_timeout.
            let d = &self.inner.cfg.dialer;
            if let Err(e) = revdial::tcp::tune_control_socket(&tcp, d.keep_alive, d.write_timeout) {
                tracing::debug!(%peer, "tuning the socket: {e}");
            }
            let (pool, pickup, tls, guard) =
                (self.clone(), pickup.clone(), tls.clone(), guard.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let (io, is_tls) = match tls {
                    Some(a) => match guard.handshake(a.accept(tcp)).await {
                        Ok(s) => (RevConn::new(s), true),
                        Err(e) => {
                            tracing::debug!(%peer, "{e}");
                            return;
                        }
                    },
                    None => (RevConn::new(tcp), false),
                };
                let read = HijackedRequest::read_or_answer(io, is_tls);
                let Ok(Some(req)) = tokio::time::timeout(guard.limits().header_read, read).await
                else {
                    return;
                };
                match req.head.path() {
                    "/reverse" => {
                        let _ = pool.handle_reverse(req).await;
                    }
                    "/revdial" => {
                        let _ = pickup.handle(req).await;
                    }
                    _ => {
                        let mut io = req.io;
                        let _ = write_go_error(&mut io, 404, &[], "404 page not found").await;
                    }
                }
            });
        }
    }
}

fn header_version(head: &revdial::http1::RequestHead) -> String {
    head.header("x-go-builder-version")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    max.mul_f64(f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX))
}

#[async_trait]
impl BuildletPool for ReversePool {
    async fn lease(&self, req: LeaseRequest) -> Result<Lease> {
        machines::lease(&self.inner.machines, req).await
    }

    fn status(&self) -> ReverseBuilderStatus {
        self.inner.machines.status()
    }
}
