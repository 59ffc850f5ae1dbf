//! The buildlet protocol (not built yet).
//!
//! This crate will hold the agent that runs on every worker machine of a build farm,
//! speaking the HTTP protocol of golang.org/x/build's buildlet so that upstream Go
//! coordinators and gomote clients can drive it: the wire types (`api`), the secure
//! tar.gz codec that never writes outside the work dir, the server as an axum router,
//! the `BuildletClient` trait with its HTTP implementation, reverse mode over revdial,
//! and the `buildlet` binary. See `spec/buildlet-protocol.md` in the shared docs.
