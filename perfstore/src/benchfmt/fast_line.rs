//! Reader N's fast path for ordinary benchmark lines.
//!
//! Nearly every line `go test -bench` prints is printable ASCII with blanks and tabs between
//! its fields, an unsigned integer count, and short unsigned decimal values, and it has the
//! units of the line before it. Such a line is read here without testing it byte by byte,
//! in one of two ways.
//!
//! A line like the last one read here (most lines: the runs of a benchmark differ only in
//! their numbers and names) is recognised by its [`Shape`] while the line splitter looks
//! for it, in one SIMD pass that also settles its fields and units; its numbers are then
//! read, each as one word, from where the last line had them, the values two at a time
//! ([`WordNumber`], [`WordPair`]).
//!
//! Any other line is split and mapped, then:
//!
//! - the fields' bounds come from the line's blank map ([`super::blanks`]), or from the
//!   previous mapped line's when the map is the same ([`Layout`]: `go test` pads its
//!   columns);
//! - a number of up to eight bytes is read as one word ([`Digits::field_f64`]);
//! - each unit is compared in one masked load with the previous line's unit in the same
//!   place;
//!
//! and the line's shape is learned for the lines after it. Either way, the result's slot,
//! which already holds the unit, gets the new numbers.
//!
//! At the first thing out of the ordinary (a sign, an exponent, a long number, new units,
//! a control or non-ASCII byte, anything that is an error) it gives up, and the general
//! parser reads the line from the start. Both give the same result for every line (a
//! property test and the fuzz target check it), so which path ran is never visible.

use std::io::BufRead;

use super::blanks::Fields;
use super::current::{BenchResult, Tidied, parse_general_line};
use super::lines::{Kind, Line, LineError, Lines};
use super::number::{Digits, WordNumber, WordPair};
use super::shape::Shape;

/// The most fields a line may have to take the fast path: a name, a count and 15 values.
const MAX_FIELDS: usize = 32;

/// The last mapped benchmark line's layout: its blank map and where its fields start and
/// end. `go test` pads its columns, so the runs of a benchmark usually share a layout; a
/// line with the same map (four words compared) reuses the bounds instead of walking them.
#[derive(Debug)]
pub(super) struct Layout {
    /// The blank map, for lines of up to 256 bytes (longer ones are walked every time).
    words: [u64; 4],
    /// The line's length; zero when nothing is cached.
    len: usize,
    /// Field starts at even indices, ends at odd ones.
    bounds: [u32; 2 * MAX_FIELDS],
    /// How many of `bounds` are set.
    count: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            words: [0; 4],
            len: 0,
            bounds: [0; 2 * MAX_FIELDS],
            count: 0,
        }
    }
}

impl Layout {
    /// The bounds of the fields of a line of `len` bytes with blank map `blanks`, and
    /// whether they are the previous line's (the same map); `None` if the line has more than
    /// [`MAX_FIELDS`].
    #[inline(always)]
    fn bounds(&mut self, blanks: &[u64], len: usize) -> Option<(&[u32], bool)> {
        // Past the line, the map is all blanks.
        let mut words = [!0; 4];
        let cacheable = blanks.len() <= words.len();
        if cacheable {
            words[..blanks.len()].copy_from_slice(blanks);
        }
        let reused = cacheable && len == self.len && words == self.words;
        if !reused {
            // Empty until the walk completes: `len` zero matches no benchmark line.
            self.len = 0;
            let mut fields = Fields::new(blanks, len);
            let mut count = 0;
            while let Some((start, end)) = fields.next() {
                let pair = self.bounds.get_mut(count..count + 2)?;
                pair.copy_from_slice(&[start as u32, end as u32]);
                count += 2;
            }
            self.count = count;
            if cacheable {
                (self.words, self.len) = (words, len);
            }
        }
        Some((&self.bounds[..self.count], reused))
    }
}

/// The most values a line may have to take the fast path: its fields less the name and
/// the count, a value and a unit each.
const MAX_VALUES: usize = (MAX_FIELDS - 2) / 2;

/// Reader N's fast path: the last line's layout, and the shape of the last line it read
/// from its blank map, with where that line's name ends and its numbers are.
#[derive(Debug)]
pub(super) struct FastPath {
    layout: Layout,
    /// Lines with this shape have their fields where the learned line has them, and the
    /// units the hints had when it was learned; [`FastPath::forget`] it when they change.
    shape: Shape,
    name_end: usize,
    iters: WordNumber,
    /// The values, two by two (the last one twice for an odd count).
    values: [WordPair; MAX_VALUES.div_ceil(2)],
    /// How many values the shape has.
    count: usize,
}

