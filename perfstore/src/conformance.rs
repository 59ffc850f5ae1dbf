//! The conformance suite every [`Store`] passes (feature `conformance`).
//!
//! Plain async functions over `&dyn Store`, in the manner of the `object_store` crate's
//! integration suite: each backend's tests open a fresh, empty store and call
//! [`run_all`]. Assertions panic with a message saying what differed.

use chrono::{TimeZone, Utc};
use futures_util::StreamExt;

use crate::ingest::{ServerLabels, UploadBuilder};
use crate::query::Query;
use crate::store::{NewRecord, Store, UploadId};

/// Runs every check against an empty store.
pub async fn run_all(store: &dyn Store) {
    upload_ids(store).await;
    search_and_uploads(store).await;
    failed_insert_leaves_nothing(store).await;
    bytes_and_large_uploads(store).await;
    streamed_uploads_commit_whole_or_not_at_all(store).await;
}

/// A streamed upload is one transaction: abandoned half-way it leaves nothing; finished,
/// its batches read back as one upload, in order.
async fn streamed_uploads_commit_whole_or_not_at_all(store: &dyn Store) {
    use crate::store::RecordBatch;
    let id = store.allocate_upload(day(20)).await.expect("allocate");
    let before = search(store, " ").await.len();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let writer = {
        let id = id.clone();
        async move { store.insert_record_stream(&id, rx).await }
    };
    let feed = async {
        tx.send(RecordBatch::Records(records_of(
            &id,
            "BenchmarkS 1 1 ns/op\n",
        )))
        .await
        .unwrap();
        drop(tx);
    };
    let (r, ()) = tokio::join!(writer, feed);
    assert!(r.is_err(), "an abandoned stream was committed");
    assert_eq!(search(store, " ").await.len(), before);

    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let writer = {
        let id = id.clone();
        async move { store.insert_record_stream(&id, rx).await }
    };
    let feed = async {
        for i in 0..5 {
            let text = format!("stream: yes\nBenchmarkS{i} 1 {i} ns/op\n");
            tx.send(RecordBatch::Records(records_of(&id, &text)))
                .await
                .unwrap();
        }
        tx.send(RecordBatch::Done).await.unwrap();
    };
    let (r, ()) = tokio::join!(writer, feed);
    r.expect("a finished stream is stored");
    let got = search(store, "stream:yes").await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(
        got[0].contains("BenchmarkS0") && got[4].contains("BenchmarkS4"),
        "{got:?}"
    );
}

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2017, 2, d, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// Builds records as the server would from one file.
pub fn records_of(id: &UploadId, text: &str) -> Vec<NewRecord> {
    let mut b = UploadBuilder::new();
    b.add_file(
        &ServerLabels {
            upload: id,
            part: 0,
            time: "2017-02-14T18:03:27Z",
            file_name: Some("f.txt"),
            by: Some("u@example.com"),
        },
        text.as_bytes(),
    )
    .expect("valid benchmark text");
    b.finish()
}

/// Record contents matching `q`, as text.
pub async fn search(store: &dyn Store, q: &str) -> Vec<String> {
    let query = Query::parse(q).expect("valid query");
    let mut stream = store.search(&query).await.expect("search");
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        out.push(String::from_utf8_lossy(&r.expect("record")).into_owned());
    }
    out
}

async fn uploads(store: &dyn Store, q: &str, limit: Option<u64>) -> Vec<(String, u64)> {
    let query = Query::parse(q).expect("valid query");
    store
        .uploads(&query, &[], limit)
        .await
        .expect("uploads")
        .into_iter()
        .map(|u| (u.upload_id, u.count))
        .collect()
}

/// Conformance case 22: `.1`, `.2`, …, `.9`, `.10`; a new day restarts at `.1`.
async fn upload_ids(store: &dyn Store) {
    for n in 1..=10 {
        let id = store.allocate_upload(day(13)).await.expect("allocate");
        assert_eq!(id.as_str(), format!("20170213.{n}"), "sequence");
    }
    let id = store.allocate_upload(day(14)).await.expect("allocate");
    assert_eq!(id.as_str(), "20170214.1", "a new day restarts the sequence");
    // Empty uploads are not listed (case 24).
    assert!(
        uploads(store, "", None).await.is_empty(),
        "empty uploads are hidden"
    );
}

