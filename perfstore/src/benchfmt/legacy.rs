//! Reader **L**: the line reader the storage server indexes uploads with, and its printer.
//!
//! It knows only two kinds of line: configuration lines, which update the labels in force,
//! and benchmark lines, which it keeps verbatim; everything else is ignored. Benchmark names
//! are split into *name labels* (`name`, `gomaxprocs`, `sub1`, `key=value` parts).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

use super::Error;
use super::lines::Lines;
use super::syntax::{ConfigLine, find_space, parse_config_line};

/// A set of labels, sorted by key. Keys and values are bytes: nothing here assumes UTF-8.
pub type Labels = BTreeMap<Vec<u8>, Vec<u8>>;

/// One benchmark line and the labels in force for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyResult {
    /// The configuration labels in force (including any protected server labels).
    pub labels: Arc<Labels>,
    /// Labels derived from the benchmark name.
    pub name_labels: Arc<Labels>,
    /// 1-based line number of the benchmark line.
    pub line_no: usize,
    /// The benchmark line verbatim (without its line ending).
    pub content: Vec<u8>,
}

impl LegacyResult {
    /// Whether two results carry exactly the same labels, so that they belong to one record.
    pub fn same_labels(&self, other: &LegacyResult) -> bool {
        (Arc::ptr_eq(&self.labels, &other.labels) || self.labels == other.labels)
            && (Arc::ptr_eq(&self.name_labels, &other.name_labels)
                || self.name_labels == other.name_labels)
    }
}

/// Streams [`LegacyResult`]s out of benchmark text.
#[derive(Debug)]
pub struct LegacyReader<R> {
    lines: Lines<R>,
    labels: Arc<Labels>,
    protected: Labels,
    last_name: Vec<u8>,
    last_name_labels: Arc<Labels>,
}

impl<R: BufRead> LegacyReader<R> {
    /// A reader with no labels in force.
    pub fn new(input: R) -> Self {
        Self::with_protected_labels(input, Labels::new())
    }

    /// A reader that starts with `labels` in force and ignores any configuration line that
    /// would change or delete one of them (the storage server's own labels).
    pub fn with_protected_labels(input: R, labels: Labels) -> Self {
        LegacyReader {
            lines: Lines::new(input),
            labels: Arc::new(labels.clone()),
            protected: labels,
            last_name: Vec::new(),
            last_name_labels: Arc::new(Labels::new()),
        }
    }

    /// The next benchmark result, `Ok(None)` at the end, or a fatal read error.
    pub fn next_result(&mut self) -> Result<Option<LegacyResult>, Error> {
        loop {
            let (line_no, line) = match self.lines.next_line() {
                Ok(Some(line)) => (line.no, line.bytes),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(Error::Read {
                        file: "<unknown>".into(),
                        line: self.lines.line_no,
                        message: e.to_string(),
                    });
                }
            };
            if let Some(config) = parse_config_line(line) {
                let key = match config {
                    ConfigLine::Set(k, _) | ConfigLine::Delete(k) => k,
                };
                if self.protected.contains_key(key) {
                    continue;
                }
                // Copy on write: results already handed out keep the labels they had.
                let labels = Arc::make_mut(&mut self.labels);
                match config {
                    ConfigLine::Set(k, v) => {
                        labels.insert(k.to_vec(), v.to_vec());
                    }
                    ConfigLine::Delete(k) => {
                        labels.remove(k);
                    }
                }
                continue;
            }
            let Some((space, _)) = find_space(line) else {
                continue;
            };
            let Some(name) = line[..space].strip_prefix(b"Benchmark") else {
                continue;
            };
            if name != self.last_name.as_slice() {
                self.last_name = name.to_vec();
                self.last_name_labels = Arc::new(name_labels(name));
            }
            return Ok(Some(LegacyResult {
                labels: Arc::clone(&self.labels),
                name_labels: Arc::clone(&self.last_name_labels),
                line_no,
                content: line.to_vec(),
            }));
        }
    }
}

impl<R: BufRead> Iterator for LegacyReader<R> {
    type Item = Result<LegacyResult, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_result().transpose()
    }
}

/// Whether `s` is what Go's `strconv.Atoi` accepts: an optional sign and decimal digits
/// that fit in an `int`.
fn is_go_int(s: &[u8]) -> bool {
    std::str::from_utf8(s)
        .ok()
        .is_some_and(|s| s.parse::<i64>().is_ok())
}

/// The labels the legacy reader derives from a benchmark name (the text after `Benchmark`).
///
/// `A/b/c=d/e-4` gives `name=A, sub1=b, c=d, sub3=e, gomaxprocs=4`. A part `name=x`
/// overrides `name`, as upstream's does.
pub fn name_labels(name: &[u8]) -> Labels {
    let mut labels = Labels::new();
    let mut name = name;
    if let Some(dash) = memchr::memrchr(b'-', name) {
        let procs = &name[dash + 1..];
        if is_go_int(procs) {
            labels.insert(b"gomaxprocs".to_vec(), procs.to_vec());
            name = &name[..dash];
        }
    }
    let mut parts = name.split(|&b| b == b'/');
    labels.insert(b"name".to_vec(), parts.next().unwrap_or_default().to_vec());
    for (i, part) in parts.enumerate() {
        match memchr::memchr(b'=', part) {
            Some(eq) => labels.insert(part[..eq].to_vec(), part[eq + 1..].to_vec()),
            None => labels.insert(format!("sub{}", i + 1).into_bytes(), part.to_vec()),
        };
    }
    labels
}

