//! The crate's error type.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a lease failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool serves no such host type.
    #[error("no buildlet pool for host type {0:?}")]
    UnknownHostType(String),
    /// The pool was shut down.
    #[error("buildlet pool closed")]
    Closed,
    /// Preparing the buildlet (wiping its work dir) failed; it was taken out of the pool.
    #[error("preparing buildlet {name}: {source}")]
    Prepare {
        /// The machine.
        name: String,
        /// What failed.
        #[source]
        source: buildlet_proto::Error,
    },
    /// The quota ledger cannot ever grant the request (it exceeds the provider's limits).
    #[error("buildlet quota: {0}")]
    Quota(#[from] crate::ledger::LedgerError),
    /// An ephemeral buildlet (a container, a pod) could not be started; it was removed.
    #[error("starting {kind} buildlet {name}: {reason}")]
    Provision {
        /// `container` or `kubernetes`.
        kind: &'static str,
        /// The instance.
        name: String,
        /// What went wrong, as the engine or cluster put it.
        reason: String,
    },
    /// Starting a local buildlet failed.
    #[error("starting local buildlet: {0}")]
    Start(#[from] std::io::Error),
}
