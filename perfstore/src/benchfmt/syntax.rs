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
    // ASCII fast path: most fields end at a tab or space with no multi-byte rune before.
    let mut i = 0;
    while i < b.len() && b[i] < 0x80 {
        if is_ascii_space(b[i]) {
            let mut j = i + 1;
            while j < b.len() && b[j] < 0x80 && is_ascii_space(b[j]) {
                j += 1;
            }
            if j == b.len() || b[j] < 0x80 {
                return (&b[..i], &b[j..]);
            }
            return (&b[..i], trim_leading_space(&b[j..]));
        }
        i += 1;
    }
    if i == b.len() {
        return (b, &[]);
    }
    match find_space(b) {
        None => (b, &[]),
        Some((end, after)) => (&b[..end], trim_leading_space(&b[after..])),
    }
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
    }
}
