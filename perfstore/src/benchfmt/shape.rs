//! Line shapes: recognising a line like one read before without splitting it again.
//!
//! `go test -bench` prints the runs of a benchmark, and often the benchmarks of a package,
//! as lines that differ only in their numbers and names: the same length, the same blanks,
//! the same units in the same places. A [`Shape`] is learned from one plain line and the
//! byte ranges that may differ (for reader N: the name and the numbers). Another line has the
//! shape when it has the same length, the same bytes outside those ranges, and inside them
//! only printable ASCII that is not blank. It then has the learned line's fields, exactly
//! where the learned line has them, and the same text in each fixed field.
//!
//! Checking that is one SIMD pass of a few operations per 16 bytes, with no bitmap built and
//! no field boundary searched (as splitting the line does, [`super::blanks`]), and it also
//! settles that the units are unchanged.

use std::ops::Range;

use wide::i8x16;

use super::blanks::{load, special};

/// The longest line a shape is learned for.
const MAX_SHAPED: usize = 256;

/// How many 16-byte chunks cover the longest shaped line.
const CHUNKS: usize = MAX_SHAPED / 16;

/// The shape of one learned line; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Shape {
    /// The learned line's length; zero when nothing is learned (no line is that short).
    len: usize,
    /// The line's whole 16-byte chunks, then one more ending at the line's end (overlapping
    /// the one before) if the length is not a multiple of 16: no chunk reaches past the line.
    chunks: [Pattern; CHUNKS],
}

/// What one 16-byte chunk of a line of the shape holds.
#[derive(Debug, Clone, Copy)]
struct Pattern {
    /// The learned line's bytes.
    bytes: i8x16,
    /// All ones where a byte must equal the learned one, zero where it may vary.
    fixed: i8x16,
    /// `!fixed`, kept to spare an operation on every check.
    varying: i8x16,
}

impl Pattern {
    const NONE: Pattern = Pattern {
        bytes: i8x16::ZERO,
        fixed: i8x16::ZERO,
        varying: i8x16::ZERO,
    };

    /// The bytes of `chunk` that break the pattern: non-zero in each.
    #[inline(always)]
    fn differs(&self, chunk: &[u8]) -> i8x16 {
        let v = load(chunk);
        ((v ^ self.bytes) & self.fixed) | (special(v) & self.varying)
    }
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            len: 0,
            chunks: [Pattern::NONE; CHUNKS],
        }
    }
}

impl Shape {
    /// The learned line's length, if a shape is learned.
    #[inline(always)]
    pub(crate) fn len(&self) -> Option<usize> {
        (self.len > 0).then_some(self.len)
    }

    /// Forgets the learned shape: no line matches until the next [`Shape::learn`].
    pub(crate) fn forget(&mut self) {
        self.len = 0;
    }

    /// Learns `line`'s shape, with the bytes in `varying` free to differ. Forgets the shape
    /// instead, and returns false, for a line of fewer than 16 or more than [`MAX_SHAPED`]
    /// bytes. (A range reaching past the line is cut at its end.)
    pub(crate) fn learn(
        &mut self,
        line: &[u8],
        varying: impl IntoIterator<Item = Range<usize>>,
    ) -> bool {
        let len = line.len();
        if !(16..=MAX_SHAPED).contains(&len) {
            self.forget();
            return false;
        }
        let mut fixed = [-1i8; MAX_SHAPED];
        for range in varying {
            let range = range.start.min(len)..range.end.min(len);
            fixed[range].fill(0);
        }
        for (k, pattern) in self.chunks.iter_mut().take(len.div_ceil(16)).enumerate() {
            let at = (16 * k).min(len - 16);
            let fixed = i8x16::new(fixed[at..at + 16].try_into().expect("16 bytes"));
            *pattern = Pattern {
                bytes: load(&line[at..at + 16]),
                fixed,
                varying: !fixed,
            };
        }
        self.len = len;
        true
    }

