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

/// Set for the helper process of [`sqlite_upload_killed_mid_transaction_leaves_nothing`]:
/// the database file it uploads into.
const KILL_HELPER_DB: &str = "PERFSTORE_KILL_HELPER_DB";

/// A real process is killed with SIGKILL while its upload's transaction is being written;
/// reopening the database shows nothing of that upload, and the next upload works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upload_killed_mid_transaction_leaves_nothing() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("perf.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "upload_until_killed_helper",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(KILL_HELPER_DB, &db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The helper prints the ID it allocated before it starts inserting.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let id = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the helper exited without allocating an upload"
        );
        if let Some(id) = line.trim().strip_prefix("allocated=") {
            break id.to_string();
        }
    };
    // Uncommitted pages reaching the write-ahead log mean the transaction is under way.
    let wal = dir.path().join("perf.db-wal");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 8 << 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the helper finished its upload before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "the helper's upload never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let store = SqliteStore::open(&db).await.unwrap();
    let found = perfstore::conformance::search(&store, &format!("upload:{id}")).await;
    assert!(
        found.is_empty(),
        "{} records of the killed upload are visible",
        found.len()
    );
    let uploads = perfstore::Store::uploads(
        &store,
        &perfstore::query::Query::parse("").unwrap(),
        &[],
        None,
    )
    .await
    .unwrap();
    assert!(
        uploads.is_empty(),
        "the killed upload is listed: {uploads:?}"
    );
    // The store goes on: the next upload is stored whole, under the next ID.
    let next = perfstore::Store::allocate_upload(&store, chrono::Utc::now())
        .await
        .unwrap();
    assert_ne!(next.0, id);
    let records = perfstore::conformance::records_of(&next, "BenchmarkA 1 1 ns/op\n");
    perfstore::Store::insert_records(&store, &next, records)
        .await
        .unwrap();
    let found = perfstore::conformance::search(&store, &format!("upload:{next}")).await;
    assert_eq!(found.len(), 1);
}

/// The helper process: allocates an upload, then inserts about 100 MB of records in one
/// transaction, which its parent kills part way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for sqlite_upload_killed_mid_transaction_leaves_nothing"]
async fn upload_until_killed_helper() {
    let Some(db) = std::env::var_os(KILL_HELPER_DB) else {
        return;
    };
    let store = SqliteStore::open(db).await.unwrap();
    let id = perfstore::Store::allocate_upload(&store, chrono::Utc::now())
        .await
        .unwrap();
    println!("allocated={id}");
    let padding = "x".repeat(2000);
    let mut text = String::from("goos: linux\ngoarch: amd64\npkg: p\n");
    for i in 0..50_000 {
        text.push_str(&format!("BenchmarkBig{i}/{padding}-8 1 1 ns/op\n"));
    }
    let records = perfstore::conformance::records_of(&id, &text);
    perfstore::Store::insert_records(&store, &id, records)
        .await
        .unwrap();
    println!("finished");
}
