//! The crate's error type.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate: bad names and bad catalogue entries.
/// Messages name the offending entry so a user can fix a TOML file from the message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder or host name that does not have the required shape.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The catalogue file is not valid TOML or has fields of the wrong type.
    #[error("catalogue {source_name}: {message}")]
    Parse {
        /// Which file (or `built-in`).
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A host entry breaks a rule (spec §3 validation).
    #[error("host {host:?}: {reason}")]
    InvalidHost {
        /// Host type key.
        host: String,
        /// What rule it breaks and how to fix it.
        reason: String,
    },
    /// A builder entry breaks a rule (spec §4 `addBuilder` validation).
    #[error("builder {builder:?}: {reason}")]
    InvalidBuilder {
        /// Builder name.
        builder: String,
        /// What rule it breaks and how to fix it.
        reason: String,
    },
    /// Reading a catalogue file failed.
    #[error("reading catalogue {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
