//! Units: normalising ("tidying") pre-scaled units, unit classes, and which way is better.

use super::syntax::decode_rune;

/// The separators of a unit's tokens, and whether the next token is in the denominator.
fn is_unit_separator(c: char) -> bool {
    c == '*' || c == '/' || c == '-' || c.is_whitespace()
}

/// Calls `f(start, end, in_denominator)` for each token of `unit`: tokens are separated by
/// `*`, `/`, `-` and spaces; `/` moves to the denominator until the next `*`.
fn for_each_token(unit: &[u8], mut f: impl FnMut(usize, usize, bool)) {
    let mut denom = false;
    let mut i = 0;
    while i < unit.len() {
        let (c, n) = decode_rune(&unit[i..]);
        if is_unit_separator(c) {
            match c {
                '*' => denom = false,
                '/' => denom = true,
                _ => {}
            }
            i += n;
            continue;
        }
        let start = i;
        while i < unit.len() {
            let (c, n) = decode_rune(&unit[i..]);
            if is_unit_separator(c) {
                break;
            }
            i += n;
        }
        f(start, i, denom);
    }
}

/// The tidied form of `unit` and the factor that converts a value into it.
///
/// `ns/op` → `sec/op` (×1e-9), `MB/s` → `B/s` (×1e6); in general every numerator token `ns`
/// becomes `sec` and `MB` becomes `B`; denominators are left alone (`MB/ns` → `B/ns`).
pub fn tidy_unit(unit: &[u8]) -> (Vec<u8>, f64) {
    match unit {
        b"ns/op" => return (b"sec/op".to_vec(), 1e-9),
        b"MB/s" => return (b"B/s".to_vec(), 1e6),
        _ => {}
    }
    if memchr::memmem::find(unit, b"ns").is_none() && memchr::memmem::find(unit, b"MB").is_none() {
        return (unit.to_vec(), 1.0);
    }
    let mut out = Vec::with_capacity(unit.len() + 2);
    let mut copied = 0;
    let mut factor = 1.0;
    for_each_token(unit, |start, end, denom| {
        if denom {
            return;
        }
        let replacement: &[u8] = match &unit[start..end] {
            b"ns" => {
                factor /= 1e9;
                b"sec"
            }
            b"MB" => {
                factor *= 1e6;
                b"B"
            }
            _ => return,
        };
        out.extend_from_slice(&unit[copied..start]);
        out.extend_from_slice(replacement);
        copied = end;
    });
    out.extend_from_slice(&unit[copied..]);
    (out, factor)
}

/// How values of a unit are scaled for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitClass {
    /// SI prefixes: k, M, G, m, µ, n.
    Decimal,
    /// IEC prefixes: Ki, Mi, Gi (units counting bytes).
    Binary,
}

/// The class of a unit: binary when a numerator token is `B`, `MB` or `bytes`.
pub fn unit_class(unit: &[u8]) -> UnitClass {
    let mut class = UnitClass::Decimal;
    for_each_token(unit, |start, end, denom| {
        if !denom && matches!(&unit[start..end], b"B" | b"MB" | b"bytes") {
            class = UnitClass::Binary;
        }
    });
    class
}

/// Which direction of change is an improvement, from `better=` metadata or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (times, bytes, allocations).
    Lower,
    /// Larger is better (throughput).
    Higher,
    /// Not known.
    Unknown,
}

/// The default direction for a (tidied or original) unit.
pub fn default_better(unit: &[u8]) -> Better {
    match unit {
        b"ns/op" | b"sec/op" | b"B/op" | b"allocs/op" => Better::Lower,
        b"MB/s" | b"B/s" => Better::Higher,
        _ => Better::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tidy(u: &str) -> (String, f64) {
        let (t, f) = tidy_unit(u.as_bytes());
        (String::from_utf8(t).unwrap(), f)
    }

    #[test]
    fn tidies_like_benchunit() {
        // Conformance case 17.
        assert_eq!(tidy("ns/op"), ("sec/op".into(), 1e-9));
        assert_eq!(tidy("MB/s"), ("B/s".into(), 1e6));
        assert_eq!(tidy("MB/ns"), ("B/ns".into(), 1e6));
        assert_eq!(tidy("ns/GC"), ("sec/GC".into(), 1e-9));
        assert_eq!(tidy("mins/op"), ("mins/op".into(), 1.0));
        assert_eq!(tidy("B/op"), ("B/op".into(), 1.0));
        assert_eq!(tidy("ns*MB/x/ns"), ("sec*B/x/ns".into(), 1e-9 * 1e6));
        assert_eq!(tidy("a-ns"), ("a-sec".into(), 1e-9));
    }

    #[test]
    fn classes() {
        assert_eq!(unit_class(b"B/op"), UnitClass::Binary);
        assert_eq!(unit_class(b"a-bytes"), UnitClass::Binary);
        assert_eq!(unit_class(b"sec/B"), UnitClass::Decimal);
        assert_eq!(unit_class(b"sec/op"), UnitClass::Decimal);
    }
}
