//! perfstore's figures, each as a ratio against a baseline measured in the same process:
//!
//! - parse: reader N and reader L against a plain memchr line split of the same bytes;
//! - ingest: one upload of 100,000 records × 8 labels into SQLite, this crate's schema
//!   against upstream's schema and SQL (one row per record and per label, multi-row
//!   INSERTs of ≤ 990 parameters, one transaction);
//! - search: `goos:linux pkg:p017` over 1,000,000 stored records, this crate's planner
//!   against upstream's SQL (joins driven from the alphabetically first key).
//!
//! Run: `cargo bench -p perfstore --bench perfstore`. Set `PERFSTORE_BENCH_QUICK=1` for a
//! smaller corpus (parse 8 MB, search 200,000 records) when iterating, and
//! `PERFSTORE_BENCH_ONLY=parse|ingest|search` to run one part.
//! `PERFSTORE_BENCH_WRITE_CORPUS=FILE` only writes the parse corpus to `FILE`, for
//! `benches/upstream-reader.sh` to time upstream's Go reader on the same bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use perfstore::SqliteStore;
use perfstore::benchfmt::{LegacyReader, Reader, Record};
use perfstore::query::Query;
use perfstore::store::{NewRecord, Store};
use rusqlite::{Connection, params_from_iter};

/// `PERFSTORE_BENCH_ONLY=parse|ingest|search` runs one part.
fn enabled(part: &str) -> bool {
    std::env::var("PERFSTORE_BENCH_ONLY").map_or(true, |only| only == part)
}

fn quick() -> bool {
    std::env::var_os("PERFSTORE_BENCH_QUICK").is_some()
}

/// Realistic `go test -bench` output: configuration blocks, -count=10 runs, four units.
fn corpus(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut i = 0u64;
    while out.len() < bytes {
        let pkg = i % 97;
        out.extend(format!("goos: linux\ngoarch: amd64\npkg: golang.org/x/pkg{pkg}\ncpu: Intel(R) Xeon(R) CPU @ 2.20GHz\n").as_bytes());
        for b in 0..20 {
            for run in 0..10 {
                let ns = 1000 + (i * 7919 + b * 31 + run * 17) % 90_000;
                out.extend(
                    format!(
                        "BenchmarkEncode/format=json/size={b}-8   \t{iters}\t{ns} ns/op\t{mb:.2} MB/s\t{bytes} B/op\t{allocs} allocs/op\n",
                        iters = 100_000 + run * 13,
                        mb = 1e6 / ns as f64,
                        bytes = b * 64,
                        allocs = b % 7
                    )
                    .as_bytes(),
                );
            }
        }
        out.extend(b"PASS\nok  \tgolang.org/x/pkg\t12.345s\n");
        i += 1;
    }
    out
}

fn memchr_lines(data: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', data).count()
}

fn parse_n(data: &[u8]) -> usize {
    let mut r = Reader::new(data);
    let mut n = 0;
    while let Some(Ok(rec)) = r.next_record() {
        if let Record::Result(res) = rec {
            n += res.values.len();
        }
    }
    n
}

fn parse_l(data: &[u8]) -> usize {
    LegacyReader::new(data).filter(|r| r.is_ok()).count()
}

/// Median of `runs` timings of `f`, bounded to `budget` in total.
fn median_time(runs: usize, budget: Duration, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
        if start.elapsed() > budget && times.len() >= 3 {
            break;
        }
    }
    times.sort();
    times[times.len() / 2]
}

