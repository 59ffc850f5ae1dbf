//! Go's number syntax: `strconv.Atoi`, `strconv.ParseFloat`, and `%v` float printing.

use wide::bytemuck::cast;
use wide::{f64x2, i16x8, u8x16, u16x8, u64x2};

/// Why a number did not parse, worded as Go's `strconv` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    /// `invalid syntax`
    Syntax,
    /// `value out of range`
    Range,
}

impl NumError {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NumError::Syntax => "invalid syntax",
            NumError::Range => "value out of range",
        }
    }
}

/// `strconv.Atoi` on a 64-bit machine: optional sign, decimal digits.
pub(crate) fn atoi(b: &[u8]) -> Result<i64, NumError> {
    use std::num::IntErrorKind;
    let (digits, end) = Digits::scan(b, 0);
    if end == b.len()
        && let Some(v) = digits.int()
    {
        return Ok(v);
    }
    // Rust also accepts a leading `+`, as Go does; both reject everything else non-digit.
    let s = std::str::from_utf8(b).map_err(|_| NumError::Syntax)?;
    s.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => NumError::Range,
        _ => NumError::Syntax,
    })
}

/// `strconv.ParseFloat(s, 64)`: decimal or hexadecimal, exponent, sign, `Inf`, `NaN`.
pub(crate) fn atof(b: &[u8]) -> Result<f64, NumError> {
    // Fast path: most measurements are short unsigned integers or decimals.
    let (digits, end) = Digits::scan(b, 0);
    if end == b.len()
        && let Some(v) = digits.exact_f64()
    {
        return Ok(v);
    }
    let (neg, body) = match b.first() {
        Some(b'+') => (false, &b[1..]),
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let magnitude = if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case(b"nan") {
        f64::NAN
    } else if body.len() > 2 && body[..2].eq_ignore_ascii_case(b"0x") {
        let hex = std::str::from_utf8(&body[2..]).map_err(|_| NumError::Syntax)?;
        parse_hex(&hex.to_ascii_lowercase())?
    } else {
        // Go's decimal grammar is Rust's minus its spellings of infinity and NaN (handled
        // above), so check the characters first: "+nan1" and "1x" stay errors.
        if !body
            .iter()
            .all(|&c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(NumError::Syntax);
        }
        let text = std::str::from_utf8(body).map_err(|_| NumError::Syntax)?;
        let v: f64 = text.parse().map_err(|_| NumError::Syntax)?;
        if v.is_infinite() {
            return Err(NumError::Range);
        }
        v
    };
    Ok(if neg { -magnitude } else { magnitude })
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// An unsigned run of decimal digits with at most one `.`, scanned once: what the fast
/// paths of [`atoi`] and [`atof`] (and reader N's line fast path) need to know of a number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Digits {
    /// The digits read as one integer, ignoring the point (wrapped if there are more than
    /// 19; such numbers are refused by both conversions).
    mantissa: u64,
    /// Bytes scanned, the point included.
    len: usize,
    /// Digits after the point; `None` without a point.
    frac: Option<usize>,
}

impl Digits {
    /// Scans `b` from `start` up to the first byte that is neither a digit nor the first
    /// `.`; returns the digits and that byte's index.
    #[inline]
    pub(crate) fn scan(b: &[u8], start: usize) -> (Digits, usize) {
        let b = b.get(start..).unwrap_or_default();
        let mut mantissa: u64 = 0;
        let mut dot = usize::MAX;
        let mut len = b.len();
        for (i, &c) in b.iter().enumerate() {
            let d = c.wrapping_sub(b'0');
            if d < 10 {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            } else if c == b'.' && dot == usize::MAX {
                dot = i;
            } else {
                len = i;
                break;
            }
        }
        let digits = Digits {
            mantissa,
            len,
            frac: (dot != usize::MAX).then(|| len - dot - 1),
        };
        (digits, start + len)
    }

    /// The field `b[start..end]` read as digits with at most one `.`; `None` if it holds
    /// anything else.
    #[inline]
    pub(crate) fn field(b: &[u8], start: usize, end: usize) -> Option<Digits> {
        let (digits, stop) = Digits::scan(b, start);
        (stop == end).then_some(digits)
    }

    /// [`Digits::field`] then [`Digits::exact_f64`], with the common case (up to eight
    /// bytes) read as one word.
    #[inline(always)]
    pub(crate) fn field_f64(b: &[u8], start: usize, end: usize) -> Option<f64> {
        match WordNumber::of(b, start, end) {
            Some(number) => number.f64(b),
            None => Digits::field(b, start, end)?.exact_f64(),
        }
    }

    /// [`Digits::field`] then [`Digits::int`], with the common case read as one word.
    #[inline(always)]
    pub(crate) fn field_int(b: &[u8], start: usize, end: usize) -> Option<i64> {
        match WordNumber::of(b, start, end) {
            Some(number) => number.int(b),
            None => Digits::field(b, start, end)?.int(),
        }
    }

    /// The value as `strconv.Atoi` reads it, when it is 1 to 18 plain digits (no overflow
    /// is possible); `None` sends the caller to the general parser.
    #[inline]
    pub(crate) fn int(&self) -> Option<i64> {
        (self.frac.is_none() && (1..=18).contains(&self.len)).then_some(self.mantissa as i64)
    }

    /// Clinger's fast path for `digits[.digits]`: with at most 15 digits the mantissa and the
    /// power of ten are both exact, so one division rounds correctly. `None` (a lone point,
    /// more digits) sends the caller to the general parser.
    #[inline]
    pub(crate) fn exact_f64(&self) -> Option<f64> {
        match self.frac {
            None => (1..=15)
                .contains(&self.len)
                .then(|| small_to_f64(self.mantissa)),
            // At most 15 digits and one point: the mantissa stays below 2^50.
            Some(frac) => (2..=16)
                .contains(&self.len)
                .then(|| small_to_f64(self.mantissa) / POW10[frac]),
        }
    }
}

/// Where a number field of up to eight bytes lies in the word (the eight bytes) that ends
/// where it ends, and where its point is: what it takes to read it without a loop (see
/// [`eight_digits`]).
///
/// Reader N's fast path learns one for each number of a line it has split, and then reads
/// the same place in the lines of the same shape, which have their numbers there: such a
/// line's number is read when it has the same length and its point in the same place (or
/// none), and declined otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WordNumber {
    /// Index just past the field.
    end: usize,
    /// The field's bytes in the word: its top bytes.
    field: u64,
    /// The point's byte; zero without a point.
    point: u64,
    /// The bytes of the word up to and including the point; zero without a point.
    through_point: u64,
    /// How many digits follow the point; zero without a point.
    frac: usize,
}

