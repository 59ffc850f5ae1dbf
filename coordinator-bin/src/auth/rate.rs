//! A rate limit per identity on the expensive writes (an enqueue runs `git fetch`; a
//! perf upload parses and stores a file): a token bucket per caller name, refilled at
//! `per_minute` a minute, holding at most as many (the burst).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets by caller name. Only identified callers reach it (writes need a token), so
/// there are at most as many buckets as tokens.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// At most `per_minute` requests a minute per caller (at least one).
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `who`'s bucket, or says how long until one is free.
    pub fn check(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets
            .entry(who.to_owned())
            .or_insert((self.per_minute, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.per_minute);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - *tokens) * 60.0 / self.per_minute,
        ))
    }

    /// The limit, for messages.
    pub fn per_minute(&self) -> u32 {
        self.per_minute as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate_per_caller() {
        let r = RateLimiter::new(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            r.check("ci", t0).unwrap();
        }
        let wait = r.check("ci", t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another caller has its own bucket.
        r.check("alice", t0).unwrap();
        // One a second comes back.
        r.check("ci", t0 + Duration::from_secs(1)).unwrap();
        assert!(r.check("ci", t0 + Duration::from_secs(1)).is_err());
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..60 {
            r.check("ci", later).unwrap();
        }
        assert!(r.check("ci", later).is_err());
    }
}
