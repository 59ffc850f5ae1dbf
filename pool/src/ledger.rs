//! Accounting of instances, CPUs and memory against limits (upstream's EC2 ledger,
//! generalised): a named [`Reservation`] holds all three and releases them when dropped,
//! so every failure path (an error while creating the VM, a cancelled wait, a panic)
//! gives back exactly what it took.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dashboard_types::BuildletWaitStatus;
use tokio::sync::watch;

use crate::queue::{Grant, Quota, SchedItem};

/// An amount of each resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Machines.
    pub instances: u64,
    /// CPUs.
    pub cpus: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The name already holds a reservation (upstream's message).
    #[error("quota has already been allocated for {0}")]
    AlreadyReserved(String),
    /// A reservation must ask for at least one instance and one CPU.
    #[error("invalid allocation requested: {0:?}")]
    Invalid(Resources),
    /// More than the limits could ever grant; waiting would never end.
    #[error("{need:?} exceeds the limits {limits:?}")]
    TooLarge {
        /// What was asked for.
        need: Resources,
        /// The limits.
        limits: Resources,
    },
}

#[derive(Default)]
struct Inner {
    instances: Quota,
    cpus: Quota,
    memory: Quota,
    limits: Mutex<Resources>,
    names: Mutex<HashMap<String, Resources>>,
}

/// The ledger. Cheap to clone.
#[derive(Clone, Default)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("used", &self.used())
            .field("limits", &self.limits())
            .finish()
    }
}

impl Ledger {
    /// A ledger with these limits.
    pub fn new(limits: Resources) -> Ledger {
        let l = Ledger::default();
        l.set_limits(limits);
        l
    }

    /// Changes the limits (waiters that now fit are granted).
    pub fn set_limits(&self, limits: Resources) {
        *self.inner.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
        self.inner.instances.set_limit(limits.instances);
        self.inner.cpus.set_limit(limits.cpus);
        self.inner.memory.set_limit(limits.memory_mib);
    }

    /// The limits.
    pub fn limits(&self) -> Resources {
        *self.inner.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is reserved now.
    pub fn used(&self) -> Resources {
        Resources {
            instances: self.inner.instances.stats().used,
            cpus: self.inner.cpus.stats().used,
            memory_mib: self.inner.memory.stats().used,
        }
    }

    /// Names holding reservations, with their sizes.
    pub fn reservations(&self) -> HashMap<String, Resources> {
        self.inner
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits (in `item`'s priority) until `need` fits, then reserves it under `name`.
    /// Dropping the future while it waits releases whatever was already granted.
    pub async fn reserve(
        &self,
        name: &str,
        need: Resources,
        item: SchedItem,
    ) -> Result<Reservation, LedgerError> {
        self.reserve_reporting(name, need, item, None).await
    }

    /// [`reserve`](Self::reserve), sending the position in whichever queue it waits in to
    /// `progress` (upstream's `BuildletWaitStatus`).
    pub async fn reserve_reporting(
        &self,
        name: &str,
        need: Resources,
        item: SchedItem,
        progress: Option<&watch::Sender<BuildletWaitStatus>>,
    ) -> Result<Reservation, LedgerError> {
        if need.instances == 0 || need.cpus == 0 {
            return Err(LedgerError::Invalid(need));
        }
        let limits = self.limits();
        if need.instances > limits.instances
            || need.cpus > limits.cpus
            || need.memory_mib > limits.memory_mib
        {
            return Err(LedgerError::TooLarge { need, limits });
        }
        {
            let mut names = self.inner.names.lock().unwrap_or_else(|p| p.into_inner());
            if names.contains_key(name) {
                return Err(LedgerError::AlreadyReserved(name.to_owned()));
            }
            names.insert(name.to_owned(), need);
        }
        // From here the name is taken; the guard frees it unless the reservation completes.
        let mut guard = NameGuard {
            ledger: self.clone(),
            name: Some(name.to_owned()),
        };
        let instances = self
            .inner
            .instances
            .enqueue(need.instances, item.clone())
            .granted_reporting(progress)
            .await;
        let cpus = self
            .inner
            .cpus
            .enqueue(need.cpus, item.clone())
            .granted_reporting(progress)
            .await;
        let memory = self
            .inner
            .memory
            .enqueue(need.memory_mib, item)
            .granted_reporting(progress)
            .await;
        let name = guard.name.take().expect("set above");
        Ok(Reservation {
            ledger: self.clone(),
            name,
            size: need,
            _grants: [instances, cpus, memory],
        })
    }
}

struct NameGuard {
    ledger: Ledger,
    name: Option<String>,
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        if let Some(n) = self.name.take() {
            self.ledger
                .inner
                .names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&n);
        }
    }
}

/// Resources held under a name; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    ledger: Ledger,
    name: String,
    size: Resources,
    _grants: [Grant; 3],
}

impl Reservation {
    /// The name it is held under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it holds.
    pub fn size(&self) -> Resources {
        self.size
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.ledger
            .inner
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}
