//! Turning uploaded files into records, exactly as upstream's storage server groups them.
//!
//! Each file is read with the legacy reader, with the server's labels (`upload`,
//! `upload-part`, `upload-time`, `upload-file`, `by`) in force and protected. Consecutive
//! results with identical labels form one record; a record's text is all its labels
//! followed by its lines, as a fresh [`LegacyPrinter`] prints them.

use crate::benchfmt::{self, Labels, LegacyPrinter, LegacyReader, LegacyResult};
use crate::store::{NewRecord, UploadId};

/// Why a file could not be added to an upload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The file held no benchmark line.
    #[error("no valid benchmark lines found")]
    NoBenchmarks,
    /// The store stopped taking the records of a streamed upload.
    #[error("the store stopped taking records")]
    Stopped,
    /// The file could not be read (a line over 65,535 bytes).
    #[error(transparent)]
    Read(#[from] benchfmt::Error),
    /// A configuration key is also one of the result's name labels (`name: x`, or
    /// `gomaxprocs: 4` before a `-4` benchmark). Upstream fails the upload on its primary
    /// key; so does this port, with a message that says why.
    #[error(
        "line {line}: configuration key {key:?} is also a label derived from the benchmark name; rename the key"
    )]
    DuplicateLabel {
        /// The benchmark line.
        line: usize,
        /// The clashing key.
        key: String,
    },
}

/// Upstream flushes its multi-row INSERTs every 990 bound parameters (4 per label row), and
/// a flush ends record grouping. The grouping is visible in `/uploads` counts, so it is kept.
const FLUSH_PARAMS: usize = 990;

/// The records of one upload being assembled, file by file.
#[derive(Debug, Default)]
pub struct UploadBuilder {
    records: Vec<NewRecord>,
    last: Option<LegacyResult>,
    pending_params: usize,
}

/// The labels the server adds to every result of one file.
#[derive(Debug, Clone)]
pub struct ServerLabels<'a> {
    /// The upload.
    pub upload: &'a UploadId,
    /// The index of the multipart part (counting every part, `commit` included).
    pub part: usize,
    /// The request's start time, RFC 3339 seconds, UTC.
    pub time: &'a str,
    /// The part's file name as sent; only its base name is kept.
    pub file_name: Option<&'a str>,
    /// The authenticated user, if any.
    pub by: Option<&'a str>,
}

impl ServerLabels<'_> {
    /// The labels as a map; empty file name and user are omitted.
    pub fn labels(&self) -> Labels {
        let mut l = Labels::new();
        let mut put = |k: &str, v: &str| {
            l.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        };
        put("upload", self.upload.as_str());
        put("upload-part", &format!("{}/{}", self.upload, self.part));
        put("upload-time", self.time);
        if let Some(name) = self.file_name {
            let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
            if !base.is_empty() {
                put("upload-file", base);
            }
        }
        if let Some(by) = self.by.filter(|b| !b.is_empty()) {
            put("by", by);
        }
        l
    }
}

impl UploadBuilder {
    /// An empty upload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the results of one file. On error the builder must be discarded (the whole
    /// upload fails).
    pub fn add_file(&mut self, server: &ServerLabels<'_>, data: &[u8]) -> Result<(), IngestError> {
        self.read_file(server, data, usize::MAX, |_| true)
    }

    /// Adds the results of one file read from `input`. Whenever more than `batch`
    /// records are complete, all but the last (which the next result may still join)
    /// are handed to `emit`, which returns false if they cannot be taken any more; so a
    /// streamed upload holds about one batch of records at a time.
    pub fn read_file<R: std::io::BufRead>(
        &mut self,
        server: &ServerLabels<'_>,
        input: R,
        batch: usize,
        mut emit: impl FnMut(Vec<NewRecord>) -> bool,
    ) -> Result<(), IngestError> {
        let reader = LegacyReader::with_protected_labels(input, server.labels());
        let mut found = false;
        for result in reader {
            let result = result?;
            found = true;
            self.add_result(result)?;
            if self.records.len() > batch {
                let last = self.records.pop();
                if !emit(std::mem::take(&mut self.records)) {
                    return Err(IngestError::Stopped);
                }
                self.records.extend(last);
            }
        }
        if !found {
            return Err(IngestError::NoBenchmarks);
        }
        Ok(())
    }

