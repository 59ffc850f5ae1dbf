//! Serde helpers that make Rust values encode exactly as Go's `encoding/json` encodes
//! the same Go values, so our JSON is byte-identical to upstream's.
//!
//! Three Go behaviours matter for the dashboard types:
//! - a nil slice encodes as `null` (an empty non-nil slice as `[]`); upstream's types
//!   mostly hold nil slices, so we write `null` for empty and read `null` back as empty;
//! - `time.Time` encodes as RFC 3339 with nanoseconds and trailing zeros trimmed
//!   (Go's `RFC3339Nano`), and its zero value is `0001-01-01T00:00:00Z`;
//! - `float64` values print without a fractional part when they are integral
//!   (`1200`, not `1200.0`).

use std::fmt;

use chrono::{DateTime, FixedOffset, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Vec<T>` that encodes as Go's nil slice (`null`) when empty and accepts `null`.
pub mod nil_slice {
    use super::*;

    /// Writes `null` for an empty vector, the array otherwise.
    pub fn serialize<S: Serializer, T: Serialize>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            v.serialize(s)
        }
    }

    /// Reads `null` or an array.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

/// `f64` encoded as Go encodes a `float64`: integral values without `.0`.
pub mod go_float {
    use super::*;

    /// Largest magnitude below which Go prints a float in plain decimal form.
    const PLAIN_LIMIT: f64 = 1e21;

    /// Writes an integral value as an integer, anything else as the shortest decimal.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        // i64 holds every integral f64 below 2^63 exactly; beyond that Go would print
        // digits that serde_json would also get right in exponent form only, so fall back.
        if v.fract() == 0.0 && v.abs() < PLAIN_LIMIT && v.abs() < 9.2e18 {
            s.serialize_i64(*v as i64)
        } else {
            s.serialize_f64(*v)
        }
    }

    /// Reads any JSON number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        f64::deserialize(d)
    }
}

/// A point in time with Go's `time.Time` JSON encoding (RFC 3339, trimmed nanoseconds,
/// original UTC offset kept). [`GoTime::zero`] is Go's zero time, which upstream writes for
/// fields that are not set yet (for example `EndTime` of a running build).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoTime(pub DateTime<FixedOffset>);

impl GoTime {
    /// The current time in UTC.
    pub fn now() -> GoTime {
        GoTime(Utc::now().fixed_offset())
    }

    /// Whether this is Go's zero time (`t.IsZero()`).
    pub fn is_zero(&self) -> bool {
        *self == Self::zero()
    }

    /// Go's zero `time.Time`: January 1, year 1, 00:00:00 UTC.
    pub fn zero() -> GoTime {
        GoTime(
            DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
                .expect("Go's zero time is valid RFC 3339"),
        )
    }

    /// Builds a time from Unix seconds and nanoseconds, in UTC.
    pub fn from_unix(secs: i64, nanos: u32) -> Option<GoTime> {
        DateTime::from_timestamp(secs, nanos).map(|t| GoTime(t.fixed_offset()))
    }

    /// Parses Go's RFC 3339 form (`2006-01-02T15:04:05.999999999Z07:00`).
    pub fn parse(s: &str) -> Result<GoTime, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(GoTime)
    }

    /// Seconds elapsed from `earlier` to `self` as a float, like Go's `Duration.Seconds()`.
    pub fn seconds_since(&self, earlier: &GoTime) -> f64 {
        let d = self.0.signed_duration_since(earlier.0);
        d.num_nanoseconds()
            .map(|n| n as f64 / 1e9)
            .unwrap_or(d.num_seconds() as f64)
    }
}

impl Default for GoTime {
    fn default() -> Self {
        GoTime::zero()
    }
}

impl fmt::Display for GoTime {
    /// Formats exactly as Go's `time.RFC3339Nano` layout.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S"))?;
        let nanos = t.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        let off = t.offset().local_minus_utc();
        if off == 0 {
            f.write_str("Z")
        } else {
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.abs();
            write!(f, "{sign}{:02}:{:02}", off / 3600, (off % 3600) / 60)
        }
    }
}

impl fmt::Debug for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoTime({self})")
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoTime::parse(&s).map_err(|e| serde::de::Error::custom(format!("bad time {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_time_encodes_as_go() {
        assert_eq!(GoTime::zero().to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(GoTime::default(), GoTime::zero());
        assert!(GoTime::zero().is_zero());
    }

    #[test]
    fn nanoseconds_are_trimmed_like_rfc3339nano() {
        let t = GoTime::parse("2024-05-01T12:00:00.120000000+02:00").unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.12+02:00");
        let t = GoTime::parse("2024-05-01T12:00:00.000000001Z").unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.000000001Z");
        let t = GoTime::parse("2009-11-10T23:00:01-08:00").unwrap();
        assert_eq!(t.to_string(), "2009-11-10T23:00:01-08:00");
    }

    #[test]
    fn floats_print_like_go() {
        #[derive(Serialize)]
        struct F(#[serde(with = "go_float")] f64);
        assert_eq!(serde_json::to_string(&F(1200.0)).unwrap(), "1200");
        assert_eq!(serde_json::to_string(&F(5400.5)).unwrap(), "5400.5");
        assert_eq!(serde_json::to_string(&F(0.0)).unwrap(), "0");
        assert_eq!(serde_json::to_string(&F(-3.0)).unwrap(), "-3");
    }
}
