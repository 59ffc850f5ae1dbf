//! The reference coordinator.
//!
//! Today it serves the pieces that exist: the perf data store (perfstore's API and UI under
//! `/perf`, on SQLite in the data directory) and a health check. The build runner, work
//! sources, build grid and reverse-buildlet registration compose the other crates of this
//! workspace and are the subject of the coordinator issue.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;

/// The file name of the perf data database inside the data directory.
pub const PERF_DB: &str = "perf.db";

/// The coordinator's HTTP service over the data directory `data_dir` (created if missing).
pub async fn app(data_dir: &Path) -> anyhow::Result<Router> {
    tokio::fs::create_dir_all(data_dir).await?;
    let store = perfstore::SqliteStore::open(data_dir.join(PERF_DB)).await?;
    let perf = perfstore::http::router(Arc::new(store), perfstore::http::ServerConfig::default());
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/perf", get(|| async { Redirect::permanent("/perf/") }))
        .nest("/perf/", perf)
        .route("/", get(|| async { Redirect::temporary("/perf/") })))
}
