//! The crate's error type. Messages are upstream's, so logs read the same on both sides.

use crate::http1::SwitchError;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong dialing or accepting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Dialer is closed (locally, or because its control connection failed).
    #[error("revdial.Dialer closed")]
    DialerClosed,
    /// The Listener reported that it could not connect back.
    #[error("revdial listener failed to pick up connection: {0}")]
    PickupFailed(String),
    /// The Listener is closed.
    #[error("revdial: Listener closed")]
    ListenerClosed,
    /// A dial did not complete within its time limit.
    #[error("revdial: dial timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Registration or pickup did not switch protocols.
    #[error("{0}")]
    Switch(#[from] SwitchError),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
