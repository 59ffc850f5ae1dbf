//! Splitting input into lines the way Go's `bufio.Scanner` does, without copying.

use std::io::{self, BufRead};

use super::blanks::{BlankMap, LineEnd};
use super::shape::Shape;

/// The longest line either reader accepts, in bytes before the `\n`.
///
/// Go's `bufio.Scanner` holds a line in a 64 KiB buffer, so 65,535 bytes is the most it can
/// return; a longer line stops the scan with `bufio.Scanner: token too long`.
pub const MAX_LINE: usize = 64 * 1024 - 1;

/// A line-at-a-time view of a [`BufRead`].
///
/// Lines are returned as borrowed slices of the reader's own buffer whenever they lie inside
/// it (always, for an in-memory `&[u8]`), and only copied when a line straddles two refills.
/// One trailing `\r` is removed, as Go's `ScanLines` does. Each line comes with its blank
/// map when it is plain (see [`BlankMap`]), built in the same pass that finds its end, unless
/// it has the [`Shape`] the caller expects: then finding its end and checking it is all.
#[derive(Debug)]
pub(crate) struct Lines<R> {
    inner: R,
    /// Bytes of `inner`'s buffer handed out by the last call, consumed on the next one.
    pending: usize,
    /// Holds a line that straddles refills.
    spill: Vec<u8>,
    /// The last line's blank map.
    map: BlankMap,
    /// Number of lines returned so far: the 1-based number of the last line.
    pub(crate) line_no: usize,
}

/// One line of input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub(crate) no: usize,
    /// The line, without its newline and one `\r` before it.
    pub(crate) bytes: &'a [u8],
    /// What the splitter found out about the line's bytes.
    pub(crate) kind: Kind<'a>,
}

/// What [`Lines`] found out about a line's bytes while splitting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// It has the shape [`Lines::next_line_shaped`] was given (so it is plain); not mapped.
    Shaped,
    /// Plain (printable ASCII, spaces and tabs only), with its blank map.
    Mapped(&'a [u64]),
    /// Not plain.
    Other,
}

/// Why [`Lines::next_line`] stopped.
#[derive(Debug)]
pub(crate) enum LineError {
    /// A line was longer than [`MAX_LINE`].
    TooLong,
    /// The underlying reader failed.
    Io(io::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Go's wording, so messages match what upstream tools print.
            LineError::TooLong => f.write_str("bufio.Scanner: token too long"),
            LineError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(inner: R) -> Self {
        Lines {
            inner,
            pending: 0,
            spill: Vec::new(),
            map: BlankMap::default(),
            line_no: 0,
        }
    }

    /// The next line, or `None` at the end of input.
    #[inline]
    pub(crate) fn next_line(&mut self) -> Result<Option<Line<'_>>, LineError> {
        self.next_line_shaped(None)
    }

