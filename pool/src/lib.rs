//! Buildlet pools (in progress): hands out buildlets by host type, fairly and without ever
//! leaking one.
//!
//! # Layout
//! - [`queue`]: per-host-type quota queues with upstream's priorities, cancellable
//!   waiters, position reports, and no head-of-line blocking.
//!
//! Still to come (see the pool issue): the `BuildletPool` trait with its RAII `Lease`, the
//! ledger, the local and reverse providers, and their shared conformance suite.

pub mod queue;
