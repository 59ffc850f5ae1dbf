//! The query planner shared by every backend.
//!
//! A backend answers a handful of primitive questions (which label IDs satisfy a
//! constraint, which posting lists those labels have, what a record holds); this module
//! turns a [`Query`] into the set of matching records with them. Terms are evaluated most
//! selective first, judged by the posting counts the index keeps, so `goos:linux pkg:X`
//! costs what `pkg:X` costs whatever the keys' alphabetical order (upstream always drives
//! its join from the alphabetically first key).

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::postings::{decode_into, intersect, union};
use super::{
    NewRecord, RecordBatch, RecordStream, Result, Store, UploadId, UploadSummary, upload_day,
};
use crate::query::{Constraint, Query, UPLOAD_KEY, compare_upload_ids};

/// One row of the uploads table.
#[derive(Debug, Clone)]
pub(crate) struct UploadRow {
    /// The backend's integer key.
    pub(crate) key: i64,
    pub(crate) id: UploadId,
    pub(crate) record_count: u64,
}

impl UploadRow {
    /// Upstream's order: Day, Seq, UploadID, with IDs lacking day and sequence last when
    /// listing newest first.
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        let a = self.id.day_seq();
        let b = other.id.day_seq();
        a.is_some()
            .cmp(&b.is_some())
            .then_with(|| a.cmp(&b))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// One posting row: an upload, how many records it lists, and (when asked) the list.
#[derive(Debug)]
pub(crate) struct PostingRow {
    pub(crate) upload: i64,
    pub(crate) count: u64,
    pub(crate) records: Vec<u8>,
}

/// Record contents sent together: one channel hand-off per batch, not per record.
pub(crate) type Batch = Vec<Vec<u8>>;

/// Records per [`Batch`].
pub(crate) const BATCH_RECORDS: usize = 256;

/// Which records of one upload to read: all, or the listed IDs (sorted).
pub(crate) type RecordSelection = (i64, Option<Vec<u32>>);

/// The primitive operations a storage backend provides.
#[async_trait]
pub(crate) trait Backend: Clone + Send + Sync + fmt::Debug + 'static {
    /// Every upload.
    async fn upload_rows(&self) -> Result<Vec<UploadRow>>;
    /// IDs of the labels named `name` whose value satisfies `c`.
    async fn label_ids(&self, name: &str, c: &Constraint) -> Result<Vec<i64>>;
    /// Posting rows of `labels`, restricted to `uploads` when given; lists only if `lists`.
    async fn postings(
        &self,
        labels: &[i64],
        uploads: Option<&[i64]>,
        lists: bool,
    ) -> Result<Vec<PostingRow>>;
    /// Sends the contents of the selected records, in order and in batches, then returns.
    async fn send_records(&self, selection: Vec<RecordSelection>, out: mpsc::Sender<Result<Batch>>);
    /// The value of label `name` on any record of `upload`.
    async fn any_label_value(&self, upload: i64, name: &str) -> Result<Option<Vec<u8>>>;
    /// Allocates the next ID of `day`.
    async fn allocate(&self, day: &str) -> Result<UploadId>;
    /// Inserts an upload's records and their postings in one transaction.
    async fn insert(&self, id: &UploadId, records: Vec<NewRecord>) -> Result<()>;
    /// [`Backend::insert`] of batches as they arrive, in one transaction; this default
    /// gathers them first.
    async fn insert_stream(
        &self,
        id: &UploadId,
        batches: mpsc::Receiver<RecordBatch>,
    ) -> Result<()> {
        self.insert(id, super::gather(batches).await?).await
    }
}

/// A [`Store`] over a backend's index.
#[derive(Debug)]
pub struct Indexed<B> {
    pub(crate) backend: B,
}

/// The posting lists of one upload, built record by record: the distinct labels in
/// first-seen order and, per label, the IDs of the records carrying it. Only the labels
/// are kept, not the records, so a streamed upload holds 4 bytes per label of a record.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    index: HashMap<(Vec<u8>, Vec<u8>), usize>,
    lists: Vec<(Vec<u8>, Vec<u8>, Vec<u32>)>,
}

impl Postings {
    /// Notes that record `rid` carries `labels`.
    pub(crate) fn add(&mut self, rid: u32, labels: &[(Vec<u8>, Vec<u8>)]) {
        for (name, value) in labels {
            let key = (name.clone(), value.clone());
            let i = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    self.lists.push((name.clone(), value.clone(), Vec::new()));
                    self.index.insert(key, self.lists.len() - 1);
                    self.lists.len() - 1
                }
            };
            self.lists[i].2.push(rid);
        }
    }

    /// (name, value, record IDs) per label, in first-seen order.
    pub(crate) fn into_lists(self) -> Vec<(Vec<u8>, Vec<u8>, Vec<u32>)> {
        self.lists
    }
}

/// [`Postings`] of a whole upload.
pub(crate) fn postings_of(records: &[NewRecord]) -> Vec<(Vec<u8>, Vec<u8>, Vec<u32>)> {
    let mut p = Postings::default();
    for (rid, record) in records.iter().enumerate() {
        p.add(rid as u32, &record.labels);
    }
    p.into_lists()
}

