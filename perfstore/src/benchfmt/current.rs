//! Reader **N**: the current benchmark reader (golang.org/x/perf `benchfmt`), and its writer.
//!
//! It parses benchmark lines fully (iterations, values, units), tidies units, reads unit
//! metadata lines, and reports malformed benchmark lines as non-fatal [`SyntaxError`]s.
//! It reuses one result buffer, so parsing allocates nothing per line in the steady state.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use super::Error;
use super::fast_line::FastPath;
use super::lines::Lines;
use super::number::{atof, atoi, format_go_float};
use super::syntax::{ConfigLine, fields, parse_config_line, split_field};
use super::units::tidy_unit;

/// A unit name, shared between results (units repeat on every line).
pub type Unit = Arc<[u8]>;

/// One configuration entry in force for a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// True for keys from the file; false for internal keys set by tools (such as `.file`).
    pub file: bool,
}

/// One measurement of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The value in the tidied unit.
    pub value: f64,
    /// The tidied unit (`sec/op` for `ns/op`).
    pub unit: Unit,
    /// The value as written, when tidying changed it.
    pub orig_value: f64,
    /// The unit as written, when tidying changed the value; `None` otherwise.
    pub orig_unit: Option<Unit>,
}

/// One benchmark result. The reader overwrites it on every call; clone it to keep it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchResult {
    /// The configuration in force, in first-seen order.
    pub config: Vec<Config>,
    /// The full name: the text after `Benchmark` up to the first blank.
    pub name: Vec<u8>,
    /// The iteration count.
    pub iters: i64,
    /// The measurements, in line order.
    pub values: Vec<Value>,
    /// The file name given to the reader, or `<unknown>`.
    pub file_name: Arc<str>,
    /// 1-based line number.
    pub line: usize,
}

impl BenchResult {
    /// The value of a configuration key, if set.
    pub fn get_config(&self, key: &[u8]) -> Option<&[u8]> {
        self.config
            .iter()
            .find(|c| c.key == key)
            .map(|c| c.value.as_slice())
    }

    /// Sets a configuration key (appending it if new).
    pub fn set_config(&mut self, key: &[u8], value: &[u8], file: bool) {
        match self.config.iter_mut().find(|c| c.key == key) {
            Some(c) => {
                c.value.clear();
                c.value.extend_from_slice(value);
                c.file = file;
            }
            None => self.config.push(Config {
                key: key.to_vec(),
                value: value.to_vec(),
                file,
            }),
        }
    }

    /// Deletes a configuration key: the last entry takes its place, as upstream does.
    pub fn delete_config(&mut self, key: &[u8]) {
        if let Some(i) = self.config.iter().position(|c| c.key == key) {
            self.config.swap_remove(i);
        }
    }

    /// The base name: the text before the first `/`, or without `/`, the name minus its
    /// GOMAXPROCS suffix.
    pub fn base_name(&self) -> &[u8] {
        match memchr::memchr(b'/', &self.name) {
            Some(i) => &self.name[..i],
            None => strip_procs(&self.name).0,
        }
    }

    /// The value of a name part addressed as `/key`: `key=value` parts, and `gomaxprocs`
    /// from a `-N` suffix.
    pub fn name_key(&self, key: &[u8]) -> Option<&[u8]> {
        let (name, procs) = strip_procs(&self.name);
        let mut parts = name.split(|&b| b == b'/');
        parts.next();
        for part in parts {
            if let Some(eq) = memchr::memchr(b'=', part)
                && &part[..eq] == key
            {
                return Some(&part[eq + 1..]);
            }
        }
        if key == b"gomaxprocs" {
            return procs;
        }
        None
    }
}

/// Splits a final `-<digits>` GOMAXPROCS suffix off a name.
fn strip_procs(name: &[u8]) -> (&[u8], Option<&[u8]>) {
    if let Some(dash) = memchr::memrchr(b'-', name) {
        let digits = &name[dash + 1..];
        if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            return (&name[..dash], Some(digits));
        }
    }
    (name, None)
}