/// `count` records with 8 labels each, as the ingest path would build them.
fn records(upload: &str, first: usize, count: usize) -> Vec<NewRecord> {
    (first..first + count)
        .map(|i| {
            let goos = if i % 10 == 0 { "darwin" } else { "linux" };
            let labels = [
                ("goos", goos.to_string()),
                (
                    "goarch",
                    if i % 2 == 0 { "amd64" } else { "arm64" }.to_string(),
                ),
                ("pkg", format!("p{:03}", i % 200)),
                ("commit", format!("{:040x}", i / 20_000)),
                ("cpu", format!("cpu{}", i % 3)),
                ("name", format!("Bench{}", i % 1000)),
                ("gomaxprocs", format!("{}", 1 << (i % 4))),
                ("upload", upload.to_string()),
            ];
            let mut content = Vec::new();
            for (k, v) in &labels {
                content.extend(format!("{k}: {v}\n").as_bytes());
            }
            content.extend(
                format!(
                    "BenchmarkBench{}-8 1000 {} ns/op\n",
                    i % 1000,
                    100 + i % 977
                )
                .as_bytes(),
            );
            NewRecord {
                content,
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect(),
            }
        })
        .collect()
}

/// Upstream's schema (golang.org/x/build perfdata/db, SQLite flavour).
const UPSTREAM_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS Uploads (UploadID VARCHAR(20) PRIMARY KEY, Day VARCHAR(8), Seq BIGINT UNSIGNED);
CREATE INDEX IF NOT EXISTS UploadDaySeq ON Uploads(Day, Seq);
CREATE TABLE IF NOT EXISTS Records (UploadID VARCHAR(20) NOT NULL, RecordID BIGINT UNSIGNED NOT NULL, Content BLOB NOT NULL,
  PRIMARY KEY (UploadID, RecordID), FOREIGN KEY (UploadID) REFERENCES Uploads(UploadID) ON UPDATE CASCADE ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS RecordLabels (UploadID VARCHAR(20) NOT NULL, RecordID BIGINT UNSIGNED NOT NULL, Name VARCHAR(255) NOT NULL,
  Value VARCHAR(8192) NOT NULL, PRIMARY KEY (UploadID, RecordID, Name),
  FOREIGN KEY (UploadID, RecordID) REFERENCES Records(UploadID, RecordID) ON UPDATE CASCADE ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS RecordLabelsNameValue ON RecordLabels(Name, Value);
";

fn upstream_open(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    c.pragma_update(None, "foreign_keys", "ON").unwrap();
    c.execute_batch(UPSTREAM_SCHEMA).unwrap();
    c
}

/// Loads records as upstream does: multi-row INSERTs flushed at ≥ 990 label parameters.
fn upstream_insert(c: &mut Connection, upload: &str, first: usize, recs: &[NewRecord]) {
    let tx = c.transaction().unwrap();
    tx.execute(
        "INSERT OR IGNORE INTO Uploads (UploadID) VALUES (?1)",
        [upload],
    )
    .unwrap();
    let mut rec_args: Vec<rusqlite::types::Value> = Vec::new();
    let mut label_args: Vec<rusqlite::types::Value> = Vec::new();
    let flush = |rec_args: &mut Vec<rusqlite::types::Value>,
                 label_args: &mut Vec<rusqlite::types::Value>| {
        if !rec_args.is_empty() {
            let sql = format!(
                "INSERT INTO Records(UploadID, RecordID, Content) VALUES {}",
                vec!["(?, ?, ?)"; rec_args.len() / 3].join(", ")
            );
            tx.execute(&sql, params_from_iter(rec_args.drain(..)))
                .unwrap();
        }
        if !label_args.is_empty() {
            let sql = format!(
                "INSERT INTO RecordLabels(UploadID, RecordID, Name, Value) VALUES {}",
                vec!["(?, ?, ?, ?)"; label_args.len() / 4].join(", ")
            );
            tx.execute(&sql, params_from_iter(label_args.drain(..)))
                .unwrap();
        }
    };
    use rusqlite::types::Value as V;
    for (i, r) in recs.iter().enumerate() {
        let id = (first + i) as i64;
        rec_args.extend([
            V::Text(upload.into()),
            V::Integer(id),
            V::Blob(r.content.clone()),
        ]);
        for (k, v) in &r.labels {
            label_args.extend([
                V::Text(upload.into()),
                V::Integer(id),
                V::Text(String::from_utf8_lossy(k).into()),
                V::Text(String::from_utf8_lossy(v).into()),
            ]);
            if label_args.len() >= 990 {
                flush(&mut rec_args, &mut label_args);
            }
        }
    }
    flush(&mut rec_args, &mut label_args);
    tx.commit().unwrap();
}

/// Upstream's SQL for a query of equality terms, keys sorted, joined in that order.
fn upstream_search(c: &Connection, terms: &[(&str, &str)]) -> usize {
    let mut terms = terms.to_vec();
    terms.sort();
    let mut sql = String::from("SELECT r.Content FROM ");
    let mut args = Vec::new();
    for (i, (k, v)) in terms.iter().enumerate() {
        if i > 0 {
            sql.push_str(" INNER JOIN ");
        }
        sql.push_str(&format!(
            "(SELECT UploadID, RecordID FROM RecordLabels WHERE Name = ? AND Value = ?) t{i}"
        ));
        if i > 0 {
            sql.push_str(" USING (UploadID, RecordID)");
        }
        args.push(k.to_string());
        args.push(v.to_string());
    }
    sql.push_str(" LEFT JOIN Records r USING (UploadID, RecordID)");
    let mut stmt = c.prepare_cached(&sql).unwrap();
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get::<_, Vec<u8>>(0))
        .unwrap();
    rows.map(|r| r.unwrap().len()).filter(|&n| n > 0).count()
}

fn main() {
    if let Some(path) = std::env::var_os("PERFSTORE_BENCH_WRITE_CORPUS") {
        std::fs::write(&path, corpus(100 << 20)).expect("writing the parse corpus");
        return;
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut summary = Vec::new();
    let dir = tempfile::tempdir().unwrap();

    // --- parse ---
    if enabled("parse") {
        let data = corpus(if quick() { 8 << 20 } else { 100 << 20 });
        let mb = data.len() as f64 / 1e6;
        let mut g = c.benchmark_group("parse");
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function("memchr_lines", |b| {
            b.iter(|| memchr_lines(black_box(&data)))
        });
        g.bench_function("reader_n", |b| b.iter(|| parse_n(black_box(&data))));
        g.bench_function("reader_l", |b| b.iter(|| parse_l(black_box(&data))));
        g.finish();
        // Interleaved: each round times the baseline and both readers back to back, and the
        // figure is the median of the per-round ratios, so drift in machine speed (a shared
        // 2-core VM) cancels out instead of landing on one side.
        let (mut n_ratio, mut l_ratio, mut rates) = (Vec::new(), Vec::new(), Vec::new());
        let start = Instant::now();
        for _ in 0..15 {
            let time = |f: &dyn Fn() -> usize| {
                let t = Instant::now();
                black_box(f());
                t.elapsed().as_secs_f64()
            };
            let m = time(&|| memchr_lines(&data));
            let n = time(&|| parse_n(&data));
            let l = time(&|| parse_l(&data));
            n_ratio.push(m / n);
            l_ratio.push(m / l);
            rates.push((mb / m, mb / n, mb / l));
            if start.elapsed() > Duration::from_secs(60) && n_ratio.len() >= 5 {
                break;
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (nr, lr) = (median(&mut n_ratio), median(&mut l_ratio));
        let mut m_rates: Vec<f64> = rates.iter().map(|r| r.0).collect();
        let mut n_rates: Vec<f64> = rates.iter().map(|r| r.1).collect();
        let mut l_rates: Vec<f64> = rates.iter().map(|r| r.2).collect();
        summary.push(format!(
        "parse {mb:.0} MB ({} rounds, medians): memchr {:.0} MB/s; reader N {:.0} MB/s, {nr:.3}x memchr; reader L {:.0} MB/s, {lr:.3}x memchr",
        n_ratio.len(),
        median(&mut m_rates),
        median(&mut n_rates),
        median(&mut l_rates)
    ));
    }

    // --- ingest ---
    if enabled("ingest") {
        let n_ingest = 100_000;
        let recs = records("20170101.1", 0, n_ingest);
        let mut round = 0;
        let ours_ingest = |round: usize| {
            let path = dir.path().join(format!("ours-{round}.db"));
            let recs = recs.clone();
            rt.block_on(async {
                let store = SqliteStore::open(&path).await.unwrap();
                let id = store.allocate_upload(chrono::Utc::now()).await.unwrap();
                let t = Instant::now();
                store.insert_records(&id, recs).await.unwrap();
                t.elapsed()
            })
        };
        let upstream_ingest = |round: usize| {
            let path = dir.path().join(format!("up-{round}.db"));
            let mut conn = upstream_open(&path);
            let t = Instant::now();
            upstream_insert(&mut conn, "20170101.1", 0, &recs);
            t.elapsed()
        };
        let mut g = c.benchmark_group("ingest_100k_records_8_labels");
        g.throughput(Throughput::Elements(n_ingest as u64));
        g.bench_function("upstream_schema", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        round += 1;
                        upstream_ingest(round)
                    })
                    .sum()
            })
        });
        g.bench_function("perfstore", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        round += 1;
                        ours_ingest(round)
                    })
                    .sum()
            })
        });
        g.finish();
        let mut ups = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..5 {
            round += 1;
            ups.push(upstream_ingest(round));
            round += 1;
            ours.push(ours_ingest(round));
        }
        ups.sort();
        ours.sort();
        let (u, o) = (ups[2], ours[2]);
        summary.push(format!("ingest {n_ingest} records x 8 labels: upstream schema {:.0} records/s; perfstore {:.0} records/s = {:.1}x",
        n_ingest as f64 / u.as_secs_f64(), n_ingest as f64 / o.as_secs_f64(), u.as_secs_f64() / o.as_secs_f64()));
    }

    // --- search over 1M records ---
    if enabled("search") {
        let total = if quick() { 200_000 } else { 1_000_000 };
        let per_upload = 100_000;
        let ours_path = dir.path().join("search-ours.db");
        let up_path = dir.path().join("search-up.db");
        eprintln!("loading {total} records into both stores (not measured)...");
        let store = rt.block_on(SqliteStore::open(&ours_path)).unwrap();
        let mut up = upstream_open(&up_path);
        for u in 0..total / per_upload {
            let id = rt
                .block_on(store.allocate_upload(chrono::Utc::now()))
                .unwrap();
            let recs = records(id.as_str(), u * per_upload, per_upload);
            upstream_insert(&mut up, id.as_str(), 0, &recs);
            rt.block_on(store.insert_records(&id, recs)).unwrap();
        }
        // No ANALYZE: upstream never runs it, so its planner drives joins in key order.
        let terms = [("goos", "linux"), ("pkg", "p017")];
        let query = Query::parse("goos:linux pkg:p017").unwrap();
        let ours_search = || {
            rt.block_on(async {
                let mut s = store.search(&query).await.unwrap();
                let mut n = 0;
                while let Some(r) = s.next().await {
                    r.unwrap();
                    n += 1;
                }
                n
            })
        };
        let expected = upstream_search(&up, &terms);
        assert_eq!(ours_search(), expected, "both answer the same records");
        let mut g = c.benchmark_group("search_1M_two_terms");
        g.bench_function("upstream_sql", |b| b.iter(|| upstream_search(&up, &terms)));
        g.bench_function("perfstore", |b| b.iter(ours_search));
        g.finish();
        let t_up = median_time(11, Duration::from_secs(60), || {
            black_box(upstream_search(&up, &terms));
        });
        let t_ours = median_time(21, Duration::from_secs(30), || {
            black_box(ours_search());
        });
        summary.push(format!("search goos:linux pkg:p017 over {total} records ({expected} matches): upstream SQL p50 {:.1} ms; perfstore p50 {:.1} ms = {:.1}x faster",
        t_up.as_secs_f64() * 1e3, t_ours.as_secs_f64() * 1e3, t_up.as_secs_f64() / t_ours.as_secs_f64()));
    }

    c.final_summary();
    println!("\nperfstore figures (ratios against baselines in this process):");
    for line in summary {
        println!("  {line}");
    }
}