    /// True if `line` has the learned shape: its length, the learned bytes where they are
    /// fixed, and elsewhere none of the bytes that end a field or make a line not plain
    /// (blanks, controls, non-ASCII). False when nothing is learned.
    #[inline(always)]
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        if line.len() != self.len || self.len == 0 {
            return false;
        }
        let whole = line.chunks_exact(16);
        let partial = !whole.remainder().is_empty();
        let mut differs = i8x16::ZERO;
        for (chunk, pattern) in whole.zip(&self.chunks) {
            differs |= pattern.differs(chunk);
        }
        if partial
            && let (Some(tail), Some(pattern)) =
                (line.last_chunk::<16>(), self.chunks.get(line.len() / 16))
        {
            differs |= pattern.differs(tail);
        }
        // Not `to_bitmask`: a byte that differs from the learned one need not have its high
        // bit set.
        differs.simd_eq(i8x16::ZERO).all()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// [`Shape::matches`] byte by byte: the reference it must agree with.
    fn matches_by_bytes(learned: &[u8], varying: &[Range<usize>], line: &[u8]) -> bool {
        let varies = |i: usize| varying.iter().any(|r| r.contains(&i));
        let special = |c: u8| !(0x21..0x80).contains(&c);
        (16..=MAX_SHAPED).contains(&learned.len())
            && line.len() == learned.len()
            && (0..line.len()).all(|i| {
                if varies(i) {
                    !special(line[i])
                } else {
                    line[i] == learned[i]
                }
            })
    }

    fn shape(line: &[u8], varying: &[Range<usize>]) -> Shape {
        let mut shape = Shape::default();
        shape.learn(line, varying.iter().cloned());
        shape
    }

    #[test]
    fn a_run_of_one_benchmark_shares_a_shape() {
        let first = b"BenchmarkEncode/size=1-8  \t100013\t12345 ns/op\t81.00 MB/s";
        // The name, the count and the two values vary.
        let varying = [9..24, 27..33, 34..39, 46..51];
        let s = shape(first, &varying);
        assert_eq!(s.len(), Some(first.len()));
        assert!(s.matches(first));
        assert!(s.matches(b"BenchmarkEncode/size=2-8  \t100026\t99999 ns/op\t10.01 MB/s"));
        for other in [
            // A unit, a blank, a longer number, a blank inside a number, a control byte.
            &b"BenchmarkEncode/size=2-8  \t100026\t99999 ns/op\t10.01 MB/S"[..],
            b"BenchmarkEncode/size=2-8 \t 100026\t99999 ns/op\t10.01 MB/s",
            b"BenchmarkEncode/size=2-8  \t100026\t99999 ns/op\t10.01 MB/s ",
            b"BenchmarkEncode/size=2-8  \t100026\t99 99 ns/op\t10.01 MB/s",
            b"BenchmarkEncode/size=2-8  \t100026\t99\x0199 ns/op\t10.01 MB/s",
            b"BenchmarkEncode/size=\xff-8  \t100026\t99999 ns/op\t10.01 MB/s",
        ] {
            assert!(!s.matches(other), "{}", other.escape_ascii());
        }
    }

    #[test]
    fn short_long_and_forgotten_shapes_match_nothing() {
        let mut s = shape(b"Benchmark 1 2 x", &[]);
        assert_eq!(s.len(), None);
        assert!(!s.matches(b"Benchmark 1 2 x"));
        s = shape(&[b'a'; MAX_SHAPED + 1], &[]);
        assert!(!s.matches(&[b'a'; MAX_SHAPED + 1]));
        s = shape(&[b'a'; MAX_SHAPED], &[]);
        assert!(s.matches(&[b'a'; MAX_SHAPED]));
        s.forget();
        assert!(!s.matches(&[b'a'; MAX_SHAPED]));
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_check(
            learned in prop::collection::vec(
                prop_oneof![6 => Just(b'a'), 2 => Just(b' '), 1 => any::<u8>()], 10..300),
            varying in prop::collection::vec((0..300usize, 0..40usize), 0..4),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(),
                 prop_oneof![3 => Just(b'b'), 1 => Just(b' '), 1 => any::<u8>()]),
                0..4),
        ) {
            let varying: Vec<Range<usize>> = varying.into_iter().map(|(s, n)| s..s + n).collect();
            let s = shape(&learned, &varying);
            let mut line = learned.clone();
            for (at, byte) in edits {
                line[at.index(learned.len())] = byte;
            }
            prop_assert_eq!(s.matches(&line), matches_by_bytes(&learned, &varying, &line));
            prop_assert_eq!(
                s.matches(&learned),
                matches_by_bytes(&learned, &varying, &learned)
            );
        }
    }
}