/// The eight bytes of `b` that end at `end`; `None` if there are not eight before it.
#[inline(always)]
fn word_at(b: &[u8], end: usize) -> Option<u64> {
    // Before the start of `b`, the subtraction wraps and `get` fails.
    let word = b.get(end.wrapping_sub(8)..end)?;
    Some(u64::from_le_bytes(word.try_into().expect("eight bytes")))
}

impl WordNumber {
    /// How to read `b[start..end]` if it is one to eight bytes with at most one `.` (not a
    /// lone one), eight bytes into `b`; `None` otherwise (a longer field must be scanned).
    /// Whether the other bytes are digits is for [`WordNumber::f64`] and
    /// [`WordNumber::int`] to check, in this line and in others.
    #[inline(always)]
    pub(crate) fn of(b: &[u8], start: usize, end: usize) -> Option<WordNumber> {
        let len = end.wrapping_sub(start);
        if !(1..=8).contains(&len) {
            return None;
        }
        let field = u64::MAX << (8 * (8 - len));
        // The field's bytes as digit values, zeros below.
        let digits = (word_at(b, end)? ^ SWAR_ZEROS) & field;
        let mut number = WordNumber {
            end,
            field,
            ..WordNumber::default()
        };
        if !all_below_ten(digits) {
            // One `.` ('.' ^ '0' is 0x1e), and not alone.
            let points = zero_bytes(digits ^ (SWAR_ONES * 0x1e));
            if points == 0 || points & (points - 1) != 0 || len < 2 {
                return None;
            }
            let point = (points.trailing_zeros() / 8) as usize & 7;
            number.point = 0xff << (8 * point);
            number.through_point = u64::MAX >> (8 * (7 - point));
            number.frac = 7 - point;
        }
        Some(number)
    }

