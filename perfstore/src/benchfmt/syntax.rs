//! Byte-level pieces shared by both readers: runes, fields and configuration lines.
//!
//! Input is never assumed to be UTF-8. Where a character class matters, bytes are decoded
//! the way Go's `utf8.DecodeRune` does: an invalid sequence is one byte decoding to U+FFFD,
//! which is neither a letter nor a space.

/// Decodes one rune at the start of `b` (non-empty), returning it and its length in bytes.
pub(crate) fn decode_rune(b: &[u8]) -> (char, usize) {
    let first = b[0];
    if first < 0x80 {
        return (first as char, 1);
    }
    let width = match first {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (char::REPLACEMENT_CHARACTER, 1),
    };
    match b.get(..width).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => (
            s.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER),
            width,
        ),
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

/// Go's `unicode.IsSpace` for ASCII: `\t \n \v \f \r` and space.
#[inline]
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// Whether the rune at the start of `b` is a space, and its width.
#[inline]
fn space_at(b: &[u8]) -> (bool, usize) {
    if b[0] < 0x80 {
        (is_ascii_space(b[0]), 1)
    } else {
        // Rust's `char::is_whitespace` is the Unicode White_Space property, the same set
        // as Go's `unicode.IsSpace`.
        let (c, n) = decode_rune(b);
        (c.is_whitespace(), n)
    }
}

/// Index of the first space rune in `b` and the index just after it.
#[inline]
pub(crate) fn find_space(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        let (space, n) = space_at(&b[i..]);
        if space {
            return Some((i, i + n));
        }
        i += n;
    }
    None
}

/// Splits off the first field: the bytes up to the first space, and the rest with its
/// leading spaces removed (upstream's `splitField`).
#[inline]
pub(crate) fn split_field(b: &[u8]) -> (&[u8], &[u8]) {
    // Fast path: find the first byte that is a control character, a space or non-ASCII
    // eight bytes at a time; on ordinary ASCII text that byte is the blank ending the field.
    let Some(i) = first_special(b) else {
        return (b, &[]);
    };
    if CLASS[b[i] as usize] == SPACE {
        let rest = &b[i + 1..];
        return match rest.iter().position(|&c| CLASS[c as usize] != SPACE) {
            None => (&b[..i], &[]),
            Some(j) if CLASS[rest[j] as usize] == ORDINARY => (&b[..i], &rest[j..]),
            Some(j) => (&b[..i], trim_leading_space(&rest[j..])),
        };
    }
    // A control character that is not a space, or a multi-byte rune: decode from here.
    match find_space(&b[i..]) {
        None => (b, &[]),
        Some((end, after)) => (&b[..i + end], trim_leading_space(&b[i + after..])),
    }
}

/// Index of the first byte below `!` (spaces and control characters) or above `~`.
///
/// Eight bytes at a time: `(x - 0x21…) | x` has the high bit set in the lowest byte that is
/// below 0x21 or at least 0x80, and that lowest flag is exact because no borrow reaches it
/// from the ordinary bytes below it.
#[inline]
fn first_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8)"));
        let flags = (x.wrapping_sub(ONES * 0x21) | x) & HIGH;
        if flags != 0 {
            return Some(base + flags.trailing_zeros() as usize / 8);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| !(0x21..0x80).contains(&c))
        .map(|i| base + i)
}

/// Byte classes for [`split_field`]'s fast path.
const ORDINARY: u8 = 0;
const SPACE: u8 = 1;
const NON_ASCII: u8 = 2;

static CLASS: [u8; 256] = {
    let mut t = [ORDINARY; 256];
    let mut i = 0x80;
    while i < 256 {
        t[i] = NON_ASCII;
        i += 1;
    }
    t[b'\t' as usize] = SPACE;
    t[b'\n' as usize] = SPACE;
    t[0x0b] = SPACE;
    t[0x0c] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[b' ' as usize] = SPACE;
    t
};