// `Backend` is crate-private on purpose: backends are added here, not by users.
#[allow(private_bounds)]
impl<B: Backend> Indexed<B> {
    /// The matching records: per upload (in ascending upload order), all records or a list.
    async fn matching(&self, query: &Query) -> Result<Vec<(UploadRow, Option<Vec<u32>>)>> {
        if query.never_matches() {
            return Ok(Vec::new());
        }
        let mut uploads: Vec<UploadRow> = self
            .backend
            .upload_rows()
            .await?
            .into_iter()
            .filter(|u| u.record_count > 0)
            .collect();
        let mut label_terms = Vec::new();
        for term in query.terms() {
            if term.key == UPLOAD_KEY {
                uploads.retain(|u| {
                    term.constraint
                        .matches_by(u.id.as_str(), compare_upload_ids)
                });
            } else {
                label_terms.push(term);
            }
        }
        uploads.sort_by(UploadRow::order);
        if label_terms.is_empty() {
            return Ok(uploads.into_iter().map(|u| (u, None)).collect());
        }
        // Resolve every term to label IDs and size it by its posting counts.
        let allowed: Vec<i64> = uploads.iter().map(|u| u.key).collect();
        let mut sized = Vec::new();
        for term in label_terms {
            let ids = self.backend.label_ids(&term.key, &term.constraint).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let counts = self.backend.postings(&ids, Some(&allowed), false).await?;
            let total: u64 = counts.iter().map(|p| p.count).sum();
            if total == 0 {
                return Ok(Vec::new());
            }
            sized.push((total, ids));
        }
        sized.sort_by_key(|(total, _)| *total);
        // Evaluate from the most selective term; each further term only reads the posting
        // lists of uploads still in play.
        let mut current: HashMap<i64, Vec<u32>> = HashMap::new();
        let mut candidates = allowed;
        for (i, (_, ids)) in sized.iter().enumerate() {
            let mut lists: HashMap<i64, Vec<Vec<u32>>> = HashMap::new();
            for row in self.backend.postings(ids, Some(&candidates), true).await? {
                let mut list = Vec::with_capacity(row.count as usize);
                decode_into(&row.records, &mut list);
                lists.entry(row.upload).or_default().push(list);
            }
            let mut next = HashMap::new();
            for (upload, parts) in lists {
                let list = union(parts);
                if i == 0 {
                    next.insert(upload, list);
                } else if let Some(mut have) = current.remove(&upload) {
                    intersect(&mut have, &list);
                    if !have.is_empty() {
                        next.insert(upload, have);
                    }
                }
            }
            current = next;
            candidates = current.keys().copied().collect();
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
        }
        Ok(uploads
            .into_iter()
            .filter_map(|u| current.remove(&u.key).map(|list| (u, Some(list))))
            .collect())
    }
}

#[async_trait]
impl<B: Backend> Store for Indexed<B> {
    async fn allocate_upload(&self, now: DateTime<Utc>) -> Result<UploadId> {
        self.backend.allocate(&upload_day(now)).await
    }

    async fn insert_records(&self, id: &UploadId, records: Vec<NewRecord>) -> Result<()> {
        self.backend.insert(id, records).await
    }

    async fn insert_record_stream(
        &self,
        id: &UploadId,
        batches: mpsc::Receiver<RecordBatch>,
    ) -> Result<()> {
        self.backend.insert_stream(id, batches).await
    }

    async fn search(&self, query: &Query) -> Result<RecordStream> {
        let selection: Vec<RecordSelection> = self
            .matching(query)
            .await?
            .into_iter()
            .map(|(u, list)| (u.key, list))
            .collect();
        // A bounded channel: a slow client holds back the reader instead of growing memory,
        // and a client that goes away closes it, which stops the reader.
        let (tx, mut rx) = mpsc::channel::<Result<Batch>>(4);
        let backend = self.backend.clone();
        tokio::spawn(async move { backend.send_records(selection, tx).await });
        let batches = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Box::pin(batches.flat_map(|batch| {
            let items: Vec<Result<Vec<u8>>> = match batch {
                Ok(records) => records.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(items)
        })))
    }

    async fn uploads(
        &self,
        query: &Query,
        extra_labels: &[String],
        limit: Option<u64>,
    ) -> Result<Vec<UploadSummary>> {
        let mut matching = self.matching(query).await?;
        matching.reverse();
        if let Some(limit) = limit {
            matching.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        let mut out = Vec::with_capacity(matching.len());
        for (upload, list) in matching {
            let mut label_values = std::collections::BTreeMap::new();
            for name in extra_labels {
                if let Some(v) = self.backend.any_label_value(upload.key, name).await? {
                    label_values.insert(name.clone(), v);
                }
            }
            out.push(UploadSummary {
                upload_id: upload.id.0,
                count: list.map_or(upload.record_count, |l| l.len() as u64),
                label_values,
            });
        }
        Ok(out)
    }
}
