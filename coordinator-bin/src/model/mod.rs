//! The coordinator's vocabulary, with no I/O: builds, their states and what moves them.

pub mod build;

pub use build::{Event, Invalid, State, transition};