impl Default for FastPath {
    fn default() -> Self {
        FastPath {
            layout: Layout::default(),
            shape: Shape::default(),
            name_end: 0,
            iters: WordNumber::default(),
            values: [WordPair::default(); MAX_VALUES.div_ceil(2)],
            count: 0,
        }
    }
}

impl FastPath {
    /// The next line of `lines`, and whether it was an ordinary benchmark line that is now
    /// read into `result` (see [`read`]); the general parser must read any other line.
    #[inline(always)]
    pub(super) fn next_line<'a, R: BufRead>(
        &mut self,
        lines: &'a mut Lines<R>,
        result: &mut BenchResult,
        hints: &[Tidied],
    ) -> Result<Option<(Line<'a>, bool)>, LineError> {
        let Some(line) = lines.next_line_shaped(Some(&self.shape))? else {
            return Ok(None);
        };
        let taken = match line.kind {
            Kind::Shaped => self.read_shaped(line.bytes, result, hints),
            Kind::Mapped(blanks) if line.bytes.starts_with(b"Benchmark") => {
                match self.layout.bounds(blanks, line.bytes.len()) {
                    Some((bounds, reused)) if read(line.bytes, bounds, result, hints) => {
                        // A shape is learned from the second of two lines alike, not from
                        // every line: in a file whose lines all differ from their
                        // neighbours, learning would cost more than it saves.
                        if reused {
                            self.learn(line.bytes);
                        }
                        true
                    }
                    _ => false,
                }
            }
            Kind::Mapped(_) | Kind::Other => false,
        };
        Ok(Some((line, taken)))
    }

    /// Forgets the learned shape. The reader calls this whenever the general parser reads a
    /// benchmark line, which may change the unit hints the shape's units were checked
    /// against.
    pub(super) fn forget(&mut self) {
        self.shape.forget();
    }

    /// Learns the shape of `line`, just read with the layout's bounds: its name (after
    /// `Benchmark`) and numbers vary, the rest is fixed. Nothing is learned (the shape is
    /// forgotten) when a number is too long to read as one word.
    fn learn(&mut self, line: &[u8]) {
        self.shape.forget();
        let bounds = &self.layout.bounds[..self.layout.count];
        let at = |i: usize| bounds[i] as usize;
        let number = |i: usize| WordNumber::of(line, at(i), at(i + 1));
        let Some(iters) = number(2) else {
            return;
        };
        // The values (each followed by its unit, which is fixed), two by two; the read
        // that just took the line saw 4 + 4k bounds, k ≤ MAX_VALUES.
        let count = (bounds.len() - 4) / 4;
        for (pair, i) in self.values.iter_mut().zip((4..bounds.len()).step_by(8)) {
            let a = number(i);
            let b = if i + 4 < bounds.len() {
                number(i + 4)
            } else {
                a
            };
            let (Some(a), Some(b)) = (a, b) else {
                return;
            };
            *pair = WordPair::new(&a, &b);
        }
        let values = (4..bounds.len()).step_by(4).map(|i| at(i)..at(i + 1));
        let varying = [b"Benchmark".len()..at(1), at(2)..at(3)];
        if self.shape.learn(line, varying.into_iter().chain(values)) {
            (self.name_end, self.iters, self.count) = (at(1), iters, count);
        }
    }

    /// Reads `line`, which has the learned shape, into `result`; false if the general
    /// parser must read it (a number that is not plain digits with the point in place, or a
    /// slot set up for the value tidied where it is now not, or the other way round). The
    /// shape fixes `Benchmark`, the blanks and the units: they are the learned line's,
    /// which matched the hints, and are not compared again.
    #[inline(always)]
    fn read_shaped(&self, line: &[u8], result: &mut BenchResult, hints: &[Tidied]) -> bool {
        let Some(iters) = self.iters.int(line) else {
            return false;
        };
        let n = self.count;
        if n > hints.len() || n > result.values.len() {
            return false;
        }
        let (hints, slots) = (&hints[..n], &mut result.values[..n]);
        for (i, pair) in (0..n).step_by(2).zip(&self.values) {
            let Some([a, b]) = pair.f64s(line) else {
                return false;
            };
            if !hints[i].store_in_place(&mut slots[i], a) {
                return false;
            }
            if i + 1 < n && !hints[i + 1].store_in_place(&mut slots[i + 1], b) {
                return false;
            }
        }
        finish(result, n, iters, &line[b"Benchmark".len()..self.name_end]);
        true
    }
}

