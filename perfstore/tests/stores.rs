//! Both backends pass the one conformance suite.

use perfstore::SqliteStore;
use perfstore::conformance::run_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("perf.db")).await.unwrap();
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("perf.db");
    let id = {
        let store = SqliteStore::open(&path).await.unwrap();
        let id = perfstore::Store::allocate_upload(&store, chrono::Utc::now())
            .await
            .unwrap();
        let records = perfstore::conformance::records_of(&id, "BenchmarkA 1 1 ns/op\n");
        perfstore::Store::insert_records(&store, &id, records)
            .await
            .unwrap();
        id
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let found = perfstore::conformance::search(&store, &format!("upload:{id}")).await;
    assert_eq!(found.len(), 1);
}

/// The PostgreSQL URL for tests: `PERFSTORE_PG_URL`, or the local server's socket.
fn pg_url() -> String {
    std::env::var("PERFSTORE_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_string())
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    use perfstore::store::postgres::PgStore;
    let schema = format!(
        "perfstore_test_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let store = match PgStore::connect(&pg_url(), Some(&schema)).await {
        Ok(s) => s,
        Err(e) => {
            if std::env::var_os("PERFSTORE_REQUIRE_PG").is_some_and(|v| v == "1") {
                panic!(
                    "PERFSTORE_REQUIRE_PG=1 but PostgreSQL is unreachable at {:?}: {e}",
                    pg_url()
                );
            }
            eprintln!(
                "\n*** SKIPPED: no PostgreSQL at {:?} ({e}).\n*** Set PERFSTORE_PG_URL, or run .ci/run, which installs one; \
                 PERFSTORE_REQUIRE_PG=1 turns this skip into a failure.\n",
                pg_url()
            );
            return;
        }
    };
    run_all(&store).await;
}
