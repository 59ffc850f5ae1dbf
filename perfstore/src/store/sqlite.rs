//! The SQLite backend: the embedded default, one file in WAL mode.
//!
//! One writer connection (SQLite has one writer at a time anyway) and a pool of reader
//! connections, all used from blocking threads so the async runtime never waits on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::plan::{
    BATCH_RECORDS, Backend, Batch, Indexed, PostingRow, Postings, RecordSelection, UploadRow,
};
use super::postings::encode;
use super::{NewRecord, RecordBatch, Result, StoreError, UploadId};
use crate::query::Constraint;

/// The schema. Records are keyed by `upload << 32 | record` so one integer key serves as the
/// primary key and the upload range scan; labels are interned once; postings hold the
/// record lists (see the module docs of `store`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS uploads (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    day TEXT,
    seq INTEGER,
    record_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_day_seq ON uploads (day, seq);
CREATE TABLE IF NOT EXISTS records (
    key INTEGER PRIMARY KEY,
    content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    key INTEGER PRIMARY KEY,
    name BLOB NOT NULL,
    value BLOB NOT NULL,
    UNIQUE (name, value)
);
CREATE TABLE IF NOT EXISTS postings (
    label INTEGER NOT NULL,
    upload INTEGER NOT NULL,
    count INTEGER NOT NULL,
    records BLOB NOT NULL,
    PRIMARY KEY (label, upload)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_upload ON postings (upload);
";

/// The store on SQLite.
pub type SqliteStore = Indexed<Sqlite>;

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let backend = tokio::task::spawn_blocking(move || Sqlite::open(path))
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(Indexed { backend })
    }
}

/// SQLite connections for [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct Sqlite {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // WAL: readers never block the writer; NORMAL sync is durable across process crashes
    // (only an OS crash can lose the last commits), and a cut-off transaction is never seen.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Locks a mutex, recovering from a panic elsewhere: the guarded connection stays usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sqlite {
    fn open(path: PathBuf) -> Result<Sqlite> {
        let writer = connect(&path)?;
        writer.execute_batch(SCHEMA)?;
        Ok(Sqlite {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs `f` on a reader connection in a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = lock(&inner.readers).pop();
            let conn = match conn {
                Some(c) => c,
                None => connect(&inner.path)?,
            };
            let result = f(&conn);
            lock(&inner.readers).push(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the writer connection in a blocking thread.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.writer)))
            .await
            .map_err(|_| StoreError::Closed)?
    }
}

/// The `records` key of a record.
fn record_key(upload: i64, record: u32) -> i64 {
    (upload << 32) | i64::from(record)
}