    fn add_result(&mut self, result: LegacyResult) -> Result<(), IngestError> {
        if let (Some(last), Some(record)) = (&self.last, self.records.last_mut())
            && last.same_labels(&result)
        {
            record.content.extend_from_slice(&result.content);
            record.content.push(b'\n');
            return Ok(());
        }
        let mut content = Vec::new();
        LegacyPrinter::new()
            .print(&mut content, &result)
            .expect("writing to a Vec cannot fail");
        let mut labels: Vec<(Vec<u8>, Vec<u8>)> =
            Vec::with_capacity(result.labels.len() + result.name_labels.len());
        labels.extend(result.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (k, v) in result.name_labels.iter() {
            if result.labels.contains_key(k) {
                return Err(IngestError::DuplicateLabel {
                    line: result.line_no,
                    key: String::from_utf8_lossy(k).into_owned(),
                });
            }
            labels.push((k.clone(), v.clone()));
        }
        let mut flushed = false;
        for _ in &labels {
            self.pending_params += 4;
            if self.pending_params >= FLUSH_PARAMS {
                self.pending_params = 0;
                flushed = true;
            }
        }
        self.records.push(NewRecord { content, labels });
        self.last = if flushed { None } else { Some(result) };
        Ok(())
    }

    /// The records, in order.
    pub fn finish(self) -> Vec<NewRecord> {
        self.records
    }
}

/// Re-prints stored record texts as one `/search` response: each record is re-read with
/// the legacy reader and printed with one printer, so labels appear as differences.
#[derive(Debug, Default)]
pub struct SearchPrinter {
    printer: LegacyPrinter,
}

impl SearchPrinter {
    /// A printer for a new response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The response bytes for one stored record.
    pub fn print_record(&mut self, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len());
        for result in LegacyReader::new(content) {
            match result {
                Ok(r) => {
                    let _ = self.printer.print(&mut out, &r);
                }
                Err(e) => {
                    out.extend_from_slice(format!("{e}\n").as_bytes());
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Not;

    fn server<'a>(id: &'a UploadId, part: usize, name: Option<&'a str>) -> ServerLabels<'a> {
        ServerLabels {
            upload: id,
            part,
            time: "2017-02-14T18:03:27Z",
            file_name: name,
            by: Some("u@example.com"),
        }
    }

    #[test]
    fn case_21_records_and_labels() {
        let id = UploadId("20170214.1".into());
        let mut b = UploadBuilder::new();
        b.add_file(
            &server(&id, 0, Some("1.txt")),
            b"key: value\nBenchmarkOne 5 ns/op\nkey:value2\nBenchmarkTwo 10 ns/op\n",
        )
        .unwrap();
        let records = b.finish();
        assert_eq!(records.len(), 2);
        assert_eq!(
            String::from_utf8(records[0].content.clone()).unwrap(),
            "by: u@example.com\nkey: value\nupload: 20170214.1\nupload-file: 1.txt\n\
             upload-part: 20170214.1/0\nupload-time: 2017-02-14T18:03:27Z\nBenchmarkOne 5 ns/op\n"
        );
        assert!(
            records[1]
                .labels
                .contains(&(b"key".to_vec(), b"value".to_vec()))
        );
        assert!(
            records[1]
                .labels
                .contains(&(b"name".to_vec(), b"Two".to_vec()))
        );
    }

    #[test]
    fn cases_27_to_30() {
        let id = UploadId("20170214.1".into());
        let labels = server(&id, 0, Some("dir\\sub/run.txt")).labels();
        assert_eq!(labels.get(&b"upload-file"[..]), Some(&b"run.txt".to_vec()));
        assert!(
            server(&id, 0, Some(""))
                .labels()
                .contains_key(&b"upload-file"[..])
                .not()
        );

        let mut b = UploadBuilder::new();
        b.add_file(
            &server(&id, 0, None),
            b"upload: x\nupload-part: y\nby: z\nBenchmarkX 1 1 ns/op\n",
        )
        .unwrap();
        let r = &b.finish()[0];
        assert!(
            r.labels
                .contains(&(b"by".to_vec(), b"u@example.com".to_vec()))
        );
        assert!(
            r.labels
                .contains(&(b"upload".to_vec(), b"20170214.1".to_vec()))
        );

        let mut b = UploadBuilder::new();
        let err = b
            .add_file(&server(&id, 0, None), b"name: foo\nBenchmarkX 1 1 ns/op\n")
            .unwrap_err();
        assert!(matches!(err, IngestError::DuplicateLabel { .. }), "{err}");

        let mut b = UploadBuilder::new();
        let ten: String = (0..10)
            .map(|i| format!("BenchmarkX 1 {i} ns/op\n"))
            .collect();
        b.add_file(&server(&id, 0, None), ten.as_bytes()).unwrap();
        let records = b.finish();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].content.iter().filter(|&&c| c == b'\n').count(),
            4 + 10
        );

        let mut b = UploadBuilder::new();
        assert!(matches!(
            b.add_file(&server(&id, 0, None), b"PASS\n"),
            Err(IngestError::NoBenchmarks)
        ));
    }

    #[test]
    fn flush_ends_grouping_like_upstream() {
        // 5 labels per record (4 server labels and `name`): label row 248 (992 parameters)
        // belongs to the 50th record, so its second, identical line starts a new record.
        let id = UploadId("1.1".into());
        let mut b = UploadBuilder::new();
        let input: String = (0..100)
            .map(|i| format!("BenchmarkX{} 1 1 ns/op\n", i / 2))
            .collect();
        b.add_file(&server(&id, 0, None), input.as_bytes()).unwrap();
        assert_eq!(b.finish().len(), 51);
    }
}
