//! The reference coordinator: finds work, runs builds on buildlets, keeps results and logs,
//! and shows them.
//!
//! It owns no protocol: it composes the workspace's crates. Work comes from git
//! ([`sources`]) and the HTTP API ([`api`]); the dispatcher ([`runner::dispatch`]) takes
//! queued builds that a pool can serve; each build leases a buildlet, streams a
//! `git archive` of the commit into it and runs the builder's steps ([`runner`]), with
//! the retry rules of [`runner::retry`]; results, steps and logs go to a [`store`]; the
//! web UI shows the grid (also as the dashboard's JSON), builds, logs, status and
//! metrics, and mounts perfstore under `/perf`.
//!
//! # Layout
//! The modules follow the data:
//! - [`config`]: the TOML file, named environments, defaults, and [`config::routing`],
//!   the one rule for which builder builds which source and branch.
//! - [`model`]: builds and their state transitions, pure.
//! - [`store`]: the [`store::BuildStore`] and [`store::AccessStore`] (tokens, audit
//!   log) traits, their SQLite implementation and the conformance suites.
//! - [`sources`]: git mirrors and the poller.
//! - [`runner`]: dispatch, attempts, retry classification, progress.
//! - [`logs`]: live build logs.
//! - [`snapshots`]: built trees kept by (builder, revision).
//! - [`ops`]: the use cases (enqueue, retry, cancel) that every front end shares.
//! - [`api`]: HTTP routes (each with who may call it), pages (compile-time-checked
//!   templates), JSON and its generated OpenAPI description.
//! - [`auth`]: roles, tokens, browser sessions and CSRF, signed URLs, the per-token rate
//!   limit, and the middleware that checks every route's rule and audits writes.
//! - [`retrybuilds`]: `coordinator retry`, a client of the API.
//! - [`pools`], [`metrics`], [`shutdown`], [`serve`] (TLS and the one-port front),
//!   [`tls`], [`error`].
//! - [`app`]: [`Coordinator`], which owns all of it, and [`Coordinator::run`].

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
mod hex;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod pools;
pub mod retrybuilds;
pub mod runner;
pub mod serve;
pub mod shutdown;
pub mod snapshots;
pub mod sources;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tls;

pub use app::{BUILDS_DB, Coordinator, LOCK_FILE, PERF_DB};
pub use error::Error;
