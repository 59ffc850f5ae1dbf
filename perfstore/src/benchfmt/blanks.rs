//! Blank maps: where a line's spaces and tabs are, found 32 bytes at a time.
//!
//! The line splitter builds the map while it looks for the line's newline, in the same
//! SIMD pass (portable, through `wide`: SSE2 on x86-64, NEON on aarch64), so finding a line
//! and classifying its bytes touch each byte once. The same pass tells whether the line is
//! plain: printable ASCII, spaces and tabs only, the lines reader N's fast path may read
//! (Go's other spaces and multi-byte runes are the general parser's). The fast path then
//! walks the line's fields with [`Fields`]: the map XOR itself shifted by one marks every
//! place where a field starts or ends, and each of those is one `trailing_zeros` away.

use wide::i8x16;

/// One 16-byte chunk, classified: bit `i` describes byte `i`.
struct Chunk {
    /// Space or tab.
    blank: u32,
    /// Below `!` or above DEL: blanks, the newline, other control characters and non-ASCII
    /// bytes. The ones that are not blanks are where a plain line's scan stops: its
    /// newline, or a byte that makes it not plain.
    special: u32,
}

/// `bytes` (16 of them) as a vector.
#[inline(always)]
pub(super) fn load(bytes: &[u8]) -> i8x16 {
    let bytes: [u8; 16] = bytes.try_into().expect("16 bytes");
    i8x16::new(bytes.map(|b| b as i8))
}

/// All ones in each byte of `v` below `!` or above DEL: blanks, control characters and
/// non-ASCII bytes. Signed bytes: everything at or above 0x80 is negative, so one
/// comparison finds them all.
#[inline(always)]
pub(super) fn special(v: i8x16) -> i8x16 {
    v.simd_lt(i8x16::splat(0x21))
}

impl Chunk {
    #[inline(always)]
    fn of(bytes: &[u8]) -> Chunk {
        let v = load(bytes);
        let blank = v.simd_eq(i8x16::splat(b' ' as i8)) | v.simd_eq(i8x16::splat(b'\t' as i8));
        Chunk {
            blank: blank.to_bitmask(),
            special: special(v).to_bitmask(),
        }
    }

    /// The chunk's bytes that stop a scan.
    #[inline(always)]
    fn stops(&self) -> u32 {
        self.special ^ self.blank
    }
}

/// Where [`BlankMap::map_to_newline`] found a line's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineEnd {
    /// Index of the newline.
    pub(crate) newline: usize,
    /// The line's length: the newline's index, less one for a `\r` before it.
    pub(crate) len: usize,
    /// Whether the line is plain (and the map describes it).
    pub(crate) plain: bool,
}

/// The blank map of one line, reused from line to line.
#[derive(Debug, Default)]
pub(crate) struct BlankMap {
    /// Bit `i % 64` of word `i / 64` is set when byte `i` is a blank or lies past the end of
    /// the line (so the last field's end needs no length check).
    words: Vec<u64>,
}

impl BlankMap {
    /// Ends the map at `len`: adds `last`, the word being filled, if the line reaches into
    /// it, and marks everything from `len` on as blank.
    #[inline(always)]
    fn seal(&mut self, len: usize, last: u64) {
        if self.words.len() * 64 < len {
            self.words.push(last);
        }
        let first = len / 64;
        if let Some(word) = self.words.get_mut(first) {
            *word |= !0 << (len % 64);
        }
        // Words wholly past the end: only when a `\r` before the newline ends a word.
        for word in self.words.iter_mut().skip(first + 1) {
            *word = !0;
        }
    }

