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
    /// Starting a local buildlet failed.
    #[error("starting local buildlet: {0}")]
    Start(#[from] std::io::Error),
}