/// Prints results as label differences followed by the verbatim line, the format of the
/// storage server's `/search` responses and of stored records.
#[derive(Debug, Default)]
pub struct LegacyPrinter {
    last: Arc<Labels>,
}

impl LegacyPrinter {
    /// A printer that has printed nothing yet, so its first result prints all its labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prints `result`: `key:` for each key of the previous result now missing or empty,
    /// then `key: value` for each new or changed key (both sorted), then the line.
    pub fn print<W: Write>(&mut self, out: &mut W, result: &LegacyResult) -> std::io::Result<()> {
        let now = &result.labels;
        if !Arc::ptr_eq(&self.last, now) {
            for key in self.last.keys() {
                if now.get(key).is_none_or(|v| v.is_empty()) {
                    out.write_all(key)?;
                    out.write_all(b":\n")?;
                }
            }
            for (key, value) in now.iter() {
                if !value.is_empty() && self.last.get(key) != Some(value) {
                    out.write_all(key)?;
                    out.write_all(b": ")?;
                    out.write_all(value)?;
                    out.write_all(b"\n")?;
                }
            }
            self.last = Arc::clone(now);
        }
        out.write_all(&result.content)?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn read(input: &[u8]) -> Vec<LegacyResult> {
        LegacyReader::new(input).map(|r| r.unwrap()).collect()
    }

    #[test]
    fn configuration_persists_and_changes() {
        // Conformance cases 1, 2, 3, 5, 6.
        let rs = read(
            b"key: value\nBenchmarkA 1 2 ns/op\nkey:value2\nBenchmarkB 1 2 ns/op\n\
              k: 1\nk: 2\nkey:\nx:\t v  \nBenchmarkC 1 2 ns/op\n",
        );
        assert_eq!(rs.len(), 3);
        assert_eq!(*rs[0].labels, labels(&[("key", "value")]));
        assert_eq!(*rs[1].labels, labels(&[("key", "value")]));
        assert_eq!(*rs[2].labels, labels(&[("k", "2"), ("x", "v  ")]));
        assert_eq!(rs[2].line_no, 9);
    }

    #[test]
    fn name_labels_as_upstream() {
        // Conformance cases 7 to 10.
        assert_eq!(
            name_labels(b"Foo-8"),
            labels(&[("name", "Foo"), ("gomaxprocs", "8")])
        );
        assert_eq!(
            name_labels(b"Encode/format=json-48"),
            labels(&[("name", "Encode"), ("format", "json"), ("gomaxprocs", "48")])
        );
        assert_eq!(
            name_labels(b"A/b/c=d/e-4"),
            labels(&[
                ("name", "A"),
                ("sub1", "b"),
                ("c", "d"),
                ("sub3", "e"),
                ("gomaxprocs", "4")
            ])
        );
        assert_eq!(
            name_labels(b"Foo-+4"),
            labels(&[("name", "Foo"), ("gomaxprocs", "+4")])
        );
        assert_eq!(name_labels(b"Foo-8a"), labels(&[("name", "Foo-8a")]));
        assert_eq!(name_labels(b"A/name=x"), labels(&[("name", "x")]));
    }

    #[test]
    fn benchmark_lines() {
        // Cases 11, 12, 13, 20.
        let rs = read(b"BenchmarkFoo\nBenchmarkFoo \nBenchmarkFoo abc 1 ns/op\n  BenchmarkX 1 1 ns/op\nBenchmark\xff\xfe 1 1 x\n");
        let contents: Vec<&[u8]> = rs.iter().map(|r| &r.content[..]).collect();
        assert_eq!(
            contents,
            vec![
                &b"BenchmarkFoo "[..],
                b"BenchmarkFoo abc 1 ns/op",
                b"Benchmark\xff\xfe 1 1 x"
            ]
        );
        assert_eq!(
            rs[2].name_labels.get(&b"name"[..]),
            Some(&b"\xff\xfe".to_vec())
        );
    }

    #[test]
    fn protected_labels_cannot_change() {
        let server = labels(&[("upload", "1.1"), ("by", "u")]);
        let rs: Vec<_> = LegacyReader::with_protected_labels(
            &b"upload: x\nby:\nk: v\nBenchmarkA 1 1 ns/op\n"[..],
            server,
        )
        .map(|r| r.unwrap())
        .collect();
        assert_eq!(
            *rs[0].labels,
            labels(&[("upload", "1.1"), ("by", "u"), ("k", "v")])
        );
    }

    #[test]
    fn printer_prints_differences() {
        let rs = read(b"a: 1\nb: 2\nBenchmarkA 1 1 ns/op\nBenchmarkA 1 2 ns/op\nb:\nc: 3\nBenchmarkB 1 1 ns/op\n");
        let mut out = Vec::new();
        let mut p = LegacyPrinter::new();
        for r in &rs {
            p.print(&mut out, r).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a: 1\nb: 2\nBenchmarkA 1 1 ns/op\nBenchmarkA 1 2 ns/op\nb:\nc: 3\nBenchmarkB 1 1 ns/op\n"
        );
    }
}
