//! Ephemeral buildlets: one fresh instance (a container, a pod) per lease, removed when the
//! lease ends, as upstream's container builders were. What runs instances is a
//! [`Backend`]; this module holds what every backend shares:
//!
//! - **Quotas first.** A lease reserves its host type's CPUs and memory (and one instance)
//!   in the provider's [`Ledger`] before anything is created, waiting in upstream's priority
//!   order and reporting its queue position. The reservation is released only once the
//!   instance is gone again, on every path: a failed create, a start-up timeout, a
//!   cancelled lease, the end of the lease.
//! - **Reverse registration.** The instance's buildlet dials the coordinator's reverse
//!   front door under its own name with its own key ([`ReversePool::expect`]), so no port
//!   of the instance is published and a key leaked from one opens nothing else.
//! - **Start-up is bounded.** An instance that has not registered within
//!   [`EphemeralConfig::startup_timeout`] is removed and the lease fails with the backend's
//!   last word on it (an exited container, `ImagePullBackOff`, `Unschedulable`); so does one
//!   the backend reports failed sooner.
//! - **Nothing is orphaned.** Instances carry the owner's label; a sweep at start and every
//!   [`EphemeralConfig::sweep_interval`] removes those of this owner no lease holds (left by
//!   a crash or a failed removal).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use dashboard_types::{BuildletWaitStatus, ReverseBuilder, ReverseBuilderStatus};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::reverse::{ReversePool, instance_key};
use crate::ledger::{Ledger, Reservation, Resources};
use crate::{BuildletPool, Error, Lease, LeaseRequest, ProviderStatus, Result};

/// The label every instance carries, with the owning coordinator's id as its value.
pub const OWNER_LABEL: &str = "xbuild-owner";
/// The label naming an instance's host type (sanitised to a label value).
pub const HOST_TYPE_LABEL: &str = "xbuild-host-type";

/// An error from a backend, in its own words.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Something that runs one buildlet instance per lease: a container engine, a cluster.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `container`, `kubernetes`: names the provider in errors and on `/status`.
    fn kind(&self) -> &'static str;

    /// Creates and starts the instance.
    async fn create(&self, spec: &InstanceSpec<'_>) -> Result<(), BackendError>;

    /// How the instance's start is going: [`Starting`](InstanceState::Starting) while it
    /// may still come up, [`Failed`](InstanceState::Failed) once it cannot.
    async fn state(&self, name: &str) -> Result<InstanceState, BackendError>;

    /// Removes the instance, stopping it first; one that does not exist is not an error.
    async fn delete(&self, name: &str) -> Result<(), BackendError>;

    /// Names of the instances labelled [`OWNER_LABEL`]` = owner`.
    async fn list(&self, owner: &str) -> Result<Vec<String>, BackendError>;
}

/// How an instance's start is going, in the backend's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// It may still come up; the note says what holds it (`Unschedulable: 0/3 nodes are
    /// available`), if anything.
    Starting(Option<String>),
    /// It cannot come up: it exited, was killed for memory, its image cannot be pulled.
    Failed(String),
}