    /// The digits of the field this describes, in `b`, as one integer (the point dropped);
    /// `None` unless the field holds digits only, and the point in its place.
    #[inline(always)]
    fn mantissa(&self, b: &[u8]) -> Option<u64> {
        let mut digits = (word_at(b, self.end)? ^ SWAR_ZEROS) & self.field;
        if self.point != 0 {
            if digits & self.point != (SWAR_ONES * 0x1e) & self.point {
                return None;
            }
            // Drop the point: the bytes before it move up one place.
            digits = ((digits << 8) & self.through_point) | (digits & !self.through_point);
        }
        all_below_ten(digits).then(|| eight_digits(digits))
    }

    /// The field in `b` as `strconv.ParseFloat` reads it; `None` as for
    /// [`WordNumber::mantissa`]. At most eight digits: the mantissa and the power of ten
    /// are exact, so the one division rounds correctly.
    #[inline(always)]
    pub(crate) fn f64(&self, b: &[u8]) -> Option<f64> {
        let m = small_to_f64(self.mantissa(b)?);
        Some(if self.point == 0 {
            m
        } else {
            m / self.divisor()
        })
    }

    /// `10^frac`: one without a point.
    fn divisor(&self) -> f64 {
        POW10[self.frac & 7]
    }

    /// The field in `b` as `strconv.Atoi` reads it; `None` as for
    /// [`WordNumber::mantissa`], and for a field with a point.
    #[inline(always)]
    pub(crate) fn int(&self, b: &[u8]) -> Option<i64> {
        if self.point != 0 {
            return None;
        }
        Some(self.mantissa(b)? as i64)
    }
}

/// Two [`WordNumber`]s read at once, with SSE2 (NEON on aarch64) through `wide`: the same
/// steps on two words side by side, and a multiply-add of 16-bit lanes for the digit
/// weights. What reader N's shaped lines use, as the scalar steps cost about twice the
/// instructions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WordPair {
    end: [usize; 2],
    field: u64x2,
    point: u64x2,
    through_point: u64x2,
    /// [`WordNumber::divisor`]s.
    divisor: f64x2,
}

impl Default for WordPair {
    fn default() -> Self {
        WordPair::new(&WordNumber::default(), &WordNumber::default())
    }
}

impl WordPair {
    /// `a` and `b`, to be read together (`b` may be `a` again, for an odd count).
    pub(crate) fn new(a: &WordNumber, b: &WordNumber) -> WordPair {
        WordPair {
            end: [a.end, b.end],
            field: u64x2::new([a.field, b.field]),
            point: u64x2::new([a.point, b.point]),
            through_point: u64x2::new([a.through_point, b.through_point]),
            divisor: f64x2::new([a.divisor(), b.divisor()]),
        }
    }

    /// Both numbers in `b`, as [`WordNumber::f64`] reads each; `None` if either is not
    /// there.
    #[inline(always)]
    pub(crate) fn f64s(&self, b: &[u8]) -> Option<[f64; 2]> {
        let words = u64x2::new([word_at(b, self.end[0])?, word_at(b, self.end[1])?]);
        let digits = (words ^ u64x2::splat(SWAR_ZEROS)) & self.field;
        // Anything but '.' where the point belongs, and any digit value above 9 once it is
        // dropped, makes `bad` non-zero.
        let misplaced = (digits ^ u64x2::splat(SWAR_ONES * 0x1e)) & self.point;
        let digits =
            (digits.unbounded_shl_scalar(8) & self.through_point) | (digits & !self.through_point);
        let above_nine = cast::<_, u8x16>(digits).saturating_sub(u8x16::splat(9));
        let bad = cast::<_, u8x16>(misplaced) | above_nine;
        if bad.simd_eq(u8x16::ZERO).to_bitmask() != 0xffff {
            return None;
        }
        // Digit pairs, the first digit in the low byte of each 16-bit lane: 10a + b.
        let lanes = cast::<_, u16x8>(digits);
        let pairs = (lanes & u16x8::splat(0xff)) * u16x8::splat(10) + lanes.unbounded_shr_scalar(8);
        // Pairs of pairs: 100p + q in each 32-bit lane (at most 9,999).
        let quads = cast::<_, i16x8>(pairs).dot(i16x8::new([100, 1, 100, 1, 100, 1, 100, 1]));
        // The second quad of each word next to the first, then 10,000 × first + second.
        let quads = cast::<_, u64x2>(quads);
        let quads = quads | quads.unbounded_shr_scalar(16);
        let whole = cast::<_, i16x8>(quads).dot(i16x8::new([10_000, 1, 0, 0, 10_000, 1, 0, 0]));
        // Below 2^27, so exact as a double: set the exponent of 2^52 over it, subtract 2^52.
        const TWO_52: u64 = 0x4330_0000_0000_0000;
        let m = cast::<_, f64x2>(cast::<_, u64x2>(whole) | u64x2::splat(TWO_52))
            - f64x2::splat(f64::from_bits(TWO_52));
        Some((m / self.divisor).to_array())
    }
}