/// A `Unit <unit> key=value` line's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitMetadata {
    /// The tidied unit the metadata is keyed by.
    pub unit: Unit,
    /// The key (`better`, `assume`, …).
    pub key: Vec<u8>,
    /// The unit as written.
    pub orig_unit: Unit,
    /// The value.
    pub value: Vec<u8>,
    /// Where it was read.
    pub file_name: Arc<str>,
    /// 1-based line number.
    pub line: usize,
}

/// A malformed line, reported and skipped; reading goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The file name, or `<unknown>`.
    pub file_name: Arc<str>,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in upstream's words.
    pub msg: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file_name, self.line, self.msg)
    }
}

/// What [`Reader::next_record`] returns.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// A benchmark result.
    Result(&'a BenchResult),
    /// A unit metadata entry seen for the first time.
    UnitMetadata(&'a UnitMetadata),
    /// A malformed line.
    SyntaxError(&'a SyntaxError),
}

#[derive(Debug)]
enum Queued {
    Metadata(UnitMetadata),
    Error(SyntaxError),
}

/// What [`Reader::fill`] produced.
enum Filled {
    /// A result, in `Reader::result`.
    Result,
    /// Items in the queue.
    Queued,
    /// The end of input.
    End,
}

/// Tidied form of a unit, cached by its spelling.
#[derive(Debug, Clone)]
pub(super) struct Tidied {
    /// The unit as written.
    raw: Unit,
    tidy: Unit,
    factor: f64,
    /// `raw` in the top bytes of a 16-byte little-endian word, and the mask of those bytes,
    /// for [`Tidied::ends_at`] (1 and 0, which match nothing, when `raw` is longer).
    word: u128,
    mask: u128,
}

impl Tidied {
    fn new(raw: Unit, tidy: Unit, factor: f64) -> Tidied {
        // A unit of more than 16 bytes never matches in place (the fast path then leaves
        // the line to the general parser): no masked word equals 1.
        let (mut word, mut mask) = (1, 0);
        if (1..=16).contains(&raw.len()) {
            let mut bytes = [0; 16];
            bytes[16 - raw.len()..].copy_from_slice(&raw);
            word = u128::from_le_bytes(bytes);
            mask = !0 << (8 * (16 - raw.len()));
        }
        Tidied {
            raw,
            tidy,
            factor,
            word,
            mask,
        }
    }

    /// `value`, written in this unit, as a result holds it: (value, unit, value as written,
    /// unit as written). Upstream keeps the unit as written, and no original, when tidying
    /// leaves the number unchanged (0 ns/op, or a unit that needs no tidying).
    #[inline(always)]
    fn tidied(&self, value: f64) -> (f64, &Unit, f64, Option<&Unit>) {
        let tidy_value = value * self.factor;
        if tidy_value == value {
            (value, &self.raw, 0.0, None)
        } else {
            (tidy_value, &self.tidy, value, Some(&self.raw))
        }
    }

    /// Stores `value`, in this unit, into `slot` if the slot already holds the units the
    /// tidied value needs (as on every line after the first in a run of lines with the same
    /// units): two numbers written, no unit handle cloned or dropped. False otherwise,
    /// `slot` untouched; the general parser then reads the line ([`store_tidied`]).
    #[inline(always)]
    pub(super) fn store_in_place(&self, slot: &mut Value, value: f64) -> bool {
        let (new_value, unit, orig_value, orig_unit) = self.tidied(value);
        if same_units(slot, unit, orig_unit) != (true, true) {
            return false;
        }
        slot.value = new_value;
        slot.orig_value = orig_value;
        true
    }

    /// True if `line[start..end]` is this unit, by one masked comparison of the 16 bytes
    /// that end at `end`. False also for units of more than 16 bytes and fields within 16
    /// bytes of the line's start, which only the fast path asks about: the general parser
    /// then reads the line.
    #[inline(always)]
    pub(super) fn ends_at(&self, line: &[u8], start: usize, end: usize) -> bool {
        end - start == self.raw.len()
            && line.get(end.wrapping_sub(16)..end).is_some_and(|tail| {
                u128::from_le_bytes(tail.try_into().expect("sixteen bytes")) & self.mask
                    == self.word
            })
    }
}

/// The name of files whose name the caller did not give.
const UNKNOWN_FILE: &str = "<unknown>";

/// Streams [`Record`]s out of benchmark text.
#[derive(Debug)]
pub struct Reader<R> {
    lines: Lines<R>,
    result: BenchResult,
    queue: VecDeque<Queued>,
    current: Option<Queued>,
    units: HashMap<(Unit, Vec<u8>), UnitMetadata>,
    /// Recently seen units; a handful cover nearly every line.
    recent_units: Vec<Tidied>,
    /// Per value position, the last line's unit.
    unit_hints: Vec<Tidied>,
    /// The fast path's state: the last lines' layout and shape.
    fast: FastPath,
    /// Field ranges of the line being parsed (reused).
    spans: Vec<(usize, usize)>,
    /// A copy of the line the fast path did not read (reused).
    other: Vec<u8>,
    failed: bool,
}

impl<R: BufRead> Reader<R> {
    /// A reader of `input`, whose errors name `<unknown>` as the file.
    pub fn new(input: R) -> Self {
        Reader {
            lines: Lines::new(input),
            result: BenchResult {
                file_name: Arc::from(UNKNOWN_FILE),
                ..BenchResult::default()
            },
            queue: VecDeque::new(),
            current: None,
            units: HashMap::new(),
            recent_units: Vec::new(),
            unit_hints: Vec::new(),
            fast: FastPath::default(),
            spans: Vec::new(),
            other: Vec::new(),
            failed: false,
        }
    }

    /// Starts reading another input, as upstream's `Reset`: configuration starts empty,
    /// except for the internal keys given (`.file` and such); unit metadata carries over.
    pub fn reset(&mut self, input: R, file_name: &str, internal: &[(&[u8], &[u8])]) {
        self.lines = Lines::new(input);
        self.result.config.clear();
        self.result.file_name = Arc::from(file_name);
        for (k, v) in internal {
            self.result.set_config(k, v, false);
        }
        self.queue.clear();
        self.current = None;
        self.failed = false;
        self.fast.forget();
    }

    /// All unit metadata read so far, keyed by (tidied unit, key).
    pub fn units(&self) -> &HashMap<(Unit, Vec<u8>), UnitMetadata> {
        &self.units
    }

    /// The next record; `None` at the end of input; `Some(Err)` once, for a fatal read error
    /// (such as a line over [`super::MAX_LINE`]), after which reading stops.
    #[inline]
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, Error>> {
        if self.queue.is_empty() {
            match self.fill() {
                Filled::End => return None,
                // The common case skips the queue: the result is in `self.result`.
                Filled::Result => return Some(Ok(Record::Result(&self.result))),
                Filled::Queued => {}
            }
        }
        if self.failed {
            // `fill` stored the error as the only queued item.
            return match self.queue.pop_front() {
                Some(Queued::Error(e)) => Some(Err(Error::Read {
                    file: e.file_name.to_string(),
                    line: e.line,
                    message: e.msg,
                })),
                _ => None,
            };
        }
        self.current = self.queue.pop_front();
        Some(Ok(match self.current.as_ref()? {
            Queued::Metadata(m) => Record::UnitMetadata(m),
            Queued::Error(e) => Record::SyntaxError(e),
        }))
    }

    /// Reads lines until a result is parsed or something is queued.
    ///
    /// Only plain benchmark lines in the steady state of a file (the fast path) are read
    /// here; any other line is copied and handed to [`Reader::other_line`], kept out of
    /// line so that this loop stays small.
    #[inline]
    fn fill(&mut self) -> Filled {
        if self.failed {
            return Filled::End;
        }
        while self.queue.is_empty() {
            let next = self
                .fast
                .next_line(&mut self.lines, &mut self.result, &self.unit_hints);
            let (line, taken) = match next {
                Ok(Some(line)) => line,
                Ok(None) => return Filled::End,
                Err(e) => {
                    let message = e.to_string();
                    return self.read_failed(message);
                }
            };
            if taken {
                self.result.line = line.no;
                return Filled::Result;
            }
            // The copy frees `self.lines`: the line is read with `&mut self`.
            let no = line.no;
            self.other.clear();
            self.other.extend_from_slice(line.bytes);
            if self.other_line(no) {
                return Filled::Result;
            }
        }
        Filled::Queued
    }

    /// Stops reading at a fatal error, queued as the only item.
    #[cold]
    #[inline(never)]
    fn read_failed(&mut self, msg: String) -> Filled {
        self.failed = true;
        self.queue.push_back(Queued::Error(SyntaxError {
            file_name: self.result.file_name.clone(),
            line: self.lines.line_no,
            msg,
        }));
        Filled::Queued
    }

    /// Reads line `line_no`, held in `self.other`, when the fast path did not: any
    /// benchmark line, a unit metadata line, or a configuration line. True if it was a
    /// benchmark result.
    #[inline(never)]
    fn other_line(&mut self, line_no: usize) -> bool {
        let line = std::mem::take(&mut self.other);
        let result = self.read_other_line(&line, line_no);
        self.other = line;
        result
    }

    fn read_other_line(&mut self, line: &[u8], line_no: usize) -> bool {
        if line.starts_with(b"Benchmark") {
            self.result.line = line_no;
            // The unit hints may change: lines must show their units again.
            self.fast.forget();
            match parse_general_line(
                line,
                &mut self.result,
                &mut self.recent_units,
                &mut self.unit_hints,
                &mut self.spans,
            ) {
                Ok(true) => return true,
                Ok(false) => {}
                Err(msg) => self.queue.push_back(Queued::Error(SyntaxError {
                    file_name: self.result.file_name.clone(),
                    line: line_no,
                    msg,
                })),
            }
            return false;
        }
        if line.first() == Some(&b'U') {
            let (first, rest) = split_field(line);
            if first == b"Unit" {
                self.parse_unit_line(rest, line_no);
                return false;
            }
        }
        match parse_config_line(line) {
            Some(ConfigLine::Set(k, v)) => self.result.set_config(k, v, true),
            Some(ConfigLine::Delete(k)) => self.result.delete_config(k),
            None => {}
        }
        false
    }

    fn parse_unit_line(&mut self, line: &[u8], line_no: usize) {
        let file_name = self.result.file_name.clone();
        let error = |msg: String| {
            Queued::Error(SyntaxError {
                file_name: file_name.clone(),
                line: line_no,
                msg,
            })
        };
        let (unit, mut rest) = split_field(line);
        if unit.is_empty() {
            self.queue.push_back(error("missing unit".into()));
            return;
        }
        let tidied = lookup_unit(&mut self.recent_units, unit);
        loop {
            let (field, next) = split_field(rest);
            rest = next;
            if field.is_empty() {
                break;
            }
            let eq = match memchr::memchr(b'=', field) {
                Some(eq) if eq > 0 => eq,
                _ => {
                    self.queue.push_back(error("expected key=value".into()));
                    continue;
                }
            };
            let (key, value) = (&field[..eq], &field[eq + 1..]);
            let map_key = (tidied.tidy.clone(), key.to_vec());
            if let Some(have) = self.units.get(&map_key) {
                if have.value != value {
                    self.queue.push_back(error(format!(
                        "metadata {} of unit {} already set to {}",
                        String::from_utf8_lossy(key),
                        String::from_utf8_lossy(unit),
                        String::from_utf8_lossy(&have.value)
                    )));
                }
                continue;
            }
            let meta = UnitMetadata {
                unit: tidied.tidy.clone(),
                key: key.to_vec(),
                orig_unit: tidied.raw.clone(),
                value: value.to_vec(),
                file_name: file_name.clone(),
                line: line_no,
            };
            self.units.insert(map_key, meta.clone());
            self.queue.push_back(Queued::Metadata(meta));
        }
    }
}

/// Byte equality for short strings such as units, without a call to `memcmp`.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The tidied form of `unit`, from the small cache of recent units when possible.
fn lookup_unit(recent: &mut Vec<Tidied>, unit: &[u8]) -> Tidied {
    if let Some(t) = recent.iter().find(|t| &*t.raw == unit) {
        return t.clone();
    }
    let (tidy, factor) = tidy_unit(unit);
    let raw: Unit = Arc::from(unit);
    let tidy = if tidy == unit {
        raw.clone()
    } else {
        Arc::from(tidy)
    };
    let t = Tidied::new(raw, tidy, factor);
    // A bounded cache: inputs with endless distinct units cannot grow memory.
    if recent.len() >= 32 {
        recent.remove(0);
    }
    recent.push(t.clone());
    t
}

/// Parses a line starting with `Benchmark` into `result`, whatever it holds: split into
/// fields, then each field parsed. `Ok(false)`: the `go test -v` banner, skipped silently.
/// `Err`: upstream's message. The reader calls it for the lines [`super::fast_line`]
/// declines.
pub(super) fn parse_general_line(
    line: &[u8],
    result: &mut BenchResult,
    units: &mut Vec<Tidied>,
    hints: &mut Vec<Tidied>,
    spans: &mut Vec<(usize, usize)>,
) -> Result<bool, String> {
    fields(line, spans);
    // The line starts with "Benchmark", so the first field does too and begins at 0.
    let name_end = spans.first().map_or(line.len(), |&(_, e)| e);
    if spans.len() <= 1 && name_end == line.len() {
        // `go test -v` prints the bare name when a benchmark starts.
        return Ok(false);
    }
    result.name.clear();
    result
        .name
        .extend_from_slice(&line[b"Benchmark".len()..name_end]);
    let field = |i: usize| spans.get(i).map(|&(s, e)| &line[s..e]);
    let Some(count) = field(1) else {
        return Err("missing iteration count".into());
    };
    result.iters = atoi(count).map_err(|e| format!("parsing iteration count: {}", e.as_str()))?;
    let mut n = 0;
    loop {
        let Some(number) = field(2 + 2 * n) else {
            if n == 0 {
                return Err("missing measurements".into());
            }
            result.values.truncate(n);
            return Ok(true);
        };
        let value = atof(number).map_err(|e| format!("parsing measurement: {}", e.as_str()))?;
        let Some(unit) = field(3 + 2 * n) else {
            return Err("missing units".into());
        };
        store_value(result, n, value, unit, units, hints);
        n += 1;
    }
}

/// Stores measurement `n` of `result`: `value` in the unit spelled `unit`, tidied.
pub(super) fn store_value(
    result: &mut BenchResult,
    n: usize,
    value: f64,
    unit: &[u8],
    units: &mut Vec<Tidied>,
    hints: &mut Vec<Tidied>,
) {
    match hints.get(n) {
        Some(t) if short_eq(&t.raw, unit) => store_tidied(result, n, value, t),
        _ => {
            let t = lookup_unit(units, unit);
            store_tidied(result, n, value, &t);
            if hints.len() <= n {
                hints.resize(n + 1, t.clone());
            }
            hints[n] = t;
        }
    }
}

/// Stores measurement `n` of `result`: `value` in the unit `t` (as written), tidied.
///
/// Values are overwritten in place: on the steady state of a file (the same units on every
/// line) no unit handle is cloned or dropped, so parsing touches no reference count.
#[inline]
pub(super) fn store_tidied(result: &mut BenchResult, n: usize, value: f64, t: &Tidied) {
    let (new_value, new_unit, orig_value, orig_unit) = t.tidied(value);
    match result.values.get_mut(n) {
        Some(slot) => {
            let (same_unit, same_orig) = same_units(slot, new_unit, orig_unit);
            slot.value = new_value;
            slot.orig_value = orig_value;
            if !same_unit {
                slot.unit = new_unit.clone();
            }
            if !same_orig {
                slot.orig_unit = orig_unit.cloned();
            }
        }
        None => result.values.push(Value {
            value: new_value,
            unit: new_unit.clone(),
            orig_value,
            orig_unit: orig_unit.cloned(),
        }),
    }
}

/// Whether `slot` already holds `unit`, and `orig_unit`: the same handles, not just the
/// same bytes.
#[inline(always)]
fn same_units(slot: &Value, unit: &Unit, orig_unit: Option<&Unit>) -> (bool, bool) {
    let same_orig = match (&slot.orig_unit, orig_unit) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    (Arc::ptr_eq(&slot.unit, unit), same_orig)
}

/// Writes results in the benchmark format, with configuration blocks when it changes.
#[derive(Debug)]
pub struct Writer<W> {
    out: W,
    config: HashMap<Vec<u8>, (Vec<u8>, bool)>,
    order: Vec<Vec<u8>>,
    /// True until a result is written after the last configuration block.
    first: bool,
}

impl<W: Write> Writer<W> {
    /// A writer that has written nothing.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            config: HashMap::new(),
            order: Vec::new(),
            first: true,
        }
    }

    /// The underlying output.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes one record; syntax errors are dropped, as upstream does.
    pub fn write_record(&mut self, record: Record<'_>) -> io::Result<()> {
        match record {
            Record::Result(r) => self.write_result(r),
            Record::UnitMetadata(m) => {
                self.out.write_all(b"Unit ")?;
                self.out.write_all(&m.orig_unit)?;
                self.out.write_all(b" ")?;
                self.out.write_all(&m.key)?;
                self.out.write_all(b"=")?;
                self.out.write_all(&m.value)?;
                self.out.write_all(b"\n")
            }
            Record::SyntaxError(_) => Ok(()),
        }
    }

    /// Writes one result, preceded by a configuration block if the configuration changed.
    pub fn write_result(&mut self, r: &BenchResult) -> io::Result<()> {
        let changed = self.config.len() != r.config.len()
            || r.config.iter().any(|c| {
                self.config
                    .get(&c.key)
                    .is_none_or(|(v, f)| *v != c.value || *f != c.file)
            });
        if changed {
            self.write_config(r)?;
        }
        let mut line = Vec::with_capacity(64);
        line.extend_from_slice(b"Benchmark");
        line.extend_from_slice(&r.name);
        line.extend_from_slice(format!(" {}", r.iters).as_bytes());
        for v in &r.values {
            let (value, unit) = match &v.orig_unit {
                Some(u) => (v.orig_value, u),
                None => (v.value, &v.unit),
            };
            line.push(b' ');
            line.extend_from_slice(format_go_float(value).as_bytes());
            line.push(b' ');
            line.extend_from_slice(unit);
        }
        line.push(b'\n');
        self.first = false;
        self.out.write_all(&line)
    }

    fn write_config(&mut self, r: &BenchResult) -> io::Result<()> {
        let mut buf = Vec::new();
        if !self.first {
            buf.push(b'\n');
            self.first = true;
        }
        let mut i = 0;
        while i < self.order.len() {
            let key = &self.order[i];
            match r.config.iter().find(|c| &c.key == key) {
                None => {
                    buf.extend_from_slice(key);
                    buf.extend_from_slice(b":\n");
                    self.config.remove(key);
                    self.order.remove(i);
                    continue;
                }
                Some(c) => {
                    let have = self.config.get_mut(key).expect("order and config agree");
                    if have.0 != c.value || have.1 != c.file {
                        if c.file {
                            push_config(&mut buf, key, &c.value);
                        }
                        *have = (c.value.clone(), c.file);
                    }
                }
            }
            i += 1;
        }
        for c in &r.config {
            if !self.config.contains_key(&c.key) {
                if c.file {
                    push_config(&mut buf, &c.key, &c.value);
                }
                self.config.insert(c.key.clone(), (c.value.clone(), c.file));
                self.order.push(c.key.clone());
            }
        }
        buf.push(b'\n');
        self.out.write_all(&buf)
    }
}

fn push_config(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    buf.extend_from_slice(key);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.push(b'\n');
}