/// Reads `line` (which starts with `Benchmark`), whose fields are at `bounds`, into
/// `result` if it is an ordinary, well-formed benchmark line; false if the general parser
/// must read it.
#[inline(always)]
fn read(line: &[u8], bounds: &[u32], result: &mut BenchResult, hints: &[Tidied]) -> bool {
    // A name, a count, then values each with a unit: 4 + 4k bounds, k ≥ 1. Anything else
    // (a missing unit or count, no measurement, the bare name `go test -v` prints) is the
    // general parser's to report or skip.
    if bounds.len() < 8 || !bounds.len().is_multiple_of(4) {
        return false;
    }
    let at = |i: usize| bounds[i] as usize;
    // The line starts with "Benchmark", so the first field is the name.
    let name_end = at(1);
    let Some(iters) = Digits::field_int(line, at(2), at(3)) else {
        return false;
    };
    let measurements = bounds[4..].chunks_exact(4);
    let n = measurements.len();
    // The steady state of a file: each value has the unit the previous line had in the same
    // place (compared in place), and the result's slot already holds it. Any other line (new
    // units, more values) goes to the general parser, which also updates the hints and slots
    // for the lines after it. Zipped, the loop needs no index and no bounds checks, and
    // makes no call, so its state stays in registers.
    if n > hints.len() || n > result.values.len() {
        return false;
    }
    for ((b, t), slot) in measurements.zip(hints).zip(&mut result.values) {
        let [start, end, unit_start, unit_end] = [b[0], b[1], b[2], b[3]].map(|b| b as usize);
        let Some(value) = Digits::field_f64(line, start, end) else {
            return false;
        };
        if !(t.ends_at(line, unit_start, unit_end) && t.store_in_place(slot, value)) {
            return false;
        }
    }
    finish(result, n, iters, &line[b"Benchmark".len()..name_end]);
    true
}

/// Completes `result`, whose first `n` values are set: drops any beyond them, and sets the
/// count and the name.
#[inline(always)]
fn finish(result: &mut BenchResult, n: usize, iters: i64, name: &[u8]) {
    if result.values.len() > n {
        // Rare: the previous line had more values. (A call, even for nothing to drop.)
        result.values.truncate(n);
    }
    result.iters = iters;
    set_name(&mut result.name, name);
}

/// `*name = new`, without a call to `memcpy` when the length is unchanged (as for the runs
/// of one benchmark) and at least 16 bytes: 16 bytes at a time, the last 16 overlapping.
#[inline(always)]
fn set_name(name: &mut Vec<u8>, new: &[u8]) {
    let len = new.len();
    if name.len() != len || len < 16 {
        name.clear();
        name.extend_from_slice(new);
        return;
    }
    let mut at = 0;
    while at + 16 < len {
        name[at..at + 16].copy_from_slice(&new[at..at + 16]);
        at += 16;
    }
    name[len - 16..].copy_from_slice(&new[len - 16..]);
}

/// The general parser's verdict on `line` and what it reads.
fn general(line: &[u8]) -> (Result<bool, String>, BenchResult) {
    let mut result = BenchResult::default();
    let ok = parse_general_line(
        line,
        &mut result,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    (ok, result)
}

/// How many benchmark lines [`assert_agrees`] saw the fast path take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Taken from their blank map.
    pub(crate) mapped: usize,
    /// Taken because they had the last such line's shape.
    pub(crate) shaped: usize,
}

/// Splits `input` into lines as the reader does, twice (from one buffer, and through a small
/// `BufReader` so that lines straddle refills and get mapped on their own), and reads the
/// benchmark lines as the reader does: the fast path first, the general parser when it
/// declines, with one result and one unit cache for all lines (so a line can take the fast
/// path only after the lines before it set up its units). Panics unless every line the
/// fast path takes reads exactly as the general parser reads it alone. Returns how many
/// lines the fast path took in the first pass. The property tests' and the fuzz target's
/// check.
pub(crate) fn assert_agrees(input: &[u8]) -> Taken {
    let taken = assert_agrees_in(Lines::new(input));
    assert_agrees_in(Lines::new(std::io::BufReader::with_capacity(37, input)));
    taken
}