/// One in every byte of a word.
const SWAR_ONES: u64 = 0x0101_0101_0101_0101;
/// `'0'` in every byte of a word.
const SWAR_ZEROS: u64 = SWAR_ONES * b'0' as u64;
/// The high bit of every byte of a word.
const SWAR_HIGH: u64 = SWAR_ONES * 0x80;

/// True if every byte of `x` is below 10. Adding 0x76 carries a byte of 10 or more into its
/// high bit; bytes that already have it are caught by `| x`. A carry out of a byte happens
/// only from a byte that is itself caught, so the answer is exact.
#[inline]
fn all_below_ten(x: u64) -> bool {
    (x.wrapping_add(SWAR_ONES * 0x76) | x) & SWAR_HIGH == 0
}

/// The high bit of each byte of `x` that is zero, and no other bit (no carries cross bytes:
/// the low seven bits plus 0x7f stay within the byte).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = !SWAR_HIGH;
    !((x & LOW7).wrapping_add(LOW7) | x | LOW7)
}

/// Eight digit values (0 to 9), the first in the lowest byte, as one number: pairs, then
/// quadruples, then the whole, with three multiplications instead of eight.
#[inline]
fn eight_digits(x: u64) -> u64 {
    const LOW_BYTES: u64 = 0x0000_00ff_0000_00ff;
    // Bytes 0, 2, 4, 6 now hold 10 × digit + next digit.
    let pairs = x.wrapping_mul(10).wrapping_add(x >> 8);
    // The upper halves of the products sum the pairs with weights 10⁶, 10⁴, 10², 1.
    let high = (pairs & LOW_BYTES).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((pairs >> 16) & LOW_BYTES).wrapping_mul(1 + (10_000 << 32));
    high.wrapping_add(low) >> 32
}

/// `m as f64` for `m` below 2^53 (so exactly), through the signed conversion: one
/// instruction on x86-64, where the unsigned one takes several.
#[inline(always)]
fn small_to_f64(m: u64) -> f64 {
    debug_assert!(m < 1 << 53);
    m as i64 as f64
}

/// A hexadecimal float body after `0x`: hex digits with an optional point, then a mandatory
/// binary exponent `p±N`.
fn parse_hex(s: &str) -> Result<f64, NumError> {
    let (mantissa, exp) = s.split_once('p').ok_or(NumError::Syntax)?;
    let exp: i32 = exp.parse().map_err(|_| NumError::Syntax)?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(NumError::Syntax);
    }
    let mut v = 0f64;
    for c in int.chars().chain(frac.chars()) {
        v = v * 16.0 + f64::from(c.to_digit(16).ok_or(NumError::Syntax)?);
    }
    let scale = exp - 4 * frac.len() as i32;
    let v = v * 2f64.powi(scale);
    if v.is_infinite() {
        return Err(NumError::Range);
    }
    Ok(v)
}