    /// The next line, or `None` at the end of input; if it has `shape`, it is not mapped and
    /// comes back [`Kind::Shaped`].
    #[inline(always)]
    pub(crate) fn next_line_shaped(
        &mut self,
        shape: Option<&Shape>,
    ) -> Result<Option<Line<'_>>, LineError> {
        if self.pending > 0 {
            self.inner.consume(self.pending);
            self.pending = 0;
        }
        let avail = self.inner.fill_buf().map_err(LineError::Io)?;
        // The steady state of a benchmark file: a line like the last one. Its newline (or
        // `\r\n`) is where the shape says; an earlier one would be a byte the shape rejects.
        let (end, shaped) = if let Some(shape) = shape
            && let Some(len) = shape.len()
            && let Some(newline) = match avail.get(len..) {
                Some([b'\n', ..]) => Some(len),
                Some([b'\r', b'\n', ..]) => Some(len + 1),
                _ => None,
            }
            && shape.matches(&avail[..len])
        {
            let end = LineEnd {
                newline,
                len,
                plain: true,
            };
            (end, true)
        } else {
            // The common case: the line and its newline lie in the buffer, and one SIMD
            // pass finds the newline and maps the blanks.
            match self.map.map_to_newline(avail, MAX_LINE) {
                Some(end) => (end, false),
                None => return self.next_line_slowly(),
            }
        };
        self.line_no += 1;
        self.pending = end.newline + 1;
        // The buffer is unconsumed, so this returns the same bytes without I/O. (The first
        // borrow cannot be returned: it would stay borrowed on the other path.)
        let line = &self.inner.fill_buf().map_err(LineError::Io)?[..end.len];
        let kind = match (shaped, end.plain) {
            (true, _) => Kind::Shaped,
            (false, true) => Kind::Mapped(self.map.words()),
            (false, false) => Kind::Other,
        };
        Ok(Some(Line {
            no: self.line_no,
            bytes: line,
            kind,
        }))
    }

    /// [`Lines::next_line`] when the buffer ends before the next newline (or the line is too
    /// long): memchr finds the newline, across refills if need be.
    #[cold]
    #[inline(never)]
    fn next_line_slowly(&mut self) -> Result<Option<Line<'_>>, LineError> {
        self.spill.clear();
        // `Some(n)`: the line is the first `n` bytes of the inner buffer (newline at `n`).
        // `None`: the line is in `spill`.
        let borrowed: Option<usize>;
        loop {
            let avail = self.inner.fill_buf().map_err(LineError::Io)?;
            if avail.is_empty() {
                if self.spill.is_empty() {
                    return Ok(None);
                }
                borrowed = None;
                break;
            }
            match memchr::memchr(b'\n', avail) {
                Some(i) if self.spill.is_empty() => {
                    if i > MAX_LINE {
                        return Err(LineError::TooLong);
                    }
                    borrowed = Some(i);
                    break;
                }
                Some(i) => {
                    if self.spill.len() + i > MAX_LINE {
                        return Err(LineError::TooLong);
                    }
                    self.spill.extend_from_slice(&avail[..i]);
                    self.inner.consume(i + 1);
                    borrowed = None;
                    break;
                }
                None => {
                    let n = avail.len();
                    if self.spill.len() + n > MAX_LINE {
                        return Err(LineError::TooLong);
                    }
                    self.spill.extend_from_slice(avail);
                    self.inner.consume(n);
                }
            }
        }
        self.line_no += 1;
        let line = match borrowed {
            Some(i) => {
                self.pending = i + 1;
                // The buffer is unconsumed, so this returns the same bytes without I/O.
                &self.inner.fill_buf().map_err(LineError::Io)?[..i]
            }
            None => &self.spill[..],
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let kind = match self.map.map(line) {
            true => Kind::Mapped(self.map.words()),
            false => Kind::Other,
        };
        Ok(Some(Line {
            no: self.line_no,
            bytes: line,
            kind,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], cap: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut lines = Lines::new(io::BufReader::with_capacity(cap, input));
        let mut out = Vec::new();
        loop {
            match lines.next_line() {
                Ok(Some(l)) => out.push(l.bytes.to_vec()),
                Ok(None) => return Ok(out),
                Err(e) => return Err(format!("{}: {e}", lines.line_no)),
            }
        }
    }

    #[test]
    fn splits_like_scan_lines() {
        for cap in [1, 2, 3, 7, 4096] {
            assert_eq!(
                all(b"a\r\nb\n\nc\r\r\nlast", cap).unwrap(),
                vec![
                    b"a".to_vec(),
                    b"b".to_vec(),
                    vec![],
                    b"c\r".to_vec(),
                    b"last".to_vec()
                ]
            );
            assert_eq!(all(b"", cap).unwrap(), Vec::<Vec<u8>>::new());
        }
    }

    #[test]
    fn line_limit_is_65535_bytes() {
        for cap in [1000, 1 << 17] {
            let mut ok = vec![b'x'; MAX_LINE];
            ok.push(b'\n');
            assert_eq!(all(&ok, cap).unwrap().len(), 1);
            let mut long = b"first\n".to_vec();
            long.extend(vec![b'x'; MAX_LINE + 1]);
            long.push(b'\n');
            assert_eq!(
                all(&long, cap).unwrap_err(),
                "1: bufio.Scanner: token too long"
            );
            // Without a final newline too.
            assert!(all(&vec![b'x'; MAX_LINE + 1], cap).is_err());
        }
    }
}