fn assert_agrees_in(mut lines: Lines<impl BufRead>) -> Taken {
    let (mut result, mut units, mut hints) = (BenchResult::default(), Vec::new(), Vec::new());
    let mut fast = FastPath::default();
    let mut taken = Taken::default();
    while let Ok(Some((line, took))) = fast.next_line(&mut lines, &mut result, &hints) {
        if !line.bytes.starts_with(b"Benchmark") {
            continue;
        }
        let line_bytes = line.bytes;
        if took {
            if line.kind == Kind::Shaped {
                taken.shaped += 1;
            } else {
                taken.mapped += 1;
            }
            let (ok, general) = general(line_bytes);
            assert_eq!(
                ok,
                Ok(true),
                "general parser refused {}",
                line_bytes.escape_ascii()
            );
            assert_eq!(
                result,
                general,
                "the two paths differ on {}",
                line_bytes.escape_ascii()
            );
        } else {
            let _ = parse_general_line(
                line_bytes,
                &mut result,
                &mut units,
                &mut hints,
                &mut Vec::new(),
            );
            fast.forget();
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::benchfmt::blanks::BlankMap;

    /// The fast path's result on `line` alone, if it takes it, and the general parser's.
    /// The fast path's result on `line` read after the same line (so its units are the
    /// hinted ones and the result's slots hold them), if it takes it, and the general
    /// parser's on `line` alone.
    fn both_ways(line: &[u8]) -> (Option<BenchResult>, Result<bool, String>, BenchResult) {
        both_ways_after(line, line)
    }

    /// [`both_ways`], with the general parser reading `before` first.
    fn both_ways_after(
        before: &[u8],
        line: &[u8],
    ) -> (Option<BenchResult>, Result<bool, String>, BenchResult) {
        let (mut fast, mut units, mut hints) = (BenchResult::default(), Vec::new(), Vec::new());
        let _ = parse_general_line(before, &mut fast, &mut units, &mut hints, &mut Vec::new());
        let mut map = BlankMap::default();
        let taken = map.map(line) && {
            let mut layout = Layout::default();
            let bounds = layout.bounds(map.words(), line.len());
            bounds.is_some_and(|(bounds, _)| read(line, bounds, &mut fast, &hints))
        };
        let (ok, general) = general(line);
        (taken.then_some(fast), ok, general)
    }

    #[test]
    fn ordinary_lines_take_the_fast_path() {
        for line in [
            &b"BenchmarkFoo-8 \t 1000  1234 ns/op\t12.50 MB/s 0 B/op 3 allocs/op"[..],
            b"BenchmarkEncode/format=json/size=5-8   \t100013\t12345 ns/op\t81.00 MB/s\t",
            b"Benchmarkx 1 .5 x/op",
        ] {
            let (fast, ok, general) = both_ways(line);
            assert_eq!(ok, Ok(true));
            assert_eq!(fast.as_ref(), Some(&general), "{}", line.escape_ascii());
        }
        let (fast, _, general) = both_ways(b"BenchmarkFoo-8 1000 1234 ns/op 12.5 MB/s");
        let fast = fast.unwrap();
        assert_eq!(fast.iters, 1000);
        assert_eq!(fast.values[0].value, 1234.0 * 1e-9);
        assert_eq!(&*fast.values[1].unit, b"B/s");
        assert_eq!(fast, general);
    }

    #[test]
    fn repeated_units_take_the_fast_path() {
        let mut input = Vec::new();
        for i in 10..30 {
            input.extend_from_slice(
                format!(
                    "BenchmarkEncode/size={i}-8   \t{}\t{} ns/op\t{}.25 MB/s\t{} B/op\t3 allocs/op\n",
                    1000 + i,
                    10 * i + 5,
                    i,
                    64 * i
                )
                .as_bytes(),
            );
            if i % 7 == 0 {
                input.extend_from_slice(b"goos: linux\n");
            }
        }
        // Every line but the first, which sets the units up. Three are split and mapped:
        // the second (laid out as the first, so its shape is learned), and the two from
        // where `64 * i` gets a fourth digit (a shape is learned from the second of two
        // lines alike); the others have the shape of the line before them (the
        // configuration lines between do not matter).
        let taken = assert_agrees(&input);
        assert_eq!(
            taken,
            Taken {
                mapped: 3,
                shaped: 16
            }
        );
        // The same with `\r\n` line endings.
        let crlf: Vec<u8> = input
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        assert_eq!(assert_agrees(&crlf), taken);
    }

    #[test]
    fn unusual_lines_go_to_the_general_parser() {
        for line in [
            &b"BenchmarkFoo"[..],
            b"BenchmarkFoo ",
            b"BenchmarkFoo 1",
            b"BenchmarkFoo 1 2",
            b"BenchmarkFoo -1 2 ns/op",
            b"BenchmarkFoo 1 1e3 ns/op",
            b"BenchmarkFoo 1 2ns/op",
            b"BenchmarkFoo 1 2 ns/op\x0b",
            b"BenchmarkFoo 1 2 \xc2\xa0ns/op",
            b"BenchmarkF\xffoo 1 2 ns/op",
            b"BenchmarkFoo 1 1234567890123456 ns/op",
            b"BenchmarkFoo 1 . ns/op",
            b"BenchmarkFoo 1 1.2.3 ns/op",
        ] {
            assert!(both_ways(line).0.is_none(), "{}", line.escape_ascii());
            // Also after an ordinary line with the same unit, so that the fast path is not
            // declining just because nothing set its hints and slots up: one whose value
            // is tidied (the slot holds sec/op) and one whose value is zero (ns/op kept).
            for before in [&b"BenchmarkFoo 1 2 ns/op"[..], b"BenchmarkFoo 1 0 ns/op"] {
                let after = both_ways_after(before, line);
                assert!(after.0.is_none(), "{}", line.escape_ascii());
            }
        }
        // Ordinary lines are taken after those same lines.
        assert!(
            both_ways_after(b"BenchmarkFoo 1 2 ns/op", b"BenchmarkFoo 1 3 ns/op")
                .0
                .is_some()
        );
        assert!(
            both_ways_after(b"BenchmarkFoo 1 0 ns/op", b"BenchmarkFoo 1 0 ns/op")
                .0
                .is_some()
        );
    }

    /// Mostly ordinary numbers, sometimes anything Go's parser might see.
    fn number() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            12 => "[0-9]{1,6}|[0-9]{1,5}[.][0-9]{1,4}",
            1 => "[0-9]{1,20}|[0-9]{0,9}[.][0-9]{0,9}",
            1 => "[+-]?[0-9]{1,3}([eE][+-]?[0-9])?|NaN|Inf|0x1p-2|[.]|[0-9]+[.][0-9]*[.]",
        ]
        .prop_map(String::into_bytes)
    }

    /// Mostly ordinary units, sometimes odd bytes.
    fn unit() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            12 => "ns/op|MB/s|B/op|allocs/op|[a-z/*-]{1,10}".prop_map(String::into_bytes),
            // Near misses of a cached unit: it must not match a longer field in place.
            2 => "(ns/op|B/op)([a-z.]|\u{1}|\u{a0}|\u{2003}|\u{e9})".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 1..4),
        ]
    }

    fn blank() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            24 => "[ \t]{1,3}".prop_map(String::into_bytes),
            1 => "(\u{b}|\u{a0}|\u{2003}|\r|\u{1}|)".prop_map(String::into_bytes),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ]
    }

    /// Benchmark lines as files have them: mostly the same units in the same places, so
    /// that most lines after the first can take the fast path; sometimes a changed unit, a
    /// value more or less, or anything Go's parser might see.
    fn lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(unit(), 1..4).prop_flat_map(|units| {
            let units = std::sync::Arc::new(units);
            prop::collection::vec(line(units), 1..8)
        })
    }

    /// A benchmark line with `units` (at times another unit in a place, or one value
    /// fewer or more).
    fn line(units: std::sync::Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Vec<u8>> {
        let values = prop::collection::vec(
            (
                blank(),
                number(),
                blank(),
                prop_oneof![12 => Just(None), 1 => unit().prop_map(Some)],
            ),
            units.len()..=units.len(),
        );
        (
            "[A-Za-z0-9/=_.-]{0,12}",
            prop_oneof![6 => "[0-9]{1,9}".prop_map(String::into_bytes), 1 => number()],
            values,
            prop_oneof![10 => Just(0), 1 => Just(1), 1 => Just(2)],
            (blank(), blank()),
        )
            .prop_map(move |(name, count, values, shape, (b, tail))| {
                let mut line = b"Benchmark".to_vec();
                line.extend(name.as_bytes());
                line.extend(b);
                line.extend(count);
                // Shape 1 drops the last value, shape 2 repeats the first.
                let kept = values.len() - usize::from(shape == 1);
                let extra = (shape == 2).then(|| values[0].clone());
                for (i, (b1, v, b2, u)) in values.into_iter().take(kept).chain(extra).enumerate() {
                    line.extend(b1);
                    line.extend(v);
                    line.extend(b2);
                    line.extend(u.unwrap_or_else(|| units[i % units.len()].clone()));
                }
                line.extend(tail);
                line
            })
    }

    /// Digits of `width` bytes, with a point after the first `point` of them if that is
    /// below the width.
    fn digits(width: usize, point: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(b'0'..=b'9', width).prop_map(move |mut d| {
            if point < width {
                d[point] = b'.';
            }
            d
        })
    }

    /// Runs of lines of one shape, as `go test -count=N` prints them: the name and the
    /// numbers change, their widths and the rest do not; sometimes a byte anywhere is
    /// replaced by one that may break the shape (a sign, a point, a blank, anything). Each
    /// line ends with its newline, as in a file, sometimes `\r\n`.
    fn shaped_lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
        // Mostly what the fast path reads (numbers of up to eight bytes, ordinary units
        // and blanks), sometimes what it must decline.
        let unit = prop_oneof![
            8 => "ns/op|MB/s|B/op|allocs/op|[a-z/*-]{1,10}".prop_map(String::into_bytes),
            1 => unit(),
        ];
        let blank = prop_oneof![8 => Just(b" ".to_vec()), 1 => blank()];
        let widths = (
            1..20usize,
            prop_oneof![8 => 1..9usize, 1 => 9..12usize],
            prop::collection::vec(
                (
                    prop_oneof![8 => 1..9usize, 1 => 9..12usize],
                    0..12usize,
                    unit,
                    blank,
                ),
                1..5,
            ),
        );
        widths.prop_flat_map(|(name, count, values)| {
            let line = (
                prop::collection::vec(b'a'..=b'z', name),
                digits(count, usize::MAX),
                values
                    .iter()
                    .map(|(width, point, ..)| digits(*width, *point))
                    .collect::<Vec<_>>(),
                prop::bool::weighted(0.2),
                prop_oneof![
                    6 => Just(None),
                    1 => (any::<prop::sample::Index>(), prop_oneof![
                        Just(b'.'), Just(b'-'), Just(b'e'), Just(b' '), Just(b'\t'), any::<u8>()
                    ]).prop_map(Some),
                ],
            );
            let values = std::sync::Arc::new(values);
            prop::collection::vec(line, 2..16).prop_map(move |lines| {
                let lines = lines.into_iter().map(|(name, count, numbers, crlf, edit)| {
                    let mut line = b"Benchmark".to_vec();
                    line.extend(name);
                    line.push(b'\t');
                    line.extend(count);
                    for ((_, _, unit, blank), number) in values.iter().zip(numbers) {
                        line.push(b' ');
                        line.extend(number);
                        line.extend(blank);
                        line.extend(unit);
                    }
                    if let Some((at, byte)) = edit {
                        let at = at.index(line.len());
                        line[at] = byte;
                    }
                    line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                    line
                });
                lines.collect()
            })
        })
    }

    proptest! {
        /// Whenever the fast path takes a line, it reads exactly what the general parser
        /// reads, also when earlier lines filled its unit cache (as in a real file).
        #[test]
        fn fast_path_agrees_with_the_general_parser(lines in lines()) {
            assert_agrees(&lines.join(&b'\n'));
        }

        /// The same for lines that mostly share one shape.
        #[test]
        fn shaped_lines_agree_with_the_general_parser(lines in shaped_lines()) {
            assert_agrees(&lines.concat());
        }
    }

    /// The shaped strategy makes lines that take the shaped path (else the property above
    /// would test little).
    #[test]
    fn shaped_lines_take_the_shaped_path() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut files, mut shaped) = (0, 0);
        for _ in 0..200 {
            let lines = shaped_lines().new_tree(&mut runner).unwrap().current();
            let taken = assert_agrees(&lines.concat());
            files += 1;
            shaped += usize::from(taken.shaped > 0);
        }
        assert!(
            shaped * 2 > files,
            "{shaped} of {files} files had shaped lines"
        );
    }
}