/// The fields of `line` (maximal runs of non-space runes) as byte ranges, into `out`.
///
/// Lines of printable ASCII separated by spaces and tabs, nearly every benchmark line, are
/// classified eight bytes at a time; anything else (other control bytes, non-ASCII runes
/// that may be Unicode spaces) goes through [`split_field`]. Both give the same fields.
pub(crate) fn fields(line: &[u8], out: &mut Vec<(usize, usize)>) {
    out.clear();
    if !fields_ascii(line, out) {
        out.clear();
        let mut rest = line;
        loop {
            let (field, next) = split_field(trim_leading_space(rest));
            if field.is_empty() {
                break;
            }
            let start = field.as_ptr() as usize - line.as_ptr() as usize;
            out.push((start, start + field.len()));
            rest = next;
        }
    }
}

/// Exact per-byte flags (high bit of each byte) for bytes of `x` equal to `b`.
#[inline(always)]
fn eq_flags(x: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let y = x ^ (0x0101_0101_0101_0101 * u64::from(b));
    !(((y & LOW7).wrapping_add(LOW7)) | y | LOW7)
}

/// The SWAR half of [`fields`]; false (with `out` in any state) if the line holds a byte
/// other than printable ASCII, space and tab.
fn fields_ascii(line: &[u8], out: &mut Vec<(usize, usize)>) -> bool {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut start = 0;
    let mut base = 0;
    let mut tail = [b'x'; 8];
    let mut chunks = line.chunks_exact(8);
    let rem = chunks.remainder();
    tail[..rem.len()].copy_from_slice(rem);
    for word in chunks
        .by_ref()
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .chain(std::iter::once(u64::from_le_bytes(tail)))
    {
        // Printable ASCII: low seven bits at least 0x21 and the high bit clear.
        let printable = ((word & LOW7).wrapping_add(0x5F5F_5F5F_5F5F_5F5F)) & !word & HIGH;
        let mut seps = (eq_flags(word, b' ') | eq_flags(word, b'\t')) & HIGH;
        if (printable | seps) != HIGH {
            return false;
        }
        while seps != 0 {
            let p = base + seps.trailing_zeros() as usize / 8;
            if p > start {
                out.push((start, p));
            }
            start = p + 1;
            seps &= seps - 1;
        }
        base += 8;
    }
    if start < line.len() {
        out.push((start, line.len()));
    }
    true
}

/// Removes leading space runes.
#[inline]
pub(crate) fn trim_leading_space(mut b: &[u8]) -> &[u8] {
    while !b.is_empty() {
        let (space, n) = space_at(b);
        if !space {
            break;
        }
        b = &b[n..];
    }
    b
}

/// What a configuration line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigLine<'a> {
    /// `key: value`: set the key.
    Set(&'a [u8], &'a [u8]),
    /// `key:` or `key:` followed by blanks only: delete the key.
    Delete(&'a [u8]),
}

