//! Buildlet pools: hand out buildlets by host type, fairly and without ever leaking one.
//!
//! A [`BuildletPool`] gives out [`Lease`]s. A lease owns a `BuildletClient` and gives the
//! buildlet back when dropped, so no code path (error, panic, cancelled task) can leak
//! one. Waiting is fair: every host type has a [`queue::Quota`] ordered by upstream's
//! priorities, waiters report their position and cancel by being dropped.
//!
//! # Layout
//! - [`queue`] holds the per-host-type quota queues.
//! - [`lease`] is the RAII lease.
//! - [`ledger`] accounts instances, CPUs and memory against limits.
//! - [`providers`] has `local` (in-process buildlet servers on loopback, the embedded
//!   default), `reverse` (machines that dial in over revdial), and the on-demand
//!   `ephemeral` pool with its backends `container` (Docker or Podman, default feature
//!   `container`) and `kubernetes` (feature `kubernetes`): one instance per lease.
//! - [`tls`] is the reverse front door's TLS server, which Go's buildlets can reach.
//! - `conformance` (feature `conformance`) is the suite every provider passes; `testing`
//!   holds the fixtures of the on-demand providers' tests.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
pub mod lease;
pub mod ledger;
pub mod providers;
pub mod queue;
#[cfg(any(test, feature = "conformance"))]
pub mod testing;
pub mod tls;

use async_trait::async_trait;
use dashboard_types::{BuildletWaitStatus, ReverseBuilderStatus};
use tokio::sync::watch;

pub use error::{Error, Result};
pub use lease::{Lease, Release};
pub use queue::SchedItem;

/// A request for a buildlet.
#[derive(Debug)]
pub struct LeaseRequest {
    /// What is waiting; its host type selects the machines.
    pub item: SchedItem,
    /// Receives the queue position while waiting (upstream's `BuildletWaitStatus`).
    pub progress: Option<watch::Sender<BuildletWaitStatus>>,
}

impl LeaseRequest {
    /// A request for `item`, without progress reports.
    pub fn new(item: SchedItem) -> LeaseRequest {
        LeaseRequest {
            item,
            progress: None,
        }
    }
}

/// A source of buildlets. Keep it small: the coordinator composes the rest.
#[async_trait]
pub trait BuildletPool: Send + Sync {
    /// Waits for a buildlet of `req.item.host_type`, its work dir wiped. Dropping the future
    /// cancels the wait.
    async fn lease(&self, req: LeaseRequest) -> Result<Lease>;

    /// Machines and waiters per host type, in the dashboard's JSON shape.
    fn status(&self) -> ReverseBuilderStatus;

    /// Capacity and activity of the providers that create machines on demand (containers,
    /// pods); empty for pools of fixed machines.
    fn providers(&self) -> Vec<ProviderStatus> {
        Vec::new()
    }

    /// At shutdown, once every lease has ended: waits up to `within` for machines made on
    /// demand to be removed; returns whether all were. Pools of fixed machines have none.
    async fn drain(&self, within: std::time::Duration) -> bool {
        let _ = within;
        true
    }
}

/// One on-demand provider's capacity and activity, for status pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderStatus {
    /// `container`, `kubernetes`.
    pub kind: &'static str,
    /// Host types it serves.
    pub host_types: Vec<String>,
    /// Its quota limits.
    pub limits: ledger::Resources,
    /// What is reserved now (instances being created, running or being removed).
    pub used: ledger::Resources,
    /// Instances being created and waited for.
    pub creating: u64,
    /// Leases waiting for quota.
    pub waiting: u64,
    /// Instances leased now.
    pub running: u64,
    /// Instances that started and registered, in all.
    pub started: u64,
    /// Instances that failed to start, in all.
    pub failures: u64,
    /// The latest failure, in the backend's words.
    pub last_failure: Option<String>,
    /// Orphaned instances removed by sweeps, in all.
    pub swept: u64,
}

/// A trait object, as pools are stored.
pub type DynPool = dyn BuildletPool;