async fn search_and_uploads(store: &dyn Store) {
    let a = store.allocate_upload(day(15)).await.expect("allocate");
    store
        .insert_records(
            &a,
            records_of(&a, "goos: linux\npkg: p\nBenchmarkA-4 1 10 ns/op\nBenchmarkA-4 1 11 ns/op\nBenchmarkB 1 5 ns/op\ngoos: darwin\nBenchmarkA-4 1 12 ns/op\n"),
        )
        .await
        .expect("insert");
    let b = store.allocate_upload(day(15)).await.expect("allocate");
    store
        .insert_records(&b, records_of(&b, "goos: linux\npkg: q\ni: 5\nBenchmarkA-4 1 9 ns/op\nlabel1: 511\nBenchmarkC 1 1 ns/op\n"))
        .await
        .expect("insert");
    let (a_id, b_id) = (a.to_string(), b.to_string());

    // Equality, grouping (two identical-label lines form one record), and order: oldest
    // upload first, records in order inside an upload.
    let linux = search(store, "goos:linux").await;
    assert_eq!(linux.len(), 4, "goos:linux records: {linux:?}");
    assert!(
        linux[0].contains("BenchmarkA-4 1 10 ns/op\nBenchmarkA-4 1 11 ns/op\n"),
        "{}",
        linux[0]
    );
    assert!(linux[0].contains(&format!("upload: {a_id}\n")));
    assert!(linux[2].contains(&format!("upload: {b_id}\n")));
    assert_eq!(
        search(store, "goos:linux name:A gomaxprocs:4").await.len(),
        2
    );
    assert_eq!(
        search(store, "pkg:q goos:linux").await.len(),
        2,
        "two-term AND"
    );
    assert!(search(store, "pkg:q goos:darwin").await.is_empty());
    assert!(search(store, "nosuchkey:1").await.is_empty());
    // Comparisons are string comparisons (case 38).
    assert_eq!(search(store, "label1>510 label1<52").await.len(), 1);
    assert_eq!(search(store, "goos>e").await.len(), 4, "linux > e");
    assert_eq!(search(store, "goos<e").await.len(), 1, "darwin < e");
    assert_eq!(search(store, "i>").await.len(), 2, "k> matches any value");
    // Contradictions never match (case 36).
    assert!(search(store, "goos:linux goos:darwin").await.is_empty());
    // A query of blanks matches everything (case 33).
    assert_eq!(search(store, " ").await.len(), 5);
    // Upload IDs.
    assert_eq!(search(store, &format!("upload:{a_id}")).await.len(), 3);
    assert!(search(store, "upload:").await.is_empty());

    // /uploads: newest first, counts of matching records, limit, extra labels (cases 43, 44).
    assert_eq!(
        uploads(store, "", None).await,
        vec![(b_id.clone(), 2), (a_id.clone(), 3)]
    );
    assert_eq!(
        uploads(store, "goos:linux", None).await,
        vec![(b_id.clone(), 2), (a_id.clone(), 2)]
    );
    assert_eq!(uploads(store, "", Some(1)).await, vec![(b_id.clone(), 2)]);
    let q = Query::parse("i:5").expect("query");
    let with_labels = store
        .uploads(&q, &["i".to_string(), "missing".to_string()], None)
        .await
        .expect("uploads");
    assert_eq!(with_labels.len(), 1);
    assert_eq!(with_labels[0].count, 2);
    assert_eq!(
        with_labels[0].label_values.len(),
        1,
        "no value for a missing label"
    );
    assert_eq!(
        with_labels[0].label_values.get("i").map(Vec::as_slice),
        Some(&b"5"[..])
    );
}

/// Upload IDs compare numerically (beyond upstream, which compares strings; case 39).
async fn numeric_upload_order(store: &dyn Store, ids: &[UploadId]) {
    let nine = ids
        .iter()
        .find(|i| i.as_str() == "20170213.9")
        .expect(".9 allocated");
    let ten = ids
        .iter()
        .find(|i| i.as_str() == "20170213.10")
        .expect(".10 allocated");
    let found = search(store, &format!("upload>{nine} upload<20170213.11")).await;
    assert_eq!(found.len(), 1, "upload>.9 must match .10");
    assert!(found[0].contains(&format!("upload: {ten}\n")));
}

/// A failed insert (here: into an upload that was never allocated) leaves nothing visible,
/// and records are only visible once their whole upload is.
async fn failed_insert_leaves_nothing(store: &dyn Store) {
    let ghost = UploadId("20990101.1".into());
    let before = search(store, " ").await.len();
    assert!(
        store
            .insert_records(&ghost, records_of(&ghost, "BenchmarkG 1 1 ns/op\n"))
            .await
            .is_err()
    );
    assert_eq!(search(store, " ").await.len(), before);
    // Fill uploads .9 and .10 of day 13 and check the numeric order.
    let nine = UploadId("20170213.9".into());
    let ten = UploadId("20170213.10".into());
    store
        .insert_records(&nine, records_of(&nine, "BenchmarkN 1 1 ns/op\n"))
        .await
        .expect("insert .9");
    store
        .insert_records(&ten, records_of(&ten, "BenchmarkN 1 1 ns/op\n"))
        .await
        .expect("insert .10");
    numeric_upload_order(store, &[nine.clone(), ten.clone()]).await;
    let listed = uploads(store, "name:N", None).await;
    assert_eq!(
        listed.iter().map(|u| u.0.as_str()).collect::<Vec<_>>(),
        ["20170213.10", "20170213.9"]
    );
}

/// Label bytes that are not UTF-8 survive, and an upload of thousands of records (several
/// statement batches) is stored whole.
async fn bytes_and_large_uploads(store: &dyn Store) {
    let id = store.allocate_upload(day(16)).await.expect("allocate");
    let mut text = String::from("bin: x\n");
    for i in 0..12_000 {
        text.push_str(&format!("BenchmarkBig/n={i} 1 {i} ns/op\n"));
    }
    let mut records = records_of(&id, &text);
    records[0]
        .labels
        .push((b"raw".to_vec(), b"\xff\xfe".to_vec()));
    store
        .insert_records(&id, records)
        .await
        .expect("insert large");
    let q = Query::parse(&format!("upload:{id}")).expect("query");
    let listed = store
        .uploads(&q, &["raw".to_string()], None)
        .await
        .expect("uploads");
    assert_eq!(listed[0].count, 12_000);
    assert_eq!(
        listed[0].label_values.get("raw").map(Vec::as_slice),
        Some(&b"\xff\xfe"[..])
    );
    assert_eq!(search(store, "n:11999").await.len(), 1);
    let all = search(store, &format!("upload:{id} bin:x")).await;
    assert_eq!(all.len(), 12_000);
    assert!(all[11_999].contains("BenchmarkBig/n=11999 1 11999 ns/op"));
}
