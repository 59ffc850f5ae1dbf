//! Benchmark result storage compatible with golang.org/x/perf's *perfdata* server, with
//! benchstat-style comparisons.
//!
//! Teams keep years of Go benchmark results and ask "did this change make it slower?".
//! This crate stores uploads of Go-format benchmark text, answers perfdata's queries over
//! HTTP with perfdata's wire formats (so `benchsave` and Go's `perfdata.Client` work
//! against it), and compares two result sets the way `benchstat` does.
//!
//! # Layout
//! - [`benchfmt`]: the Go benchmark format, both upstream readers and their writers.
//! - [`query`]: the storage query language (`key:value key>value …`).
//! - [`store`]: the [`Store`] trait; [`SqliteStore`] (embedded default) and, with feature
//!   `postgres` (on by default), [`store::postgres::PgStore`].
//! - [`ingest`]: how uploaded files become records (server labels, grouping).
//! - [`http`]: the HTTP API and the small HTML UI, as an axum router to mount anywhere.
//! - [`compare`]: benchstat's statistics and its text table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use perfstore::{http, SqliteStore};
//!
//! let store = SqliteStore::open("perf.db").await?;
//! let app = http::router(Arc::new(store), http::ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

pub mod benchfmt;
pub mod compare;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod fuzzing;
pub mod http;
pub mod ingest;
pub mod query;
pub mod store;

pub use store::sqlite::SqliteStore;
pub use store::{Store, StoreError, UploadId};
