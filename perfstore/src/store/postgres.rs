//! The PostgreSQL backend (feature `postgres`): the same index as SQLite, for deployments
//! that share one database between several coordinators or keep years of results.
//!
//! Label names and values are stored as `bytea`: uploads are bytes (nothing in the format
//! assumes UTF-8) and `bytea` compares byte-wise, as the query language requires.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::{Client, NoTls};

use super::plan::{Backend, Batch, Indexed, PostingRow, RecordSelection, UploadRow, postings_of};
use super::postings::encode;
use super::{NewRecord, Result, StoreError, UploadId};
use crate::query::Constraint;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS uploads (
    key BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    day TEXT,
    seq BIGINT,
    record_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_day_seq ON uploads (day, seq);
CREATE TABLE IF NOT EXISTS records (
    key BIGINT PRIMARY KEY,
    content BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    key BIGSERIAL PRIMARY KEY,
    name BYTEA NOT NULL,
    value BYTEA NOT NULL,
    UNIQUE (name, value)
);
CREATE TABLE IF NOT EXISTS postings (
    label BIGINT NOT NULL,
    upload BIGINT NOT NULL,
    count BIGINT NOT NULL,
    records BYTEA NOT NULL,
    PRIMARY KEY (label, upload)
);
CREATE INDEX IF NOT EXISTS postings_upload ON postings (upload);
";

/// Rows per multi-row statement: large enough to amortise round trips, small enough to keep
/// each statement's memory modest.
const BATCH: usize = 5000;

/// The store on PostgreSQL.
pub type PgStore = Indexed<Pg>;

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db` or `host=… user=…`) and creates the
    /// tables if needed. With `schema`, everything lives in that schema (created if
    /// missing), so one database can hold several independent stores.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore> {
        let mut config: tokio_postgres::Config = url.parse()?;
        if let Some(schema) = schema {
            // Quote the identifier; a schema name containing quotes is refused by the server.
            config.options(format!("-c search_path=\"{schema}\""));
            let admin = connect(&config).await?;
            admin
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await?;
        }
        let write = connect(&config).await?;
        write.batch_execute(SCHEMA).await?;
        let read = connect(&config).await?;
        Ok(Indexed {
            backend: Pg {
                read: Arc::new(read),
                write: Arc::new(Mutex::new(write)),
            },
        })
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

/// PostgreSQL connections for [`PgStore`]: one for reads (queries are pipelined), one for
/// transactions.
#[derive(Debug, Clone)]
pub struct Pg {
    read: Arc<Client>,
    write: Arc<Mutex<Client>>,
}

fn record_key(upload: i64, record: u32) -> i64 {
    (upload << 32) | i64::from(record)
}

#[async_trait]
impl Backend for Pg {
    async fn upload_rows(&self) -> Result<Vec<UploadRow>> {
        let rows = self
            .read
            .query("SELECT key, id, record_count FROM uploads", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| UploadRow {
                key: r.get(0),
                id: UploadId(r.get(1)),
                record_count: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    async fn label_ids(&self, name: &str, c: &Constraint) -> Result<Vec<i64>> {
        let name = name.as_bytes();
        let rows = match c {
            Constraint::Eq(v) => {
                self.read
                    .query(
                        "SELECT key FROM labels WHERE name = $1 AND value = $2",
                        &[&name, &v.as_bytes()],
                    )
                    .await?
            }
            Constraint::Lt(v) => {
                self.read
                    .query(
                        "SELECT key FROM labels WHERE name = $1 AND value < $2",
                        &[&name, &v.as_bytes()],
                    )
                    .await?
            }
            Constraint::Gt(v) if v.is_empty() => {
                self.read
                    .query("SELECT key FROM labels WHERE name = $1", &[&name])
                    .await?
            }
            Constraint::Gt(v) => {
                self.read
                    .query(
                        "SELECT key FROM labels WHERE name = $1 AND value > $2",
                        &[&name, &v.as_bytes()],
                    )
                    .await?
            }
            Constraint::Range { lower, upper } => {
                self.read
                    .query(
                        "SELECT key FROM labels WHERE name = $1 AND value > $2 AND value < $3",
                        &[&name, &lower.as_bytes(), &upper.as_bytes()],
                    )
                    .await?
            }
        };
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn postings(
        &self,
        labels: &[i64],
        uploads: Option<&[i64]>,
        lists: bool,
    ) -> Result<Vec<PostingRow>> {
        let allowed: Option<HashSet<i64>> = uploads.map(|u| u.iter().copied().collect());
        let sql = if lists {
            "SELECT upload, count, records FROM postings WHERE label = ANY($1)"
        } else {
            "SELECT upload, count FROM postings WHERE label = ANY($1)"
        };
        let rows = self.read.query(sql, &[&labels]).await?;
        Ok(rows
            .iter()
            .filter(|r| {
                allowed
                    .as_ref()
                    .is_none_or(|a| a.contains(&r.get::<_, i64>(0)))
            })
            .map(|r| PostingRow {
                upload: r.get(0),
                count: r.get::<_, i64>(1) as u64,
                records: if lists { r.get(2) } else { Vec::new() },
            })
            .collect())
    }

    async fn send_records(
        &self,
        selection: Vec<RecordSelection>,
        out: mpsc::Sender<Result<Batch>>,
    ) {
        if let Err(e) = self.send(selection, &out).await {
            let _ = out.send(Err(e)).await;
        }
    }

    async fn any_label_value(&self, upload: i64, name: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .read
            .query_opt(
                "SELECT l.value FROM postings p JOIN labels l ON l.key = p.label \
                 WHERE p.upload = $1 AND l.name = $2 LIMIT 1",
                &[&upload, &name.as_bytes()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn allocate(&self, day: &str) -> Result<UploadId> {
        let mut client = self.write.lock().await;
        let tx = client.transaction().await?;
        // Serialise allocations (readers are not blocked).
        tx.batch_execute("LOCK TABLE uploads IN SHARE ROW EXCLUSIVE MODE")
            .await?;
        let last = tx
            .query_opt(
                "SELECT id FROM uploads ORDER BY day DESC NULLS LAST, seq DESC NULLS LAST LIMIT 1",
                &[],
            )
            .await?;
        let id = UploadId::next_after(last.map(|r| UploadId(r.get(0))), day);
        let seq = id.day_seq().map_or(1, |(_, s)| s);
        tx.execute(
            "INSERT INTO uploads (id, day, seq) VALUES ($1, $2, $3)",
            &[&id.0, &day, &seq],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn insert(&self, id: &UploadId, records: Vec<NewRecord>) -> Result<()> {
        let mut client = self.write.lock().await;
        let tx = client.transaction().await?;
        let upload: i64 = tx
            .query_opt("SELECT key FROM uploads WHERE id = $1", &[&id.0])
            .await?
            .ok_or_else(|| StoreError::UnknownUpload(id.0.clone()))?
            .get(0);
        for (chunk_no, chunk) in records.chunks(BATCH).enumerate() {
            let keys: Vec<i64> = (0..chunk.len())
                .map(|i| record_key(upload, (chunk_no * BATCH + i) as u32))
                .collect();
            let contents: Vec<&[u8]> = chunk.iter().map(|r| r.content.as_slice()).collect();
            tx.execute(
                "INSERT INTO records (key, content) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                &[&keys, &contents],
            )
            .await?;
        }
        let postings = postings_of(&records);
        for chunk in postings.chunks(BATCH) {
            let names: Vec<&[u8]> = chunk.iter().map(|p| p.0.as_slice()).collect();
            let values: Vec<&[u8]> = chunk.iter().map(|p| p.1.as_slice()).collect();
            tx.execute(
                "INSERT INTO labels (name, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT DO NOTHING",
                &[&names, &values],
            )
            .await?;
            let rows = tx
                .query(
                    "SELECT l.key, u.ord FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY \
                     AS u(name, value, ord) JOIN labels l ON l.name = u.name AND l.value = u.value",
                    &[&names, &values],
                )
                .await?;
            let mut label_keys = vec![0i64; chunk.len()];
            for r in rows {
                let ord: i64 = r.get(1);
                label_keys[(ord - 1) as usize] = r.get(0);
            }
            let counts: Vec<i64> = chunk.iter().map(|p| p.2.len() as i64).collect();
            let lists: Vec<Vec<u8>> = chunk.iter().map(|p| encode(&p.2)).collect();
            tx.execute(
                "INSERT INTO postings (label, upload, count, records) \
                 SELECT l, $2, c, r FROM unnest($1::bigint[], $3::bigint[], $4::bytea[]) AS u(l, c, r)",
                &[&label_keys, &upload, &counts, &lists],
            )
            .await?;
        }
        tx.execute(
            "UPDATE uploads SET record_count = record_count + $1 WHERE key = $2",
            &[&(records.len() as i64), &upload],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Pg {
    async fn send(
        &self,
        selection: Vec<RecordSelection>,
        out: &mpsc::Sender<Result<Batch>>,
    ) -> Result<()> {
        for (upload, list) in selection {
            match list {
                Some(ids) => {
                    for chunk in ids.chunks(1000) {
                        let keys: Vec<i64> = chunk.iter().map(|&i| record_key(upload, i)).collect();
                        let rows = self
                            .read
                            .query(
                                "SELECT content FROM records WHERE key = ANY($1) ORDER BY key",
                                &[&keys],
                            )
                            .await?;
                        let batch: Batch = rows.iter().map(|r| r.get(0)).collect();
                        if out.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                None => {
                    let (mut from, end) = (record_key(upload, 0), record_key(upload + 1, 0));
                    loop {
                        let rows = self
                            .read
                            .query(
                                "SELECT key, content FROM records WHERE key >= $1 AND key < $2 \
                                 ORDER BY key LIMIT 1000",
                                &[&from, &end],
                            )
                            .await?;
                        let Some(last) = rows.last() else { break };
                        from = last.get::<_, i64>(0) + 1;
                        let batch: Batch = rows.iter().map(|r| r.get(1)).collect();
                        if out.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
