//! Buildlet pools (not built yet).
//!
//! This crate will hand out buildlets by host type, fairly and without ever leaking one:
//! the `BuildletPool` trait whose `Lease` returns its buildlet on drop, per-host-type
//! scheduler queues with upstream's priorities, a quota ledger, and the local, reverse
//! and (behind a feature) Kubernetes providers, all passing one conformance suite.