    /// Where the scan that stopped at `buf[stop]` ends the line (`last` is the word being
    /// filled): at that newline, at a `\r\n`, or (an odd byte) at the next newline, found
    /// with memchr, the line not plain. `None` past `limit`, or without a newline.
    #[inline(always)]
    fn line_end(&mut self, buf: &[u8], stop: usize, last: u64, limit: usize) -> Option<LineEnd> {
        let end = match buf[stop] {
            b'\n' => LineEnd {
                newline: stop,
                len: stop,
                plain: true,
            },
            b'\r' if buf.get(stop + 1) == Some(&b'\n') => LineEnd {
                newline: stop + 1,
                len: stop,
                plain: true,
            },
            _ => {
                let newline = stop + memchr::memchr(b'\n', &buf[stop..])?;
                let len = match buf[..newline].last() {
                    Some(b'\r') => newline - 1,
                    _ => newline,
                };
                LineEnd {
                    newline,
                    len,
                    plain: false,
                }
            }
        };
        if end.plain {
            self.seal(end.len, last);
        }
        (end.newline <= limit).then_some(end)
    }

    /// Maps `buf` from its start up to its first newline, 32 bytes at a time while it has
    /// them, then 16; `None` if no newline is found in its whole 16-byte chunks within
    /// `limit + 1` bytes (the caller's slower path handles buffer ends and long lines).
    ///
    /// 32 bytes a step, not 64: a line of about 90 bytes (the usual benchmark line) then
    /// takes 96 bytes of classifying rather than 128.
    #[inline]
    pub(crate) fn map_to_newline(&mut self, buf: &[u8], limit: usize) -> Option<LineEnd> {
        self.words.clear();
        // The word being filled stays in a register until the line ends.
        let mut word = 0;
        let mut at = 0;
        while let Some(pair) = buf.get(at..at + 32) {
            let (a, b) = (Chunk::of(&pair[..16]), Chunk::of(&pair[16..]));
            let join = |x: u32, y: u32| u64::from(x | y << 16);
            word |= join(a.blank, b.blank) << (at % 64);
            let stops = join(a.stops(), b.stops());
            if stops != 0 {
                return self.line_end(buf, at + stops.trailing_zeros() as usize, word, limit);
            }
            if at % 64 == 32 {
                self.words.push(word);
                word = 0;
            }
            at += 32;
            if at > limit {
                return None;
            }
        }
        while let Some(bytes) = buf.get(at..at + 16) {
            let chunk = Chunk::of(bytes);
            word |= u64::from(chunk.blank) << (at % 64);
            if chunk.stops() != 0 {
                let stop = at + chunk.stops().trailing_zeros() as usize;
                return self.line_end(buf, stop, word, limit);
            }
            if at % 64 == 48 {
                self.words.push(word);
                word = 0;
            }
            at += 16;
        }
        None
    }

    /// Maps all of `line` (which holds no newline); true if it is plain.
    pub(crate) fn map(&mut self, line: &[u8]) -> bool {
        self.words.clear();
        let (mut word, mut plain) = (0, true);
        let chunks = line.chunks_exact(16);
        // The rest, padded with spaces: they are blanks, as past the end.
        let rest = chunks.remainder();
        let mut last = [b' '; 16];
        last[..rest.len()].copy_from_slice(rest);
        let last = (!rest.is_empty()).then_some(&last[..]);
        for (k, bytes) in chunks.chain(last).enumerate() {
            let chunk = Chunk::of(bytes);
            word |= u64::from(chunk.blank) << (16 * k % 64);
            plain &= chunk.stops() == 0;
            if k % 4 == 3 {
                self.words.push(word);
                word = 0;
            }
        }
        self.seal(line.len(), word);
        plain
    }

    /// The map's words, for [`Fields::new`].
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }
}

/// The fields of one mapped line, in order.
///
/// Field starts (a non-blank after a blank; the line starts after a virtual blank) and field
/// ends (a blank after a non-blank) are taken from two bitmaps by two cursors. The two
/// `trailing_zeros`-and-clear chains do not depend on each other, so the processor runs
/// them side by side.
#[derive(Debug)]
pub(super) struct Fields<'a> {
    words: &'a [u64],
    len: usize,
    starts: Cursor,
    ends: Cursor,
}

