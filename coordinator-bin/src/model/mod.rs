//! The coordinator's vocabulary, with no I/O: builds, their states and what moves them,
//! and how a build's test units are planned and shared among its buildlets.

pub mod build;
pub mod shard;
pub mod units;

pub use build::{Event, Invalid, State, transition};
