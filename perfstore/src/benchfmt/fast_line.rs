//! Reader N's fast path for ordinary benchmark lines.
//!
//! Nearly every line `go test -bench` prints is printable ASCII with blanks and tabs between
//! its fields, an unsigned integer count, and short unsigned decimal values. Such a line is
//! parsed here in one pass, without first splitting it into fields: the name's end is found
//! eight bytes at a time, then each number is accumulated while its digits are scanned and
//! each unit compared as it is found. At the first thing out of the ordinary (a sign, an
//! exponent, a long number, a control or non-ASCII byte, anything that is an error) it gives
//! up, and the general parser reads the line from the start. Both give the same result for
//! every line (a property test checks it), so which path ran is never visible.

use super::current::{
    BenchResult, Tidied, hinted_unit, parse_general_line, store_tidied, store_value,
};
use super::number::Digits;
use super::syntax::first_special;

/// Parses `line` (which starts with `Benchmark`) into `result` if it is an ordinary,
/// well-formed benchmark line; false if the general parser must read it.
pub(super) fn parse(
    line: &[u8],
    result: &mut BenchResult,
    units: &mut Vec<Tidied>,
    hints: &mut Vec<usize>,
) -> bool {
    // The name ends at the first byte outside printable ASCII, which must be a blank.
    let Some(name_end) = first_special(line) else {
        return false;
    };
    if !is_blank(line[name_end]) {
        return false;
    }
    let mut rest = skip_blanks(&line[name_end..]);
    let (count, len) = Digits::scan(rest, 0);
    let Some(iters) = count.int() else {
        return false;
    };
    rest = &rest[len..];
    let mut n = 0;
    loop {
        let before = rest.len();
        rest = skip_blanks(rest);
        if rest.is_empty() {
            break;
        }
        if rest.len() == before {
            // Something other than a blank ends the last field.
            return false;
        }
        let (digits, len) = Digits::scan(rest, 0);
        let Some(value) = digits.exact_f64() else {
            return false;
        };
        let after = skip_blanks(&rest[len..]);
        if after.len() == rest.len() - len {
            // No blank between the number and its unit, or no unit.
            return false;
        }
        // Most lines repeat the previous line's units: compare the hinted one in place.
        let tail = match hinted_unit(n, units, hints) {
            Some(t)
                if after.starts_with(&t.raw)
                    && after.get(t.raw.len()).is_none_or(|&c| is_blank(c)) =>
            {
                store_tidied(result, n, value, t);
                &after[t.raw.len()..]
            }
            _ => {
                let unit_len = first_special(after).unwrap_or(after.len());
                if unit_len == 0 {
                    return false;
                }
                let (unit, tail) = after.split_at(unit_len);
                store_value(result, n, value, unit, units, hints);
                tail
            }
        };
        rest = tail;
        n += 1;
    }
    if n == 0 {
        return false;
    }
    result.values.truncate(n);
    result.iters = iters;
    result.name.clear();
    result
        .name
        .extend_from_slice(&line[b"Benchmark".len()..name_end]);
    true
}

/// The ASCII blanks `go test` puts between fields.
#[inline]
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// `b` without its leading blanks.
#[inline]
fn skip_blanks(b: &[u8]) -> &[u8] {
    let n = b.iter().position(|&c| !is_blank(c)).unwrap_or(b.len());
    &b[n..]
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

/// Reads `lines` with the fast path as the reader does (one result and one unit cache for
/// all of them, so the previous line's units are matched in place) and panics unless every
/// line it takes reads exactly as the general parser reads it alone. The property tests'
/// and the fuzz target's check.
pub(crate) fn assert_agrees<'a>(lines: impl IntoIterator<Item = &'a [u8]>) {
    let (mut fast, mut units, mut hints) = (BenchResult::default(), Vec::new(), Vec::new());
    for line in lines {
        if parse(line, &mut fast, &mut units, &mut hints) {
            let (ok, general) = general(line);
            assert_eq!(
                ok,
                Ok(true),
                "general parser refused {}",
                line.escape_ascii()
            );
            assert_eq!(
                fast,
                general,
                "the two paths differ on {}",
                line.escape_ascii()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The fast path's result on `line` alone, if it takes it, and the general parser's.
    fn both_ways(line: &[u8]) -> (Option<BenchResult>, Result<bool, String>, BenchResult) {
        let mut fast = BenchResult::default();
        let taken = parse(line, &mut fast, &mut Vec::new(), &mut Vec::new());
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
        }
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

    /// A benchmark line: mostly ordinary, sometimes anything Go's parser might see.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        (
            "[A-Za-z0-9/=_.-]{0,12}",
            prop_oneof![6 => "[0-9]{1,9}".prop_map(String::into_bytes), 1 => number()],
            prop::collection::vec((blank(), number(), blank(), unit()), 0..4),
            (blank(), blank()),
        )
            .prop_map(|(name, count, values, (b, tail))| {
                let mut line = b"Benchmark".to_vec();
                line.extend(name.as_bytes());
                line.extend(b);
                line.extend(count);
                for (b1, v, b2, u) in values {
                    line.extend(b1);
                    line.extend(v);
                    line.extend(b2);
                    line.extend(u);
                }
                line.extend(tail);
                line
            })
    }

    proptest! {
        /// Whenever the fast path takes a line, it reads exactly what the general parser
        /// reads, also when earlier lines filled its unit cache (as in a real file).
        #[test]
        fn fast_path_agrees_with_the_general_parser(lines in prop::collection::vec(line(), 1..6)) {
            assert_agrees(lines.iter().map(Vec::as_slice));
        }
    }
}