#[async_trait]
impl Backend for Sqlite {
    async fn upload_rows(&self) -> Result<Vec<UploadRow>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT key, id, record_count FROM uploads")?;
            let rows = stmt.query_map([], |r| {
                Ok(UploadRow {
                    key: r.get(0)?,
                    id: UploadId(r.get(1)?),
                    record_count: r.get::<_, i64>(2)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn label_ids(&self, name: &str, c: &Constraint) -> Result<Vec<i64>> {
        let name = name.as_bytes().to_vec();
        let c = c.clone();
        self.read(move |conn| {
            // Values are bound as BLOBs, like the stored ones, so comparison is byte-wise.
            let (sql, args): (&str, Vec<&[u8]>) = match &c {
                Constraint::Eq(v) => (
                    "SELECT key FROM labels WHERE name = ?1 AND value = ?2",
                    vec![v.as_bytes()],
                ),
                Constraint::Lt(v) => (
                    "SELECT key FROM labels WHERE name = ?1 AND value < ?2",
                    vec![v.as_bytes()],
                ),
                Constraint::Gt(v) if v.is_empty() => {
                    ("SELECT key FROM labels WHERE name = ?1", vec![])
                }
                Constraint::Gt(v) => (
                    "SELECT key FROM labels WHERE name = ?1 AND value > ?2",
                    vec![v.as_bytes()],
                ),
                Constraint::Range { lower, upper } => (
                    "SELECT key FROM labels WHERE name = ?1 AND value > ?2 AND value < ?3",
                    vec![lower.as_bytes(), upper.as_bytes()],
                ),
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&name];
            for a in &args {
                bound.push(a);
            }
            let ids = stmt.query_map(bound.as_slice(), |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<Vec<i64>>>()?)
        })
        .await
    }

    async fn postings(
        &self,
        labels: &[i64],
        uploads: Option<&[i64]>,
        lists: bool,
    ) -> Result<Vec<PostingRow>> {
        let labels = labels.to_vec();
        let allowed: Option<std::collections::HashSet<i64>> =
            uploads.map(|u| u.iter().copied().collect());
        self.read(move |conn| {
            let mut out = Vec::new();
            if lists {
                let mut stmt = conn.prepare_cached(
                    "SELECT records FROM postings WHERE label = ?1 AND upload = ?2",
                )?;
                let mut by_upload =
                    conn.prepare_cached("SELECT upload, count FROM postings WHERE label = ?1")?;
                for label in labels {
                    let rows: Vec<(i64, i64)> = by_upload
                        .query_map([label], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    for (upload, count) in rows {
                        if allowed.as_ref().is_some_and(|a| !a.contains(&upload)) {
                            continue;
                        }
                        let records: Vec<u8> =
                            stmt.query_row(params![label, upload], |r| r.get(0))?;
                        out.push(PostingRow {
                            upload,
                            count: count as u64,
                            records,
                        });
                    }
                }
            } else {
                let mut stmt =
                    conn.prepare_cached("SELECT upload, count FROM postings WHERE label = ?1")?;
                for label in labels {
                    let rows = stmt.query_map([label], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))?;
                    for row in rows {
                        let (upload, count) = row?;
                        if allowed.as_ref().is_none_or(|a| a.contains(&upload)) {
                            out.push(PostingRow {
                                upload,
                                count: count as u64,
                                records: Vec::new(),
                            });
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn send_records(
        &self,
        selection: Vec<RecordSelection>,
        out: mpsc::Sender<Result<Batch>>,
    ) {
        let failed = out.clone();
        let sent = self
            .read(move |conn| {
                let mut one = conn.prepare_cached("SELECT content FROM records WHERE key = ?1")?;
                let mut range = conn.prepare_cached(
                    "SELECT content FROM records WHERE key >= ?1 AND key < ?2 ORDER BY key",
                )?;
                let mut batch: Batch = Vec::with_capacity(BATCH_RECORDS);
                // False once the receiver is gone (the client went away): stop reading.
                let push = |batch: &mut Batch, c: Vec<u8>| {
                    batch.push(c);
                    batch.len() < BATCH_RECORDS
                        || out.blocking_send(Ok(std::mem::take(batch))).is_ok()
                };
                for (upload, list) in selection {
                    match list {
                        Some(ids) => {
                            for id in ids {
                                let content: Option<Vec<u8>> = one
                                    .query_row([record_key(upload, id)], |r| r.get(0))
                                    .optional()?;
                                if let Some(c) = content
                                    && !push(&mut batch, c)
                                {
                                    return Ok(());
                                }
                            }
                        }
                        None => {
                            let rows = range.query_map(
                                [record_key(upload, 0), record_key(upload + 1, 0)],
                                |r| r.get::<_, Vec<u8>>(0),
                            )?;
                            for c in rows {
                                if !push(&mut batch, c?) {
                                    return Ok(());
                                }
                            }
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = out.blocking_send(Ok(batch));
                }
                Ok(())
            })
            .await;
        if let Err(e) = sent {
            let _ = failed.send(Err(e)).await;
        }
    }

    async fn any_label_value(&self, upload: i64, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.as_bytes().to_vec();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT l.value FROM postings p JOIN labels l ON l.key = p.label \
                 WHERE p.upload = ?1 AND l.name = ?2 LIMIT 1",
            )?;
            Ok(stmt
                .query_row(params![upload, name], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn allocate(&self, day: &str) -> Result<UploadId> {
        let day = day.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let last: Option<String> = tx
                .query_row(
                    "SELECT id FROM uploads ORDER BY day DESC, seq DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let id = UploadId::next_after(last.map(UploadId), &day);
            let seq = id.day_seq().map_or(1, |(_, s)| s);
            tx.execute(
                "INSERT INTO uploads (id, day, seq) VALUES (?1, ?2, ?3)",
                params![id.0, day, seq],
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn insert(&self, id: &UploadId, records: Vec<NewRecord>) -> Result<()> {
        let (tx, rx) = mpsc::channel(2);
        let _ = tx.send(RecordBatch::Records(records)).await;
        let _ = tx.send(RecordBatch::Done).await;
        self.insert_stream(id, rx).await
    }

    /// One write transaction for the whole upload, fed batch by batch: records are
    /// inserted as they come and only their labels' posting lists are kept until the end.
    async fn insert_stream(
        &self,
        id: &UploadId,
        mut batches: mpsc::Receiver<RecordBatch>,
    ) -> Result<()> {
        let id = id.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let upload: i64 = tx
                .query_row("SELECT key FROM uploads WHERE id = ?1", [&id.0], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or_else(|| StoreError::UnknownUpload(id.0.clone()))?;
            let mut postings = Postings::default();
            let mut count: u32 = 0;
            {
                let mut insert =
                    tx.prepare_cached("INSERT INTO records (key, content) VALUES (?1, ?2)")?;
                loop {
                    // Dropping the transaction without commit rolls everything back.
                    match batches.blocking_recv() {
                        Some(RecordBatch::Records(records)) => {
                            for r in records {
                                insert.execute(params![record_key(upload, count), r.content])?;
                                postings.add(count, &r.labels);
                                count += 1;
                            }
                        }
                        Some(RecordBatch::Done) => break,
                        None => return Err(StoreError::Abandoned),
                    }
                }
                let mut find =
                    tx.prepare_cached("SELECT key FROM labels WHERE name = ?1 AND value = ?2")?;
                let mut add =
                    tx.prepare_cached("INSERT INTO labels (name, value) VALUES (?1, ?2)")?;
                let mut post = tx.prepare_cached(
                    "INSERT INTO postings (label, upload, count, records) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (name, value, ids) in postings.into_lists() {
                    let label = match find
                        .query_row(params![name, value], |r| r.get::<_, i64>(0))
                        .optional()?
                    {
                        Some(key) => key,
                        None => {
                            add.execute(params![name, value])?;
                            tx.last_insert_rowid()
                        }
                    };
                    post.execute(params![label, upload, ids.len() as i64, encode(&ids)])?;
                }
            }
            tx.execute(
                "UPDATE uploads SET record_count = record_count + ?1 WHERE key = ?2",
                params![i64::from(count), upload],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
