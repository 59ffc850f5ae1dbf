//! The crate's error type for client calls.

use std::time::Duration;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a buildlet call failed. Retrying code should match on variants, never on text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buildlet answered with an unexpected status (upstream's
    /// `<status line>; body: <up to 4 KiB>`).
    #[error("{status}; body: {body}")]
    Status {
        /// Status code and reason.
        status: String,
        /// The start of the body.
        body: String,
    },
    /// No response headers within the call's limit.
    #[error("buildlet: timeout waiting for headers after {0:?}")]
    HeaderTimeout(Duration),
    /// `/exec` ended without a `Process-State` trailer: the infrastructure failed.
    #[error("buildlet: missing Process-State trailer; the command's result is unknown")]
    MissingTrailer,
    /// The heartbeat declared the buildlet dead, or the client was closed.
    #[error("buildlet: peer is dead or the client was closed")]
    Dead,
    /// The exec's `timeout` (plus [`EXEC_DEADLINE_GRACE`](crate::client::EXEC_DEADLINE_GRACE))
    /// passed before the command ended. The client closed the connection, which makes the
    /// buildlet kill the command (ours: its process group); the buildlet is still usable.
    #[error("buildlet: timeout waiting for command to complete")]
    ExecTimeout,
    /// The coordinator refused a reverse registration with a 4xx (a wrong builder key, an
    /// unknown host type, a malformed request): retrying cannot help.
    #[error("coordinator refused the registration: {status}: {}", .body.trim_end())]
    Refused {
        /// Status code and reason.
        status: String,
        /// The start of the body (the coordinator's reason).
        body: String,
    },
    /// An argument cannot be sent as given (a header value with a line break, say).
    #[error("buildlet: invalid argument: {0}")]
    InvalidArgument(String),
    /// A reply could not be decoded.
    #[error("buildlet: invalid reply: {0}")]
    InvalidReply(String),
    /// Connecting or transferring failed.
    #[error("buildlet: {0}")]
    Transport(String),
    /// A local I/O error (writing output, reading an archive).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
