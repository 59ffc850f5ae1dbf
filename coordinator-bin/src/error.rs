//! The coordinator's error type: what a use case ([`crate::ops`]) or start-up can fail
//! with, by kind. The HTTP layer maps kinds to status codes; nothing matches on text.

use crate::config::ConfigError;
use crate::sources::GitError;
use crate::store::StoreError;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller asked for something malformed or impossible (400).
    #[error("{0}")]
    BadRequest(String),
    /// What the caller named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the build's state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request's body is over its route's limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The build store failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// git failed (500).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Starting a part of the coordinator failed (a listener, a pool, the data directory).
    #[error("{0}")]
    Startup(String),
}

impl Error {
    /// Whether trying again later may succeed (the coordinator's own trouble, not the
    /// request's).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Store(_) | Error::Git(GitError::Timeout { .. } | GitError::Spawn(_))
        )
    }
}
