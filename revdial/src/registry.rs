//! The table that matches pickup connections to the dials waiting for them.
//!
//! Upstream keys a process-global table by a dialer id that is fixed for the Dialer's
//! lifetime, and hands a pickup to whichever dial happens to be waiting. Here every
//! `conn-ready` carries a fresh single-use **ticket** (16 random bytes as 32 hex, in the
//! same `revdial.dialer` parameter, so the path has upstream's exact shape and Go
//! listeners echo it unchanged). A ticket names one dial: a late pickup for a cancelled
//! dial finds no ticket and is refused, so it can never reach another caller, and a
//! leaked ticket is worthless once used.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::io::RevConn;

/// Where a dial's outcome is sent.
pub(crate) type Outcome = oneshot::Sender<Result<RevConn, Error>>;

/// Shared table of outstanding pickup tickets. Clone it into every Dialer and into the
/// pickup service that serves them; tests and embedders can run independent registries.
#[derive(Clone, Default)]
pub struct Registry {
    slots: Arc<Mutex<HashMap<String, Outcome>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("outstanding", &self.len())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// How many dials wait for a pickup.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No dial waits for a pickup.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `ticket` names a waiting dial.
    pub fn contains(&self, ticket: &str) -> bool {
        self.lock().contains_key(ticket)
    }

    // The std Mutex is never held across an .await: every critical section is a map
    // operation, so a blocking lock is cheaper than tokio's.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Outcome>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, ticket: String, outcome: Outcome) {
        self.lock().insert(ticket, outcome);
    }

    /// Removes a ticket and returns where its outcome goes.
    pub(crate) fn take(&self, ticket: &str) -> Option<Outcome> {
        self.lock().remove(ticket)
    }
}

/// 16 bytes from the OS CSPRNG as 32 lowercase hex characters.
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    // Without OS randomness the capability model is void; refuse to continue.
    getrandom::fill(&mut b).expect("the OS random number generator is available");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
