//! The reference coordinator (not built yet).
//!
//! This crate will build the `coordinator` binary: it finds work (a git poller and an
//! enqueue API), schedules builds on buildlets from the pool crate, streams their logs,
//! keeps results in SQLite, and serves the build grid, status pages and the perfstore UI.
//! It composes the other crates of this workspace and owns no protocol of its own.
