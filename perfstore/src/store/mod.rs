//! Where uploads live: the [`Store`] trait and its SQLite and PostgreSQL backends.
//!
//! Both backends share one index design and one query planner (`plan.rs`); they differ only in
//! SQL. The index stores, per (label, upload), a posting list of record IDs instead of
//! upstream's row per (record, label); see `postings.rs` for why. The HTTP API and wire
//! formats are unchanged by this choice.

mod plan;
#[cfg(feature = "postgres")]
pub mod postgres;
mod postings;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::Stream;

use crate::query::Query;

pub use plan::Indexed;

/// A failure of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[cfg(feature = "postgres")]
    #[error("postgres: {}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The upload to insert into was never allocated.
    #[error("unknown upload {0:?}")]
    UnknownUpload(String),
    /// The store's worker thread went away (the process is shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// A streamed upload ended without [`RecordBatch::Done`]: its producer failed, and
    /// nothing of it was kept.
    #[error("the upload was abandoned before its end")]
    Abandoned,
}

/// Every record of a streamed upload, or [`StoreError::Abandoned`] if the stream ends
/// before [`RecordBatch::Done`].
pub(crate) async fn gather(
    mut batches: tokio::sync::mpsc::Receiver<RecordBatch>,
) -> Result<Vec<NewRecord>> {
    let mut all = Vec::new();
    loop {
        match batches.recv().await {
            Some(RecordBatch::Records(r)) => all.extend(r),
            Some(RecordBatch::Done) => return Ok(all),
            None => return Err(StoreError::Abandoned),
        }
    }
}

/// One message of a streamed upload ([`Store::insert_record_stream`]).
#[derive(Debug)]
pub enum RecordBatch {
    /// The next records, in order.
    Records(Vec<NewRecord>),
    /// The upload is complete: commit it.
    Done,
}

/// The server's own message when there is one (`db error` alone says nothing).
#[cfg(feature = "postgres")]
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Result alias of this module.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An upload ID, `YYYYMMDD.N`: the UTC day and a sequence number that restarts daily.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(pub String);

impl UploadId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The day and sequence of an ID of the form `<digits>.<digits>`, else `None`
    /// (such IDs sort after all others, as upstream's NULL Day/Seq do).
    pub fn day_seq(&self) -> Option<(String, i64)> {
        let (day, seq) = self.0.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(day) || !digits(seq) {
            return None;
        }
        Some((day.to_string(), seq.parse().ok()?))
    }
}

impl UploadId {
    /// The ID after `last` (the newest upload) on `day`: the next sequence number of the
    /// same day, else `.1`.
    pub fn next_after(last: Option<UploadId>, day: &str) -> UploadId {
        let seq = match last.and_then(|id| id.day_seq()) {
            Some((d, s)) if d == day => s + 1,
            _ => 1,
        };
        UploadId(format!("{day}.{seq}"))
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The day part of the upload IDs allocated at `now`.
pub fn upload_day(now: DateTime<Utc>) -> String {
    now.format("%Y%m%d").to_string()
}

/// One record to store: its text (labels and lines) and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// The stored text: all labels as `key: value` lines, then the benchmark lines.
    pub content: Vec<u8>,
    /// Every label of the record, configuration labels and name labels, without duplicates.
    pub labels: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One line of `/uploads`: an upload having matching records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    /// The upload ID.
    pub upload_id: String,
    /// How many of its records match.
    pub count: u64,
    /// Values of the requested extra labels present in the upload.
    pub label_values: BTreeMap<String, Vec<u8>>,
}

/// Stored record contents, oldest upload first and in order within an upload.
pub type RecordStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>>> + Send>>;

/// Storage of uploads: what the HTTP API needs, nothing more.
///
/// Implementations pass the suite in `perfstore::conformance` (feature `conformance`).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Allocates the next upload ID of `now`'s UTC day in its own, already committed
    /// transaction (a failed upload therefore consumes its ID, as upstream's does).
    async fn allocate_upload(&self, now: DateTime<Utc>) -> Result<UploadId>;

    /// Stores all records of an upload in one transaction: all become visible, or none.
    /// Record IDs are their positions in `records`.
    async fn insert_records(&self, id: &UploadId, records: Vec<NewRecord>) -> Result<()>;

    /// Stores an upload's records as they arrive, still in one transaction: all become
    /// visible after [`RecordBatch::Done`], or none if the channel closes before it. A
    /// store that can keeps only a batch in memory at a time; this default gathers the
    /// batches and calls [`Store::insert_records`].
    async fn insert_record_stream(
        &self,
        id: &UploadId,
        batches: tokio::sync::mpsc::Receiver<RecordBatch>,
    ) -> Result<()> {
        self.insert_records(id, gather(batches).await?).await
    }

    /// The contents of the records matching `query`.
    async fn search(&self, query: &Query) -> Result<RecordStream>;

    /// The uploads having records that match `query`, newest first, at most `limit`.
    async fn uploads(
        &self,
        query: &Query,
        extra_labels: &[String],
        limit: Option<u64>,
    ) -> Result<Vec<UploadSummary>>;
}