/// Formats `v` as Go's `%v` does: the shortest representation that round-trips, in
/// exponent form when the decimal exponent is below −4 or at least 6 (`1.234567e+06`,
/// `1e-05`, `123456`).
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: "-1.234567e6".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..6).contains(&exp) {
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
        return out;
    }
    // Plain decimal: place the point `exp + 1` digits in.
    let point = exp + 1;
    let mut out = String::from(sign);
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fast path agrees with the standard parser on every plain decimal.
        #[test]
        fn fast_decimal_is_correctly_rounded(int in "[0-9]{0,12}", frac in prop::option::of("[0-9]{0,12}")) {
            let s = match &frac { Some(f) => format!("{int}.{f}"), None => int.clone() };
            let want: Option<f64> = s.parse().ok();
            prop_assert_eq!(atof(s.as_bytes()).ok(), want);
        }

        /// A number read as one word is what `strconv.ParseFloat` reads, and every plain
        /// number of up to eight bytes is read that way.
        #[test]
        fn word_numbers_read_as_atof(field in number_bytes(1..12)) {
            let b = [b"Benchmark ".as_slice(), &field].concat();
            let (start, end) = (10, b.len());
            let plain = field.iter().filter(|&&c| c == b'.').count() <= 1
                && field.iter().all(|c| c.is_ascii_digit() || *c == b'.')
                && field != b".";
            let word = WordNumber::of(&b, start, end).and_then(|n| n.f64(&b));
            prop_assert_eq!(word.is_some(), plain && field.len() <= 8);
            if let Some(v) = word {
                prop_assert_eq!(Ok(v.to_bits()), atof(&field).map(f64::to_bits));
            }
            prop_assert_eq!(Digits::field_f64(&b, start, end).is_some(), plain);
        }

        /// Two numbers read together read as each alone, in a line other than the one
        /// they were learned from (whose numbers may differ in any byte).
        #[test]
        fn pairs_read_as_two_word_numbers(
            learned in prop::collection::vec(number_bytes(1..9), 2),
            read in prop::collection::vec(number_bytes(1..9), 2),
        ) {
            let line = |fields: &[Vec<u8>]| [b"Benchmark ".as_slice(), &fields[0], b" ", &fields[1]].concat();
            let at = [10, 11 + learned[0].len()];
            let ends = [at[0] + learned[0].len(), at[1] + learned[1].len()];
            let first = line(&learned);
            let (Some(a), Some(b)) = (WordNumber::of(&first, at[0], ends[0]), WordNumber::of(&first, at[1], ends[1])) else {
                return Ok(());
            };
            // The same widths, other bytes.
            let read: Vec<Vec<u8>> = read.iter().zip(&learned).map(|(r, l)| {
                r.iter().cycle().take(l.len()).copied().collect()
            }).collect();
            let other = line(&read);
            let bits = |v: Option<f64>| v.map(f64::to_bits);
            let alone = [bits(a.f64(&other)), bits(b.f64(&other))];
            let together = WordPair::new(&a, &b).f64s(&other);
            match together {
                Some([x, y]) => prop_assert_eq!([Some(x.to_bits()), Some(y.to_bits())], alone),
                None => prop_assert!(alone.contains(&None)),
            }
            prop_assert_eq!(WordPair::new(&a, &a).f64s(&other).map(|[x, _]| x.to_bits()), alone[0]);
        }
    }

    /// Number-like bytes: mostly digits, sometimes a point, at times anything.
    fn number_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![10 => b'0'..=b'9', 2 => Just(b'.'), 1 => any::<u8>()],
            len,
        )
    }

    #[test]
    fn go_v_formatting() {
        for (v, s) in [
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (1726.0, "1726"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (-2.5e-7, "-2.5e-07"),
            (0.0, "0"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_go_float(v), s);
        }
    }

    #[test]
    fn go_float_syntax() {
        assert_eq!(atof(b"1726"), Ok(1726.0));
        assert_eq!(atof(b"12.34"), Ok(12.34));
        assert_eq!(atof(b"0.1"), Ok(0.1));
        assert_eq!(atof(b".5"), Ok(0.5));
        assert_eq!(atof(b"5."), Ok(5.0));
        assert_eq!(atof(b"."), Err(NumError::Syntax));
        assert_eq!(atof(b"1234567.891234567"), Ok(1234567.891234567));
        assert_eq!(atof(b"0.000000000000000000000001"), Ok(1e-24));
        assert_eq!(atof(b"123456789012345678"), Ok(123456789012345678.0));
        assert_eq!(atof(b"1.5e3"), Ok(1500.0));
        assert_eq!(atof(b"-Inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(atof(b"-123456789.5"), Ok(-123456789.5));
        assert_eq!(atof(b"+1e3"), Ok(1000.0));
        assert_eq!(atof(b"ns/op"), Err(NumError::Syntax));
        assert!(atof(b"NaN").unwrap().is_nan());
        assert_eq!(atof(b"0x1p-2"), Ok(0.25));
        assert_eq!(atof(b"0x1.8p1"), Ok(3.0));
        assert_eq!(atof(b"x"), Err(NumError::Syntax));
        assert_eq!(atof(b"1e400"), Err(NumError::Range));
        assert_eq!(atof(b""), Err(NumError::Syntax));
        assert_eq!(atoi(b"+12"), Ok(12));
        assert_eq!(atoi(b"abc"), Err(NumError::Syntax));
        assert_eq!(
            atoi(b"9999999999999999999999999999999"),
            Err(NumError::Range)
        );
    }
}