/// Parses a `key: value` line, or returns `None` if the line is not one.
///
/// The key must start with a lower-case letter and may contain no space or upper-case
/// letter before the colon; the colon must be followed by nothing, or by at least one ASCII
/// space or tab, which are removed. `key:value` is therefore not a configuration line.
pub(crate) fn parse_config_line(line: &[u8]) -> Option<ConfigLine<'_>> {
    let mut i = 0;
    let colon = loop {
        if i >= line.len() {
            return None;
        }
        let b = line[i];
        if b < 0x80 {
            if i == 0 && !b.is_ascii_lowercase() {
                return None;
            }
            if is_ascii_space(b) || b.is_ascii_uppercase() {
                return None;
            }
            if i > 0 && b == b':' {
                break i;
            }
            i += 1;
        } else {
            let (c, n) = decode_rune(&line[i..]);
            if i == 0 && !c.is_lowercase() {
                return None;
            }
            if c.is_whitespace() || c.is_uppercase() {
                return None;
            }
            i += n;
        }
    };
    let key = &line[..colon];
    let rest = &line[colon + 1..];
    if rest.is_empty() {
        return Some(ConfigLine::Delete(key));
    }
    let value_start = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    if value_start == 0 {
        return None;
    }
    let value = &rest[value_start..];
    if value.is_empty() {
        Some(ConfigLine::Delete(key))
    } else {
        Some(ConfigLine::Set(key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition `split_field` must agree with: decode runes, stop at the first space.
    fn split_slow(b: &[u8]) -> (&[u8], &[u8]) {
        match find_space(b) {
            None => (b, &[]),
            Some((end, after)) => (&b[..end], trim_leading_space(&b[after..])),
        }
    }

    /// Fields by the definition: repeated `split_field`.
    fn fields_slow(line: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = trim_leading_space(line);
        loop {
            let (f, next) = split_field(rest);
            if f.is_empty() {
                return out;
            }
            out.push(f);
            rest = next;
        }
    }

    proptest! {
        #[test]
        fn swar_fields_agree_with_split_field(b in prop::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), 0x21u8..0x7f, any::<u8>()], 0..70)) {
            let mut spans = Vec::new();
            fields(&b, &mut spans);
            let got: Vec<&[u8]> = spans.iter().map(|&(s, e)| &b[s..e]).collect();
            prop_assert_eq!(got, fields_slow(&b));
        }

        #[test]
        fn fast_split_agrees_with_rune_decoding(b in prop::collection::vec(
            prop_oneof![any::<u8>(), Just(b' '), Just(b'\t'), 0x21u8..0x7f], 0..40)) {
            prop_assert_eq!(split_field(&b), split_slow(&b));
        }
    }

    #[test]
    fn configuration_lines() {
        use ConfigLine::*;
        assert_eq!(
            parse_config_line(b"key: value"),
            Some(Set(b"key", b"value"))
        );
        assert_eq!(
            parse_config_line(b"key:\tvalue  "),
            Some(Set(b"key", b"value  "))
        );
        assert_eq!(parse_config_line(b"key:"), Some(Delete(b"key")));
        assert_eq!(parse_config_line(b"key:   "), Some(Delete(b"key")));
        assert_eq!(
            parse_config_line("clé-1.x/y_z: v".as_bytes()),
            Some(Set("clé-1.x/y_z".as_bytes(), b"v"))
        );
        for ignored in [
            &b"key:value"[..],
            b"Key: v",
            b"a b: v",
            b": v",
            b"\xffkey: v",
            b"kEy: v",
            b"",
            b"key",
            b" key: v",
        ] {
            assert_eq!(parse_config_line(ignored), None, "{ignored:?}");
        }
        // Invalid bytes after the first rune are allowed in keys.
        assert_eq!(parse_config_line(b"k\xff: v"), Some(Set(b"k\xff", b"v")));
    }

    #[test]
    fn fields_split_on_unicode_spaces() {
        assert_eq!(
            split_field("a\u{2003}\t b".as_bytes()),
            (&b"a"[..], &b"b"[..])
        );
        assert_eq!(split_field(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(split_field(b"a\xff b"), (&b"a\xff"[..], &b"b"[..]));
        assert_eq!(find_space("x\u{a0}".as_bytes()), Some((1, 3)));
        assert_eq!(split_field(b"a\x01b c"), (&b"a\x01b"[..], &b"c"[..]));
        assert_eq!(
            split_field(b"abcdefghijklmnop\x0bq"),
            (&b"abcdefghijklmnop"[..], &b"q"[..])
        );
        assert_eq!(
            split_field("abcdefghij\u{2003}k".as_bytes()),
            (&b"abcdefghij"[..], &b"k"[..])
        );
        assert_eq!(
            split_field("abcdéfghijk l".as_bytes()),
            ("abcdéfghijk".as_bytes(), &b"l"[..])
        );
    }
}