/// One of [`Fields`]' two cursors.
#[derive(Debug)]
struct Cursor {
    /// Index of the current word's first byte (a multiple of 64).
    base: usize,
    /// The current word's boundaries of this kind not yet returned.
    bits: u64,
}

/// Which boundaries a cursor takes, from a word of the map and the same shifted by one byte
/// (the blank bits of the bytes before).
type Kind = fn(u64, u64) -> u64;

const STARTS: Kind = |w, before| !w & before;
const ENDS: Kind = |w, before| w & !before;

impl<'a> Fields<'a> {
    /// The fields of a line of `len` bytes whose blank map is `words`.
    #[inline(always)]
    pub(super) fn new(words: &'a [u64], len: usize) -> Fields<'a> {
        let first = words.first().copied().unwrap_or(!0);
        let before = (first << 1) | 1;
        Fields {
            words,
            len,
            starts: Cursor {
                base: 0,
                bits: STARTS(first, before),
            },
            ends: Cursor {
                base: 0,
                bits: ENDS(first, before),
            },
        }
    }

    /// The next field's start and end (exclusive), or `None` at the end of the line.
    #[inline(always)]
    #[allow(clippy::should_implement_trait)] // Kept small and always inlined; no adapters.
    pub(super) fn next(&mut self) -> Option<(usize, usize)> {
        let start = self.starts.advance(self.words, self.len, STARTS);
        let end = self.ends.advance(self.words, self.len, ENDS);
        (start < self.len).then_some((start, end))
    }
}

impl Cursor {
    /// The next boundary; the line's length once there are none left. Bits past the line's
    /// end are blanks, so no boundary lies beyond it.
    #[inline(always)]
    fn advance(&mut self, words: &[u64], len: usize, kind: Kind) -> usize {
        while self.bits == 0 {
            self.base += 64;
            let w = self.base / 64;
            let Some(&word) = words.get(w) else {
                return len;
            };
            self.bits = kind(word, (word << 1) | (words[w - 1] >> 63));
        }
        let i = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        // `base` is a multiple of 64 and `i` below it: `|` adds them in one step.
        self.base | i
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The fields of `line` split byte by byte: the reference the walk must agree with.
    fn fields_by_bytes(line: &[u8]) -> Vec<(usize, usize)> {
        let blank = |c: &u8| *c == b' ' || *c == b'\t';
        let mut out = Vec::new();
        let mut i = 0;
        while i < line.len() {
            if blank(&line[i]) {
                i += 1;
                continue;
            }
            let end = line[i..]
                .iter()
                .position(blank)
                .map_or(line.len(), |j| i + j);
            out.push((i, end));
            i = end;
        }
        out
    }

    fn walk(words: &[u64], len: usize) -> Vec<(usize, usize)> {
        let mut fields = Fields::new(words, len);
        let mut out = Vec::new();
        while let Some(field) = fields.next() {
            out.push(field);
        }
        out
    }

    /// The fields found by mapping `line` alone, or `None` if it is not plain.
    fn fields_mapped(line: &[u8]) -> Option<Vec<(usize, usize)>> {
        let mut map = BlankMap::default();
        map.map(line).then(|| walk(map.words(), line.len()))
    }

    /// The same, mapping `line` as the splitter does: followed by a newline and more text.
    fn fields_to_newline(line: &[u8], after: &[u8]) -> Option<Option<Vec<(usize, usize)>>> {
        let mut buf = line.to_vec();
        buf.push(b'\n');
        buf.extend_from_slice(after);
        let mut map = BlankMap::default();
        let end = map.map_to_newline(&buf, usize::MAX - 1)?;
        assert_eq!(end.newline, line.len());
        assert_eq!(end.len, line.strip_suffix(b"\r").unwrap_or(line).len());
        Some(end.plain.then(|| walk(map.words(), end.len)))
    }

    #[test]
    fn fields_across_chunk_and_word_boundaries() {
        for len in [
            0, 1, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 129, 200, 1000,
        ] {
            for period in [1, 2, 3, 7, 16, 63, 64, 65] {
                for first in [b'x', b' '] {
                    let other = if first == b'x' { b'\t' } else { b'x' };
                    let line: Vec<u8> = (0..len)
                        .map(|i| if (i / period) % 2 == 0 { first } else { other })
                        .collect();
                    let want = fields_by_bytes(&line);
                    assert_eq!(fields_mapped(&line).unwrap(), want);
                    assert_eq!(fields_to_newline(&line, &[b'y'; 20]), Some(Some(want)));
                }
            }
        }
    }

    #[test]
    fn newline_search_needs_whole_chunks_and_respects_the_limit() {
        let mut map = BlankMap::default();
        // The newline is in the last, partial chunk: not found, the caller's slow path runs.
        let newline = |map: &mut BlankMap, buf: &[u8], limit| {
            map.map_to_newline(buf, limit).map(|end| end.newline)
        };
        assert_eq!(newline(&mut map, b"0123456789abcdef01\n", 1000), None);
        assert_eq!(newline(&mut map, b"0123456789abcde\n", 1000), Some(15));
        assert_eq!(newline(&mut map, &[b'a'; 100], 1000), None);
        let mut long = vec![b'a'; 70];
        long.extend_from_slice(&[b'\n'; 20]);
        assert_eq!(newline(&mut map, &long, 69), None);
        assert_eq!(newline(&mut map, &long, 70), Some(70));
        // An odd byte: the newline is still found, and the line is not plain.
        let end = map.map_to_newline(b"ab\x01cd\r\n0123456789abcdef", 1000);
        assert_eq!(
            end,
            Some(LineEnd {
                newline: 6,
                len: 5,
                plain: false
            })
        );
        let end = map.map_to_newline(b"ab cd\r\n0123456789abcdef", 1000);
        assert_eq!(
            end,
            Some(LineEnd {
                newline: 6,
                len: 5,
                plain: true
            })
        );
    }

    #[test]
    fn odd_bytes_make_a_line_not_plain() {
        for odd in [0u8, 0x0b, b'\r', 0x1f, 0x80, 0xa0, 0xff] {
            for at in [0, 15, 16, 40, 63, 64, 99] {
                let mut line = vec![b'a'; 100];
                line[at] = odd;
                assert!(fields_mapped(&line).is_none(), "{odd:#x} at {at}");
                // A `\r` just before the newline is part of the line ending, not the line.
                let want = (odd == b'\r' && at == 99).then(|| vec![(0, 99)]);
                assert_eq!(fields_to_newline(&line, b"0123456789abcdef"), Some(want));
            }
        }
        assert!(fields_mapped(b"a\x7f~ !").is_some());
        // Odd bytes after the newline belong to the next line.
        assert_eq!(
            fields_to_newline(b"ab cd", b"\x00\xff\r..........."),
            Some(Some(vec![(0, 2), (3, 5)]))
        );
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_split(line in prop::collection::vec(
            prop_oneof![4 => Just(b'a'), 2 => Just(b' '), 1 => Just(b'\t'), 1 => any::<u8>()],
            0..300,
        )) {
            let want = |line: &[u8]| {
                let plain = line.iter().all(|&c| c == b' ' || c == b'\t' || (0x21..0x80).contains(&c));
                plain.then(|| fields_by_bytes(line))
            };
            prop_assert_eq!(fields_mapped(&line), want(&line));
            if !line.contains(&b'\n') {
                // Before a newline, one `\r` at the end is the line ending's.
                let stripped = line.strip_suffix(b"\r").unwrap_or(&line);
                prop_assert_eq!(fields_to_newline(&line, &[b'z'; 16]), Some(want(stripped)));
            }
        }
    }
}
