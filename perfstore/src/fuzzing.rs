//! Entry points shared by the fuzz targets (`fuzz/`) and the seed-replay tests, so CI runs
//! every committed seed through exactly the code the fuzzer exercises.

use crate::benchfmt::{LegacyPrinter, LegacyReader, Reader, Record, Writer};
use crate::ingest::{ServerLabels, UploadBuilder};
use crate::query::Query;
use crate::store::UploadId;

/// Both readers over arbitrary bytes; what reader N reads, its writer writes and N reads
/// back to the same results; and on every benchmark line, reader N's fast path (where it
/// applies) reads exactly what its general parser reads.
pub fn benchfmt(data: &[u8]) {
    let _ = crate::benchfmt::assert_fast_path_agrees(data);
    let mut out = Vec::new();
    let mut printer = LegacyPrinter::new();
    for r in LegacyReader::new(data) {
        match r {
            Ok(r) => printer.print(&mut out, &r).expect("Vec write"),
            Err(_) => break,
        }
    }
    let mut reader = Reader::new(data);
    let mut writer = Writer::new(Vec::new());
    let mut first = Vec::new();
    while let Some(rec) = reader.next_record() {
        match rec {
            Ok(rec) => {
                if let Record::Result(r) = rec {
                    first.push((r.name.clone(), r.iters, r.values.len()));
                }
                writer.write_record(rec).expect("Vec write");
            }
            Err(_) => return,
        }
    }
    let written = writer.into_inner();
    let mut again = Vec::new();
    let mut reader = Reader::new(&written[..]);
    while let Some(Ok(rec)) = reader.next_record() {
        if let Record::Result(r) = rec {
            again.push((r.name.clone(), r.iters, r.values.len()));
        }
    }
    assert_eq!(first, again, "writer output re-reads differently");
}

/// The query parser over arbitrary text: never panics, and what it accepts holds the
/// invariants the stores rely on: keys sorted and unique, no upper case or space in a key,
/// no empty `key:` value except for `upload`.
pub fn query(data: &[u8]) {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Query::parse(q) else {
        return;
    };
    for pair in parsed.terms().windows(2) {
        assert!(
            pair[0].key < pair[1].key,
            "terms sorted by key, one per key"
        );
    }
    for t in parsed.terms() {
        assert!(!t.key.chars().any(|c| c.is_uppercase() || c.is_whitespace()));
        if t.key != crate::query::UPLOAD_KEY {
            assert_ne!(t.constraint, crate::query::Constraint::Eq(String::new()));
        }
    }
}

/// The boundary the multipart target's bodies use.
pub const MULTIPART_BOUNDARY: &str = "xbuild-fuzz";

/// An upload body (boundary [`MULTIPART_BOUNDARY`]) through the multipart parser and the
/// ingest of its `file` parts, with a size limit; never panics.
pub fn multipart(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("current-thread runtime");
    let body = bytes::Bytes::copy_from_slice(data);
    runtime.block_on(async move {
        let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(body)]);
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(1 << 20));
        let mut mp = multer::Multipart::with_constraints(stream, MULTIPART_BOUNDARY, constraints);
        let id = UploadId("20170214.1".into());
        let mut builder = UploadBuilder::new();
        let mut part = 0;
        while let Ok(Some(field)) = mp.next_field().await {
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.file_name().map(str::to_string);
            let Ok(bytes) = field.bytes().await else {
                return;
            };
            if name == "file" {
                let server = ServerLabels {
                    upload: &id,
                    part,
                    time: "2017-02-14T18:03:27Z",
                    file_name: file_name.as_deref(),
                    by: None,
                };
                if builder.add_file(&server, &bytes).is_err() {
                    return;
                }
            }
            part += 1;
        }
        for r in builder.finish() {
            assert!(r.content.ends_with(b"\n"));
        }
    });
}