/// A Kubernetes toleration (ignored by the container backend).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toleration {
    /// The taint key; empty with `Exists` tolerates every taint.
    pub key: String,
    /// `Equal` or `Exists`.
    pub operator: String,
    /// The taint value (with `Equal`).
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule`, `NoExecute`, or empty for all.
    pub effect: String,
}

/// What an instance of one host type is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostSpec {
    /// The image holding the buildlet (see `coordinator image build`).
    pub image: String,
    /// CPUs the instance may use, reserved in the ledger.
    pub cpus: u64,
    /// Memory in MiB the instance may use, reserved in the ledger.
    pub memory_mib: u64,
    /// Extra environment of the buildlet.
    pub env: Vec<(String, String)>,
    /// Kubernetes only: the pod's node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes only: the pod's tolerations.
    pub tolerations: Vec<Toleration>,
}

impl HostSpec {
    /// `image` with `cpus` CPUs and `memory_mib` MiB, nothing else.
    pub fn new(image: impl Into<String>, cpus: u64, memory_mib: u64) -> HostSpec {
        HostSpec {
            image: image.into(),
            cpus,
            memory_mib,
            env: Vec::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
        }
    }

    /// With this buildlet environment.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> HostSpec {
        self.env = env;
        self
    }

    /// With this node selector and these tolerations (Kubernetes).
    pub fn with_scheduling(
        mut self,
        node_selector: BTreeMap<String, String>,
        tolerations: Vec<Toleration>,
    ) -> HostSpec {
        self.node_selector = node_selector;
        self.tolerations = tolerations;
        self
    }
}

/// One instance to create.
#[derive(Debug)]
pub struct InstanceSpec<'a> {
    /// Its unique name, also the buildlet's host name (a DNS label: `[a-z0-9-]`, ≤ 63).
    pub name: &'a str,
    /// Its host type.
    pub host_type: &'a str,
    /// Image and resources.
    pub host: &'a HostSpec,
    /// Labels to set ([`OWNER_LABEL`], [`HOST_TYPE_LABEL`]).
    pub labels: BTreeMap<String, String>,
    /// The command line to run (the buildlet in reverse mode).
    pub command: Vec<String>,
    /// Its environment, secrets included: the builder key (`GO_BUILD_KEY`) and the
    /// coordinator's CA.
    pub env: Vec<(String, String)>,
}

/// How an ephemeral provider runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EphemeralConfig {
    /// This coordinator's id, the value of [`OWNER_LABEL`]: instances with it and no lease
    /// are swept.
    pub owner: String,
    /// Host types served, with what their instances are.
    pub host_types: BTreeMap<String, HostSpec>,
    /// Most instances, CPUs and MiB in use at once.
    pub limits: Resources,
    /// An instance must register within this. Default 60 s.
    pub startup_timeout: Duration,
    /// Pause between sweeps of orphaned instances. Default 60 s.
    pub sweep_interval: Duration,
    /// `host:port` of the reverse front door as instances reach it.
    pub coordinator: String,
    /// The PEM the buildlet trusts for the coordinator's certificate; `None` skips
    /// verification (upstream's dev mode).
    pub coordinator_ca_pem: Option<String>,
    /// The buildlet's path inside the image.
    pub buildlet_path: String,
}

impl EphemeralConfig {
    /// A provider owned by `owner` whose instances dial `coordinator`, with the defaults.
    pub fn new(
        owner: impl Into<String>,
        coordinator: impl Into<String>,
        host_types: BTreeMap<String, HostSpec>,
        limits: Resources,
    ) -> EphemeralConfig {
        EphemeralConfig {
            owner: owner.into(),
            host_types,
            limits,
            startup_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(60),
            coordinator: coordinator.into(),
            coordinator_ca_pem: None,
            buildlet_path: DEFAULT_BUILDLET_PATH.into(),
        }
    }

    /// With this start-up timeout.
    pub fn startup_timeout(mut self, d: Duration) -> Self {
        self.startup_timeout = d;
        self
    }

    /// With this sweep interval.
    pub fn sweep_interval(mut self, d: Duration) -> Self {
        self.sweep_interval = d;
        self
    }

    /// Trusting this PEM for the coordinator's certificate.
    pub fn coordinator_ca_pem(mut self, pem: Option<String>) -> Self {
        self.coordinator_ca_pem = pem;
        self
    }
}

/// Where `coordinator image build` puts the buildlet.
pub const DEFAULT_BUILDLET_PATH: &str = "/usr/local/bin/buildlet";

#[derive(Default)]
struct Counters {
    /// Instances being created or waited for, by host type.
    creating: BTreeMap<String, u64>,
    /// Leases waiting for quota, by host type.
    waiting: BTreeMap<String, u64>,
    /// Live leases: name → (host type, since, version, revdial mode).
    leased: BTreeMap<String, (String, Instant, String, &'static str)>,
    started: u64,
    failures: u64,
    last_failure: Option<String>,
    swept: u64,
}

struct Inner<B> {
    cfg: EphemeralConfig,
    backend: B,
    reverse: ReversePool,
    ledger: Ledger,
    /// Names of instances a lease holds or is creating: never swept.
    live: Mutex<HashSet<String>>,
    counters: Mutex<Counters>,
    next: AtomicU64,
    stop: CancellationToken,
}

/// A pool of ephemeral buildlets on backend `B`. Cheap to clone; dropping the last clone
/// stops the sweeper (instances still leased are removed as their leases end).
pub struct EphemeralPool<B: Backend> {
    inner: Arc<Inner<B>>,
}

impl<B: Backend> Clone for EphemeralPool<B> {
    fn clone(&self) -> Self {
        EphemeralPool {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for EphemeralPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralPool")
            .field("kind", &self.inner.backend.kind())
            .field("ledger", &self.inner.ledger)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Inner<B> {
    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> MutexGuard<'_, HashSet<String>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, reason: &str) {
        let mut c = self.counters();
        c.failures += 1;
        c.last_failure = Some(reason.to_owned());
    }

    /// A fresh name: `xb-`, the owner's first 8 characters, the host type, a random tag.
    fn name_for(&self, host_type: &str) -> String {
        let mut tag = [0u8; 4];
        getrandom::fill(&mut tag).expect("OS randomness");
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let owner: String = dns_label(&self.cfg.owner).chars().take(8).collect();
        let ht: String = dns_label(host_type).chars().take(32).collect();
        let ht = ht.trim_matches('-');
        format!(
            "xb-{owner}-{ht}-{n}{}",
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    /// Removes instances of this owner that no lease holds; returns how many.
    async fn sweep(&self) -> std::result::Result<usize, BackendError> {
        let names = self.backend.list(&self.cfg.owner).await?;
        let orphans: Vec<String> = {
            let live = self.live();
            names.into_iter().filter(|n| !live.contains(n)).collect()
        };
        let mut removed = 0;
        for name in orphans {
            match self.backend.delete(&name).await {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(%name, kind = self.backend.kind(), "removing an orphaned instance: {e}")
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                kind = self.backend.kind(),
                "swept orphaned buildlet instances"
            );
            self.counters().swept += removed as u64;
        }
        Ok(removed)
    }
}

/// Lowercase letters, digits and `-` (a DNS label's alphabet, which every backend accepts
/// in names and label values).
fn dns_label(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect()
}

/// Counts something in progress per host type while it lives.
struct Gauge<B: Backend> {
    inner: Arc<Inner<B>>,
    host_type: String,
    which: fn(&mut Counters) -> &mut BTreeMap<String, u64>,
}

impl<B: Backend> Gauge<B> {
    fn new(
        inner: &Arc<Inner<B>>,
        host_type: &str,
        which: fn(&mut Counters) -> &mut BTreeMap<String, u64>,
    ) -> Gauge<B> {
        *which(&mut inner.counters())
            .entry(host_type.to_owned())
            .or_default() += 1;
        Gauge {
            inner: inner.clone(),
            host_type: host_type.to_owned(),
            which,
        }
    }
}

impl<B: Backend> Drop for Gauge<B> {
    fn drop(&mut self) {
        let mut c = self.inner.counters();
        if let Some(n) = (self.which)(&mut c).get_mut(&self.host_type) {
            *n = n.saturating_sub(1);
        }
    }
}

/// An instance from the moment its name is reserved: when dropped it is removed from the
/// backend, and only then are its name and quota released.
struct Instance<B: Backend> {
    inner: Arc<Inner<B>>,
    name: String,
    reservation: Option<Reservation>,
    runtime: tokio::runtime::Handle,
    /// Set once the backend has answered the create: a lease cancelled while the create
    /// was in flight cannot know whether the instance will appear.
    settled: bool,
}

/// How long an engine may take to finish a create whose caller went away.
const LATE_CREATE: Duration = Duration::from_secs(2);

impl<B: Backend> Drop for Instance<B> {
    fn drop(&mut self) {
        let (inner, name, reservation) = (
            self.inner.clone(),
            std::mem::take(&mut self.name),
            self.reservation.take(),
        );
        inner.counters().leased.remove(&name);
        let settled = self.settled;
        self.runtime.spawn(async move {
            // Two tries; what still stands after them is the sweeper's.
            for attempt in 0..2 {
                match inner.backend.delete(&name).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(%name, attempt, kind = inner.backend.kind(), "removing a buildlet instance: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if !settled {
                // The create may still complete after the removal found nothing: remove
                // again once it would have, before the quota is given back.
                tokio::time::sleep(LATE_CREATE).await;
                if let Err(e) = inner.backend.delete(&name).await {
                    tracing::warn!(%name, kind = inner.backend.kind(), "removing a late instance: {e}");
                }
            }
            inner.live().remove(&name);
            drop(reservation);
        });
    }
}

impl<B: Backend> EphemeralPool<B> {
    /// Starts the provider: sweeps this owner's orphans once (an unreachable backend is an
    /// error here, naming it), then every `sweep_interval` in the background.
    /// Registrations arrive through `reverse`, which must be served by the coordinator's
    /// reverse front door.
    pub async fn start(
        cfg: EphemeralConfig,
        backend: B,
        reverse: ReversePool,
    ) -> std::result::Result<EphemeralPool<B>, BackendError> {
        let ledger = Ledger::new(cfg.limits);
        let pool = EphemeralPool {
            inner: Arc::new(Inner {
                cfg,
                backend,
                reverse,
                ledger,
                live: Mutex::new(HashSet::new()),
                counters: Mutex::new(Counters::default()),
                next: AtomicU64::new(0),
                stop: CancellationToken::new(),
            }),
        };
        pool.inner.sweep().await?;
        let weak = Arc::downgrade(&pool.inner);
        let (stop, every) = (pool.inner.stop.clone(), pool.inner.cfg.sweep_interval);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.sweep().await {
                    tracing::warn!(
                        kind = inner.backend.kind(),
                        "sweeping orphaned instances: {e}"
                    );
                }
            }
        });
        Ok(pool)
    }

    /// Runs a sweep now; returns how many orphans it removed.
    pub async fn sweep(&self) -> std::result::Result<usize, BackendError> {
        self.inner.sweep().await
    }

    /// The quota ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// Creates the instance and waits for its buildlet; on any error the instance (whose
    /// drop removes it) goes with it.
    async fn provision(
        &self,
        instance: &mut Instance<B>,
        host_type: &str,
        host: &HostSpec,
        progress: Option<&tokio::sync::watch::Sender<BuildletWaitStatus>>,
    ) -> Result<super::reverse::Arrival> {
        let inner = &self.inner;
        let kind = inner.backend.kind();
        let name = instance.name.clone();
        let name = name.as_str();
        let failed = |reason: String| {
            inner.fail(&format!("{name}: {reason}"));
            Error::Provision {
                kind,
                name: name.to_owned(),
                reason,
            }
        };
        if let Some(p) = progress {
            let _ = p.send(BuildletWaitStatus {
                message: format!("starting {kind} {name}"),
                ahead: 0,
            });
        }
        let mut expected = inner.reverse.expect(name, host_type);
        let mut env = host.env.clone();
        env.push((
            "GO_BUILD_KEY".into(),
            instance_key(inner.reverse.master_key(), name),
        ));
        if let Some(pem) = &inner.cfg.coordinator_ca_pem {
            env.push(("BUILDLET_COORDINATOR_CA_PEM".into(), pem.clone()));
        }
        let spec = InstanceSpec {
            name,
            host_type,
            host,
            labels: BTreeMap::from([
                (OWNER_LABEL.to_owned(), inner.cfg.owner.clone()),
                (HOST_TYPE_LABEL.to_owned(), dns_label(host_type)),
            ]),
            command: vec![
                inner.cfg.buildlet_path.clone(),
                format!("--reverse-type={host_type}"),
                format!("--coordinator={}", inner.cfg.coordinator),
                format!("--hostname={name}"),
                "--workdir=/workdir".into(),
                "--halt=false".into(),
                // The instance's own loopback: no port of it is ever published.
                "--health-addr=127.0.0.1:0".into(),
            ],
            env,
        };
        let created = inner.backend.create(&spec).await;
        instance.settled = true;
        created.map_err(|e| failed(format!("creating: {e}")))?;
        let deadline = tokio::time::sleep(inner.cfg.startup_timeout);
        tokio::pin!(deadline);
        let mut note: Option<String> = None;
        loop {
            tokio::select! {
                a = expected.arrived() => return a.ok_or(Error::Closed),
                _ = &mut deadline => {
                    let state = note.map(|w| format!(" (last state: {w})")).unwrap_or_default();
                    return Err(failed(format!(
                        "its buildlet did not register within {:?}{state}; check that \
                         instances reach the coordinator at {}",
                        inner.cfg.startup_timeout, inner.cfg.coordinator
                    )));
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let now = match inner.backend.state(name).await {
                        Ok(InstanceState::Failed(why)) => return Err(failed(why)),
                        Ok(InstanceState::Starting(n)) => n,
                        Err(e) => Some(e.to_string()),
                    };
                    if let (Some(p), Some(n)) = (progress, now.as_deref().filter(|_| now != note)) {
                        let _ = p.send(BuildletWaitStatus {
                            message: format!("starting {kind} {name}: {n}"),
                            ahead: 0,
                        });
                    }
                    note = now;
                }
            }
        }
    }

    /// Stops the sweeper. Leased instances are removed as their leases end.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}

#[async_trait]
impl<B: Backend> BuildletPool for EphemeralPool<B> {
    async fn lease(&self, req: LeaseRequest) -> Result<Lease> {
        let inner = &self.inner;
        let host_type = req.item.host_type.clone();
        let host = inner
            .cfg
            .host_types
            .get(&host_type)
            .ok_or_else(|| Error::UnknownHostType(host_type.clone()))?;
        let name = inner.name_for(&host_type);
        let need = Resources {
            instances: 1,
            cpus: host.cpus,
            memory_mib: host.memory_mib,
        };
        let reservation = {
            let _waiting = Gauge::new(inner, &host_type, |c| &mut c.waiting);
            inner
                .ledger
                .reserve_reporting(&name, need, req.item.clone(), req.progress.as_ref())
                .await?
        };
        inner.live().insert(name.clone());
        let mut instance = Instance {
            inner: inner.clone(),
            name: name.clone(),
            reservation: Some(reservation),
            runtime: tokio::runtime::Handle::current(),
            settled: false,
        };
        let arrival = {
            let _creating = Gauge::new(inner, &host_type, |c| &mut c.creating);
            self.provision(&mut instance, &host_type, host, req.progress.as_ref())
                .await?
        };
        {
            let mut c = inner.counters();
            c.started += 1;
            c.leased.insert(
                name.clone(),
                (
                    host_type.clone(),
                    Instant::now(),
                    arrival.version,
                    arrival.dialer.mode().as_str(),
                ),
            );
        }
        let dialer = arrival.dialer;
        // Whether returned or destroyed, an ephemeral instance is never reused.
        Ok(Lease::new(name, host_type, arrival.client, move |_how| {
            dialer.close();
            drop(instance);
        }))
    }

    fn status(&self) -> ReverseBuilderStatus {
        let c = self.inner.counters();
        let mut st = ReverseBuilderStatus::default();
        let now = Instant::now();
        for ht in self.inner.cfg.host_types.keys() {
            let h = st.host(ht);
            h.waiters = c.waiting.get(ht).copied().unwrap_or(0) as i64;
        }
        for (name, (ht, since, version, revdial)) in &c.leased {
            let h = st.host(ht);
            h.connected += 1;
            h.busy += 1;
            let secs = now.duration_since(*since).as_secs_f64();
            h.machines.insert(
                name.clone(),
                ReverseBuilder {
                    name: name.clone(),
                    host_type: ht.clone(),
                    connected_sec: secs,
                    idle_sec: 0.0,
                    busy_sec: secs,
                    version: version.clone(),
                    busy: true,
                    revdial: revdial.to_string(),
                },
            );
        }
        st
    }

    /// Stops the sweeper and waits, up to `within`, until every instance is removed (the
    /// leases having ended), so that no removal is cut off by the process exiting; what
    /// is cut off is swept at the next start.
    async fn drain(&self, within: Duration) -> bool {
        self.shutdown();
        let deadline = Instant::now() + within;
        loop {
            if self.inner.live().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn providers(&self) -> Vec<ProviderStatus> {
        let c = self.inner.counters();
        vec![ProviderStatus {
            kind: self.inner.backend.kind(),
            host_types: self.inner.cfg.host_types.keys().cloned().collect(),
            limits: self.inner.ledger.limits(),
            used: self.inner.ledger.used(),
            creating: c.creating.values().sum(),
            waiting: c.waiting.values().sum(),
            running: c.leased.len() as u64,
            started: c.started,
            failures: c.failures,
            last_failure: c.last_failure.clone(),
            swept: c.swept,
        }]
    }
}

impl<B> Drop for Inner<B> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_label("host-Linux_amd64.x"), "host-linux-amd64-x");
        assert_eq!(dns_label("ü/é"), "---");
    }
}
