//! Benchmark storage (not built yet).
//!
//! This crate will store Go-format benchmark results compatibly with golang.org/x/perf's
//! perfdata: the `benchfmt` reader and writer, the query language, a `Store` trait with
//! SQLite (embedded default) and PostgreSQL backends, the HTTP API, and benchstat-style
//! comparisons.
